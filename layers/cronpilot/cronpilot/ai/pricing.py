"""What the model calls cost: list prices per model, overridable per deployment (LLM_PRICES).

Pure: no SDK, no I/O. Prices are USD per million tokens, from
https://platform.claude.com/docs/en/about-claude/pricing (checked 2026-11): a 5-minute cache write costs
1.25x the base input price, a 1-hour write 2x, a cache read 0.1x. Bedrock lists the same prices for its
global endpoints; a regional endpoint or a negotiated price is what LLM_PRICES is for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cronpilot.models.run import TokenUsage

PER_MILLION = 1_000_000


class Price(BaseModel):
    """USD per million tokens of each kind."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float = Field(ge=0)
    cache_write_1h: float = Field(ge=0)
    cache_read: float = Field(ge=0)

    @classmethod
    def from_base(cls, input: float, output: float) -> Price:
        """The documented cache multipliers applied to a base input price."""
        return cls(
            input=input,
            output=output,
            cache_write_5m=round(input * 1.25, 6),
            cache_write_1h=round(input * 2, 6),
            cache_read=round(input * 0.1, 6),
        )


LIST_PRICES: dict[str, Price] = {
    "claude-opus-4-6": Price.from_base(5, 25),
    "claude-opus-4-5": Price.from_base(5, 25),
    "claude-opus-4-1": Price.from_base(15, 75),
    "claude-opus-4": Price.from_base(15, 75),
    "claude-sonnet-4-6": Price.from_base(3, 15),
    "claude-sonnet-4-5": Price.from_base(3, 15),
    "claude-sonnet-4": Price.from_base(3, 15),
    "claude-3-7-sonnet": Price.from_base(3, 15),
    "claude-haiku-4-5": Price.from_base(1, 5),
    "claude-3-5-haiku": Price.from_base(0.8, 4),
    "claude-3-haiku": Price(input=0.25, output=1.25, cache_write_5m=0.3, cache_write_1h=0.5, cache_read=0.03),
}


class PriceConfigError(ValueError):
    pass


def model_family(model: str, families: Iterable[str]) -> str | None:
    """The table key a model id belongs to: dated ids ("claude-haiku-4-5-20251001") and Bedrock ids
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0") included; the longest key wins (opus-4-5 > opus-4)."""
    name = model.lower()
    for family in sorted(families, key=len, reverse=True):
        if family in name:
            return family
    return None


class PriceTable(NamedTuple):
    prices: Mapping[str, Price]

    def price(self, model: str) -> Price | None:
        if model in self.prices:  # an override may name an exact (e.g. custom Bedrock) id
            return self.prices[model]
        family = model_family(model, self.prices)
        return self.prices[family] if family else None

    def cost(self, model: str, usage: TokenUsage) -> float | None:
        """USD for `usage` at this model's prices; None when the model has no price."""
        price = self.price(model)
        if price is None:
            return None
        write_1h = min(usage.cache_write_1h, usage.cache_write)
        micro = (
            usage.input * price.input
            + usage.output * price.output
            + (usage.cache_write - write_1h) * price.cache_write_5m
            + write_1h * price.cache_write_1h
            + usage.cache_read * price.cache_read
        )
        return micro / PER_MILLION


@lru_cache(maxsize=8)
def price_table(overrides: str = "") -> PriceTable:
    """The list prices, with the deployment's LLM_PRICES (JSON: model -> prices) on top.

    An override gives `input` and `output` and may give the cache prices; missing cache prices follow the
    documented multipliers. Cached: LLM_PRICES is fixed per deployment, so the table Settings validates at
    cold start is the one every run's model call reuses (the pilot asks for it per run).
    """
    if not overrides.strip():
        return PriceTable(LIST_PRICES)
    try:
        data = json.loads(overrides)
    except ValueError as exc:
        raise PriceConfigError(f"LLM_PRICES is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PriceConfigError('LLM_PRICES must be an object: {"<model>": {"input": 1.0, "output": 5.0}}')
    prices = dict(LIST_PRICES)
    for model, value in data.items():
        try:
            base = Price.from_base(float(value["input"]), float(value["output"]))
            prices[str(model)] = Price.model_validate({**base.model_dump(), **value})
        except (TypeError, KeyError, ValueError, ValidationError) as exc:
            raise PriceConfigError(
                f"LLM_PRICES[{model!r}]: give USD per million tokens as "
                '{"input": 1.0, "output": 5.0} (optionally cache_write_5m, cache_write_1h, cache_read)'
            ) from exc
    return PriceTable(prices)

"""Deployment settings, read from CDK context (`cdk.json` or `-c key=value`), with documented defaults.

Every key is listed in docs/deploy.md. Values given on the command line arrive as strings and are
coerced here; a bad value fails synthesis with the key's name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("anthropic", "bedrock", "none")
LOG_LEVELS = ("ALL", "ERROR", "FATAL", "OFF")
_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_SECRET_PREFIX = re.compile(r"^[A-Za-z0-9/_+=.@-]+/$")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class TokenPrices:
    """USD per million tokens (Claude Haiku 4.5 list prices) for the daily spend alarm."""

    input: float = 1.0
    output: float = 5.0
    cache_read: float = 0.10
    cache_write: float = 1.25


@dataclass(frozen=True)
class DeploySettings:
    stage: str = "dev"
    # Discovery tick: the schedule rule fires every `tick_minutes` minutes.
    tick_minutes: int = 1
    llm_provider: str = "anthropic"
    # Anthropic API model name, or a Bedrock model / inference profile id when llm_provider=bedrock.
    llm_model: str = ""
    # The daily token spend alarm fires above this many USD of LLM tokens per day.
    daily_budget_usd: float = 5.0
    token_prices: TokenPrices = field(default_factory=TokenPrices)
    # Alarms go to this e-mail address (subscribed to the stack's topic) ...
    alarm_email: str = ""
    # ... or to an existing SNS topic instead of a new one.
    alarm_topic_arn: str = ""
    # Private CIDRs the executor may call (comma-separated); empty = public internet only.
    executor_private_cidrs: str = ""
    executor_ports: str = "80,443"
    # Job files reference header secrets by name; the executor may read only names under this prefix
    # (Secrets Manager secrets `<prefix>*` and SSM parameters `/<prefix>*`). Default: cronpilot/<stage>/.
    job_secret_prefix: str = ""
    # Discovery lag (seconds between a job's due time and its claim) that raises the alarm.
    discovery_lag_alarm_seconds: int = 180
    log_retention_days: int = 30
    # Reserved concurrency caps the fan-out against the account (set false in accounts whose
    # concurrency limit is below 100+ these numbers, e.g. new accounts with a limit of 10).
    reserved_concurrency: bool = True
    executor_concurrency: int = 50
    llm_concurrency: int = 10
    # Step Functions execution logging per state machine type. Standard keeps its own execution
    # history, so its log mostly duplicates it; Express keeps none, so ERROR keeps the events of the
    # executions that failed (ALL logs every transition of every run: ~$0.50 per GB ingested).
    standard_log_level: str = "ERROR"
    express_log_level: str = "ERROR"

    def __post_init__(self) -> None:
        if not _STAGE.match(self.stage):
            raise SettingsError(f"stage {self.stage!r}: lower-case letters, digits and '-', at most 16")
        if self.llm_provider not in PROVIDERS:
            raise SettingsError(f"llm_provider {self.llm_provider!r}: one of {', '.join(PROVIDERS)}")
        if not 1 <= self.tick_minutes <= 60:
            raise SettingsError("tick_minutes: between 1 and 60")
        if self.daily_budget_usd <= 0:
            raise SettingsError("daily_budget_usd: must be positive")
        if self.job_secret_prefix and not _SECRET_PREFIX.match(self.job_secret_prefix):
            raise SettingsError("job_secret_prefix: a name prefix ending in '/', e.g. cronpilot/prod/")
        for cidr in self.private_cidrs:
            if not cidr.is_private:
                raise SettingsError(f"executor_private_cidrs: {cidr} is not a private network")
        for key in ("standard_log_level", "express_log_level"):
            if getattr(self, key) not in LOG_LEVELS:
                raise SettingsError(f"{key} {getattr(self, key)!r}: one of {', '.join(LOG_LEVELS)}")
        for port in self.executor_ports.split(","):
            if not port.strip().isdigit() or not 0 < int(port) < 65536:
                raise SettingsError(f"executor_ports: {port!r} is not a port")

    @property
    def private_cidrs(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        try:
            return [
                ipaddress.ip_network(c.strip()) for c in self.executor_private_cidrs.split(",") if c.strip()
            ]
        except ValueError as exc:
            raise SettingsError(f"executor_private_cidrs: {exc}") from exc

    @property
    def model(self) -> str:
        if self.llm_model:
            return self.llm_model
        if self.llm_provider == "bedrock":
            return "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        return "claude-haiku-4-5"

    @property
    def secret_prefix(self) -> str:
        return self.job_secret_prefix or f"cronpilot/{self.stage}/"

    @property
    def prefix(self) -> str:
        """Name prefix of every named resource: two stages can live in one account."""
        return f"cronpilot-{self.stage}"

    @property
    def service(self) -> str:
        """Powertools service name: the `service` dimension of every custom metric."""
        return self.prefix

    @classmethod
    def from_context(cls, get: Any) -> DeploySettings:
        """`get` is `node.try_get_context`; keys are the field names (token prices: `token_price_*`)."""
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if item.name == "token_prices":
                continue
            raw = get(item.name)
            if raw is None:
                continue
            values[item.name] = _coerce(item.name, raw, type(getattr(cls(), item.name)))
        prices = {}
        for item in dataclasses.fields(TokenPrices):
            raw = get(f"token_price_{item.name}")
            if raw is not None:
                prices[item.name] = _coerce(f"token_price_{item.name}", raw, float)
        return cls(**values, token_prices=TokenPrices(**prices))


def _coerce(name: str, raw: Any, kind: type) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "1", "yes"):
                return True
            if str(raw).lower() in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"context {name}={raw!r}: expected {kind.__name__}") from exc

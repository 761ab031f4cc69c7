"""Prices per model and the LLM_PRICES override: what each run's model calls cost."""

from __future__ import annotations

import pytest
from cronpilot.ai.pricing import LIST_PRICES, PriceConfigError, price_table
from cronpilot.config import Settings
from cronpilot.models.run import TokenUsage


def test_list_prices_follow_the_documented_cache_multipliers():
    haiku = LIST_PRICES["claude-haiku-4-5"]
    assert (haiku.input, haiku.output) == (1, 5)
    assert (haiku.cache_write_5m, haiku.cache_write_1h, haiku.cache_read) == (1.25, 2, 0.1)
    assert LIST_PRICES["claude-opus-4-6"].input == 5
    assert LIST_PRICES["claude-opus-4-1"].output == 75
    assert LIST_PRICES["claude-sonnet-4-6"].cache_read == pytest.approx(0.3)


def test_dated_and_bedrock_ids_price_as_their_family():
    table = price_table()
    assert table.price("claude-haiku-4-5-20251001") == LIST_PRICES["claude-haiku-4-5"]
    assert table.price("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == LIST_PRICES["claude-sonnet-4-5"]
    assert table.price("claude-opus-4-20250514") == LIST_PRICES["claude-opus-4"]
    assert table.price("no-such-model") is None


def test_cost_counts_every_kind_of_token_at_its_price():
    usage = TokenUsage(input=1_000_000, output=1_000_000, cache_read=1_000_000, cache_write=3_000_000)
    usage = usage.model_copy(update={"cache_write_1h": 1_000_000})
    # Haiku 4.5: 1 + 5 + 0.10 + 2 x 1.25 (5m writes) + 1 x 2 (1h writes)
    assert price_table().cost("claude-haiku-4-5", usage) == pytest.approx(10.6)
    assert price_table().cost("unknown", usage) is None


def test_an_override_replaces_a_price_and_can_name_a_custom_model_id():
    table = price_table(
        '{"claude-haiku-4-5": {"input": 0.5, "output": 2.5}, "my-bedrock-arn": {"input": 2, "output": 8}}'
    )
    assert table.price("claude-haiku-4-5").cache_write_1h == 1.0
    assert table.price("my-bedrock-arn").output == 8
    assert table.price("claude-sonnet-4-5") == LIST_PRICES["claude-sonnet-4-5"]


@pytest.mark.parametrize(
    "bad", ["not json", "[1]", '{"m": {"input": 1}}', '{"m": {"input": -1, "output": 1}}', '{"m": 3}']
)
def test_a_bad_override_is_one_line_naming_the_setting(bad):
    with pytest.raises(PriceConfigError) as caught:
        price_table(bad)
    assert "LLM_PRICES" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_setting_is_read_from_the_environment_name():
    assert Settings(table_name="t", llm_prices='{"x": {"input": 1, "output": 1}}').llm_prices.startswith("{")


def test_a_bad_override_fails_the_settings_at_cold_start():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="LLM_PRICES"):
        Settings(table_name="t", llm_prices='{"claude-haiku-4-5": {"input": "cheap"}}')

"""CDK context -> deployment settings: defaults, coercion of `-c key=value` strings, loud failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cronpilot_infra.settings import DeploySettings, SettingsError


def _from(context: dict[str, Any]) -> DeploySettings:
    return DeploySettings.from_context(context.get)


def test_cdk_json_context_equals_the_documented_defaults(repo_root: Path) -> None:
    context = json.loads((repo_root / "cdk.json").read_text())["context"]
    assert _from(context) == DeploySettings()
    assert DeploySettings().model == "claude-haiku-4-5"
    assert DeploySettings().secret_prefix == "cronpilot/dev/"


def test_command_line_strings_are_coerced() -> None:
    settings = _from(
        {
            "stage": "prod",
            "tick_minutes": "5",
            "reserved_concurrency": "false",
            "daily_budget_usd": "12.5",
            "llm_prices": '{"my-model": {"input": 2, "output": 8}}',
        }
    )
    assert settings.tick_minutes == 5
    assert settings.reserved_concurrency is False
    assert settings.daily_budget_usd == 12.5
    assert settings.llm_prices == '{"my-model": {"input": 2, "output": 8}}'
    assert settings.prefix == "cronpilot-prod"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"stage": "Prod!"}, "stage"),
        ({"llm_provider": "openai"}, "llm_provider"),
        ({"executor_private_cidrs": "8.8.8.0/24"}, "not a private network"),
        ({"executor_private_cidrs": "10.0.0.0/33"}, "executor_private_cidrs"),
        ({"executor_ports": "443,http"}, "executor_ports"),
        ({"tick_minutes": "0"}, "tick_minutes"),
        ({"reserved_concurrency": "maybe"}, "reserved_concurrency"),
        ({"job_secret_prefix": "no-trailing-slash"}, "job_secret_prefix"),
        # the executor must never be able to read the LLM key
        (
            {"job_secret_prefix": "cronpilot-dev/"},
            "covers the Anthropic key's secret 'cronpilot-dev/anthropic",
        ),
        ({"job_secret_prefix": "cron/", "stage": "prod"}, None),
        ({"job_secret_prefix": "c/"}, None),
        ({"tick_minutes": "5", "discovery_lag_alarm_seconds": "300"}, "must exceed the tick"),
        ({"llm_prices": '{"m": {"input": 1}}'}, "llm_prices\\['m'\\]: give USD per million tokens"),
        ({"llm_prices": "not json"}, "llm_prices is not JSON"),
        ({"token_price_input": "3"}, "token_price_input: removed, .* llm_prices="),
        (
            {"notify_topic_arns": "arn:aws:sqs:us-east-1:123456789012:q"},
            "notify_topic_arns: .* not an SNS topic",
        ),
        ({"lambda_system_log_level": "ERROR"}, "lambda_system_log_level 'ERROR': one of DEBUG, INFO, WARN"),
        # a setting that could not take effect is refused, saying what to add
        ({"executor_private_cidrs": "10.0.0.0/16"}, "add -c executor_subnet_ids=.*security_group_id"),
        ({"executor_subnet_ids": "subnet-0a1b2c3d4e5f60718"}, "both executor_subnet_ids and"),
        ({"executor_subnet_ids": "sn-1", "executor_security_group_id": "sg-0a1b2c3d"}, "not a subnet id"),
        ({"executor_subnet_ids": "subnet-0a1b2c3d", "executor_security_group_id": "x"}, "not a security"),
        ({"executor_vpc_endpoints": "true"}, "in no VPC"),
        (
            {
                "executor_subnet_ids": "subnet-0a1b2c3d",
                "executor_security_group_id": "sg-0a1b2c3d",
                "executor_vpc_endpoints": "true",
            },
            "executor_vpc_id=vpc-",
        ),
        (
            {
                "executor_subnet_ids": "subnet-0a1b2c3d",
                "executor_security_group_id": "sg-0a1b2c3d",
                "executor_vpc_endpoints": "true",
                "executor_vpc_id": "vpc-0a1b2c3d",
            },
            "executor_route_table_ids=rtb-",
        ),
    ],
)
def test_bad_settings_fail_with_the_key_name(context: dict[str, Any], message: str | None) -> None:
    if message is None:  # near misses that are fine: the check is a prefix match, not a substring one
        assert _from(context).secret_prefix == context["job_secret_prefix"]
        return
    with pytest.raises(SettingsError, match=message):
        _from(context)


@pytest.mark.parametrize(("tick", "threshold"), [(1, 180), (5, 420), (60, 3720)])
def test_discovery_lag_threshold_defaults_to_one_tick_plus_two_minutes(tick: int, threshold: int) -> None:
    assert DeploySettings(tick_minutes=tick).lag_alarm_seconds == threshold
    assert DeploySettings(tick_minutes=tick, discovery_lag_alarm_seconds=threshold + 1).lag_alarm_seconds == (
        threshold + 1
    )


def test_bedrock_defaults_to_the_us_inference_profile() -> None:
    assert DeploySettings(llm_provider="bedrock").model == "us.anthropic.claude-haiku-4-5-20251001-v1:0"

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
            "token_price_output": "4",
        }
    )
    assert settings.tick_minutes == 5
    assert settings.reserved_concurrency is False
    assert settings.daily_budget_usd == 12.5
    assert settings.token_prices.output == 4.0
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
    ],
)
def test_bad_settings_fail_with_the_key_name(context: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _from(context)


def test_bedrock_defaults_to_the_us_inference_profile() -> None:
    assert DeploySettings(llm_provider="bedrock").model == "us.anthropic.claude-haiku-4-5-20251001-v1:0"

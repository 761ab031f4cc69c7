"""Environment configuration, validated once at cold start: a missing variable fails loudly."""

# No `from __future__ import annotations` in modules that define pydantic models: pydantic would
# compile and evaluate every annotation string while building them, on every Lambda cold start.

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(RuntimeError):
    pass


class Settings(BaseModel):
    """Read from upper-case environment variables of the same name (TABLE_NAME, ...)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(min_length=1)
    state_machine_arn: str = ""
    # Runs whose worst case fits well inside 5 minutes start here (discovery); empty = all Standard.
    express_state_machine_arn: str = ""
    # Executor egress: extra ports and private CIDRs reachable only when a deployment says so.
    egress_allowed_ports: str = "80,443"
    egress_allowed_cidrs: str = ""
    # AI pilot: "anthropic", "bedrock" or "none".
    llm_provider: str = "none"
    llm_model: str = "claude-haiku-4-5"
    anthropic_secret_arn: str = ""
    anthropic_base_url: str = ""
    llm_timeout_seconds: float = 30.0
    llm_max_retries: int = 2
    # Prices to charge model calls at, over the list prices (cronpilot.ai.pricing): JSON, e.g.
    # {"claude-haiku-4-5": {"input": 1.0, "output": 5.0}} in USD per million tokens.
    llm_prices: str = ""

    @field_validator("llm_prices")
    @classmethod
    def _prices_parse(cls, value: str) -> str:
        from cronpilot.ai.pricing import price_table

        price_table(value)  # a bad override fails at cold start, not on every run's model call
        return value

    stage: str = "dev"
    # Notifications: the notify function to hand notices to, and the SNS topics jobs may name.
    notify_function_name: str = ""
    notify_topic_arns: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    values = {name: os.environ[name.upper()] for name in Settings.model_fields if name.upper() in os.environ}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        missing = ", ".join(str(e["loc"][0]).upper() for e in exc.errors())
        raise ConfigError(f"invalid or missing environment variables: {missing}") from exc

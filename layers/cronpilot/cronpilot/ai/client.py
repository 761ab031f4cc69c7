"""Provider factory: the Anthropic API or Claude on Bedrock, through the anthropic SDK.

The SDK is imported inside functions only. Retries and the request timeout are always explicit.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any, NamedTuple

from cronpilot.config import Settings
from cronpilot.models.job import Job, LlmProvider

# Cost first: Haiku is the cheapest current Claude model that plans and summarises reliably.
DEFAULT_MODEL = "claude-haiku-4-5"
# Bedrock names models differently, and current Claude models are invoked through a cross-region
# inference profile ("us.", "eu.", "apac." + the model id). A configured Bedrock id passes through.
BEDROCK_MODEL_IDS = {
    "claude-haiku-4-5": "anthropic.claude-haiku-4-5-20251001-v1:0",
    "claude-sonnet-4-5": "anthropic.claude-sonnet-4-5-20250929-v1:0",
}
BEDROCK_GEOGRAPHIES = {"us": "us", "ca": "us", "eu": "eu", "ap": "apac"}
SECRET_MAX_AGE_SECONDS = 300
# The SDK's backoff between its retries (anthropic._constants): 0.5 s doubling per retry, at most 8 s.
SDK_INITIAL_RETRY_DELAY = 0.5
SDK_MAX_RETRY_DELAY = 8.0


class LlmConfigError(RuntimeError):
    pass


class LlmChoice(NamedTuple):
    """What a job runs with: the provider, the model id as that provider names it, and shadow mode."""

    provider: LlmProvider
    model: str
    shadow: bool = False

    @property
    def enabled(self) -> bool:
        return self.provider != LlmProvider.NONE


def choose(job: Job, settings: Settings) -> LlmChoice:
    """The job's own setting wins; `inherit` takes the deployment's."""
    provider = job.llm.provider
    if provider == LlmProvider.INHERIT:
        try:
            provider = LlmProvider((settings.llm_provider or "none").lower())
        except ValueError as exc:
            raise LlmConfigError(
                f"LLM_PROVIDER {settings.llm_provider!r} is not one of anthropic, bedrock, none"
            ) from exc
        if provider == LlmProvider.INHERIT:
            provider = LlmProvider.NONE
    model = job.llm.model or settings.llm_model or DEFAULT_MODEL
    if provider == LlmProvider.BEDROCK:
        model = bedrock_model_id(model, bedrock_region())
    return LlmChoice(provider=provider, model=model, shadow=job.llm.shadow)


def bedrock_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def bedrock_model_id(model: str, region: str) -> str:
    """A short model name becomes the inference profile of the region's geography."""
    if model not in BEDROCK_MODEL_IDS:
        return model
    geography = BEDROCK_GEOGRAPHIES.get(region.split("-", 1)[0], "us")
    return f"{geography}.{BEDROCK_MODEL_IDS[model]}"


def anthropic_api_key(settings: Settings) -> str:
    """Locally from ANTHROPIC_API_KEY; on AWS from Secrets Manager (plain string or {"api_key": ...})."""
    if key := os.environ.get("ANTHROPIC_API_KEY"):
        return key
    if not settings.anthropic_secret_arn:
        raise LlmConfigError(
            "provider anthropic needs ANTHROPIC_API_KEY (local) or ANTHROPIC_SECRET_ARN (AWS)"
        )
    from aws_lambda_powertools.utilities.parameters import get_secret

    value = get_secret(settings.anthropic_secret_arn, max_age=SECRET_MAX_AGE_SECONDS)
    text = value.decode() if isinstance(value, bytes) else str(value)
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        text = str(data.get("api_key") or data.get("ANTHROPIC_API_KEY") or "")
    if not text:
        raise LlmConfigError("the Anthropic secret is empty: store the key or {'api_key': ...}")
    return text.strip()


def call_worst_seconds(settings: Settings) -> float:
    """How long one messages.create can take before it gives up: every attempt waits the full timeout,
    with the SDK's exponential backoff between attempts. (A server's Retry-After can ask for longer; the
    SDK honours it, and local mode then says which wait ran out.)"""
    retries = max(settings.llm_max_retries, 0)
    backoff = sum(min(SDK_INITIAL_RETRY_DELAY * 2**n, SDK_MAX_RETRY_DELAY) for n in range(retries))
    return settings.llm_timeout_seconds * (retries + 1) + backoff


def make_client(provider: LlmProvider, settings: Settings) -> Any:
    """An SDK client with explicit retries and timeout; cached per process (one per cold start)."""
    if provider == LlmProvider.ANTHROPIC:
        return _anthropic_client(
            anthropic_api_key(settings),
            settings.anthropic_base_url or None,
            settings.llm_timeout_seconds,
            settings.llm_max_retries,
        )
    if provider == LlmProvider.BEDROCK:
        return _bedrock_client(
            os.environ.get("ANTHROPIC_BEDROCK_BASE_URL") or None,
            bedrock_region(),
            settings.llm_timeout_seconds,
            settings.llm_max_retries,
        )
    raise LlmConfigError(f"provider {provider!s} has no client")


@lru_cache(maxsize=8)
def _anthropic_client(api_key: str, base_url: str | None, timeout: float, max_retries: int) -> Any:
    import anthropic

    return anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


@lru_cache(maxsize=8)
def _bedrock_client(base_url: str | None, region: str, timeout: float, max_retries: int) -> Any:
    import anthropic

    # IAM auth: the SDK signs with the Lambda role's credentials (botocore's default chain).
    return anthropic.AnthropicBedrock(
        aws_region=region, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


def clear_clients() -> None:
    _anthropic_client.cache_clear()
    _bedrock_client.cache_clear()

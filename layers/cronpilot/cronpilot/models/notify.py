"""Notifications per job (`notify:`): who hears of a failing, recovered, missed, AI-paused or
over-budget job, and how. One notification per transition, never one per run."""

# No `from __future__ import annotations` in modules that define pydantic models: pydantic would
# compile and evaluate every annotation string while building them, on every Lambda cold start.

import re
from datetime import datetime
from enum import StrEnum
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, StrictInt, field_validator, model_validator

from cronpilot.models.workflow import SigningSpec, Strict

MAX_RULES = 10
# arn:<partition>:sns:<region>:<account>:<topic name> (a FIFO topic needs a group id: not supported)
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


class NotifyEvent(StrEnum):
    FAILURE = "failure"  # the job failed `after_failures` runs in a row (once, when the streak reaches it)
    RECOVERY = "recovery"  # the first success after a streak that had notified
    MISSED = "missed"  # a slot did not start within max_lateness (the scheduler was down or ticks lost)
    PAUSED_BY_AI = "paused-by-ai"  # the AI pilot paused the job
    OVER_BUDGET = (
        "over-budget"  # the job ran out of tokens: runs decide deterministically until the budget resets
    )


class WebhookTarget(Strict):
    """A URL that receives a signed JSON POST (Standard Webhooks), through the SSRF-safe client."""

    url: str
    signing: SigningSpec

    @field_validator("url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "webhook url must be a full http(s) URL such as https://hooks.example.com/cronpilot"
            )
        if parts.username or parts.password:
            raise ValueError("webhook url must not carry credentials: the request is signed instead")
        return value


class NotifyRule(Strict):
    events: tuple[NotifyEvent, ...] = Field(min_length=1)
    after_failures: StrictInt = Field(default=1, ge=1, le=1000)  # `true` is not 1
    sns: str | None = None
    webhook: WebhookTarget | None = None

    @field_validator("events")
    @classmethod
    def _unique(cls, value: tuple[NotifyEvent, ...]) -> tuple[NotifyEvent, ...]:
        if len(set(value)) != len(value):
            raise ValueError("events lists an event twice: name each once")
        return value

    @field_validator("sns")
    @classmethod
    def _topic_arn(cls, value: str | None) -> str | None:
        if value is not None and not SNS_TOPIC_ARN.match(value):
            raise ValueError(
                f"sns {value!r} is not an SNS topic ARN: use arn:aws:sns:<region>:<account id>:<topic name>"
            )
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.sns is None) == (self.webhook is None):
            raise ValueError(
                "a notify rule sets exactly one target: sns (a topic ARN) or webhook (url + signing)"
            )
        return self

    @property
    def target(self) -> str:
        """What a delivery record shows: the topic ARN, or the webhook's origin (never its path or query)."""
        if self.sns is not None:
            return self.sns
        assert self.webhook is not None
        parts = urlsplit(self.webhook.url)
        return f"{parts.scheme}://{parts.netloc}"


class Notice(Strict):
    """One notification to deliver: what happened to which job, and the run that shows it."""

    job_id: str
    run_id: str
    event: NotifyEvent
    rules: tuple[int, ...]  # positions in the job's `notify` list that asked for this event
    detail: str
    at: datetime


class NoticeBatch(Strict):
    """The notify function's event."""

    notices: list[Notice] = Field(min_length=1)


class Delivery(Strict):
    """A notification's delivery, recorded on the run it is about."""

    event: NotifyEvent
    target: str
    status: str  # delivered | failed
    attempts: int
    message_id: str
    error: str | None = None
    at: datetime


def topics_not_allowed(rules: tuple[NotifyRule, ...], allowed: frozenset[str]) -> list[str]:
    """Topics a job names that the deployment may not publish to (its `notify_topic_arns` setting)."""
    return sorted({rule.sns for rule in rules if rule.sns is not None and rule.sns not in allowed})

"""Scheduling math: baseline slots, deterministic jitter, failure backoff and the guardrail clamp.

The LLM (or the deterministic strategy) *proposes* a next run; `clamp_next_run` decides.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from cronpilot.cron import CronExpression, parse_timezone
from cronpilot.models.job import Guardrails, Job, Schedule
from cronpilot.models.run import RunRecord

# The trigger of a run claimed well after its slot (discovery's CATCH_UP_AFTER).
CATCH_UP = "catch-up"


def next_slot(schedule: Schedule, *, after: datetime, previous: datetime | None = None) -> datetime | None:
    """The first baseline slot strictly after `after` (UTC), or None when a one-off has passed.

    Rates run one interval after the previous run's cadence anchor (see `cadence_anchor`); when that
    is already past (the run outlasted its interval, or the scheduler was down), one interval after
    `after`: downtime produces one catch-up run and the cadence resumes from it, never a burst.
    """
    if schedule.cron is not None:
        return CronExpression.parse(schedule.cron).next_after(after, parse_timezone(schedule.timezone))
    if schedule.rate is not None:
        if previous is not None and previous + schedule.rate > after:
            return previous + schedule.rate
        return after.replace(microsecond=0) + schedule.rate
    assert schedule.at is not None
    at = schedule.at if schedule.at.tzinfo else schedule.at.replace(tzinfo=parse_timezone(schedule.timezone))
    at = at.astimezone(UTC)
    return at if at > after else None


def cadence_anchor(run: RunRecord) -> datetime:
    """Where a run sits in its job's cadence: its slot, or for a catch-up run (claimed well after its
    slot) the second it was claimed, so the next run comes one interval after the catch-up run."""
    if run.trigger == CATCH_UP and run.claimed_at is not None:
        return run.claimed_at.astimezone(UTC).replace(microsecond=0)
    return run.scheduled_at


def jitter_offset(job_id: str, slot: datetime, window: timedelta) -> timedelta:
    """A stable offset in [0, window): the same job and slot always get the same one; jobs spread out."""
    if window <= timedelta(0):
        return timedelta(0)
    digest = hashlib.sha256(f"{job_id}|{slot.astimezone(UTC).isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=int(fraction * window.total_seconds()))


def with_jitter(job: Job, slot: datetime | None) -> datetime | None:
    if slot is None:
        return None
    return slot + jitter_offset(job.id, slot, job.guardrails.jitter)


def first_run_at(job: Job, now: datetime) -> datetime | None:
    return with_jitter(job, next_slot(job.schedule, after=now))


def failure_backoff(consecutive_failures: int, guardrails: Guardrails) -> timedelta:
    """Exponential from min_interval, doubling per consecutive failure, capped by max_interval."""
    base = max(guardrails.min_interval, timedelta(minutes=1))
    exponent = min(max(consecutive_failures - 1, 0), 30)
    return min(guardrails.max_interval, base * (2**exponent))


class Clamped(NamedTuple):
    """A next-run time after the guardrails, with who chose it and why."""

    at: datetime
    source: str
    reason: str


def clamp_next_run(
    proposal: datetime,
    *,
    source: str,
    reason: str,
    guardrails: Guardrails,
    scheduled_at: datetime,
    now: datetime,
) -> Clamped:
    """Keep a proposed next run inside [scheduled_at + min_interval, scheduled_at + max_interval] and
    never before `now` (the floor). The returned source says whether the proposal survived."""
    lower = max(scheduled_at + guardrails.min_interval, now)
    upper = max(scheduled_at + guardrails.max_interval, lower)
    if proposal < lower:
        return Clamped(lower, "clamped-min", f"{reason}; raised to min_interval {guardrails.min_interval}")
    if proposal > upper:
        return Clamped(upper, "clamped-max", f"{reason}; lowered to max_interval {guardrails.max_interval}")
    return Clamped(proposal, source, reason)

"""Notifications: which transitions a run or a missed slot makes, and delivering them.

Transitions are decided where the outcome is written, from the state before and after it, so a job
failing ten times in a row notifies once (when its streak reaches a rule's `after_failures`) and once
more when it recovers. The run's own Lambda only enqueues the notices (an asynchronous invocation of
the notify function); delivery, with its retries, never delays or fails a run. Deliveries are
recorded on the run the notice is about.

Webhooks follow Standard Webhooks: a JSON POST signed over the exact bytes sent, its `webhook-id`
stable for one notice and rule, so a receiver can drop a redelivery.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypedDict

from cronpilot.clock import to_iso
from cronpilot.domain.ports import JobNotFound, JobStore, NoticeQueue, RunNotFound
from cronpilot.models.notify import Delivery, Notice, NotifyEvent, NotifyRule
from cronpilot.models.run import RunRecord

if TYPE_CHECKING:
    from cronpilot.models.job import Job
    from cronpilot.safehttp import HttpOutcome, RequestSpec

OVER_BUDGET_FAILURE = "over_budget"
AI_PAUSE_SOURCES = frozenset({"paused", "clamped-pause"})
WEBHOOK_ATTEMPTS = 3
WEBHOOK_TIMEOUT_SECONDS = 10.0


# ------------------------------------------------------------------ transitions


def outcome_notices(
    job: Job,
    run: RunRecord,
    *,
    failures_before: int,
    failures_after: int,
    over_budget_before: bool,
    now: datetime,
) -> list[Notice]:
    """The notices a finished run makes. Each names the rules (by position) that asked for it."""
    by_event: dict[NotifyEvent, list[int]] = {}
    for index, rule in enumerate(job.notify):
        for event in rule.events:
            if _fires(event, rule, run, failures_before, failures_after, over_budget_before):
                by_event.setdefault(event, []).append(index)
    return [
        Notice(
            job_id=job.id,
            run_id=run.run_id,
            event=event,
            rules=tuple(rules),
            detail=_detail(event, run, failures_after),
            at=now,
        )
        for event, rules in by_event.items()
    ]


def notify_outcome(
    queue: NoticeQueue | None, store: JobStore, job: Job, run: RunRecord, failures_before: int, now: datetime
) -> None:
    """After a run's outcome is written: enqueue the transitions it made. A run that a newer run
    superseded does not drive the failure streak, so it makes none."""
    if queue is None or not job.notify or (run.next_run and run.next_run.source == "superseded"):
        return
    failures_after = failures_before + 1 if run.status == "failed" or run.step_counts.get("failed") else 0
    wants_budget = any(NotifyEvent.OVER_BUDGET in rule.events for rule in job.notify)
    over_before = wants_budget and is_over_budget(run) and previous_run_over_budget(store, run)
    notices = outcome_notices(
        job,
        run,
        failures_before=failures_before,
        failures_after=failures_after,
        over_budget_before=over_before,
        now=now,
    )
    enqueue(queue, notices)


def missed_notices(job: Job, skipped: RunRecord, now: datetime) -> list[Notice]:
    """A slot that did not start within max_lateness (recorded as a `too-late` skip)."""
    rules = tuple(i for i, rule in enumerate(job.notify) if NotifyEvent.MISSED in rule.events)
    if not rules:
        return []
    detail = f"the run due at {to_iso(skipped.scheduled_at)} did not start within max_lateness"
    return [
        Notice(
            job_id=job.id, run_id=skipped.run_id, event=NotifyEvent.MISSED, rules=rules, detail=detail, at=now
        )
    ]


def is_over_budget(run: RunRecord) -> bool:
    return any(failure.failure_class == OVER_BUDGET_FAILURE for failure in run.llm_failures)


def previous_run_over_budget(store: JobStore, run: RunRecord) -> bool:
    """Whether the job's run before this one was already over budget (read only when this one is)."""
    runs, _ = store.list_runs(run.job_id, limit=10)
    earlier = [r for r in runs if r.run_id != run.run_id and r.scheduled_at <= run.scheduled_at and r.plan]
    return bool(earlier) and is_over_budget(earlier[0])


def enqueue(queue: NoticeQueue, notices: list[Notice]) -> None:
    """Hand notices to the notify function. Best effort: a run never fails because a notice could not
    be sent (the failure is logged and counted)."""
    if not notices:
        return
    from cronpilot.observability import logger

    try:
        queue.enqueue(notices)
    except Exception as exc:  # the queue is an AWS call: any failure must not fail the run
        logger.warning("notices not enqueued", count=len(notices), error=type(exc).__name__)


def _fires(
    event: NotifyEvent,
    rule: NotifyRule,
    run: RunRecord,
    failures_before: int,
    failures_after: int,
    over_budget_before: bool,
) -> bool:
    if event == NotifyEvent.FAILURE:
        return failures_before < rule.after_failures <= failures_after
    if event == NotifyEvent.RECOVERY:
        return failures_after == 0 and failures_before >= rule.after_failures
    if event == NotifyEvent.PAUSED_BY_AI:
        return run.next_run is not None and run.next_run.source in AI_PAUSE_SOURCES
    if event == NotifyEvent.OVER_BUDGET:
        return is_over_budget(run) and not over_budget_before
    return False  # MISSED comes from discovery


def _detail(event: NotifyEvent, run: RunRecord, failures: int) -> str:
    if event == NotifyEvent.FAILURE:
        return f"{failures} failing run(s) in a row; last: {run.status}" + (
            f" ({run.error})" if run.error else ""
        )
    if event == NotifyEvent.RECOVERY:
        return f"run {run.run_id} succeeded after a failing streak"
    if event == NotifyEvent.PAUSED_BY_AI:
        reason = run.next_run.reason if run.next_run else ""
        return f"the AI pilot paused the job: {reason}"[:500]
    return "the job's token budget is used up: runs decide deterministically until it resets"


# ------------------------------------------------------------------ delivery


class Channels(Protocol):
    """How notices leave: SNS, and HTTP through the SSRF-safe client."""

    def publish_sns(self, topic_arn: str, subject: str, message: str) -> None: ...
    def send(self, spec: RequestSpec) -> HttpOutcome: ...


SecretResolver = Callable[[str], str]


def deliver_notices(
    store: JobStore,
    channels: Channels,
    secrets: SecretResolver,
    notices: list[Notice],
    now: Callable[[], datetime],
) -> list[Delivery]:
    """Deliver each notice to the rules that asked for it; record the deliveries on the run."""
    deliveries: list[Delivery] = []
    for notice in notices:
        try:
            job = store.get_job(notice.job_id)
        except JobNotFound:
            continue  # deleted since: nobody to tell
        made = [
            _deliver(job.job.notify[index], index, notice, channels, secrets, now)
            for index in notice.rules
            if index < len(job.job.notify) and notice.event in job.job.notify[index].events
        ]
        if made:
            with contextlib.suppress(RunNotFound):  # the run expired by TTL: the delivery still happened
                store.record_notifications(notice.run_id, made)
        deliveries += made
    return deliveries


class DeliveryCounts(TypedDict):
    delivered: int
    failed: int


def delivery_counts(deliveries: list[Delivery]) -> DeliveryCounts:
    """The notify function's answer: how many deliveries succeeded and failed."""
    failed = sum(d.status != "delivered" for d in deliveries)
    return {"delivered": len(deliveries) - failed, "failed": failed}


def message_id(notice: Notice, rule_index: int) -> str:
    """Stable for one notice and rule, so a redelivered notice carries the same webhook-id."""
    digest = hashlib.sha256(f"{notice.run_id}|{notice.event}|{rule_index}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def payload(notice: Notice) -> dict[str, object]:
    return {
        "type": f"cronpilot.job.{notice.event.value}",
        "timestamp": to_iso(notice.at),
        "data": {
            "job_id": notice.job_id,
            "run_id": notice.run_id,
            "event": notice.event.value,
            "detail": notice.detail,
        },
    }


def _deliver(
    rule: NotifyRule,
    index: int,
    notice: Notice,
    channels: Channels,
    secrets: SecretResolver,
    now: Callable[[], datetime],
) -> Delivery:
    identifier = message_id(notice, index)
    body = json.dumps(payload(notice), separators=(",", ":"), sort_keys=True)
    record = {"event": notice.event, "target": rule.target, "message_id": identifier}
    if rule.sns is not None:
        try:
            channels.publish_sns(rule.sns, f"cronpilot: {notice.job_id} {notice.event.value}", body)
        except Exception as exc:  # an AWS error: recorded on the run, never raised
            return Delivery(**record, status="failed", attempts=1, error=type(exc).__name__, at=now())
        return Delivery(**record, status="delivered", attempts=1, at=now())
    assert rule.webhook is not None
    from cronpilot.safehttp import RequestSpec
    from cronpilot.safehttp.signing import SigningKeyError, parse_signing_keys, sign

    try:
        keys = parse_signing_keys(secrets(rule.webhook.signing.secret))
    except (SigningKeyError, LookupError, ValueError) as exc:
        error = f"signing secret {rule.webhook.signing.secret!r} unusable: {exc}"
        return Delivery(**record, status="failed", attempts=0, error=error[:300], at=now())
    encoded = body.encode()
    headers = {
        "Content-Type": "application/json",
        # The receiver compares the timestamp with its own wall clock (not the scheduler clock).
        **sign(keys, identifier, int(time.time()), encoded),
    }
    outcome = channels.send(
        RequestSpec(
            method="POST",
            url=rule.webhook.url,
            headers=headers,
            body=encoded,
            read_timeout=WEBHOOK_TIMEOUT_SECONDS,
            total_timeout=WEBHOOK_TIMEOUT_SECONDS * WEBHOOK_ATTEMPTS + 10,
            max_attempts=WEBHOOK_ATTEMPTS,
            retry_non_idempotent=True,  # the webhook-id makes a repeat recognisable
            idempotency_key=identifier,
            stored_body_bytes=256,
        )
    )
    status = "delivered" if outcome.ok else "failed"
    return Delivery(**record, status=status, attempts=outcome.attempts, error=outcome.error, at=now())

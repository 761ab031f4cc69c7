"""Notifications: one per transition (failure after N, recovery, missed, AI pause, over budget), and
their delivery: SNS, or webhooks signed per Standard Webhooks and verified here with the independent
`standardwebhooks` package."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cronpilot.clock import FixedClock
from cronpilot.domain.discovery import Discovery
from cronpilot.domain.finalizing import finalize_failure
from cronpilot.domain.notifications import deliver_notices, message_id, outcome_notices
from cronpilot.domain.strategies import DeterministicSummarizer
from cronpilot.domain.summarizing import summarize_run
from cronpilot.models.job import Job
from cronpilot.models.notify import Notice, NotifyEvent, topics_not_allowed
from cronpilot.models.run import (
    FailureEvent,
    LlmFailure,
    NextRunDecision,
    RunRecord,
    RunRef,
    RunStatus,
    StepResult,
    StepStatus,
)
from cronpilot.safehttp import HttpOutcome, RequestSpec
from cronpilot.safehttp.signing import generate_key
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.factories import claim_run, claim_slot, make_job
from tests.support.memory import InMemoryStore, RecordingNoticeQueue, RecordingStarter

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:cronpilot-alerts"
KEY = generate_key()


def job_with(*rules: dict, **fields) -> Job:
    return make_job("alerts", schedule={"rate": "10m"}, notify=list(rules), **fields)


def run_of(job: Job, status: RunStatus = RunStatus.FAILED, **fields) -> RunRecord:
    return RunRecord(
        run_id=f"{job.id}.20261122T090000Z", job_id=job.id, scheduled_at=START, status=status, **fields
    )


def events(notices: list[Notice]) -> list[str]:
    return [n.event.value for n in notices]


# ------------------------------------------------------------------ transitions


def test_a_failing_streak_notifies_once_when_it_reaches_after_failures():
    # Given a rule that wants to hear after 3 failures in a row
    job = job_with({"events": ["failure"], "after_failures": 3, "sns": TOPIC})
    # When the job fails 1, 2, ... 10 times in a row
    fired = [
        streak
        for streak in range(1, 11)
        if outcome_notices(
            job,
            run_of(job),
            failures_before=streak - 1,
            failures_after=streak,
            over_budget_before=False,
            now=START,
        )
    ]
    # Then exactly one notice: when the streak reached 3
    assert fired == [3]


def test_recovery_is_told_only_after_a_streak_that_notified():
    job = job_with({"events": ["failure", "recovery"], "after_failures": 2, "sns": TOPIC})
    ok = run_of(job, RunStatus.SUCCEEDED)
    after_short = outcome_notices(
        job, ok, failures_before=1, failures_after=0, over_budget_before=False, now=START
    )
    after_long = outcome_notices(
        job, ok, failures_before=4, failures_after=0, over_budget_before=False, now=START
    )
    steady = outcome_notices(
        job, ok, failures_before=0, failures_after=0, over_budget_before=False, now=START
    )
    assert (events(after_short), events(after_long), events(steady)) == ([], ["recovery"], [])


def test_an_ai_pause_and_a_first_over_budget_run_notify():
    job = job_with({"events": ["paused-by-ai", "over-budget"], "sns": TOPIC})
    paused = run_of(
        job,
        RunStatus.SUCCEEDED,
        next_run=NextRunDecision(
            at=START + timedelta(days=1), source="paused", reason="upstream maintenance"
        ),
        llm_failures=[LlmFailure(phase="plan", failure_class="over_budget", detail="day budget used")],
    )
    first = outcome_notices(
        job, paused, failures_before=0, failures_after=0, over_budget_before=False, now=START
    )
    again = outcome_notices(
        job, paused, failures_before=0, failures_after=0, over_budget_before=True, now=START
    )
    assert sorted(events(first)) == ["over-budget", "paused-by-ai"]
    assert events(again) == ["paused-by-ai"]


def test_each_notice_names_the_rules_that_asked_for_it():
    job = job_with(
        {"events": ["failure"], "after_failures": 1, "sns": TOPIC},
        {"events": ["recovery"], "sns": TOPIC},
        {
            "events": ["failure"],
            "after_failures": 1,
            "webhook": {"url": "https://hooks.example.com/x", "signing": {"secret": "s"}},
        },
    )
    [notice] = outcome_notices(
        job, run_of(job), failures_before=0, failures_after=1, over_budget_before=False, now=START
    )
    assert notice.rules == (0, 2)


def test_summarizing_a_streak_enqueues_one_failure_then_one_recovery():
    # Given a job whose endpoint fails three runs in a row, then succeeds
    store, queue = InMemoryStore(), RecordingNoticeQueue()
    job = job_with({"events": ["failure", "recovery"], "after_failures": 2, "sns": TOPIC})
    store.put_job(job, next_run_at=START, source="baseline", reason="t", now=START)
    at = START
    for status in (StepStatus.FAILED, StepStatus.FAILED, StepStatus.FAILED, StepStatus.SUCCEEDED):
        run = claim_slot(
            store, job, at, owner="t", lease=timedelta(minutes=30), next_run_at=at + timedelta(minutes=10)
        )
        store.put_step_result(
            job.id, run.run_id, run.epoch, StepResult(step_id="a", endpoint_id="a", status=status), at
        )
        summarize_run(
            store,
            FixedClock(at + timedelta(seconds=5)),
            RunRef(run_id=run.run_id, job_id=job.id, epoch=run.epoch),
            DeterministicSummarizer(),
            notices=queue,
        )
        at = store.get_job(job.id).state.next_run_at
    # Then the queue got exactly two notices: failure at the second failure, recovery after
    assert events(queue.notices) == ["failure", "recovery"]


def test_finalize_failure_counts_toward_the_streak():
    store, queue = InMemoryStore(), RecordingNoticeQueue()
    job = job_with({"events": ["failure"], "after_failures": 1, "sns": TOPIC})
    run = claim_run(store, job, START)
    event = FailureEvent(run_id=run.run_id, job_id=job.id, epoch=1, error={"Error": "States.Timeout"})
    finalize_failure(store, FixedClock(START), event, notices=queue)
    assert events(queue.notices) == ["failure"]


def test_a_slot_skipped_as_too_late_is_a_missed_notice():
    # Given a job whose scheduler was down past its max_lateness
    store, queue = InMemoryStore(), RecordingNoticeQueue()
    job = job_with({"events": ["missed"], "sns": TOPIC}, guardrails={"max_lateness": "5m"})
    store.put_job(job, next_run_at=START, source="baseline", reason="t", now=START)
    # When discovery runs again 40 minutes later
    Discovery(store, RecordingStarter(), FixedClock(START + timedelta(minutes=40)), "t", notices=queue).tick()
    # Then one missed notice names the slot that did not start
    [notice] = queue.notices
    assert notice.event == NotifyEvent.MISSED
    assert notice.run_id == "alerts.20261122T090000Z"


# ------------------------------------------------------------------ rules


@pytest.mark.parametrize(
    ("rule", "fix"),
    [
        ({"events": ["failure"]}, "exactly one target"),
        ({"events": ["failure"], "sns": "my-topic"}, "arn:aws:sns:<region>"),
        ({"events": ["failure", "failure"], "sns": TOPIC}, "name each once"),
        ({"events": ["later"], "sns": TOPIC}, "events"),
        ({"events": ["failure"], "webhook": {"url": "ftp://x", "signing": {"secret": "s"}}}, "http(s) URL"),
    ],
)
def test_an_invalid_rule_says_what_to_fix(rule, fix):
    with pytest.raises(ValidationError) as caught:
        job_with(rule)
    assert fix in str(caught.value)


def test_topics_the_deployment_does_not_allow_are_named():
    job = job_with({"events": ["failure"], "sns": TOPIC})
    assert topics_not_allowed(job.notify, frozenset()) == [TOPIC]
    assert topics_not_allowed(job.notify, frozenset({TOPIC})) == []


# ------------------------------------------------------------------ delivery


class Channels:
    """SNS and HTTP as recorded calls; HTTP answers with the statuses given, in order."""

    def __init__(self, statuses: list[int] | None = None, sns_error: Exception | None = None) -> None:
        self.statuses = statuses or [200]
        self.sns_error = sns_error
        self.published: list[tuple[str, str, str]] = []
        self.requests: list[RequestSpec] = []

    def publish_sns(self, topic_arn: str, subject: str, message: str) -> None:
        if self.sns_error:
            raise self.sns_error
        self.published.append((topic_arn, subject, message))

    def send(self, spec: RequestSpec) -> HttpOutcome:
        self.requests.append(spec)
        status = self.statuses[min(len(self.requests) - 1, len(self.statuses) - 1)]
        return HttpOutcome(
            ok=status < 300,
            http_status=status,
            attempts=1,
            latency_ms=3,
            body="",
            body_truncated=False,
            body_bytes=0,
            error=None if status < 300 else f"HTTP {status}",
            error_kind=None if status < 300 else "http-status",
            final_url=None,
            redirects=0,
        )


def stored_job(store: InMemoryStore, *rules: dict) -> tuple[Job, Notice]:
    job = job_with(*rules)
    store.put_job(job, next_run_at=START, source="baseline", reason="t", now=START)
    run = run_of(job)
    store.runs[run.run_id] = run
    [notice] = outcome_notices(
        job, run, failures_before=0, failures_after=1, over_budget_before=False, now=START
    )
    return job, notice


def test_a_webhook_is_signed_over_the_exact_bytes_and_recorded_on_the_run():
    # Given a job whose failure goes to a signed webhook
    store, channels = InMemoryStore(), Channels()
    hook = {"url": "https://hooks.example.com/cronpilot", "signing": {"secret": "hook-key"}}
    _, notice = stored_job(store, {"events": ["failure"], "webhook": hook})
    # When the notice is delivered
    [delivery] = deliver_notices(
        store, channels, {"hook-key": KEY}.__getitem__, [notice], lambda: datetime.now(UTC)
    )
    # Then an independent Standard Webhooks implementation accepts the request as sent
    [request] = channels.requests
    body = request.body if isinstance(request.body, bytes) else request.body.encode()
    verified = Webhook(KEY).verify(body, dict(request.headers))
    assert verified["type"] == "cronpilot.job.failure"
    assert verified["data"]["run_id"] == notice.run_id
    # And a tampered body is rejected
    with pytest.raises(WebhookVerificationError):
        Webhook(KEY).verify(body.replace(b"failure", b"recovery"), dict(request.headers))
    # And the run records the delivery, naming the webhook's origin only
    assert (delivery.status, delivery.target) == ("delivered", "https://hooks.example.com")
    assert store.get_run(notice.run_id).notifications == [delivery]
    assert request.headers["webhook-id"] == message_id(notice, 0)


def test_a_webhook_that_keeps_failing_is_recorded_as_failed_with_its_attempts():
    store = InMemoryStore()
    hook = {"url": "https://hooks.example.com/x", "signing": {"secret": "hook-key"}}
    _, notice = stored_job(store, {"events": ["failure"], "webhook": hook})
    channels = Channels(statuses=[503])
    [delivery] = deliver_notices(store, channels, {"hook-key": KEY}.__getitem__, [notice], lambda: START)
    assert (delivery.status, delivery.error) == ("failed", "HTTP 503")
    [request] = channels.requests
    assert request.max_attempts == 3
    assert request.retry_non_idempotent  # the stable webhook-id makes a repeat recognisable


def test_an_unusable_signing_secret_fails_only_that_delivery():
    store, channels = InMemoryStore(), Channels()
    hook = {"url": "https://hooks.example.com/x", "signing": {"secret": "missing"}}
    _, notice = stored_job(
        store, {"events": ["failure"], "webhook": hook}, {"events": ["failure"], "sns": TOPIC}
    )
    deliveries = deliver_notices(
        store, channels, {"missing": "not-a-key"}.__getitem__, [notice], lambda: START
    )
    assert [d.status for d in deliveries] == ["failed", "delivered"]
    assert "missing" in (deliveries[0].error or "")
    assert channels.requests == []
    assert len(channels.published) == 1


def test_an_sns_error_is_recorded_not_raised():
    store, channels = InMemoryStore(), Channels(sns_error=RuntimeError("AuthorizationError"))
    _, notice = stored_job(store, {"events": ["failure"], "sns": TOPIC})
    [delivery] = deliver_notices(store, channels, {}.__getitem__, [notice], lambda: START)
    assert (delivery.status, delivery.error) == ("failed", "RuntimeError")


def test_a_notice_for_a_deleted_job_is_dropped():
    store, channels = InMemoryStore(), Channels()
    job, notice = stored_job(store, {"events": ["failure"], "sns": TOPIC})
    store.delete_job(store.get_job(job.id), START)
    assert deliver_notices(store, channels, {}.__getitem__, [notice], lambda: START) == []
    assert channels.published == []

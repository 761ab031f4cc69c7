"""The executor against in-memory ports and a recorded sender: no sockets, the same decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cronpilot.clock import FixedClock
from cronpilot.domain.circuit import CircuitBreaker, CircuitPolicy
from cronpilot.domain.execution import CIRCUIT_OPEN, StepExecutor
from cronpilot.models.job import Job, SecretRef
from cronpilot.models.run import PlanStep, RunRecord, StepStatus, StepTask
from cronpilot.safehttp import HttpOutcome, RequestSpec

from tests.support.factories import endpoint, make_job
from tests.support.memory import InMemoryHealthStore, InMemoryStore

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SECRET = "s3cr3t-token-value"


def outcome(status: int) -> HttpOutcome:
    return HttpOutcome(
        ok=200 <= status < 300,
        http_status=status,
        attempts=1,
        latency_ms=12,
        body='{"ok": true}',
        body_truncated=False,
        body_bytes=12,
        error=None if status < 400 else f"HTTP {status}",
        error_kind=None if status < 400 else "http-status",
        final_url=None,
        redirects=0,
    )


class Sender:
    """Answers with a fixed status per URL and keeps every request it was asked to send."""

    def __init__(self, statuses: dict[str, int]) -> None:
        self.statuses = statuses
        self.sent: list[RequestSpec] = []

    def __call__(self, spec: RequestSpec) -> HttpOutcome:
        self.sent.append(spec)
        return outcome(self.statuses[str(spec.url)])


JOB = make_job(
    "exec",
    endpoints=[
        endpoint("a", "https://a.example.com/a", headers={"Authorization": {"secret": "api-token"}}),
        endpoint("b", "https://b.example.com/b", depends_on=["a"]),
    ],
)


def running(store: InMemoryStore, job: Job) -> RunRecord:
    store.put_job(job, next_run_at=START, source="baseline", reason="test", now=START)
    run = RunRecord.claimed(job.id, START, 1, "schedule", START)
    store.claim(
        store.get_job(job.id),
        run,
        owner="t",
        lease_until=START.replace(hour=10),
        now=START,
        next_run_at=None,
        next_run_source="x",
        next_run_reason="x",
    )
    return run


def task(run: RunRecord, step_id: str, depends_on: list[str] | None = None) -> StepTask:
    step = PlanStep(step_id=step_id, endpoint_id=step_id, depends_on=depends_on or [])
    return StepTask(run_id=run.run_id, job_id=run.job_id, epoch=run.epoch, step=step)


def executor(store: InMemoryStore, sender: Sender, breaker: CircuitBreaker | None = None) -> StepExecutor:
    def resolver(ref: SecretRef) -> str:
        return SECRET

    return StepExecutor(store, FixedClock(START), sender, resolver=resolver, breaker=breaker)


def test_a_call_is_made_with_its_secret_and_idempotency_key_and_stored_without_the_secret():
    # Given a running run of a job whose endpoint sends a secret header
    store, sender = InMemoryStore(), Sender({"https://a.example.com/a": 200})
    run = running(store, JOB)
    # When the step executes
    result = executor(store, sender).execute(task(run, "a"))
    # Then the request carried the resolved secret and a per-step idempotency key
    assert result.status == StepStatus.SUCCEEDED
    [spec] = sender.sent
    assert spec.headers["Authorization"] == SECRET
    assert spec.idempotency_key == f"cronpilot-{run.run_id}-a"
    # And the stored result holds the response, never the secret
    stored = store.get_step_results(run.run_id)["a"]
    assert stored.http_status == 200
    assert SECRET not in stored.model_dump_json()


def test_a_step_whose_dependency_failed_is_skipped_without_a_call():
    # Given a first step that failed
    store, sender = InMemoryStore(), Sender({"https://a.example.com/a": 500})
    run = running(store, JOB)
    executor(store, sender).execute(task(run, "a"))
    # When its dependant executes
    result = executor(store, sender).execute(task(run, "b", ["a"]))
    # Then it is skipped with the reason, and only the first call was sent
    assert result.status == StepStatus.SKIPPED
    assert store.get_step_results(run.run_id)["b"].skip_reason == "dependency a failed"
    assert len(sender.sent) == 1


def test_a_retried_invocation_returns_the_recorded_result_without_calling_again():
    # Given a step that already ran
    store, sender = InMemoryStore(), Sender({"https://a.example.com/a": 200})
    run = running(store, JOB)
    executor(store, sender).execute(task(run, "a"))
    # When the same step is invoked again (Lambda or Step Functions retry)
    again = executor(store, sender).execute(task(run, "a"))
    # Then the endpoint is not called a second time
    assert again.status == StepStatus.SUCCEEDED
    assert len(sender.sent) == 1


def test_an_open_circuit_skips_the_call():
    # Given an origin that failed often enough to open its circuit
    store, health = InMemoryStore(), InMemoryHealthStore()
    breaker = CircuitBreaker(health, FixedClock(START), CircuitPolicy(failure_threshold=2))
    sender = Sender({"https://a.example.com/a": 503})
    for _ in range(2):
        scratch = InMemoryStore()
        run = running(scratch, JOB)
        executor(scratch, sender, breaker).execute(task(run, "a"))
    # When a new run calls it
    run = running(store, JOB)
    result = executor(store, sender, breaker).execute(task(run, "a"))
    # Then the step is skipped as circuit-open without a third call
    assert result.status == StepStatus.SKIPPED
    assert store.get_step_results(run.run_id)["a"].skip_reason == CIRCUIT_OPEN
    assert len(sender.sent) == 2


def test_health_bookkeeping_trouble_never_fails_a_step_that_already_called():
    # Given a health store that fails after the permit was given
    store, health = InMemoryStore(), InMemoryHealthStore()
    breaker = CircuitBreaker(health, FixedClock(START))
    sender = Sender({"https://a.example.com/a": 500})
    run = running(store, JOB)

    def send_then_break(spec: RequestSpec) -> HttpOutcome:
        health.unavailable = True
        return sender(spec)

    # When the step executes
    result = executor(store, send_then_break, breaker).execute(task(run, "a"))  # type: ignore[arg-type]
    # Then the outcome is recorded as the endpoint answered
    assert result.status == StepStatus.FAILED


@pytest.mark.parametrize("status", [200, 404])
def test_the_stored_result_keeps_the_http_status(status):
    store, sender = InMemoryStore(), Sender({"https://a.example.com/a": status})
    run = running(store, JOB)
    executor(store, sender).execute(task(run, "a"))
    assert store.get_step_results(run.run_id)["a"].http_status == status

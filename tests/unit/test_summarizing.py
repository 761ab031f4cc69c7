"""Summarizing and finalizing against in-memory ports: outcome, next run inside the guardrails, lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cronpilot.clock import FixedClock
from cronpilot.domain.finalizing import finalize_failure
from cronpilot.domain.ports import LeaseLost
from cronpilot.domain.strategies import DeterministicSummarizer, Proposal, SummaryContext
from cronpilot.domain.summarizing import summarize_run
from cronpilot.models.job import Job
from cronpilot.models.run import FailureEvent, RunRecord, RunRef, RunStatus, StepResult, StepStatus

from tests.support.factories import make_job
from tests.support.memory import InMemoryStore

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
DONE = START + timedelta(seconds=40)
JOB = make_job("sum", schedule={"rate": "10m"}, guardrails={"min_interval": "5m", "max_interval": "1h"})


def running(store: InMemoryStore, job: Job, *statuses: StepStatus) -> RunRef:
    store.put_job(job, next_run_at=START, source="baseline", reason="test", now=START)
    run = RunRecord.claimed(job.id, START, 1, "schedule", START)
    store.claim(
        store.get_job(job.id),
        run,
        owner="t",
        lease_until=START + timedelta(minutes=30),
        now=START,
        next_run_at=START + timedelta(minutes=10),
        next_run_source="baseline",
        next_run_reason="next slot",
    )
    for step_id, status in zip(("a", "b"), statuses, strict=False):
        store.put_step_result(
            job.id, run.run_id, 1, StepResult(step_id=step_id, endpoint_id=step_id, status=status), START
        )
    return RunRef(run_id=run.run_id, job_id=job.id, epoch=1)


class Proposing:
    """A strategy that proposes a fixed next run (as a model might)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def propose(self, job: Job, context: SummaryContext) -> Proposal:
        return Proposal(summary="model says", at=self.at, reason="asked", source="ai")


def test_a_successful_run_is_recorded_and_the_lease_released_at_the_baseline_slot():
    store = InMemoryStore()
    ref = running(store, JOB, StepStatus.SUCCEEDED, StepStatus.SUCCEEDED)
    outcome = summarize_run(store, FixedClock(DONE), ref, DeterministicSummarizer())
    assert outcome == {"status": RunStatus.SUCCEEDED}
    state = store.get_job("sum").state
    assert state.current_run_id is None
    assert state.consecutive_failures == 0
    assert state.next_run_at == START + timedelta(minutes=10)
    assert store.get_run(ref.run_id).next_run.source == "baseline"


def test_a_failed_run_backs_off_from_min_interval():
    store = InMemoryStore()
    ref = running(store, JOB, StepStatus.FAILED)
    summarize_run(store, FixedClock(DONE), ref, DeterministicSummarizer())
    run = store.get_run(ref.run_id)
    assert run.status == RunStatus.FAILED
    assert run.next_run.source == "backoff"
    assert store.get_job("sum").state.consecutive_failures == 1
    assert store.get_job("sum").state.next_run_at >= DONE.replace(microsecond=0) + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("proposed", "source", "expected"),
    [
        (START + timedelta(seconds=30), "clamped-min", START + timedelta(minutes=5)),
        (START + timedelta(days=3), "clamped-max", START + timedelta(hours=1)),
    ],
)
def test_a_proposal_outside_the_guardrails_is_clamped(proposed, source, expected):
    store = InMemoryStore()
    ref = running(store, JOB, StepStatus.SUCCEEDED)
    summarize_run(store, FixedClock(DONE), ref, Proposing(proposed))
    decision = store.get_run(ref.run_id).next_run
    assert (decision.source, decision.at) == (source, expected)


def test_a_stale_holder_cannot_record_an_outcome():
    store = InMemoryStore()
    ref = running(store, JOB, StepStatus.SUCCEEDED)
    with pytest.raises(LeaseLost):
        summarize_run(store, FixedClock(DONE), ref.model_copy(update={"epoch": 0}), DeterministicSummarizer())


def test_finalize_failure_records_the_error_backs_off_and_releases_the_lease():
    store = InMemoryStore()
    ref = running(store, JOB, StepStatus.SUCCEEDED)
    event = FailureEvent(
        run_id=ref.run_id, job_id=ref.job_id, epoch=1, error={"Error": "States.Timeout", "Cause": "too slow"}
    )
    assert finalize_failure(store, FixedClock(DONE), event) == {"status": RunStatus.FAILED}
    run = store.get_run(ref.run_id)
    assert run.error == "States.Timeout: too slow"
    assert run.next_run.source == "backoff"
    assert store.get_job("sum").state.current_run_id is None
    # a duplicate delivery of the same failure changes nothing
    assert finalize_failure(store, FixedClock(DONE), event) == {"status": RunStatus.FAILED}

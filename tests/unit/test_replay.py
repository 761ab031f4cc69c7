"""Replay against in-memory ports: the operation checks the original, the planner follows its plan and
copies the reused results (with their extracted values) into the new run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cronpilot.clock import FixedClock
from cronpilot.domain.operations import OperationError, retry_run
from cronpilot.domain.planning import plan_run
from cronpilot.domain.ports import RunNotFound
from cronpilot.domain.replay import ReplayError
from cronpilot.domain.strategies import DeterministicPlanner, deterministic_plan
from cronpilot.models.job import Job, JobStatus
from cronpilot.models.run import RunRecord, RunRef, RunStatus, StepResult, StepStatus

from tests.support.factories import claim_slot, endpoint, make_job
from tests.support.memory import InMemoryHealthStore, InMemoryStore

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LATER = START + timedelta(minutes=30)

JOB = make_job(
    "pay",
    schedule={"rate": "1h"},
    endpoints=[
        endpoint("login", extract={"token": "token"}),
        endpoint("charge", "https://a.example.com/c?t={{ steps.login.token }}", depends_on=["login"]),
        endpoint("audit"),
    ],
)


def finished_run(
    store: InMemoryStore, job: Job, statuses: dict[str, StepStatus], status=RunStatus.PARTIAL
) -> str:
    """A run of `job` that ended with these step statuses (login's token extracted if it succeeded)."""
    store.put_job(job, next_run_at=START, source="baseline", reason="t", now=START)
    run = claim_slot(store, job, START, owner="t", next_run_at=START + timedelta(hours=1))
    run.plan = deterministic_plan(job)
    for step_id, step_status in statuses.items():
        token = step_id == "login" and step_status == StepStatus.SUCCEEDED
        outputs = {"token": "tok-original"} if token else {}
        result = StepResult(step_id=step_id, endpoint_id=step_id, status=step_status, outputs=outputs)
        store.put_step_result(job.id, run.run_id, run.epoch, result, START)
    run.status = status
    if not RunStatus(status).is_final:
        store.save_run(run)
        return run.run_id
    run.finished_at = START
    store.finish_run(
        run,
        next_run_at=START + timedelta(hours=1),
        next_run_source="baseline",
        next_run_reason="x",
        consecutive_failures=0,
    )
    return run.run_id


def claim_replay(store: InMemoryStore) -> RunRef:
    """What discovery does with the pending request."""
    seen = store.get_job("pay")
    run = RunRecord.claimed("pay", LATER, seen.state.epoch + 1, "retry", LATER)
    run.retry_of, run.retry_failed_only = seen.state.retry_of, seen.state.retry_failed_only
    store.claim(
        seen,
        run,
        owner="t",
        lease_until=LATER + timedelta(minutes=30),
        now=LATER,
        next_run_at=START + timedelta(hours=1),
        next_run_source="baseline",
        next_run_reason="x",
    )
    return RunRef(run_id=run.run_id, job_id="pay", epoch=run.epoch)


PARTIAL = {"login": StepStatus.SUCCEEDED, "charge": StepStatus.FAILED, "audit": StepStatus.SUCCEEDED}


def test_failed_only_copies_the_succeeded_results_and_follows_the_original_plan():
    store = InMemoryStore()
    original = finished_run(store, JOB, PARTIAL)
    request = retry_run(store, original, LATER, failed_only=True)
    assert request.reexecute == ["charge"]
    ref = claim_replay(store)

    output = plan_run(store, InMemoryHealthStore(), FixedClock(LATER), ref, DeterministicPlanner())

    replay = store.get_run(ref.run_id)
    assert (replay.plan.source, replay.status) == ("retry", RunStatus.RUNNING)
    assert "re-executes 1 failed or skipped step(s), reuses 2" in replay.plan.rationale
    assert [[s["step_id"] for s in wave] for wave in output.waves] == [["audit", "login"], ["charge"]]
    copied = store.get_step_results(ref.run_id)
    assert sorted(copied) == ["audit", "login"]
    assert copied["login"].outputs == {"token": "tok-original"}
    assert copied["login"].reused_from == original


def test_a_full_replay_copies_nothing():
    store = InMemoryStore()
    original = finished_run(store, JOB, PARTIAL)
    retry_run(store, original, LATER)
    ref = claim_replay(store)
    plan_run(store, InMemoryHealthStore(), FixedClock(LATER), ref, DeterministicPlanner())
    assert store.get_step_results(ref.run_id) == {}
    assert "re-executes every step" in store.get_run(ref.run_id).plan.rationale


def test_a_job_changed_since_the_request_fails_the_replay_at_planning():
    store = InMemoryStore()
    original = finished_run(store, JOB, PARTIAL)
    retry_run(store, original, LATER, failed_only=True)
    ref = claim_replay(store)
    fewer = make_job("pay", schedule={"rate": "1h"}, endpoints=[endpoint("audit")])
    store.put_job(fewer, next_run_at=None, source="baseline", reason="t", now=LATER)
    with pytest.raises(ReplayError, match=r"no longer has endpoint\(s\) \['charge', 'login'\]"):
        plan_run(store, InMemoryHealthStore(), FixedClock(LATER), ref, DeterministicPlanner())


@pytest.mark.parametrize(
    ("status", "steps", "failed_only", "message"),
    [
        (RunStatus.RUNNING, PARTIAL, False, "is still running: wait for it to finish"),
        (
            RunStatus.SUCCEEDED,
            dict.fromkeys(PARTIAL, StepStatus.SUCCEEDED),
            True,
            "nothing to retry with --failed-only",
        ),
    ],
)
def test_runs_that_cannot_be_replayed_say_why(status, steps, failed_only, message):
    store = InMemoryStore()
    original = finished_run(store, JOB, steps, status=status)
    with pytest.raises(OperationError, match=message):
        retry_run(store, original, LATER, failed_only=failed_only)


def test_a_skipped_slot_has_no_plan_to_replay():
    store = InMemoryStore()
    store.put_job(JOB, next_run_at=START, source="baseline", reason="t", now=START)
    seen = store.get_job("pay")
    skipped = RunRecord(
        run_id="pay.20261122T090000Z",
        job_id="pay",
        scheduled_at=START,
        status=RunStatus.SKIPPED,
        skip_reason="overlap",
    )
    store.record_skip(seen, skipped, next_run_at=LATER, next_run_source="baseline", next_run_reason="x")
    with pytest.raises(
        OperationError, match=r"has no plan to replay \(it was skipped \(overlap\)\): start a fresh"
    ):
        retry_run(store, skipped.run_id, LATER)


def test_a_paused_job_or_an_unknown_run_is_refused():
    store = InMemoryStore()
    original = finished_run(store, JOB, PARTIAL)
    store.set_job_schedule_state(
        store.get_job("pay"),
        status=JobStatus.PAUSED,
        next_run_at=None,
        source="paused",
        reason="x",
        paused_until=None,
        now=LATER,
    )
    with pytest.raises(OperationError, match="is paused: resume it first"):
        retry_run(store, original, LATER)
    with pytest.raises(RunNotFound):
        retry_run(store, "pay.20200101T000000Z", LATER)

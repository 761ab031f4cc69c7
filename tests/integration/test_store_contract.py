"""The JobStore contract, run against the DynamoDB store on moto and the in-memory store the unit tests
use: the fake may not be kinder than the real thing (claims conflict, writes are fenced, tombstones
keep the epoch, leases compare in whole seconds)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cronpilot.domain.ports import ClaimConflict, JobChanged, JobNotFound, JobStore, LeaseLost, RecordIdTaken
from cronpilot.models.job import JobStatus
from cronpilot.models.run import (
    DecisionInputs,
    RunRecord,
    RunStatus,
    StandingDecision,
    StepResult,
    StepStatus,
    make_run_id,
)

from tests.integration.conftest import START
from tests.support.factories import make_job
from tests.support.memory import InMemoryStore

LEASE = timedelta(minutes=30)


@pytest.fixture(params=["dynamodb", "memory"])
def any_store(request: pytest.FixtureRequest) -> JobStore:
    if request.param == "memory":
        return InMemoryStore()
    return request.getfixturevalue("store")


def apply(store: JobStore, job_id: str = "job", at=START, **fields) -> None:
    store.put_job(make_job(job_id, **fields), next_run_at=at, source="baseline", reason="test", now=at)


def claim(store: JobStore, job_id: str = "job", at=START, *, now=None, owner="tick") -> RunRecord:
    seen = store.get_job(job_id)
    now = now or at
    run = RunRecord.claimed(job_id, at, seen.state.epoch + 1, "schedule", now)
    store.claim(
        seen,
        run,
        owner=owner,
        lease_until=now + LEASE,
        now=now,
        next_run_at=at + timedelta(minutes=5),
        next_run_source="baseline",
        next_run_reason="next slot",
    )
    return run


def due_ids(store: JobStore, now) -> list[str]:
    return [
        r.job_id for shard in store.due_shards() for page in store.query_due(shard, now) for r in page.records
    ]


def test_a_claim_takes_the_lease_and_a_second_claim_of_the_same_read_conflicts(any_store):
    # Given a due job read by two discovery invocations
    apply(any_store)
    seen = any_store.get_job("job")
    claim(any_store)
    # When the second one claims from its stale read
    run = RunRecord.claimed("job", START, 1, "schedule", START)
    # Then it conflicts, and the job holds one lease at epoch 1
    with pytest.raises(ClaimConflict):
        any_store.claim(
            seen,
            run,
            owner="other",
            lease_until=START + LEASE,
            now=START,
            next_run_at=None,
            next_run_source="x",
            next_run_reason="x",
        )
    state = any_store.get_job("job").state
    assert (state.epoch, state.lease_owner, state.current_run_id) == (1, "tick", make_run_id("job", START))


def test_a_live_lease_blocks_a_claim_and_an_expired_one_is_fenced_as_abandoned(any_store):
    # Given a claimed run that never finished
    apply(any_store)
    first = claim(any_store)
    slot = START + timedelta(minutes=5)
    # When the next slot comes while the lease lives, then after it expired
    with pytest.raises(ClaimConflict):
        claim(any_store, at=slot, now=slot)
    later = START + LEASE + timedelta(minutes=1)
    second = claim(any_store, at=slot, now=later)
    # Then the second claim bumps the epoch and records the silent run as abandoned
    assert any_store.get_job("job").state.epoch == second.epoch == 2
    assert any_store.get_run(first.run_id).status == RunStatus.ABANDONED
    # And the stale holder can no longer write its run or its steps
    with pytest.raises(LeaseLost):
        any_store.save_run(first)
    with pytest.raises(LeaseLost):
        any_store.put_step_result(
            "job",
            first.run_id,
            first.epoch,
            StepResult(step_id="a", endpoint_id="a", status=StepStatus.SUCCEEDED),
            START,
        )


def test_finishing_releases_the_lease_and_moves_the_job_in_the_due_index(any_store):
    # Given a claimed run
    apply(any_store)
    run = claim(any_store)
    assert due_ids(any_store, START) == []  # moved to its next slot at claim time
    # When it finishes with a next run
    run.status = RunStatus.SUCCEEDED
    any_store.finish_run(
        run,
        next_run_at=START + timedelta(minutes=10),
        next_run_source="baseline",
        next_run_reason="test",
        consecutive_failures=0,
    )
    # Then the lease is gone and the job is due exactly at its next run
    state = any_store.get_job("job").state
    assert state.lease_owner is None
    assert state.current_run_id is None
    assert due_ids(any_store, START + timedelta(minutes=9)) == []
    assert due_ids(any_store, START + timedelta(minutes=10)) == ["job"]
    assert any_store.get_run(run.run_id).status == RunStatus.SUCCEEDED


def test_a_skip_is_recorded_once_and_fenced_on_the_read(any_store):
    # Given a due job
    apply(any_store)
    seen = any_store.get_job("job")
    skipped = RunRecord(
        run_id=make_run_id("job", START),
        job_id="job",
        scheduled_at=START,
        epoch=0,
        trigger="schedule",
        status=RunStatus.SKIPPED,
        skip_reason="too-late",
    )
    # When the slot is skipped, and a stale reader tries the same
    any_store.record_skip(
        seen,
        skipped,
        next_run_at=START + timedelta(minutes=5),
        next_run_source="baseline",
        next_run_reason="x",
    )
    with pytest.raises(ClaimConflict):
        any_store.record_skip(seen, skipped, next_run_at=None, next_run_source="x", next_run_reason="x")
    # Then there is one skipped run and the job moved on
    assert any_store.get_run(skipped.run_id).skip_reason == "too-late"
    assert any_store.get_job("job").state.next_run_at == START + timedelta(minutes=5)


def test_a_deleted_job_keeps_its_next_epoch_in_a_tombstone(any_store):
    # Given a job claimed once, then deleted
    apply(any_store)
    run = claim(any_store)
    run.status = RunStatus.SUCCEEDED
    any_store.finish_run(
        run, next_run_at=None, next_run_source="x", next_run_reason="x", consecutive_failures=0
    )
    any_store.delete_job(any_store.get_job("job"), START)
    # Then it is gone, and a job re-created under its id continues past the last claim
    with pytest.raises(JobNotFound):
        any_store.get_job("job")
    apply(any_store)
    assert any_store.get_job("job").state.epoch == 2


def test_runs_are_listed_newest_first_in_pages(any_store):
    # Given three finished runs
    apply(any_store)
    at = START
    for _ in range(3):
        run = claim(any_store, at=at, now=at)
        run.status = RunStatus.SUCCEEDED
        at += timedelta(minutes=5)
        any_store.finish_run(
            run, next_run_at=at, next_run_source="x", next_run_reason="x", consecutive_failures=0
        )
    # When they are listed two at a time
    first, token = any_store.list_runs("job", limit=2)
    second, end = any_store.list_runs("job", limit=2, after=token)
    # Then the pages are newest first, and the last page says there is no more
    stamps = [r.scheduled_at for r in first + second]
    assert stamps == sorted(stamps, reverse=True)
    assert len(stamps) == 3
    assert end is None


def _decision(run: RunRecord, phase: str, minutes: int) -> StandingDecision:
    return StandingDecision(
        phase=phase,
        run_id=run.run_id,
        decided_at=START,
        valid_until=START + timedelta(minutes=minutes),
        inputs=DecisionInputs(job="digest"),
    )


def test_standing_decisions_are_written_with_the_run_under_its_fence(any_store):
    # Given a claimed run that records a plan decision, then a summarize decision as it finishes
    apply(any_store)
    run = claim(any_store)
    assert any_store.get_decision("job", "plan") is None
    any_store.save_run(run, decision=_decision(run, "plan", 60))
    run.status = RunStatus.SUCCEEDED
    any_store.finish_run(
        run,
        next_run_at=START + timedelta(minutes=5),
        next_run_source="ai",
        next_run_reason="r",
        consecutive_failures=0,
        decision=_decision(run, "summarize", 30),
    )
    # Then each phase keeps its own decision
    assert any_store.get_decision("job", "plan").valid_until == START + timedelta(minutes=60)
    assert any_store.get_decision("job", "summarize").valid_until == START + timedelta(minutes=30)
    # And a run fenced out by a newer claim writes neither its record nor its decision
    newer = claim(any_store, at=START + timedelta(minutes=5))
    with pytest.raises(LeaseLost):
        any_store.save_run(run, decision=_decision(run, "plan", 999))
    assert any_store.get_decision("job", "plan").valid_until == START + timedelta(minutes=60)
    # And the newest writer wins: a decision carries its own inputs, so last-writer-wins is safe
    any_store.save_run(newer, decision=_decision(newer, "plan", 120))
    assert any_store.get_decision("job", "plan").run_id == newer.run_id


def test_a_retry_request_makes_the_job_due_and_the_next_claim_consumes_it(any_store):
    # Given a job whose slot is in the future
    later = START + timedelta(hours=1)
    apply(any_store, at=later)
    seen = any_store.get_job("job")
    # When an operator asks for a replay now (a stale read of the job conflicts)
    any_store.request_retry(seen, run_id="job.20261122T080000Z", failed_only=True, reason="retry", now=START)
    with pytest.raises(ClaimConflict):
        any_store.request_retry(seen, run_id="job.x", failed_only=False, reason="retry", now=START)
    # Then the job is due now with the request on it
    state = any_store.get_job("job").state
    assert (state.retry_of, state.retry_failed_only, state.next_run_source) == (
        "job.20261122T080000Z",
        True,
        "retry",
    )
    assert due_ids(any_store, START) == ["job"]
    # And the claim that starts the replay clears it
    claim(any_store, at=START)
    assert any_store.get_job("job").state.retry_of is None


def test_a_skipped_retry_request_is_dropped_unless_buffered(any_store):
    apply(any_store)
    seen = any_store.get_job("job")
    any_store.request_retry(seen, run_id="job.20261122T080000Z", failed_only=False, reason="retry", now=START)
    seen = any_store.get_job("job")
    skipped = RunRecord(
        run_id=make_run_id("job", START),
        job_id="job",
        scheduled_at=START,
        epoch=0,
        trigger="retry",
        status=RunStatus.SKIPPED,
        skip_reason="overlap-buffered",
    )
    later = START + timedelta(minutes=5)
    any_store.record_skip(
        seen, skipped, next_run_at=later, next_run_source="x", next_run_reason="x", buffer=True
    )
    assert any_store.get_job("job").state.retry_of == "job.20261122T080000Z"
    seen = any_store.get_job("job")
    again = skipped.model_copy(update={"run_id": make_run_id("job", later), "skip_reason": "overlap"})
    any_store.record_skip(seen, again, next_run_at=later, next_run_source="x", next_run_reason="x")
    assert any_store.get_job("job").state.retry_of is None


def test_records_are_counted_and_a_taken_record_id_is_told_apart_from_a_moved_job(any_store):
    # Given a job with one claimed run, re-pointed at the same second (a manual run, say)
    apply(any_store)
    first = claim(any_store)
    seen = any_store.get_job("job")
    assert (seen.state.records, seen.state.newest_stamp) == (1, "20261122T090000Z")
    # When a record is written under an id an item already holds
    skipped = first.model_copy(update={"status": RunStatus.SKIPPED, "epoch": seen.state.epoch})
    with pytest.raises(RecordIdTaken):
        any_store.record_skip(seen, skipped, next_run_at=None, next_run_source="x", next_run_reason="x")
    # Then nothing moved, and under the sequenced id the record is written and counted
    skipped.run_id = make_run_id("job", START, sequence=2)
    any_store.record_skip(seen, skipped, next_run_at=None, next_run_source="x", next_run_reason="x")
    assert any_store.get_job("job").state.records == 2
    with pytest.raises(ClaimConflict):  # the read is stale now: the record count moved
        any_store.record_skip(seen, skipped, next_run_at=None, next_run_source="x", next_run_reason="x")


def test_a_claim_indexes_its_start_check_and_confirming_it_moves_the_job_back(any_store):
    # Given a claim whose start check comes before the job's next slot
    apply(any_store)
    seen = any_store.get_job("job")
    run = RunRecord.claimed("job", START, 1, "schedule", START)
    any_store.claim(
        seen,
        run,
        owner="tick",
        lease_until=START + LEASE,
        now=START,
        next_run_at=START + timedelta(hours=1),
        next_run_source="baseline",
        next_run_reason="next slot",
        start_check_at=START + timedelta(minutes=1),
    )
    # Then the job is due at its check, and counted there
    assert due_ids(any_store, START + timedelta(minutes=1)) == ["job"]
    shard = next(s for s in any_store.due_shards() if any_store.count_due(s, START + timedelta(minutes=1)))
    assert any_store.count_due(shard, START + timedelta(minutes=1)) == 1
    # And marking the run started leaves the doc alone, while confirming the check re-indexes the job
    any_store.mark_started(run, START, late_start="late for a test")
    marked = any_store.get_run(run.run_id)
    assert (marked.status, marked.execution_started_at, marked.late_start) == (
        RunStatus.CLAIMED,
        START,
        "late for a test",
    )
    any_store.confirm_start(any_store.get_job("job"), run.run_id)
    assert any_store.get_job("job").state.start_check_at is None
    assert due_ids(any_store, START + timedelta(minutes=59)) == []
    assert due_ids(any_store, START + timedelta(hours=1)) == ["job"]


def test_a_lease_ends_at_its_second(any_store):
    apply(any_store)
    claim(any_store)
    again = RunRecord.claimed("job", START + timedelta(minutes=5), 2, "schedule", START + LEASE)
    any_store.claim(
        any_store.get_job("job"),
        again,
        owner="next",
        lease_until=START + 2 * LEASE,
        now=START + LEASE,
        next_run_at=None,
        next_run_source="x",
        next_run_reason="x",
    )
    assert any_store.get_job("job").state.lease_owner == "next"


def test_put_job_against_the_version_read_refuses_a_job_changed_since(any_store):
    # Given a job two operators read
    apply(any_store, goal="v1")
    seen = any_store.get_job("job")
    # When one updates against its read, and is paused afterwards (the status alone changes)
    any_store.put_job(
        make_job("job", goal="v2"), next_run_at=START, source="baseline", reason="r", now=START, seen=seen
    )
    current = any_store.get_job("job")
    any_store.set_job_schedule_state(
        current,
        status=JobStatus.PAUSED,
        next_run_at=START,
        source="paused",
        reason="p",
        paused_until=None,
        now=START,
    )
    # Then the other's write against the older read is refused, and one against the current read is not
    with pytest.raises(JobChanged):
        any_store.put_job(
            make_job("job", goal="v3"), next_run_at=START, source="baseline", reason="r", now=START, seen=seen
        )
    latest = any_store.get_job("job")
    assert (latest.job.goal, latest.job.status) == ("v2", JobStatus.PAUSED)
    any_store.put_job(
        make_job("job", goal="v3", status="paused"),
        next_run_at=START,
        source="baseline",
        reason="r",
        now=START,
        seen=latest,
    )
    assert any_store.get_job("job").job.goal == "v3"


def test_create_only_refuses_an_existing_job_but_not_a_tombstone(any_store):
    apply(any_store)
    with pytest.raises(JobChanged):
        any_store.put_job(
            make_job("job"), next_run_at=START, source="baseline", reason="r", now=START, create_only=True
        )
    any_store.delete_job(any_store.get_job("job"), START)
    any_store.put_job(
        make_job("job"), next_run_at=START, source="baseline", reason="r", now=START, create_only=True
    )
    assert any_store.get_job("job").state.epoch == 1  # it continues from the tombstone's epoch

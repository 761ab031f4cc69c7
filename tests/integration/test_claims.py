"""Claim semantics on moto: leases, fencing epochs, duplicate and dropped ticks, and a claim race."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from cronpilot.dal import schema
from cronpilot.dal.store import Store
from cronpilot.domain.discovery import LEASE_DURATION, Discovery
from cronpilot.domain.ports import ClaimConflict, JobNotFound, LeaseLost
from cronpilot.models.run import RunRecord, RunStatus, StepResult, StepStatus

from tests.integration.conftest import START, RecordingStarter
from tests.support.factories import make_job


def apply(store: Store, job_id: str, when=START, **fields) -> None:
    store.put_job(make_job(job_id, **fields), next_run_at=when, source="baseline", reason="test", now=when)


def complete_current_run(store: Store, job_id: str, next_run_at) -> None:
    """What the summarizer does at the end of a run: record success, set the next run, release."""
    run = store.get_run(store.get_job(job_id).state.current_run_id)
    run.status = RunStatus.SUCCEEDED
    store.finish_run(
        run,
        next_run_at=next_run_at,
        next_run_source="baseline",
        next_run_reason="test",
        consecutive_failures=0,
    )


def test_fresh_due_job_is_claimed_once_with_epoch_and_lease(store, clock, starter):
    # Given a job due now
    apply(store, "fresh")
    # When discovery ticks
    result = Discovery(store, starter, clock, owner="tick-1").tick()
    # Then the run is created, started under its deterministic id, and the job holds a lease
    assert result.claimed == ["fresh.20261122T090000Z"]
    assert starter.started == ["fresh.20261122T090000Z"]
    record = store.get_job("fresh")
    assert record.state.epoch == 1
    assert record.state.lease_owner == "tick-1"
    assert record.state.lease_expires_at == START + LEASE_DURATION
    assert record.state.next_run_at == START + timedelta(minutes=5)
    run = store.get_run("fresh.20261122T090000Z")
    assert run.status == RunStatus.CLAIMED
    assert run.epoch == 1


def test_duplicate_tick_claims_nothing_twice(store, clock, starter):
    # Given a job that one tick already claimed
    apply(store, "dup")
    Discovery(store, starter, clock, owner="a").tick()
    # When the same tick is delivered again (at-least-once delivery)
    again = Discovery(store, starter, clock, owner="b").tick()
    # Then nothing new is claimed or started
    assert again.claimed == []
    assert starter.started == ["dup.20261122T090000Z"]
    assert store.get_job("dup").state.epoch == 1


def test_job_not_yet_due_is_not_read(store, clock, starter):
    apply(store, "later", when=START + timedelta(minutes=3))
    result = Discovery(store, starter, clock, owner="a").tick()
    assert result.due == 0
    assert result.scanned == 0


def test_dropped_ticks_pick_up_every_overdue_job_once(store, clock, starter):
    # Given jobs due at different times, and three ticks that never arrived
    for minute in range(3):
        apply(store, f"late-{minute}", when=START + timedelta(minutes=minute))
    clock.advance(timedelta(minutes=3))
    # When the next tick arrives
    result = Discovery(store, starter, clock, owner="a").tick()
    # Then every overdue job is claimed exactly once, and no missed slot is replayed as a burst
    assert sorted(result.claimed) == [
        "late-0.20261122T090000Z",
        "late-1.20261122T090100Z",
        "late-2.20261122T090200Z",
    ]
    for minute in range(3):
        assert store.get_job(f"late-{minute}").state.next_run_at == START + timedelta(minutes=5)


def test_expired_lease_is_reclaimed_and_stale_holder_is_fenced(store, clock, starter):
    # Given a run whose holder went silent past its lease, with the job due again
    apply(store, "stuck", schedule={"rate": "5m"})
    Discovery(store, starter, clock, owner="old").tick()
    stale_run = store.get_run("stuck.20261122T090000Z")
    clock.advance(LEASE_DURATION + timedelta(minutes=1))
    # When discovery ticks again
    result = Discovery(store, starter, clock, owner="new").tick()
    # Then the stuck lease is counted (it feeds the LeasesStuck alarm) and the job re-claimed
    assert result.leases_stuck == 1
    assert len(result.claimed) == 1
    record = store.get_job("stuck")
    assert record.state.epoch == 2
    assert record.state.lease_owner == "new"
    # And every write of the stale holder is rejected
    step = StepResult(step_id="a", endpoint_id="a", status=StepStatus.SUCCEEDED)
    with pytest.raises(LeaseLost):
        store.put_step_result("stuck", stale_run.run_id, stale_run.epoch, step, clock.now())
    stale_run.status = RunStatus.SUCCEEDED
    with pytest.raises(LeaseLost):
        store.save_run(stale_run)
    with pytest.raises(LeaseLost):
        store.finish_run(
            stale_run,
            next_run_at=clock.now(),
            next_run_source="baseline",
            next_run_reason="x",
            consecutive_failures=0,
        )
    assert store.get_job("stuck").state.lease_owner == "new"
    # And the silent run is recorded as abandoned, with why, instead of looking in flight forever
    abandoned = store.get_run(stale_run.run_id)
    assert abandoned.status == RunStatus.ABANDONED
    assert abandoned.finished_at == clock.now()
    assert "lease expired" in abandoned.error
    assert f"fenced when {result.claimed[0]} was claimed" in abandoned.error


def test_run_finishing_after_discovery_read_it_as_expired_is_not_marked_abandoned(store, clock, starter):
    # Given a run past its lease, that discovery reads as abandoned
    apply(store, "late", schedule={"rate": "5m"})
    Discovery(store, starter, clock, owner="old").tick()
    clock.advance(LEASE_DURATION + timedelta(minutes=1))
    [seen] = next(store.query_due(schema.due_shard("late"), clock.now())).records
    assert seen.state.abandoned_runs(clock.now()) == ["late.20261122T090000Z"]
    # When the run finishes just before the claim is written
    complete_current_run(store, "late", next_run_at=clock.now())
    # Then the claim built on that read conflicts, and the finished run keeps its outcome
    run = RunRecord.claimed("late", seen.state.next_run_at, seen.state.epoch + 1, "schedule", clock.now())
    with pytest.raises(ClaimConflict):
        store.claim(
            seen,
            run,
            owner="new",
            lease_until=clock.now() + LEASE_DURATION,
            now=clock.now(),
            next_run_at=None,
            next_run_source="baseline",
            next_run_reason="test",
        )
    assert store.get_run("late.20261122T090000Z").status == RunStatus.SUCCEEDED
    # And the next tick, reading afresh, claims the job normally
    assert Discovery(store, starter, clock, owner="new").tick().claimed == ["late.20261122T093100Z"]


def test_live_lease_with_overlap_skip_records_a_skipped_run(store, clock, starter):
    # Given a run in flight and the job's next slot arriving
    apply(store, "busy")
    Discovery(store, starter, clock, owner="a").tick()
    clock.advance(timedelta(minutes=5))
    # When discovery ticks
    result = Discovery(store, starter, clock, owner="b").tick()
    # Then the slot is recorded as skipped with its reason, and the job moves on
    assert result.skipped == [("busy.20261122T090500Z", "overlap")]
    skipped = store.get_run("busy.20261122T090500Z")
    assert skipped.status == RunStatus.SKIPPED
    assert skipped.skip_reason == "overlap"
    assert store.get_job("busy").state.next_run_at == START + timedelta(minutes=10)


def test_a_job_deleted_and_recreated_under_its_id_still_fences_the_old_runs(store, clock, starter):
    # Given a run of a job that an operator deletes (forced) and re-creates at once under the same id
    apply(store, "reborn", schedule={"rate": "5m"})
    Discovery(store, starter, clock, owner="a").tick()
    old_run = store.get_run("reborn.20261122T090000Z")
    store.delete_job(store.get_job("reborn"), clock.now())
    with pytest.raises(JobNotFound):
        store.get_job("reborn")
    assert store.list_jobs() == []
    apply(store, "reborn", when=clock.now() + timedelta(minutes=1), schedule={"rate": "5m"})
    # When the new job's first run is claimed
    clock.advance(timedelta(minutes=1))
    [new_run_id] = Discovery(store, starter, clock, owner="b").tick().claimed
    # Then the epochs keep counting past the deleted job's, so the old run's writes are still refused
    new_run = store.get_run(new_run_id)
    assert new_run.epoch > old_run.epoch + 1
    step = StepResult(step_id="a", endpoint_id="a", status=StepStatus.SUCCEEDED)
    with pytest.raises(LeaseLost):
        store.put_step_result("reborn", old_run.run_id, old_run.epoch, step, clock.now())
    store.put_step_result("reborn", new_run.run_id, new_run.epoch, step, clock.now())
    # And the re-created job is a job again: no leftover expiry from the tombstone
    key = {name: {"S": value} for name, value in schema.job_key("reborn").items()}
    item = store.client.get_item(TableName=store.table_name, Key=key)["Item"]
    assert schema.TTL_ATTRIBUTE not in item


def test_paused_job_leaves_the_due_index(store, clock, starter):
    apply(store, "paused", status="paused")
    result = Discovery(store, starter, clock, owner="a").tick()
    assert result.scanned == 0
    assert starter.started == []


def test_finish_releases_lease_and_reindexes(store, clock, starter):
    apply(store, "done")
    Discovery(store, starter, clock, owner="a").tick()
    run: RunRecord = store.get_run("done.20261122T090000Z")
    run.status = RunStatus.SUCCEEDED
    store.finish_run(
        run,
        next_run_at=START + timedelta(minutes=30),
        next_run_source="baseline",
        next_run_reason="test",
        consecutive_failures=0,
    )
    state = store.get_job("done").state
    assert state.lease_owner is None
    assert state.lease_expires_at is None
    clock.advance(timedelta(minutes=30))
    assert Discovery(store, starter, clock, owner="b").tick().claimed == ["done.20261122T093000Z"]


def test_run_history_is_newest_first_and_paginated(store, clock, starter):
    apply(store, "hist", schedule={"rate": "5m"})
    for _ in range(5):
        Discovery(store, starter, clock, owner="a").tick()
        complete_current_run(store, "hist", clock.now() + timedelta(minutes=5))
        clock.advance(timedelta(minutes=5))
    first, token = store.list_runs("hist", limit=3)
    second, end = store.list_runs("hist", limit=3, after=token)
    ids = [r.run_id for r in first + second]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 5
    assert end is None


# Each round is 32 invocations reading 16 shards on moto (its index queries walk the table under one
# lock): three rounds keep this under five minutes on two cores.
ROUNDS = 3


class LockedStarter(RecordingStarter):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def start(self, run, budget):
        with self.lock:
            return super().start(run, budget)


@pytest.mark.slow
def test_claim_race_every_run_claimed_exactly_once(store, clock):
    # Given 200 due jobs, and 32 concurrent discovery invocations per round, for 10 rounds
    jobs = [f"race-{n:03d}" for n in range(200)]
    for job_id in jobs:
        apply(store, job_id, schedule={"rate": "5m"})
    starter = LockedStarter()
    claims: Counter[str] = Counter()
    for round_number in range(ROUNDS):
        barrier = threading.Barrier(32)
        outcomes: list[list[str]] = []

        def invoke(worker: int) -> None:
            barrier.wait()
            result = Discovery(store, starter, clock, owner=f"r{round_number}-w{worker}", workers=4).tick()
            outcomes.append(result.claimed)

        threads = [threading.Thread(target=invoke, args=(w,)) for w in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for claimed in outcomes:
            claims.update(claimed)
        # Release every lease so the next round's slots are claimable
        for job_id in jobs:
            complete_current_run(store, job_id, clock.now() + timedelta(minutes=5))
        clock.advance(timedelta(minutes=5))
    # Then every run was claimed exactly once: 0 duplicates, 0 missed
    expected = {
        f"{job}.{(START + timedelta(minutes=5 * r)).strftime('%Y%m%dT%H%M%SZ')}"
        for job in jobs
        for r in range(ROUNDS)
    }
    assert set(claims) == expected
    assert max(claims.values()) == 1
    assert sorted(starter.started) == sorted(expected)


def test_runs_expire_by_ttl(store, clock, starter):
    from cronpilot.dal import schema
    from cronpilot.dal.store import RUN_RETENTION

    apply(store, "ttl")
    Discovery(store, starter, clock, owner="a").tick()
    item = store.client.get_item(
        TableName=store.table_name, Key={"PK": {"S": "job#ttl"}, "SK": {"S": "run#20261122T090000Z"}}
    )
    assert int(item["Item"][schema.TTL_ATTRIBUTE]["N"]) == int((START + RUN_RETENTION).timestamp())

"""Discovery against in-memory ports: claims, skips, starts and start failures, with no AWS at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronpilot.clock import FixedClock
from cronpilot.domain.discovery import LEASE_DURATION, Discovery
from cronpilot.models.run import RunStatus

from tests.support.factories import make_job
from tests.support.memory import InMemoryStore, RecordingStarter

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def apply(store: InMemoryStore, job_id: str = "job", at: datetime = START, **fields) -> None:
    store.put_job(make_job(job_id, **fields), next_run_at=at, source="baseline", reason="test", now=at)


def tick(store: InMemoryStore, starter: RecordingStarter, at: datetime, owner: str = "tick"):
    return Discovery(store, starter, FixedClock(at), owner=owner).tick()


def test_a_due_job_is_claimed_started_and_moved_to_its_next_slot():
    # Given a job due now
    store, starter = InMemoryStore(), RecordingStarter()
    apply(store)
    # When discovery ticks twice (a duplicate delivery)
    first = tick(store, starter, START)
    second = tick(store, starter, START, owner="again")
    # Then one run is claimed and started under its deterministic id, with a lease and epoch 1
    assert first.claimed == starter.started == ["job.20261122T090000Z"]
    assert second.claimed == []
    state = store.get_job("job").state
    assert (state.epoch, state.lease_expires_at) == (1, START + LEASE_DURATION)
    assert state.next_run_at == START + timedelta(minutes=5)
    assert store.get_run("job.20261122T090000Z").status == RunStatus.CLAIMED


def test_a_slot_that_arrives_while_the_run_holds_its_lease_is_skipped_as_overlap():
    # Given a job whose run is still in flight when its next slot comes
    store, starter = InMemoryStore(), RecordingStarter()
    apply(store)
    tick(store, starter, START)
    # When discovery ticks at the next slot
    result = tick(store, starter, START + timedelta(minutes=5))
    # Then the slot is recorded as skipped with why, and nothing new starts
    assert result.claimed == []
    skipped = store.get_run("job.20261122T090500Z")
    assert (skipped.status, skipped.skip_reason) == (RunStatus.SKIPPED, "overlap")
    assert starter.started == ["job.20261122T090000Z"]


def test_a_slot_older_than_max_lateness_is_skipped_as_too_late():
    # Given a job whose slot passed 10 minutes ago, with 2 minutes' allowed lateness
    store, starter = InMemoryStore(), RecordingStarter()
    apply(store, guardrails={"max_lateness": "2m"})
    # When discovery finally ticks
    tick(store, starter, START + timedelta(minutes=10))
    # Then the old slot is recorded as too late and no run started for it
    assert store.get_run("job.20261122T090000Z").skip_reason == "too-late"
    assert "job.20261122T090000Z" not in starter.started


def test_a_refused_start_is_recorded_and_the_slot_is_retried_by_the_next_tick():
    # Given Step Functions refusing the start for good (throttling is retried in the tick instead)
    store, starter = InMemoryStore(), RecordingStarter(refuse_with="AccessDeniedException")
    apply(store)
    # When discovery ticks, then ticks again once the service accepts
    tick(store, starter, START)
    failed = store.get_run("job.20261122T090000Z")
    starter.refuse_with = None
    retry = tick(store, starter, START + timedelta(minutes=1))
    # Then the first attempt says why it did not start, and the same slot runs on the next tick under
    # a record id of its own (the failed attempt keeps its record)
    assert failed.status == RunStatus.START_FAILED
    assert "AccessDeniedException" in (failed.error or "")
    assert retry.claimed == starter.started == ["job.20261122T090000Z-2"]
    assert store.get_run("job.20261122T090000Z-2").scheduled_at == START
    assert store.get_run("job.20261122T090000Z").status == RunStatus.START_FAILED


def test_a_paused_job_is_never_claimed():
    # Given a paused job whose slot has come
    store, starter = InMemoryStore(), RecordingStarter()
    apply(store, status="paused")
    # When discovery ticks
    result = tick(store, starter, START + timedelta(minutes=1))
    # Then nothing is claimed
    assert result.claimed == []
    assert starter.started == []

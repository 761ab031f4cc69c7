"""Overlap, catch-up, pause-until and manual triggers, decided at claim time and recorded with reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cronpilot.domain.discovery import Discovery
from cronpilot.domain.operations import pause_job, resume_job, trigger_job
from cronpilot.domain.ports import LeaseLost
from cronpilot.domain.strategies import DeterministicSummarizer
from cronpilot.domain.summarizing import summarize_run
from cronpilot.models.run import RunRef, RunStatus, StepResult, StepStatus

from tests.integration.conftest import START
from tests.support.factories import make_job


def apply(store, job_id, **fields):
    job = make_job(job_id, schedule={"cron": "*/10 * * * *"}, **fields)
    store.put_job(job, next_run_at=START, source="baseline", reason="test", now=START)
    return job


def tick(store, starter, clock):
    return Discovery(store, starter, clock, owner=f"tick-{clock.now():%H%M}").tick()


def finish_run(store, clock, run_id):
    """What the state machine's Summarize stage does at the end of a run."""
    run = store.get_run(run_id)
    summarize_run(
        store, clock, RunRef(run_id=run_id, job_id=run.job_id, epoch=run.epoch), DeterministicSummarizer()
    )
    return store.get_run(run_id)


def finish(store, clock, job_id):
    return finish_run(store, clock, store.get_job(job_id).state.current_run_id)


def test_overlap_skip_records_each_slot_that_arrives_during_a_run(store, clock, starter):
    apply(store, "skipper")
    tick(store, starter, clock)
    for _ in range(2):  # two slots arrive while the 09:00 run is still in flight
        clock.advance(timedelta(minutes=10))
        tick(store, starter, clock)
    runs, _ = store.list_runs("skipper")
    assert [(r.run_id[-16:], r.status, r.skip_reason) for r in runs] == [
        ("20261122T092000Z", RunStatus.SKIPPED, "overlap"),
        ("20261122T091000Z", RunStatus.SKIPPED, "overlap"),
        ("20261122T090000Z", RunStatus.CLAIMED, None),
    ]
    assert "still in flight" in runs[0].error


def test_buffer_one_runs_once_right_after_the_current_run(store, clock, starter):
    apply(store, "buffered", guardrails={"overlap": "buffer_one", "min_interval": "1m"})
    tick(store, starter, clock)
    clock.advance(timedelta(minutes=10))
    tick(store, starter, clock)  # 09:10 buffered
    clock.advance(timedelta(minutes=10))
    tick(store, starter, clock)  # 09:20: the buffer already holds one, so this one is skipped
    clock.advance(timedelta(minutes=1))
    done = finish(store, clock, "buffered")
    # The run that ends schedules the buffered run immediately
    assert done.next_run.source == "buffered"
    assert done.next_run.at == clock.now()
    tick(store, starter, clock)
    runs, _ = store.list_runs("buffered")
    reasons = {r.run_id[-16:]: (r.status, r.skip_reason or r.trigger) for r in runs}
    assert reasons["20261122T091000Z"] == (RunStatus.SKIPPED, "overlap-buffered")
    assert reasons["20261122T092000Z"] == (RunStatus.SKIPPED, "overlap")
    assert reasons["20261122T092100Z"] == (RunStatus.CLAIMED, "buffered")


def test_scheduler_down_three_hours_within_lateness_catches_up_once(store, clock, starter):
    apply(store, "patient", guardrails={"max_lateness": "4h"})
    clock.advance(timedelta(hours=3))
    result = tick(store, starter, clock)
    # One catch-up run for the oldest missed slot, not 18 runs; then the job moves to its next slot
    assert result.claimed == ["patient.20261122T090000Z"]
    run = store.get_run("patient.20261122T090000Z")
    assert run.trigger == "catch-up"
    assert store.get_job("patient").state.next_run_at == START + timedelta(hours=3, minutes=10)


def test_scheduler_down_three_hours_past_lateness_skips_too_late(store, clock, starter):
    apply(store, "strict", guardrails={"max_lateness": "15m"})
    clock.advance(timedelta(hours=3))
    result = tick(store, starter, clock)
    assert result.claimed == []
    assert result.skipped == [("strict.20261122T090000Z", "too-late")]
    skipped = store.get_run("strict.20261122T090000Z")
    assert skipped.status == RunStatus.SKIPPED
    assert "more than max_lateness" in skipped.error
    # The next slot runs normally
    clock.advance(timedelta(minutes=10))
    assert tick(store, starter, clock).claimed == ["strict.20261122T121000Z"]


def test_pause_until_leaves_discovery_alone_then_resumes_itself(store, clock, starter):
    apply(store, "napper")
    pause_job(store, "napper", clock.now(), until=START + timedelta(hours=1))
    # A paused job is not claimed while its pause lasts (it is indexed only at its end date)
    clock.advance(timedelta(minutes=30))
    result = tick(store, starter, clock)
    assert result.claimed == []
    assert result.scanned == 0
    # When the pause ends, discovery resumes it at its next slot
    clock.advance(timedelta(minutes=30))
    assert tick(store, starter, clock).resumed == ["napper"]
    state = store.get_job("napper").state
    assert store.get_job("napper").job.status == "active"
    assert state.next_run_at == START + timedelta(hours=1, minutes=10)
    clock.advance(timedelta(minutes=10))
    assert tick(store, starter, clock).claimed == ["napper.20261122T101000Z"]


def test_pause_without_end_until_resume(store, clock, starter):
    apply(store, "sleeper")
    pause_job(store, "sleeper", clock.now())
    clock.advance(timedelta(days=2))
    assert tick(store, starter, clock).scanned == 0
    next_run = resume_job(store, "sleeper", clock.now()).next_run_at
    assert next_run == clock.now() + timedelta(minutes=10)


def test_manual_trigger_is_recorded_and_honours_overlap(store, clock, starter):
    apply(store, "manual")
    clock.advance(timedelta(minutes=3))
    tick(store, starter, clock)  # claims the 09:00 slot as a catch-up
    trigger_job(store, "manual", clock.now())
    clock.advance(timedelta(seconds=30))
    result = tick(store, starter, clock)
    # The 09:00 run still holds the lease: the manual run is skipped as an overlap, recorded as manual
    [(run_id, reason)] = result.skipped
    assert reason == "overlap"
    assert store.get_run(run_id).trigger == "manual"
    finish(store, clock, "manual")
    trigger_job(store, "manual", clock.now())
    [claimed] = tick(store, starter, clock).claimed
    assert store.get_run(claimed).trigger == "manual"


def test_overlap_allow_claims_each_slot_with_its_own_lease(store, clock, starter):
    apply(store, "parallel", guardrails={"overlap": "allow"})
    tick(store, starter, clock)
    clock.advance(timedelta(minutes=10))
    result = tick(store, starter, clock)
    # The 09:10 slot starts beside the 09:00 run; both hold a lease of their own
    assert result.claimed == ["parallel.20261122T091000Z"]
    assert result.skipped == []
    state = store.get_job("parallel").state
    assert state.runs_in_flight(clock.now()) == ["parallel.20261122T090000Z", "parallel.20261122T091000Z"]
    assert state.current_run_id == "parallel.20261122T091000Z"
    assert [r.concurrent for r in store.list_runs("parallel")[0]] == [True, True]


def test_overlap_allow_older_run_finishing_leaves_the_next_run_to_the_newest(store, clock, starter):
    apply(store, "parallel", guardrails={"overlap": "allow"})
    tick(store, starter, clock)
    clock.advance(timedelta(minutes=10))
    tick(store, starter, clock)
    clock.advance(timedelta(minutes=2))
    # The older run ends first: its outcome is recorded, the schedule is not moved back
    older = finish_run(store, clock, "parallel.20261122T090000Z")
    assert older.status == RunStatus.SUCCEEDED
    assert older.next_run.source == "superseded"
    assert "parallel.20261122T091000Z" in older.next_run.reason
    state = store.get_job("parallel").state
    assert state.next_run_at == START + timedelta(minutes=20)
    assert state.runs_in_flight(clock.now()) == ["parallel.20261122T091000Z"]
    assert state.lease_live(clock.now())
    # The newest run's end decides the next run and releases the job
    newest = finish_run(store, clock, "parallel.20261122T091000Z")
    assert newest.next_run.source == "baseline"
    state = store.get_job("parallel").state
    assert state.runs_in_flight(clock.now()) == []
    assert state.current_run_id is None
    assert state.next_run_at == newest.next_run.at


def test_overlap_allow_skips_slots_beyond_max_concurrent_runs(store, clock, starter):
    apply(store, "capped", guardrails={"overlap": "allow", "max_concurrent_runs": 2})
    tick(store, starter, clock)
    clock.advance(timedelta(minutes=10))
    tick(store, starter, clock)
    clock.advance(timedelta(minutes=10))
    result = tick(store, starter, clock)
    [(run_id, reason)] = result.skipped
    assert (run_id, reason) == ("capped.20261122T092000Z", "overlap")
    assert "2 runs in flight, max_concurrent_runs is 2" in store.get_run(run_id).error
    # A run ending frees a place for the next slot
    finish_run(store, clock, "capped.20261122T090000Z")
    clock.advance(timedelta(minutes=10))
    assert tick(store, starter, clock).claimed == ["capped.20261122T093000Z"]


def test_overlap_allow_abandoned_run_is_fenced_by_the_next_claim(store, clock, starter):
    apply(store, "zombie", guardrails={"overlap": "allow"})
    tick(store, starter, clock)
    clock.advance(timedelta(minutes=10))
    tick(store, starter, clock)
    # Both leases run out (30 min) while the runs' holders are silent; the due 09:20 slot is claimed
    clock.advance(timedelta(minutes=30))
    result = tick(store, starter, clock)
    assert result.leases_stuck == 2
    assert result.claimed == ["zombie.20261122T092000Z"]
    state = store.get_job("zombie").state
    assert state.runs_in_flight(clock.now()) == ["zombie.20261122T092000Z"]
    assert state.abandoned_runs(clock.now()) == []
    # Every write of the abandoned holders is now rejected
    step = StepResult(step_id="a", endpoint_id="a", status=StepStatus.SUCCEEDED)
    for stale_id in ("zombie.20261122T090000Z", "zombie.20261122T091000Z"):
        stale = store.get_run(stale_id)
        with pytest.raises(LeaseLost):
            store.put_step_result("zombie", stale.run_id, stale.epoch, step, clock.now())
        with pytest.raises(LeaseLost):
            store.save_run(stale)
        assert store.get_run(stale_id).status == RunStatus.ABANDONED
    # while the live run writes as usual
    current = store.get_run("zombie.20261122T092000Z")
    store.put_step_result("zombie", current.run_id, current.epoch, step, clock.now())


class ClaimsTheNextSlotWhileThinking(DeterministicSummarizer):
    """A summarizer slow enough that discovery claims the job's next slot before it writes."""

    def __init__(self, store, starter, clock):
        self.store, self.starter, self.clock = store, starter, clock

    def propose(self, job, context):
        self.clock.advance(timedelta(minutes=10))
        tick(self.store, self.starter, self.clock)
        return super().propose(job, context)


def test_overlap_allow_finish_that_loses_the_race_to_a_new_claim_is_superseded(store, clock, starter):
    apply(store, "racer", guardrails={"overlap": "allow"})
    tick(store, starter, clock)
    run = store.get_run("racer.20261122T090000Z")
    # The summarizer reads the job while its run is the newest, then the 09:10 slot is claimed
    summarize_run(
        store,
        clock,
        RunRef(run_id=run.run_id, job_id="racer", epoch=run.epoch),
        ClaimsTheNextSlotWhileThinking(store, starter, clock),
    )
    # Its first write loses the race; it looks again and defers to the newer run
    recorded = store.get_run(run.run_id)
    assert recorded.status == RunStatus.SUCCEEDED
    assert recorded.next_run.source == "superseded"
    state = store.get_job("racer").state
    assert state.next_run_at == START + timedelta(minutes=20)
    assert state.runs_in_flight(clock.now()) == ["racer.20261122T091000Z"]


@pytest.mark.parametrize("policy", ["skip", "buffer_one"])
def test_max_concurrent_runs_needs_overlap_allow(policy):
    with pytest.raises(ValueError, match="max_concurrent_runs only applies to overlap 'allow'"):
        make_job(guardrails={"overlap": policy, "max_concurrent_runs": 5})

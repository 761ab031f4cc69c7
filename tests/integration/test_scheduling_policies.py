"""Overlap, catch-up, pause-until and manual triggers, decided at claim time and recorded with reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cronpilot.discovery import Discovery
from cronpilot.models.run import RunRef, RunStatus
from cronpilot.operations import pause_job, resume_job, trigger_job
from cronpilot.strategies import DeterministicSummarizer
from cronpilot.summarizer import summarize_run

from tests.integration.conftest import START
from tests.support.factories import make_job


def apply(store, job_id, **fields):
    job = make_job(job_id, schedule={"cron": "*/10 * * * *"}, **fields)
    store.put_job(job, next_run_at=START, source="baseline", reason="test", now=START)
    return job


def tick(store, starter, clock):
    return Discovery(store, starter, clock, owner=f"tick-{clock.now():%H%M}").tick()


def finish(store, clock, job_id):
    record = store.get_job(job_id)
    run = store.get_run(record.state.current_run_id)
    summarize_run(
        store, clock, RunRef(run_id=run.run_id, job_id=job_id, epoch=run.epoch), DeterministicSummarizer()
    )
    return store.get_run(run.run_id)


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
    next_run = resume_job(store, "sleeper", clock.now())
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


def test_allow_overlap_is_refused_until_supported():
    with pytest.raises(ValueError, match="'allow' is not supported yet"):
        make_job(guardrails={"overlap": "allow"})

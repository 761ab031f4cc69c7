"""Wave building, cycle detection, next-run clamping, backoff and jitter math."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cronpilot.dag import PlanError, find_cycle, topological_waves
from cronpilot.domain.scheduling import clamp_next_run, failure_backoff, jitter_offset, next_slot
from cronpilot.domain.strategies import deterministic_plan
from cronpilot.models.job import Guardrails

from tests.support.factories import endpoint, make_job

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_waves_follow_dependencies_and_parallelise_the_rest():
    graph = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}
    assert topological_waves(graph) == [["a", "e"], ["b", "c"], ["d"]]


def test_waves_of_independent_steps_are_one_wave():
    assert topological_waves({"x": [], "y": [], "z": []}) == [["x", "y", "z"]]


def test_cycle_detection_returns_the_cycle_path():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": [], "b": ["a"]}) is None
    with pytest.raises(PlanError, match="dependency cycle"):
        topological_waves({"a": ["b"], "b": ["a"]})


def test_waves_reject_unknown_dependencies():
    with pytest.raises(PlanError, match=r"\['ghost'\]"):
        topological_waves({"a": ["ghost"]})


def test_deterministic_plan_calls_every_endpoint():
    job = make_job(endpoints=[endpoint("a"), endpoint("b", depends_on=["a"]), endpoint("c")])
    plan = deterministic_plan(job)
    assert plan.waves == [["a", "c"], ["b"]]
    assert {s.step_id for s in plan.steps} == {"a", "b", "c"}


GUARDS = Guardrails(min_interval=timedelta(minutes=10), max_interval=timedelta(hours=2))


@pytest.mark.parametrize(
    ("proposal", "expected", "source"),
    [
        (T0 + timedelta(seconds=1), T0 + timedelta(minutes=10), "clamped-min"),
        (T0 + timedelta(minutes=30), T0 + timedelta(minutes=30), "ai"),
        (T0 + timedelta(days=3), T0 + timedelta(hours=2), "clamped-max"),
    ],
)
def test_clamp_keeps_proposals_inside_the_guardrails(proposal, expected, source):
    clamped = clamp_next_run(proposal, source="ai", reason="r", guardrails=GUARDS, scheduled_at=T0, now=T0)
    assert (clamped.at, clamped.source) == (expected, source)


def test_clamp_never_goes_before_now():
    late = T0 + timedelta(hours=3)  # the run finished after max_interval had passed
    clamped = clamp_next_run(T0, source="ai", reason="r", guardrails=GUARDS, scheduled_at=T0, now=late)
    assert clamped.at == late


@pytest.mark.parametrize(("failures", "minutes"), [(1, 10), (2, 20), (3, 40), (4, 80), (5, 120), (50, 120)])
def test_backoff_doubles_from_min_interval_capped_by_max(failures, minutes):
    assert failure_backoff(failures, GUARDS) == timedelta(minutes=minutes)


def test_jitter_is_stable_per_job_and_slot_and_spreads_across_jobs():
    window = timedelta(seconds=60)
    assert jitter_offset("job-a", T0, window) == jitter_offset("job-a", T0, window)
    offsets = {jitter_offset(f"job-{n}", T0, window) for n in range(200)}
    assert all(timedelta(0) <= o < window for o in offsets)
    assert len(offsets) > 40  # spread over the window, not all at :00
    assert jitter_offset("job-a", T0, timedelta(0)) == timedelta(0)


def test_rate_slots_are_strictly_after_now_so_missed_slots_never_burst():
    job = make_job(schedule={"rate": "5m"})
    # On time: one interval after the previous slot
    assert next_slot(job.schedule, after=T0 + timedelta(seconds=20), previous=T0) == T0 + timedelta(minutes=5)
    # That slot is now (or past): one interval after now, never `now` itself (which would run again)
    assert next_slot(job.schedule, after=T0, previous=T0 - timedelta(minutes=5)) == T0 + timedelta(minutes=5)
    later = T0 + timedelta(hours=3, microseconds=500)
    assert next_slot(job.schedule, after=later, previous=T0) == T0 + timedelta(hours=3, minutes=5)
    assert next_slot(job.schedule, after=T0, previous=None) == T0 + timedelta(minutes=5)


def test_a_catch_up_run_anchors_the_cadence_at_its_claim():
    from cronpilot.domain.scheduling import cadence_anchor
    from cronpilot.models.run import RunRecord

    late = RunRecord.claimed("job-1", T0, 1, "catch-up", T0 + timedelta(minutes=35, microseconds=7))
    assert cadence_anchor(late) == T0 + timedelta(minutes=35)
    on_time = RunRecord.claimed("job-1", T0, 1, "schedule", T0 + timedelta(seconds=40))
    assert cadence_anchor(on_time) == T0


def test_one_off_has_no_slot_once_passed():
    job = make_job(schedule={"at": "2026-12-01T09:00:00", "timezone": "Europe/Berlin"})
    assert next_slot(job.schedule, after=T0) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert next_slot(job.schedule, after=datetime(2026, 12, 2, tzinfo=UTC)) is None

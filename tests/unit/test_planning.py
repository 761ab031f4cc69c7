"""Planning a run against in-memory ports: the plan is recorded once, in dependency waves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cronpilot.clock import FixedClock
from cronpilot.domain.planning import plan_run
from cronpilot.domain.ports import LeaseLost
from cronpilot.domain.strategies import DeterministicPlanner, PlanContext, PlanDecision
from cronpilot.models.health import CircuitState, Health
from cronpilot.models.job import Job
from cronpilot.models.run import RunRecord, RunRef, RunStatus

from tests.support.factories import endpoint, make_job
from tests.support.memory import InMemoryHealthStore, InMemoryStore

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class CountingPlanner:
    """The deterministic planner, counting calls and keeping what it was shown."""

    def __init__(self) -> None:
        self.calls = 0
        self.contexts: list[PlanContext] = []

    def plan(self, job: Job, context: PlanContext) -> PlanDecision:
        self.calls += 1
        self.contexts.append(context)
        return DeterministicPlanner().plan(job, context)


def claimed(store: InMemoryStore, job: Job) -> RunRef:
    store.put_job(job, next_run_at=START, source="baseline", reason="test", now=START)
    seen = store.get_job(job.id)
    run = RunRecord.claimed(job.id, START, 1, "schedule", START)
    store.claim(
        seen,
        run,
        owner="t",
        lease_until=START.replace(hour=10),
        now=START,
        next_run_at=None,
        next_run_source="x",
        next_run_reason="x",
    )
    return RunRef(run_id=run.run_id, job_id=job.id, epoch=1)


JOB = make_job(
    "plan",
    endpoints=[
        endpoint("fetch", "https://a.example.com/fetch"),
        endpoint("transform", "https://b.example.com/t", depends_on=["fetch"]),
        endpoint("audit", "https://c.example.com/audit"),
    ],
)


def test_the_plan_is_recorded_as_dependency_waves_and_the_run_is_running():
    # Given a claimed run of a job with a dependency
    store, health = InMemoryStore(), InMemoryHealthStore()
    ref = claimed(store, JOB)
    # When it is planned
    output = plan_run(store, health, FixedClock(START), ref, CountingPlanner())
    # Then producers come in an earlier wave than their consumers
    waves = [[step["endpoint_id"] for step in wave] for wave in output.waves]
    assert sorted(waves[0]) == ["audit", "fetch"]
    assert waves[1] == ["transform"]
    run = store.get_run(ref.run_id)
    assert run.status == RunStatus.RUNNING
    assert run.plan is not None
    assert run.plan.source == "deterministic"


def test_a_retried_invocation_reuses_the_recorded_plan():
    # Given a run already planned
    store, health, planner = InMemoryStore(), InMemoryHealthStore(), CountingPlanner()
    ref = claimed(store, JOB)
    first = plan_run(store, health, FixedClock(START), ref, planner)
    # When Step Functions retries the planner
    second = plan_run(store, health, FixedClock(START), ref, planner)
    # Then the strategy is not asked again and the waves are the same
    assert planner.calls == 1
    assert first == second


def test_the_strategy_sees_each_endpoint_circuit():
    # Given an origin whose circuit is open
    store, health, planner = InMemoryStore(), InMemoryHealthStore(), CountingPlanner()
    health.items["https://b.example.com:443"] = Health(
        origin="https://b.example.com:443", state=CircuitState.OPEN, opened_at=START, version=1
    )
    ref = claimed(store, JOB)
    # When the run is planned
    plan_run(store, health, FixedClock(START), ref, planner)
    # Then the strategy was shown which endpoint sits behind it
    assert planner.contexts[0].endpoint_health == {"fetch": "closed", "transform": "open", "audit": "closed"}


def test_a_fenced_run_cannot_record_a_plan():
    # Given a run whose epoch a later claim replaced
    store, health = InMemoryStore(), InMemoryHealthStore()
    ref = claimed(store, JOB)
    stale = ref.model_copy(update={"epoch": 0})
    # When its stale holder tries to plan it
    # Then it is refused
    with pytest.raises(LeaseLost):
        plan_run(store, health, FixedClock(START), stale, CountingPlanner())

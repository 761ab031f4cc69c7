"""Planner: load the job and its recent history, ask the strategy for a plan, record it, return waves."""

from __future__ import annotations

from cronpilot.clock import Clock
from cronpilot.domain.circuit import endpoint_health
from cronpilot.domain.news import inputs_of, latest_observations
from cronpilot.domain.ports import HealthStore, JobStore
from cronpilot.domain.replay import prepare_replay
from cronpilot.domain.strategies import PlanContext, PlanStrategy
from cronpilot.models.run import PlanOutput, RunRef, RunStatus

HISTORY_RUNS = 10


def plan_run(
    store: JobStore, health: HealthStore, clock: Clock, ref: RunRef, strategy: PlanStrategy
) -> PlanOutput:
    record = store.get_job(ref.job_id)
    run = store.get_fenced_run(ref.run_id, ref.epoch)
    if run.plan is None and run.retry_of is not None:  # a replay follows the original's plan
        run.plan = prepare_replay(store, run, record.job, clock.now())
        run.status = RunStatus.RUNNING
        run.started_at = clock.now()
        store.save_run(run)
    if run.plan is None:  # a retried invocation reuses the plan it already recorded
        history, _ = store.list_runs(ref.job_id, limit=HISTORY_RUNS + 1)
        history = [r for r in history if r.run_id != run.run_id][:HISTORY_RUNS]
        circuits = endpoint_health(health, record.job, clock)
        context = PlanContext(
            run=run,
            history=history,
            endpoint_health=circuits,
            standing=store.get_decision(ref.job_id, "plan"),
            inputs=inputs_of(record.job, circuits, latest_observations(history)),
        )
        decision = strategy.plan(record.job, context)
        run.plan = decision.plan
        run.tokens = run.tokens + decision.tokens
        run.llm_failures += decision.failures
        if decision.consult is not None:
            run.consults.append(decision.consult)
        run.status = RunStatus.RUNNING
        run.started_at = clock.now()
        store.save_run(run, decision=decision.standing)
    steps = {step.step_id: step for step in run.plan.steps}
    waves = [[steps[step_id].model_dump() for step_id in wave] for wave in run.plan.waves]
    return PlanOutput(waves=waves, max_parallel=record.job.guardrails.max_parallel)

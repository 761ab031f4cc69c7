"""Replay (`cronpilot runs retry RUN_ID [--failed-only]`): a new run, linked to the original and
recorded with trigger `retry`, that follows the original's plan. With `--failed-only` it reuses the
original's succeeded steps (their results and extracted values) and re-executes the failed and skipped
ones; otherwise it re-executes every step. Its run id differs, so do its idempotency keys."""

from __future__ import annotations

from datetime import datetime

from cronpilot.domain.ports import JobStore
from cronpilot.models.job import Job
from cronpilot.models.run import PlanRecord, RunRecord, RunStatus, StepResult, StepStatus


class ReplayError(ValueError):
    """The run cannot be replayed; the message says why and what to do instead."""


def replay_problem(
    original: RunRecord, job: Job, results: dict[str, StepResult], failed_only: bool
) -> str | None:
    """Why `original` cannot be replayed against the job as it is now, or None."""
    if not RunStatus(original.status).is_final:
        return f"run {original.run_id} is still {original.status}: wait for it to finish"
    if original.plan is None:
        why = (
            f"it was skipped ({original.skip_reason})" if original.skip_reason else "it ended before planning"
        )
        return (
            f"run {original.run_id} has no plan to replay ({why}): "
            f"start a fresh run with `cronpilot jobs trigger {original.job_id}`"
        )
    known = {e.id for e in job.endpoints}
    gone = sorted({s.endpoint_id for s in original.plan.steps} - known)
    if gone:
        return (
            f"job {job.id!r} no longer has endpoint(s) {gone} that run {original.run_id} called: "
            "a replay runs the same plan; trigger a fresh run instead"
        )
    if failed_only and not to_reexecute(original.plan, results):
        return (
            f"every step of run {original.run_id} succeeded: nothing to retry with --failed-only "
            "(drop the flag to re-run every step)"
        )
    return None


def to_reexecute(plan: PlanRecord, results: dict[str, StepResult]) -> list[str]:
    """The plan's steps that did not succeed (failed, skipped, or never recorded)."""
    return [
        s.step_id
        for s in plan.steps
        if s.step_id not in results or results[s.step_id].status != StepStatus.SUCCEEDED
    ]


def prepare_replay(store: JobStore, run: RunRecord, job: Job, now: datetime) -> PlanRecord:
    """The replay's plan; with failed-only, the reused results are first written into the new run
    (the executor treats a step that has a result as done). Raises ReplayError if the job changed
    so that the original's plan no longer fits."""
    assert run.retry_of is not None
    original = store.get_run(run.retry_of)
    results = store.get_step_results(original.run_id)
    problem = replay_problem(original, job, results, run.retry_failed_only)
    if problem is not None or original.plan is None:
        raise ReplayError(problem or f"run {original.run_id} has no plan to replay")
    rerun = set(to_reexecute(original.plan, results)) if run.retry_failed_only else None
    reused = 0
    for step in original.plan.steps:
        if rerun is None or step.step_id in rerun:
            continue
        copy = results[step.step_id].model_copy(update={"reused_from": original.run_id})
        store.put_step_result(run.job_id, run.run_id, run.epoch, copy, now)
        reused += 1
    mode = (
        f"re-executes {len(rerun)} failed or skipped step(s), reuses {reused}"
        if rerun is not None
        else "re-executes every step"
    )
    return original.plan.model_copy(
        update={
            "source": "retry",
            "decided_by": "retry",
            "rationale": f"replay of {original.run_id} ({original.plan.source} plan): {mode}",
            "failure_class": None,
            "shadow": None,
        }
    )

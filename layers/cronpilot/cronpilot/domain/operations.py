"""Operator actions on jobs: apply, pause, resume, trigger, delete. Used by the CLI for every target."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import datetime

from cronpilot.domain.ports import ClaimConflict, JobNotFound, JobRecord, JobStore
from cronpilot.domain.replay import replay_problem, to_reexecute
from cronpilot.domain.scheduling import first_run_at
from cronpilot.models.job import Job, JobStatus


class OperationError(Exception):
    """An operator action that cannot be done in the job's current state."""


@dataclass
class ApplyResult:
    job_id: str
    action: str  # created | updated | unchanged
    diff: str
    next_run_at: datetime | None


def _pretty(job: Job) -> list[str]:
    return json.dumps(
        job.model_dump(mode="json", exclude_defaults=True), indent=2, sort_keys=True
    ).splitlines()


def apply_job(store: JobStore, job: Job, now: datetime) -> ApplyResult:
    """Create or update a job. An unchanged job keeps its next run; a changed schedule is re-planned."""
    try:
        current = store.get_job(job.id)
    except JobNotFound:
        current = None
    # An operator's pause (or the AI's pause-until) outlives re-applying the file: resume is explicit.
    kept_paused = (
        current is not None and current.job.status == JobStatus.PAUSED and job.status == JobStatus.ACTIVE
    )
    if kept_paused:
        job = job.model_copy(update={"status": JobStatus.PAUSED})
    if current is not None and current.job == job:
        return ApplyResult(job.id, "unchanged", "", current.state.next_run_at)
    before = _pretty(current.job) if current else []
    diff = "\n".join(difflib.unified_diff(before, _pretty(job), "stored", "file", lineterm=""))
    keep_slot = current is not None and current.job.schedule == job.schedule and current.state.next_run_at
    next_run = current.state.next_run_at if keep_slot and current else first_run_at(job, now)
    reason = "schedule unchanged" if keep_slot else "first slot of the schedule"
    store.put_job(job, next_run_at=next_run, source="baseline", reason=reason, now=now)
    if kept_paused and current is not None:
        store.set_job_schedule_state(
            JobRecord(job=job, state=current.state),
            status=JobStatus.PAUSED,
            next_run_at=next_run,
            source="paused",
            reason=current.state.next_run_reason,
            paused_until=current.state.paused_until,
            now=now,
        )
    return ApplyResult(job.id, "updated" if current else "created", diff, next_run)


def pause_job(store: JobStore, job_id: str, now: datetime, until: datetime | None = None) -> None:
    record = store.get_job(job_id)
    reason = f"paused by operator until {until.isoformat()}" if until else "paused by operator"
    store.set_job_schedule_state(
        record,
        status=JobStatus.PAUSED,
        next_run_at=record.state.next_run_at,
        source="paused",
        reason=reason,
        paused_until=until,
        now=now,
    )


def resume_job(store: JobStore, job_id: str, now: datetime) -> datetime | None:
    record = store.get_job(job_id)
    next_run = first_run_at(record.job, now)
    store.set_job_schedule_state(
        record,
        status=JobStatus.ACTIVE,
        next_run_at=next_run,
        source="baseline",
        reason="resumed by operator",
        paused_until=None,
        now=now,
    )
    return next_run


def trigger_job(store: JobStore, job_id: str, now: datetime) -> None:
    """Run now: the next tick claims it under the job's overlap policy; the run's trigger is `manual`."""
    record = store.get_job(job_id)
    if record.job.status == JobStatus.PAUSED:
        raise OperationError(f"job {job_id!r} is paused: resume it first (cronpilot jobs resume {job_id})")
    store.set_job_schedule_state(
        record,
        status=record.job.status,
        next_run_at=now,
        source="manual",
        reason="triggered by operator",
        paused_until=record.state.paused_until,
        now=now,
    )


@dataclass
class RetryRequest:
    job_id: str
    retry_of: str
    failed_only: bool
    reexecute: list[str]  # the steps the replay calls again (the others are reused)


def retry_run(store: JobStore, run_id: str, now: datetime, *, failed_only: bool = False) -> RetryRequest:
    """Replay a finished run: the next tick claims a new run (trigger `retry`, linked to `run_id`)
    under the job's overlap policy. It follows the original's plan and re-executes every step, or with
    `failed_only` only the failed and skipped ones, reusing the others' results and extracted values."""
    original = store.get_run(run_id)
    record = store.get_job(original.job_id)
    results = store.get_step_results(run_id)
    problem = replay_problem(original, record.job, results, failed_only)
    if problem is not None or original.plan is None:
        raise OperationError(problem or f"run {run_id} has no plan to replay")
    job_id = record.job_id
    if record.job.status == JobStatus.PAUSED:
        raise OperationError(f"job {job_id!r} is paused: resume it first (cronpilot jobs resume {job_id})")
    pending = record.state.retry_of
    if pending is not None:
        raise OperationError(
            f"a retry of run {pending} is already waiting for the next tick: let it start first"
        )
    mode = "failed and skipped steps" if failed_only else "every step"
    try:
        store.request_retry(
            record, run_id=run_id, failed_only=failed_only, reason=f"retry of {run_id} ({mode})", now=now
        )
    except ClaimConflict as exc:
        raise OperationError(f"{exc} (a run was just claimed): try again") from exc
    reexecute = (
        to_reexecute(original.plan, results) if failed_only else [s.step_id for s in original.plan.steps]
    )
    return RetryRequest(job_id, run_id, failed_only, reexecute)


def delete_job(store: JobStore, job_id: str, now: datetime, *, force: bool = False) -> None:
    """Refuse while runs are in flight unless forced: their remaining writes are then discarded and
    each is recorded as failed when its execution ends."""
    record = store.get_job(job_id)
    in_flight = record.state.runs_in_flight(now)
    if in_flight and not force:
        raise OperationError(
            f"job {job_id!r} has run(s) in flight ({', '.join(in_flight)}): wait for them to finish, "
            "or pass --force to delete it anyway"
        )
    try:
        store.delete_job(record, now)  # the version checked above, or nothing
    except ClaimConflict as exc:
        raise OperationError(f"{exc} (a run was just claimed): try again") from exc

"""Finalize-failure: a run that failed (a Catch, a timed-out or stopped execution) is recorded as
failed, the job backs off and the lease is released, fenced by the run's epoch. Never raises for a
stale run: its holder was already replaced."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from cronpilot.clock import Clock
from cronpilot.domain.news import observe
from cronpilot.domain.notifications import notify_outcome
from cronpilot.domain.ports import JobNotFound, JobStore, LeaseLost, NoticeQueue, RunOutcome
from cronpilot.domain.scheduling import failure_backoff
from cronpilot.domain.summarizing import write_outcome
from cronpilot.models.run import FailureEvent, NextRunDecision, RunRecord, RunStatus, StepStatus
from cronpilot.observability import record_run_outcome

MAX_ERROR_CHARS = 1000


def finalize_failure(
    store: JobStore, clock: Clock, event: FailureEvent, notices: NoticeQueue | None = None
) -> RunOutcome:
    """The Catch target: record the failure, back off, release the lease. Never raises for a stale run."""
    try:
        run = store.get_fenced_run(event.run_id, event.epoch)
        record = store.get_job(event.job_id)
    except LeaseLost:
        return {"status": "fenced"}
    except JobNotFound:  # deleted (with --force) while the run was in flight
        return _close_orphaned_run(store, clock, run, event)
    if RunStatus(run.status).is_final:
        return {"status": run.status}
    now = clock.now()
    results = store.get_step_results(run.run_id)
    counts = Counter(str(r.status) for r in results.values())
    run.step_counts = {s.value: counts[s] for s in StepStatus}
    run.status = RunStatus.FAILED
    run.finished_at = now
    run.error = describe_error(event.error)
    run.observations = observe(record.job, list(results.values()))  # news for the next run's plan
    failures = record.state.consecutive_failures + 1
    delay = failure_backoff(failures, record.job.guardrails)
    decision = NextRunDecision(
        at=now.replace(microsecond=0) + delay,
        source="backoff",
        reason=f"run failed ({run.error[:120]}): backing off {delay}",
    )
    run.next_run = decision
    try:
        write_outcome(store, record, run, decision, failures)
    except LeaseLost:
        return {"status": "fenced"}
    record_run_outcome(run.status)
    notify_outcome(notices, store, record.job, run, record.state.consecutive_failures, now)
    return {"status": run.status}


def _close_orphaned_run(store: JobStore, clock: Clock, run: RunRecord, event: FailureEvent) -> RunOutcome:
    if RunStatus(run.status).is_final:
        return {"status": run.status}
    run.status = RunStatus.FAILED
    run.finished_at = clock.now()
    run.error = f"job deleted while the run was in flight ({describe_error(event.error)})"[:MAX_ERROR_CHARS]
    try:
        store.close_orphaned_run(run)
    except LeaseLost:  # the job exists again (re-applied): its own runs own the schedule now
        return {"status": "fenced"}
    record_run_outcome(run.status)
    return {"status": run.status}


def describe_error(error: dict[str, Any]) -> str:
    """Step Functions' Catch output: {"Error": ..., "Cause": ...}; Lambda causes are JSON envelopes."""
    name = str(error.get("Error", "Unknown"))
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause) if isinstance(cause, str) and cause.startswith("{") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        kind, message = parsed.get("errorType", ""), parsed.get("errorMessage", "")
        cause = message if kind == name else f"{kind}: {message}".strip(": ")
    return f"{name}: {cause}"[:MAX_ERROR_CHARS] if cause else name

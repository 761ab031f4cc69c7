"""Drive local mode: apply jobs, tick with an accelerated clock, collect a report of every run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cronpilot.clock import AcceleratedClock, to_iso
from cronpilot.config import Settings
from cronpilot.dal.store import Store
from cronpilot.domain.scheduling import first_run_at
from cronpilot.local.cloud import LocalCloud
from cronpilot.models.job import Job
from cronpilot.models.run import RunRecord

TICK = timedelta(minutes=1)
# A run's steps, on top of the model's two phases: what local mode allowed a whole run before the AI
# phases were counted (each step has its own timeouts and a retry budget in the executor).
STEP_ALLOWANCE_SECONDS = 120.0


class LocalWaitExceeded(RuntimeError):
    """A tick's runs were still running after the wait: the message names them and the wait."""


def run_wait_seconds(settings: Settings) -> float:
    """How long local mode waits for a tick's runs: the planner's and the summarizer's conversations at
    their worst (every attempt timing out, the SDK's retries and backoff, the repairs), plus the steps."""
    from cronpilot.ai import plan_model, summary_model
    from cronpilot.ai.client import call_worst_seconds
    from cronpilot.ai.conversation import conversation_worst_seconds

    call = call_worst_seconds(settings)
    phases = conversation_worst_seconds(call, plan_model.MAX_REPAIRS) + conversation_worst_seconds(
        call, summary_model.MAX_REPAIRS
    )
    return phases + STEP_ALLOWANCE_SECONDS


def apply_jobs(store: Store, jobs: Sequence[Job], now: datetime) -> None:
    for job in jobs:
        first = first_run_at(job, now)
        store.put_job(job, next_run_at=first, source="baseline", reason="first slot of the schedule", now=now)


def next_tick_time(store: Store, now: datetime) -> datetime:
    """The next minute boundary at which something is due (the schedule rule fires once a minute)."""
    pending = [r.state.next_run_at for r in store.list_jobs() if r.state.next_run_at is not None]
    target = max(min(pending, default=now + TICK), now)
    boundary = target.replace(second=0, microsecond=0)
    return boundary if boundary >= target else boundary + TICK


def tick_until(
    cloud: LocalCloud,
    clock: AcceleratedClock,
    store: Store,
    *,
    ticks: int,
    on_tick: Callable[[int, dict[str, Any]], None] | None = None,
    wait_seconds: float | None = None,
) -> None:
    """Tick `ticks` times, each time waiting for the tick's runs (by default as long as the configured
    LLM timeouts and retries can take; see run_wait_seconds)."""
    from cronpilot.runtime import get_runtime

    wait = wait_seconds if wait_seconds is not None else run_wait_seconds(get_runtime().settings)
    for number in range(1, ticks + 1):
        clock.jump_to(next_tick_time(store, clock.now()))
        outcome = cloud.tick()
        try:
            cloud.wait_idle(timeout=wait)
        except TimeoutError:
            running = ", ".join(sorted(e["name"] for e in cloud.executions("RUNNING"))) or "(none now)"
            raise LocalWaitExceeded(
                f"timed out: run {running} still running after {wait:.0f} s "
                "(the wait covers LLM_TIMEOUT_SECONDS x (LLM_MAX_RETRIES + 1) per call with repairs, "
                f"for both AI phases, plus {STEP_ALLOWANCE_SECONDS:.0f} s of steps; raise it with --max-wait)"
            ) from None
        if on_tick:
            on_tick(number, outcome)


def run_report(store: Store, cloud: LocalCloud, job_ids: Sequence[str]) -> dict[str, Any]:
    """The JSON report of `cronpilot local run --report`: one entry per run, oldest first."""
    runs: list[dict[str, Any]] = []
    for job_id in job_ids:
        records: list[RunRecord] = []
        token: str | None = None
        while True:
            page, token = store.list_runs(job_id, limit=100, after=token)
            records += page
            if token is None:
                break
        for run in sorted(records, key=lambda r: r.scheduled_at):
            runs.append(_run_entry(store, cloud, run))
    return {"generated_at": to_iso(datetime.now(UTC)), "runs": runs}


def _iso(value: datetime | None) -> str | None:
    return to_iso(value) if value else None


def _run_entry(store: Store, cloud: LocalCloud, run: RunRecord) -> dict[str, Any]:
    steps = store.get_step_results(run.run_id)
    order = [s.step_id for s in run.plan.steps] if run.plan else sorted(steps)
    duration = (
        (run.finished_at - run.claimed_at).total_seconds() if run.finished_at and run.claimed_at else None
    )
    execution_status = None
    if run.status not in ("skipped",):
        try:
            execution_status = cloud.describe_execution(run.run_id)["status"]
        except Exception:  # the run never reached Step Functions (start failed)
            execution_status = None
    return {
        "job_id": run.job_id,
        "run_id": run.run_id,
        "scheduled_at": _iso(run.scheduled_at),
        "status": run.status,
        "trigger": run.trigger,
        "retry_of": run.retry_of,
        "skip_reason": run.skip_reason,
        "error": run.error,
        "execution_status": execution_status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_ms": int(duration * 1000) if duration is not None else None,
        "plan": {
            "source": run.plan.source,
            "rationale": run.plan.rationale,
            "waves": run.plan.waves,
        }
        if run.plan
        else None,
        "steps": [
            {
                "step_id": result.step_id,
                "endpoint_id": result.endpoint_id,
                "status": result.status,
                "http_status": result.http_status,
                "attempts": result.attempts,
                "latency_ms": result.latency_ms,
                "error": result.error or result.skip_reason,
                "error_kind": result.error_kind,
            }
            for step_id in order
            if (result := steps.get(step_id)) is not None
        ],
        "summary": run.summary,
        "next_run": {
            "at": _iso(run.next_run.at),
            "source": run.next_run.source,
            "reason": run.next_run.reason,
        }
        if run.next_run
        else None,
        "tokens": run.tokens.counts(),
        "ai_spend": run.tokens.spend(),
        "llm_failures": [f.model_dump() for f in run.llm_failures],
    }


def start_clock(now: datetime | None = None) -> AcceleratedClock:
    start = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    return AcceleratedClock(start)

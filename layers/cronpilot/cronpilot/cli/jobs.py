"""`cronpilot jobs ...`: register and operate jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cronpilot.cli import render
from cronpilot.cli.common import (
    Output,
    console,
    emit_json,
    iso,
    load_jobs,
    one_line_errors,
    parse_time,
    target,
)

jobs_app = typer.Typer(no_args_is_help=True, help="Register and operate jobs.")


@jobs_app.command("apply")
@one_line_errors
def jobs_apply(ctx: typer.Context, files: Annotated[list[Path], typer.Argument()]) -> None:
    """Validate job files, show what changes, and create or update the jobs."""
    from cronpilot.domain.operations import apply_job

    jobs = load_jobs(files)
    with target(ctx) as chosen:
        for job in jobs:
            result = apply_job(chosen.store, job, chosen.clock.now())
            console.print(f"{result.action} {result.job_id}: next run {iso(result.next_run_at)}")
            if result.diff:
                console.print(result.diff, highlight=False, markup=False)


@jobs_app.command("list")
@one_line_errors
def jobs_list(ctx: typer.Context, output: Output = "table") -> None:
    """Every job with its status and next run."""
    with target(ctx) as chosen:
        records = chosen.store.list_jobs()
    rows = [
        {
            "job_id": r.job_id,
            "status": r.job.status,
            "schedule": r.job.schedule.describe(),
            "next_run_at": iso(r.state.next_run_at),
            "next_run_source": r.state.next_run_source,
            "running": r.state.current_run_id,
        }
        for r in records
    ]
    if output == "json":
        emit_json(rows)
        return
    render.print_job_rows(rows)


@jobs_app.command("show")
@one_line_errors
def jobs_show(ctx: typer.Context, job_id: str, output: Output = "table") -> None:
    """Schedule, guardrails, next run and its source, endpoints, AI spend per day."""
    from cronpilot.domain.spend import spend_by_day

    with target(ctx) as chosen:
        record = chosen.store.get_job(job_id)
        spend = spend_by_day(chosen.store, job_id, chosen.clock.now())
    state = record.state
    if output == "json":
        emit_json(
            {
                "job": record.job.model_dump(mode="json"),
                "next_run": {
                    "at": iso(state.next_run_at),
                    "source": state.next_run_source,
                    "reason": state.next_run_reason,
                },
                "lease": {
                    "owner": state.lease_owner,
                    "expires_at": iso(state.lease_expires_at),
                    "epoch": state.epoch,
                },
                "current_run_id": state.current_run_id,
                # overlap `allow`: every concurrent run and when its own lease expires
                "runs_in_flight": {run_id: iso(until) for run_id, until in (state.inflight or {}).items()},
                "consecutive_failures": state.consecutive_failures,
                "paused_until": iso(state.paused_until),
                "ai_spend_per_day": [day.as_dict() for day in spend],
            }
        )
        return
    render.print_job(record, spend)


@jobs_app.command("pause")
@one_line_errors
def jobs_pause(
    ctx: typer.Context,
    job_id: str,
    until: Annotated[str | None, typer.Option(help="ISO time (UTC unless it has an offset).")] = None,
) -> None:
    """Pause now, or until a time (the job then resumes by itself)."""
    from cronpilot.domain.operations import pause_job

    with target(ctx) as chosen:
        pause_job(chosen.store, job_id, chosen.clock.now(), parse_time(until) if until else None)
    console.print(f"paused {job_id}" + (f" until {until}" if until else ""))


@jobs_app.command("resume")
@one_line_errors
def jobs_resume(ctx: typer.Context, job_id: str) -> None:
    """Resume a paused job at its next baseline slot."""
    from cronpilot.domain.operations import resume_job

    with target(ctx) as chosen:
        next_run = resume_job(chosen.store, job_id, chosen.clock.now())
    console.print(f"resumed {job_id}: next run {iso(next_run)}")


@jobs_app.command("trigger")
@one_line_errors
def jobs_trigger(ctx: typer.Context, job_id: str) -> None:
    """Run now (on the next tick), honouring the job's overlap policy; recorded as `manual`."""
    from cronpilot.domain.operations import trigger_job

    with target(ctx) as chosen:
        trigger_job(chosen.store, job_id, chosen.clock.now())
    console.print(f"triggered {job_id}: it runs on the next scheduler tick")


@jobs_app.command("delete")
@one_line_errors
def jobs_delete(
    ctx: typer.Context,
    job_id: str,
    force: Annotated[bool, typer.Option(help="Delete even while runs are in flight.")] = False,
) -> None:
    """Delete a job (its run history expires by TTL)."""
    from cronpilot.domain.operations import delete_job

    with target(ctx) as chosen:
        delete_job(chosen.store, job_id, chosen.clock.now(), force=force)
    console.print(f"deleted {job_id}")

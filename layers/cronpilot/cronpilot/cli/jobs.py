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
def jobs_apply(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument()],
    dry_run: Annotated[bool, typer.Option(help="Show what would change; write nothing.")] = False,
) -> None:
    """Validate job files, show what changes, and create or update the jobs."""
    from cronpilot.domain.operations import apply_job

    jobs = load_jobs(files)
    with target(ctx) as chosen:
        for job in jobs:
            result = apply_job(chosen.store, job, chosen.clock.now(), dry_run=dry_run)
            verb = f"would be {result.action}" if dry_run and result.action != "unchanged" else result.action
            console.print(f"{verb} {result.job_id}: next run {iso(result.next_run_at)}")
            if result.diff:
                console.print(result.diff, highlight=False, markup=False)


@jobs_app.command("list")
@one_line_errors
def jobs_list(ctx: typer.Context, output: Output = "table") -> None:
    """Every job with its status and next run."""
    from cronpilot.domain.operations import list_jobs

    with target(ctx) as chosen:
        page = list_jobs(chosen.store)
        jobs = page.jobs
        while page.next_cursor:
            page = list_jobs(chosen.store, cursor=page.next_cursor)
            jobs += page.jobs
    if output == "json":
        emit_json([job.model_dump(mode="json") for job in jobs])
        return
    render.print_job_rows(jobs)


@jobs_app.command("show")
@one_line_errors
def jobs_show(ctx: typer.Context, job_id: str, output: Output = "table") -> None:
    """Schedule, guardrails, next run and its source, endpoints, AI spend per day."""
    from cronpilot.domain.operations import show_job

    with target(ctx) as chosen:
        detail = show_job(chosen.store, job_id, now=chosen.clock.now())
    if output == "json":
        emit_json(detail.model_dump(mode="json"))
        return
    render.print_job(detail)


@jobs_app.command("explain")
@one_line_errors
def jobs_explain(ctx: typer.Context, job_id: str, output: Output = "table") -> None:
    """Why the last run happened when it did, and why the next run is when it is."""
    from cronpilot.domain.operations import explain_job

    with target(ctx) as chosen:
        explanation = explain_job(chosen.store, job_id)
    if output == "json":
        emit_json(explanation.model_dump(mode="json"))
        return
    console.print(explanation.text, highlight=False)


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
        change = resume_job(chosen.store, job_id, chosen.clock.now())
    console.print(f"resumed {job_id}: next run {iso(change.next_run_at)}")


@jobs_app.command("trigger")
@one_line_errors
def jobs_trigger(
    ctx: typer.Context,
    job_id: str,
    ask_ai: Annotated[
        bool, typer.Option("--ask-ai", help="Consult the AI pilot on this run even if nothing changed.")
    ] = False,
) -> None:
    """Run now (on the next tick), honouring the job's overlap policy; recorded as `manual` (`ask-ai`
    with --ask-ai)."""
    from cronpilot.domain.operations import trigger_job

    with target(ctx) as chosen:
        change = trigger_job(chosen.store, job_id, chosen.clock.now(), ask_ai=ask_ai)
    console.print(f"triggered {job_id}: {change.message}")


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

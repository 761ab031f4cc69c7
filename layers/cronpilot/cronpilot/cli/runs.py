"""`cronpilot runs ...`: inspect runs: plans, steps, summaries, next-run decisions."""

from __future__ import annotations

from typing import Annotated

import typer

from cronpilot.cli import render
from cronpilot.cli.common import Output, console, emit_json, one_line_errors, target
from cronpilot.models.operations import PAGE_LIMIT_MAX, RunSummary
from cronpilot.models.run import RunStatus

runs_app = typer.Typer(
    no_args_is_help=True, help="Inspect runs: plans, steps, summaries, next-run decisions."
)


@runs_app.command("list")
@one_line_errors
def runs_list(
    ctx: typer.Context,
    job_id: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    status: Annotated[RunStatus | None, typer.Option(help="Only runs with this status.")] = None,
    trigger: Annotated[str | None, typer.Option(help="Only runs with this trigger (manual, ...).")] = None,
    output: Output = "table",
) -> None:
    """A job's runs, newest first."""
    from cronpilot.domain.operations import list_runs

    runs: list[RunSummary] = []
    cursor: str | None = None
    with target(ctx) as chosen:
        while len(runs) < limit:  # the operation pages by at most PAGE_LIMIT_MAX
            page = list_runs(
                chosen.store,
                job_id,
                limit=min(limit - len(runs), PAGE_LIMIT_MAX),
                cursor=cursor,
                status=status,
                trigger=trigger,
            )
            runs += page.runs
            cursor = page.next_cursor
            if cursor is None:
                break
    if output == "json":
        emit_json([run.model_dump(mode="json") for run in runs])
        return
    render.print_runs(job_id, runs)


@runs_app.command("show")
@one_line_errors
def runs_show(ctx: typer.Context, run_id: str, output: Output = "table") -> None:
    """The plan as waves, each step's result, the summary, the next-run decision, tokens, skip reasons."""
    from cronpilot.domain.operations import show_run

    with target(ctx) as chosen:
        run = show_run(chosen.store, run_id)
    if output == "json":
        emit_json(run.model_dump(mode="json"))
        return
    render.print_run(run)


@runs_app.command("retry")
@one_line_errors
def runs_retry(
    ctx: typer.Context,
    run_id: str,
    failed_only: Annotated[
        bool, typer.Option("--failed-only", help="Re-execute only failed and skipped steps; reuse the rest.")
    ] = False,
    output: Output = "table",
) -> None:
    """Replay a finished run as a new run (trigger `retry`) on the next tick, under the overlap policy."""
    from cronpilot.domain.operations import retry_run

    with target(ctx) as chosen:
        request = retry_run(chosen.store, run_id, chosen.clock.now(), failed_only=failed_only)
    if output == "json":
        emit_json(request.model_dump(mode="json"))
        return
    console.print(
        f"retry of {run_id} requested: the next scheduler tick starts it (trigger retry), "
        f"re-executing {', '.join(request.reexecute)}"
    )

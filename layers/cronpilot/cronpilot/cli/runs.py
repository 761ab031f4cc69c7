"""`cronpilot runs ...`: inspect runs: plans, steps, summaries, next-run decisions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cronpilot.cli import render
from cronpilot.cli.common import Output, console, emit_json, iso, one_line_errors, target
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
    output: Output = "table",
) -> None:
    """A job's runs, newest first."""
    with target(ctx) as chosen:
        chosen.store.get_job(job_id)
        runs: list[Any] = []
        token: str | None = None
        while len(runs) < limit:
            page, token = chosen.store.list_runs(job_id, limit=limit, after=token)
            runs += [r for r in page if status is None or r.status == status]
            if token is None:
                break
    runs = runs[:limit]
    if output == "json":
        emit_json(
            [
                {
                    "run_id": r.run_id,
                    "scheduled_at": iso(r.scheduled_at),
                    "status": r.status,
                    "trigger": r.trigger,
                    "retry_of": r.retry_of,
                    "skip_reason": r.skip_reason,
                    "steps": r.step_counts,
                    "next_run": r.next_run.model_dump(mode="json") if r.next_run else None,
                    "ai_spend": r.tokens.spend(),
                }
                for r in runs
            ]
        )
        return
    render.print_runs(job_id, runs)


@runs_app.command("show")
@one_line_errors
def runs_show(ctx: typer.Context, run_id: str, output: Output = "table") -> None:
    """The plan as waves, each step's result, the summary, the next-run decision, tokens, skip reasons."""
    with target(ctx) as chosen:
        run = chosen.store.get_run(run_id)
        steps = chosen.store.get_step_results(run_id)
    if output == "json":
        emit_json(
            {
                **run.model_dump(mode="json"),
                "ai_spend": run.tokens.spend(),
                "steps": [s.for_display().model_dump(mode="json") for s in steps.values()],
            }
        )
        return
    render.print_run(run, steps)


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
        emit_json(
            {
                "job_id": request.job_id,
                "retry_of": request.retry_of,
                "failed_only": request.failed_only,
                "reexecute": request.reexecute,
            }
        )
        return
    console.print(
        f"retry of {run_id} requested: the next scheduler tick starts it (trigger retry), "
        f"re-executing {', '.join(request.reexecute)}"
    )

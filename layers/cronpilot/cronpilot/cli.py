"""The `cronpilot` command: validate job files, run them locally, operate a deployment."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cronpilot.jobfiles import JobFileError, load_job_file
from cronpilot.models.job import Job
from cronpilot.models.run import RunStatus

app = typer.Typer(no_args_is_help=True, add_completion=False, help="cronpilot: an AI-piloted job scheduler.")
local_app = typer.Typer(
    no_args_is_help=True, help="Run cronpilot on this machine, on moto, with no AWS account."
)
jobs_app = typer.Typer(no_args_is_help=True, help="Register and operate jobs.")
runs_app = typer.Typer(
    no_args_is_help=True, help="Inspect runs: plans, steps, summaries, next-run decisions."
)
app.add_typer(local_app, name="local")
app.add_typer(jobs_app, name="jobs")
app.add_typer(runs_app, name="runs")
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)

# Exit codes scripts can rely on.
EXIT_INVALID = 1  # invalid input or an action the job's state does not allow
EXIT_USAGE = 2  # bad command line (typer's own)
EXIT_NOT_FOUND = 3  # no such job or run
EXIT_TARGET = 4  # the target (AWS account, stack, state file) cannot be used


def one_line_errors[F: Callable[..., Any]](command: F) -> F:
    """Turn domain and AWS errors into one clear line and a stable exit code, never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    from cronpilot.operations import OperationError
    from cronpilot.store import JobNotFound, RunNotFound
    from cronpilot.targets import TargetError

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (JobNotFound, RunNotFound) as exc:
            raise fail(str(exc), EXIT_NOT_FOUND) from None
        except OperationError as exc:
            raise fail(str(exc), EXIT_INVALID) from None
        except (TargetError, ClientError, BotoCoreError) as exc:
            raise fail(str(exc), EXIT_TARGET) from None
        except ValueError as exc:
            raise fail(str(exc), EXIT_INVALID) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def target_options(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="Operate on local mode's state file.")] = False,
    state: Annotated[Path, typer.Option(help="Local mode's state file.")] = Path(
        ".cronpilot/local-state.json"
    ),
    stack: Annotated[str | None, typer.Option(envvar="CRONPILOT_STACK", help="Deployed stack name.")] = None,
    table: Annotated[
        str | None, typer.Option(envvar="CRONPILOT_TABLE", help="Table name (skips the stack).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (default: the AWS SDK's).")] = None,
) -> None:
    ctx.obj = {"local": local, "state": state, "stack": stack, "table": table, "region": region}


@contextmanager
def target(ctx: typer.Context) -> Iterator[Any]:
    from cronpilot.targets import deployed_target, local_state_target

    options = ctx.obj or {}
    if options.get("local"):
        with local_state_target(options["state"]) as chosen:
            yield chosen
    else:
        with deployed_target(
            stack=options.get("stack"), table=options.get("table"), region=options.get("region")
        ) as chosen:
            yield chosen


Output = Annotated[str, typer.Option("--output", "-o", help="table or json")]


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _iso(value: datetime | None) -> str:
    from cronpilot.clock import to_iso

    return to_iso(value) if value else "-"


def fail(message: str, code: int = EXIT_INVALID) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_jobs(files: list[Path]) -> list[Job]:
    jobs, problems = [], []
    for path in files:
        try:
            jobs.append(load_job_file(path))
        except JobFileError as exc:
            problems.append(str(exc))
    if problems:
        raise fail("\n".join(problems))
    ids = [job.id for job in jobs]
    if len(set(ids)) != len(ids):
        raise fail(f"two job files use the same id: {sorted({i for i in ids if ids.count(i) > 1})}")
    return jobs


@app.command()
@one_line_errors
def validate(files: Annotated[list[Path], typer.Argument(help="Job files (YAML or JSON).")]) -> None:
    """Validate job files offline. Exit code 1 if any is invalid."""
    jobs = load_jobs(files)
    for path, job in zip(files, jobs, strict=True):
        console.print(
            f"[green]ok[/green] {path}: job {job.id} "
            f"({job.schedule.describe()}, {len(job.endpoints)} endpoints)"
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of a job file (for editor completion and validation)."""
    print(json.dumps(Job.model_json_schema(), indent=2))


@local_app.command("run")
def local_run(
    files: Annotated[list[Path], typer.Argument(help="Job files to run.")],
    ticks: Annotated[int, typer.Option(min=1, help="Scheduler ticks to run.")] = 3,
    report: Annotated[Path | None, typer.Option(help="Write a JSON report of every run here.")] = None,
    allow_private: Annotated[
        list[str] | None,
        typer.Option("--allow-private", help="CIDR the executor may call (e.g. 127.0.0.0/8). Repeatable."),
    ] = None,
    allow_port: Annotated[list[int] | None, typer.Option("--allow-port", help="Extra port to allow.")] = None,
) -> None:
    """Run job files end to end in local mode and print (or write) what happened."""
    jobs = load_jobs(files)
    ports = sorted({80, 443, *(allow_port or [])})
    cidrs = ",".join(allow_private or [])
    result = _run_local(jobs, ticks=ticks, cidrs=cidrs, ports=",".join(map(str, ports)))
    print_runs(result["runs"])
    if report:
        report.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"report written to {report}")


@local_app.command("demo")
def local_demo(ticks: Annotated[int, typer.Option(min=1)] = 12) -> None:
    """Run the example jobs against a demo HTTP target on 127.0.0.1."""
    from cronpilot.local.demo import demo_jobs
    from cronpilot.local.target import DemoTarget

    with DemoTarget() as target:
        jobs = demo_jobs(target.base_url)
        console.print(f"demo target on {target.base_url}; {len(jobs)} jobs; {ticks} scheduler ticks")
        result = _run_local(jobs, ticks=ticks, cidrs="127.0.0.0/8", ports=f"80,443,{target.port}")
    print_runs(result["runs"])


def _run_local(jobs: list[Job], *, ticks: int, cidrs: str, ports: str) -> dict:
    from cronpilot.local.cloud import LocalCloud
    from cronpilot.local.runner import apply_jobs, run_report, start_clock, tick_until
    from cronpilot.runtime import get_runtime

    clock = start_clock()
    with LocalCloud(clock, egress_allowed_cidrs=cidrs, egress_allowed_ports=ports) as cloud:
        store = get_runtime().store
        apply_jobs(store, jobs, clock.now())
        with console.status("ticking") as status:

            def progress(number: int, outcome: dict) -> None:
                status.update(
                    f"tick {number}/{ticks} at {clock.now():%Y-%m-%d %H:%M} UTC: "
                    f"{len(outcome['claimed'])} claimed"
                )

            tick_until(cloud, clock, store, ticks=ticks, on_tick=progress)
        return run_report(store, cloud, [job.id for job in jobs])


def _status_cell(status: str, skip_reason: str | None) -> str:
    return status + (f" ({skip_reason})" if skip_reason else "")


def _counts_cell(counts: Mapping[str, int]) -> str:
    """Steps ok/failed/skipped."""
    return f"{counts.get('succeeded', 0)}/{counts.get('failed', 0)}/{counts.get('skipped', 0)}"


def print_runs(runs: list[dict]) -> None:
    table = Table(title="runs", show_lines=False)
    for column in ("job", "run id", "status", "ok/failed/skipped", "duration", "next run", "source"):
        table.add_column(column)
    for run in runs:
        counts = Counter(str(step["status"]) for step in run["steps"])
        duration = f"{run['duration_ms'] / 1000:.2f}s" if run["duration_ms"] is not None else "-"
        next_run = run["next_run"] or {}
        table.add_row(
            run["job_id"],
            run["run_id"],
            _status_cell(run["status"], run.get("skip_reason")),
            _counts_cell(counts),
            duration,
            next_run.get("at") or "-",
            next_run.get("source") or "-",
        )
    console.print(table)


# ------------------------------------------------------------------ jobs


@jobs_app.command("apply")
@one_line_errors
def jobs_apply(ctx: typer.Context, files: Annotated[list[Path], typer.Argument()]) -> None:
    """Validate job files, show what changes, and create or update the jobs."""
    from cronpilot.operations import apply_job

    jobs = load_jobs(files)
    with target(ctx) as chosen:
        for job in jobs:
            result = apply_job(chosen.store, job, chosen.clock.now())
            console.print(f"{result.action} {result.job_id}: next run {_iso(result.next_run_at)}")
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
            "next_run_at": _iso(r.state.next_run_at),
            "next_run_source": r.state.next_run_source,
            "running": r.state.current_run_id,
        }
        for r in records
    ]
    if output == "json":
        emit_json(rows)
        return
    table = Table(title="jobs")
    for column in ("job", "status", "schedule", "next run", "source", "running"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["job_id"],
            row["status"],
            row["schedule"],
            row["next_run_at"],
            row["next_run_source"],
            row["running"] or "-",
        )
    console.print(table)


@jobs_app.command("show")
@one_line_errors
def jobs_show(ctx: typer.Context, job_id: str, output: Output = "table") -> None:
    """Schedule, guardrails, next run and its source, endpoints."""
    with target(ctx) as chosen:
        record = chosen.store.get_job(job_id)
    state = record.state
    detail = {
        "job": record.job.model_dump(mode="json"),
        "next_run": {
            "at": _iso(state.next_run_at),
            "source": state.next_run_source,
            "reason": state.next_run_reason,
        },
        "lease": {
            "owner": state.lease_owner,
            "expires_at": _iso(state.lease_expires_at),
            "epoch": state.epoch,
        },
        "current_run_id": state.current_run_id,
        # overlap `allow`: every concurrent run and when its own lease expires
        "runs_in_flight": {run_id: _iso(until) for run_id, until in (state.inflight or {}).items()},
        "consecutive_failures": state.consecutive_failures,
        "paused_until": _iso(state.paused_until),
    }
    if output == "json":
        emit_json(detail)
        return
    job = record.job
    console.print(f"[bold]{job.id}[/bold] {job.name} ({job.status})")
    console.print(f"goal: {job.goal or '-'}")
    console.print(f"schedule: {job.schedule.describe()}")
    console.print(f"guardrails: {job.guardrails.model_dump(mode='json')}")
    console.print(f"next run: {_iso(state.next_run_at)} ({state.next_run_source}: {state.next_run_reason})")
    if state.paused_until:
        console.print(f"paused until: {_iso(state.paused_until)}")
    running = ", ".join(sorted(state.inflight)) if state.inflight else state.current_run_id
    console.print(f"failing runs in a row: {state.consecutive_failures}; running: {running or '-'}")
    table = Table(title="endpoints")
    for column in ("id", "method", "url", "depends on"):
        table.add_column(column)
    for endpoint in job.endpoints:
        table.add_row(endpoint.id, endpoint.method, endpoint.url, ", ".join(endpoint.depends_on) or "-")
    console.print(table)


def _parse_time(value: str) -> datetime:
    from datetime import UTC

    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@jobs_app.command("pause")
@one_line_errors
def jobs_pause(
    ctx: typer.Context,
    job_id: str,
    until: Annotated[str | None, typer.Option(help="ISO time (UTC unless it has an offset).")] = None,
) -> None:
    """Pause now, or until a time (the job then resumes by itself)."""
    from cronpilot.operations import pause_job

    with target(ctx) as chosen:
        pause_job(chosen.store, job_id, chosen.clock.now(), _parse_time(until) if until else None)
    console.print(f"paused {job_id}" + (f" until {until}" if until else ""))


@jobs_app.command("resume")
@one_line_errors
def jobs_resume(ctx: typer.Context, job_id: str) -> None:
    """Resume a paused job at its next baseline slot."""
    from cronpilot.operations import resume_job

    with target(ctx) as chosen:
        next_run = resume_job(chosen.store, job_id, chosen.clock.now())
    console.print(f"resumed {job_id}: next run {_iso(next_run)}")


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
    from cronpilot.operations import trigger_job

    with target(ctx) as chosen:
        trigger_job(chosen.store, job_id, chosen.clock.now(), ask_ai=ask_ai)
    asked = " and consults the AI pilot" if ask_ai else ""
    console.print(f"triggered {job_id}: it runs on the next scheduler tick{asked}")


@jobs_app.command("delete")
@one_line_errors
def jobs_delete(
    ctx: typer.Context,
    job_id: str,
    force: Annotated[bool, typer.Option(help="Delete even while runs are in flight.")] = False,
) -> None:
    """Delete a job (its run history expires by TTL)."""
    from cronpilot.operations import delete_job

    with target(ctx) as chosen:
        delete_job(chosen.store, job_id, chosen.clock.now(), force=force)
    console.print(f"deleted {job_id}")


# ------------------------------------------------------------------ runs


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
    rows = [
        {
            "run_id": r.run_id,
            "scheduled_at": _iso(r.scheduled_at),
            "status": r.status,
            "trigger": r.trigger,
            "skip_reason": r.skip_reason,
            "steps": r.step_counts,
            "next_run": r.next_run.model_dump(mode="json") if r.next_run else None,
        }
        for r in runs
    ]
    if output == "json":
        emit_json(rows)
        return
    table = Table(title=f"runs of {job_id}")
    for column in ("run id", "status", "why then", "ok/failed/skipped", "next run", "source"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.run_id,
            _status_cell(run.status, run.skip_reason),
            run.trigger,
            _counts_cell(run.step_counts),
            _iso(run.next_run.at) if run.next_run else "-",
            run.next_run.source if run.next_run else "-",
        )
    console.print(table)


@runs_app.command("show")
@one_line_errors
def runs_show(ctx: typer.Context, run_id: str, output: Output = "table") -> None:
    """The plan as waves, each step's result, the summary, the next-run decision, tokens, skip reasons."""
    with target(ctx) as chosen:
        run = chosen.store.get_run(run_id)
        steps = chosen.store.get_step_results(run_id)
    if output == "json":
        emit_json(
            {**run.model_dump(mode="json"), "steps": [s.model_dump(mode="json") for s in steps.values()]}
        )
        return
    console.print(f"[bold]{run.run_id}[/bold] {run.status} (why then: {run.trigger})")
    if run.skip_reason:
        console.print(f"skipped: {run.skip_reason}: {run.error}")
    elif run.error:
        console.print(f"error: {run.error}")
    if run.plan:
        console.print(f"plan by {run.plan.source}: {run.plan.rationale}")
        for number, wave in enumerate(run.plan.waves, 1):
            console.print(f"  wave {number}: {', '.join(wave)}")
    table = Table(title="steps")
    for column in ("step", "status", "http", "attempts", "latency", "error / reason"):
        table.add_column(column)
    for step in steps.values():
        table.add_row(
            step.step_id,
            step.status,
            str(step.http_status or "-"),
            str(step.attempts),
            f"{step.latency_ms} ms",
            step.error or step.skip_reason or "",
        )
    console.print(table)
    console.print(f"summary: {run.summary or '-'}")
    if run.next_run:
        console.print(f"next run: {_iso(run.next_run.at)} ({run.next_run.source}: {run.next_run.reason})")
    tokens = run.tokens
    console.print(
        f"tokens: in {tokens.input}, out {tokens.output}, cache read {tokens.cache_read}, "
        f"cache write {tokens.cache_write}"
    )
    for failure in run.llm_failures:
        console.print(f"LLM {failure.phase} fell back: {failure.failure_class}: {failure.detail}")


@local_app.command("tick")
@one_line_errors
def local_tick(
    ctx: typer.Context,
    ticks: Annotated[int, typer.Option(min=1)] = 1,
    allow_private: Annotated[list[str] | None, typer.Option("--allow-private")] = None,
    allow_port: Annotated[list[int] | None, typer.Option("--allow-port")] = None,
) -> None:
    """Run the scheduler over local mode's state file (jobs applied with --local)."""
    from datetime import UTC

    from cronpilot.clock import AcceleratedClock
    from cronpilot.local.cloud import TABLE_NAME, LocalCloud
    from cronpilot.local.runner import tick_until
    from cronpilot.runtime import get_runtime
    from cronpilot.targets import load_state, save_state

    path = (ctx.obj or {}).get("state", Path(".cronpilot/local-state.json"))
    clock = AcceleratedClock(datetime.now(UTC))
    ports = ",".join(map(str, sorted({80, 443, *(allow_port or [])})))
    with LocalCloud(
        clock, egress_allowed_cidrs=",".join(allow_private or []), egress_allowed_ports=ports
    ) as cloud:
        client = cloud.client("dynamodb")
        simulated = load_state(path, client, TABLE_NAME)
        if simulated:
            clock.jump_to(simulated)
        store = get_runtime().store
        claimed: list[str] = []
        tick_until(
            cloud, clock, store, ticks=ticks, on_tick=lambda _n, outcome: claimed.extend(outcome["claimed"])
        )
        save_state(path, client, TABLE_NAME, clock.now())
    console.print(
        f"{ticks} tick(s), now {_iso(clock.now())}: {len(claimed)} run(s): {', '.join(claimed) or '-'}"
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)

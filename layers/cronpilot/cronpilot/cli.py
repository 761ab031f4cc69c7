"""The `cronpilot` command: validate job files, run them locally, operate a deployment."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cronpilot.jobfiles import JobFileError, load_job_file
from cronpilot.models.job import Job

app = typer.Typer(no_args_is_help=True, add_completion=False, help="cronpilot: an AI-piloted job scheduler.")
local_app = typer.Typer(
    no_args_is_help=True, help="Run cronpilot on this machine, on moto, with no AWS account."
)
app.add_typer(local_app, name="local")
console = Console()
errors = Console(stderr=True)

EXIT_INVALID = 1
EXIT_USAGE = 2


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


def print_runs(runs: list[dict]) -> None:
    table = Table(title="runs", show_lines=False)
    for column in ("job", "run id", "status", "ok/failed/skipped", "duration", "next run", "source"):
        table.add_column(column)
    for run in runs:
        counts = {
            s: sum(1 for step in run["steps"] if step["status"] == s)
            for s in ("succeeded", "failed", "skipped")
        }
        duration = f"{run['duration_ms'] / 1000:.2f}s" if run["duration_ms"] is not None else "-"
        next_run = run["next_run"] or {}
        status = run["status"] + (f" ({run['skip_reason']})" if run.get("skip_reason") else "")
        table.add_row(
            run["job_id"],
            run["run_id"],
            status,
            f"{counts['succeeded']}/{counts['failed']}/{counts['skipped']}",
            duration,
            next_run.get("at") or "-",
            next_run.get("source") or "-",
        )
    console.print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)

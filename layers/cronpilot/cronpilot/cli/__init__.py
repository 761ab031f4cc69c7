"""The `cronpilot` command: validate job files, run them locally, operate a deployment.

Commands per group live in jobs.py, runs.py and local.py; rendering in render.py; where a command
operates (a deployed stack or local mode's state file) in targets.py. Commands call the domain's
operations and render what they return.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cronpilot.cli.common import DEFAULT_STATE_FILE, console, load_jobs, one_line_errors
from cronpilot.cli.doctor import doctor
from cronpilot.cli.jobs import jobs_app
from cronpilot.cli.local import local_app
from cronpilot.cli.mcp import mcp
from cronpilot.cli.runs import runs_app
from cronpilot.cli.secrets import secrets_app
from cronpilot.models.job import Job

app = typer.Typer(no_args_is_help=True, add_completion=False, help="cronpilot: an AI-piloted job scheduler.")
app.add_typer(local_app, name="local")
app.add_typer(jobs_app, name="jobs")
app.add_typer(runs_app, name="runs")
app.add_typer(secrets_app, name="secrets")
app.command()(doctor)
app.command()(mcp)


@app.callback()
def target_options(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="Operate on local mode's state file.")] = False,
    state: Annotated[Path, typer.Option(help="Local mode's state file.")] = DEFAULT_STATE_FILE,
    stack: Annotated[str | None, typer.Option(envvar="CRONPILOT_STACK", help="Deployed stack name.")] = None,
    table: Annotated[
        str | None, typer.Option(envvar="CRONPILOT_TABLE", help="Table name (skips the stack).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (default: the AWS SDK's).")] = None,
) -> None:
    ctx.obj = {"local": local, "state": state, "stack": stack, "table": table, "region": region}


@app.command()
@one_line_errors
def validate(files: Annotated[list[Path], typer.Argument(help="Job files (YAML or JSON).")]) -> None:
    """Validate job files offline. Exit code 1 if any is invalid."""
    jobs = load_jobs(files)
    for path, job in zip(files, jobs, strict=True):
        console.print(
            f"[green]ok[/green] {escape(str(path))}: job {job.id} "
            f"({job.schedule.describe()}, {len(job.endpoints)} endpoints)"
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of a job file (for editor completion and validation)."""
    print(json.dumps(Job.model_json_schema(), indent=2))


@app.command()
def openapi() -> None:
    """Print the HTTP API's OpenAPI document (generated from its routes; docs/openapi.json)."""
    from cronpilot.api.app import openapi_document

    print(json.dumps(openapi_document(), indent=2, sort_keys=True))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)

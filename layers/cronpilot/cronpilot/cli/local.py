"""`cronpilot local ...`: run cronpilot on this machine, on moto, with no AWS account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cronpilot.cli.common import (
    DEFAULT_STATE_FILE,
    EXIT_RUNS_FAILED,
    EXIT_TIMEOUT,
    console,
    errors,
    fail,
    iso,
    load_jobs,
    one_line_errors,
)
from cronpilot.cli.render import print_report_runs
from cronpilot.models.job import Job

if TYPE_CHECKING:
    from cronpilot.api.local_server import LocalApiServer
    from cronpilot.local.secrets import LocalSecrets

local_app = typer.Typer(
    no_args_is_help=True, help="Run cronpilot on this machine, on moto, with no AWS account."
)


class FailOn(StrEnum):
    FAILED = "failed"
    PARTIAL = "partial"
    NEVER = "never"


# Run statuses that make `local run` exit non-zero, per --fail-on.
FAILING_STATUSES = {
    FailOn.FAILED: {"failed", "start_failed", "abandoned"},
    FailOn.PARTIAL: {"failed", "start_failed", "abandoned", "partial"},
    FailOn.NEVER: set(),
}

SecretOption = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        metavar="NAME=env:VAR",
        help="A Secrets Manager secret job headers reference, its value read from $VAR. Repeatable.",
    ),
]
ParameterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--parameter",
        metavar="NAME=env:VAR",
        help="An SSM parameter job headers reference, its value read from $VAR. Repeatable.",
    ),
]


def local_secrets(ctx: typer.Context, secret: list[str] | None, parameter: list[str] | None) -> LocalSecrets:
    """Values stored with `cronpilot --local secrets set`, overridden by --secret / --parameter."""
    from cronpilot.local.secrets import from_environment, load, secrets_file

    stored = load(secrets_file((ctx.obj or {}).get("state", DEFAULT_STATE_FILE)))
    given = from_environment("secret", secret or []).overridden_by(
        from_environment("parameter", parameter or [])
    )
    return stored.overridden_by(given)


@local_app.command("run")
@one_line_errors
def local_run(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Job files to run.")],
    ticks: Annotated[int, typer.Option(min=1, help="Scheduler ticks to run.")] = 3,
    report: Annotated[Path | None, typer.Option(help="Write a JSON report of every run here.")] = None,
    allow_private: Annotated[
        list[str] | None,
        typer.Option("--allow-private", help="CIDR the executor may call (e.g. 127.0.0.0/8). Repeatable."),
    ] = None,
    allow_port: Annotated[list[int] | None, typer.Option("--allow-port", help="Extra port to allow.")] = None,
    secret: SecretOption = None,
    parameter: ParameterOption = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(help="Exit 5 when a run failed, when one failed or was partial, or never."),
    ] = FailOn.FAILED,
    max_wait: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Seconds to wait for a tick's runs (default: what the configured LLM timeouts, retries and "
            "repairs can take, plus 120 s for steps).",
        ),
    ] = None,
) -> None:
    """Run job files end to end in local mode and print (or write) what happened."""
    jobs = load_jobs(files)
    secrets = local_secrets(ctx, secret, parameter)
    ports = sorted({80, 443, *(allow_port or [])})
    cidrs = ",".join(allow_private or [])
    result = run_jobs_locally(
        jobs,
        ticks=ticks,
        cidrs=cidrs,
        ports=",".join(map(str, ports)),
        secrets=secrets,
        wait_seconds=max_wait,
    )
    print_report_runs(result["runs"])
    if report:
        report.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"report written to {report}")
    if result.get("error"):  # a wait ran out: the report above still says what happened so far
        errors.print(f"error: {result['error']}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_TIMEOUT)
    failing = [run for run in result["runs"] if run["status"] in FAILING_STATUSES[fail_on]]
    if failing:
        shown = ", ".join(f"{run['run_id']} {run['status']}" for run in failing[:5])
        more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
        raise fail(
            f"{len(failing)} run(s) did not succeed (--fail-on {fail_on.value}): {shown}{more}",
            EXIT_RUNS_FAILED,
        )


@local_app.command("demo")
def local_demo(ticks: Annotated[int, typer.Option(min=1)] = 12) -> None:
    """Run the example jobs against a demo HTTP server on 127.0.0.1."""
    from cronpilot.local.demo import demo_jobs
    from cronpilot.local.demo_server import DemoServer

    with DemoServer() as server:
        jobs = demo_jobs(server.base_url)
        console.print(f"demo server on {server.base_url}; {len(jobs)} jobs; {ticks} scheduler ticks")
        result = run_jobs_locally(jobs, ticks=ticks, cidrs="127.0.0.0/8", ports=f"80,443,{server.port}")
    print_report_runs(result["runs"])
    if result.get("error"):
        errors.print(f"error: {result['error']}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_TIMEOUT)


def run_jobs_locally(
    jobs: list[Job],
    *,
    ticks: int,
    cidrs: str,
    ports: str,
    secrets: LocalSecrets | None = None,
    wait_seconds: float | None = None,
) -> dict[str, Any]:
    """The report of every run; with "error" set when a wait ran out (the runs so far are still in it)."""
    from cronpilot.local import secrets as local_secret_store
    from cronpilot.local.cloud import LocalCloud
    from cronpilot.local.runner import LocalWaitExceeded, apply_jobs, run_report, start_clock, tick_until
    from cronpilot.runtime import get_runtime

    clock = start_clock()
    with LocalCloud(clock, egress_allowed_cidrs=cidrs, egress_allowed_ports=ports) as cloud:
        if secrets is not None:
            local_secret_store.install(cloud, secrets)
        store = get_runtime().store
        apply_jobs(store, jobs, clock.now())
        with console.status("ticking") as status:

            def progress(number: int, outcome: dict[str, Any]) -> None:
                status.update(
                    f"tick {number}/{ticks} at {clock.now():%Y-%m-%d %H:%M} UTC: "
                    f"{len(outcome['claimed'])} claimed"
                )

            error = None
            try:
                tick_until(cloud, clock, store, ticks=ticks, on_tick=progress, wait_seconds=wait_seconds)
            except LocalWaitExceeded as exc:
                error = str(exc)
        report = run_report(store, cloud, [job.id for job in jobs])
        return {**report, "error": error} if error else report


@local_app.command("tick")
@one_line_errors
def local_tick(
    ctx: typer.Context,
    ticks: Annotated[int, typer.Option(min=1)] = 1,
    allow_private: Annotated[list[str] | None, typer.Option("--allow-private")] = None,
    allow_port: Annotated[list[int] | None, typer.Option("--allow-port")] = None,
    secret: SecretOption = None,
    parameter: ParameterOption = None,
    max_wait: Annotated[
        float | None, typer.Option(min=1, help="Seconds to wait for a tick's runs (default: as `local run`).")
    ] = None,
) -> None:
    """Run the scheduler over local mode's state file (jobs applied with --local)."""
    from cronpilot.clock import AcceleratedClock
    from cronpilot.dal.snapshot import load_state, save_state
    from cronpilot.local.cloud import TABLE_NAME, LocalCloud
    from cronpilot.local.runner import LocalWaitExceeded, tick_until
    from cronpilot.local.secrets import install
    from cronpilot.runtime import get_runtime

    path = (ctx.obj or {}).get("state", DEFAULT_STATE_FILE)
    secrets = local_secrets(ctx, secret, parameter)
    clock = AcceleratedClock(datetime.now(UTC))
    ports = ",".join(map(str, sorted({80, 443, *(allow_port or [])})))
    with LocalCloud(
        clock, egress_allowed_cidrs=",".join(allow_private or []), egress_allowed_ports=ports
    ) as cloud:
        install(cloud, secrets)
        client = cloud.client("dynamodb")
        simulated = load_state(path, client, TABLE_NAME)
        if simulated:
            clock.jump_to(simulated)
        store = get_runtime().store
        claimed: list[str] = []
        try:
            tick_until(
                cloud,
                clock,
                store,
                ticks=ticks,
                on_tick=lambda _n, outcome: claimed.extend(outcome["claimed"]),
                wait_seconds=max_wait,
            )
        except LocalWaitExceeded as exc:  # keep what happened so far, then say which wait ran out
            save_state(path, client, TABLE_NAME, clock.now())
            raise fail(str(exc), EXIT_TIMEOUT) from None
        save_state(path, client, TABLE_NAME, clock.now())
    console.print(
        f"{ticks} tick(s), now {iso(clock.now())}: {len(claimed)} run(s): {', '.join(claimed) or '-'}"
    )


@contextmanager
def local_api_server(path: Path, port: int) -> Iterator[LocalApiServer]:
    """The HTTP API's resolver on 127.0.0.1 over local mode's state file, saved after every write so
    the CLI (`--local`) sees what the API changed."""
    from cronpilot.api.app import handle
    from cronpilot.api.local_server import LocalApiServer
    from cronpilot.cli.targets import local_state_target
    from cronpilot.clock import AcceleratedClock
    from cronpilot.dal.snapshot import save_state

    with local_state_target(path) as chosen:
        store = chosen.store
        clock = AcceleratedClock(chosen.clock.now())  # local mode's time, moving with the wall clock

        def persist() -> None:
            save_state(path, store.client, store.table_name, clock.now())

        server = LocalApiServer(
            port, lambda event: handle(event, None, store=store, clock=clock), after_write=persist
        )
        try:
            yield server
        finally:
            server.server_close()


@local_app.command("api")
@one_line_errors
def local_api(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 8787,
    quiet: Annotated[bool, typer.Option(help="Do not log each request.")] = False,
) -> None:
    """Serve the HTTP API (the deployed API's routes) on 127.0.0.1 over local mode's state file.

    No SigV4 here: it listens on loopback only, for trying the API and testing clients."""
    path = (ctx.obj or {}).get("state", DEFAULT_STATE_FILE)
    with local_api_server(path, port) as server:
        server.quiet = quiet
        # one line a script can wait for: the URL, with the port the OS chose for --port 0
        print(f"cronpilot API on {server.base_url} over {path}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            console.print("stopped")

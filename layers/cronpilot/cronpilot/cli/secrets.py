"""`cronpilot --local secrets ...`: give local mode the secrets and SSM parameters job headers reference."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cronpilot.cli.common import DEFAULT_STATE_FILE, EXIT_NOT_FOUND, console, fail, one_line_errors
from cronpilot.local.secrets import Kind, LocalSecrets, check_name, load, save, secrets_file

secrets_app = typer.Typer(
    no_args_is_help=True,
    help="Secrets and SSM parameters for local mode (values from stdin or the environment, never arguments).",
)

ParameterFlag = Annotated[
    bool, typer.Option("--parameter", help="An SSM parameter ({parameter: NAME}) instead of a secret.")
]


def _local_secrets_path(ctx: typer.Context) -> tuple[Path, LocalSecrets]:
    options = ctx.obj or {}
    if not options.get("local"):
        raise fail(
            "secrets are set here for local mode only: add --local (on AWS, create the secret in "
            "Secrets Manager or the parameter in SSM Parameter Store)"
        )
    path = secrets_file(options.get("state", DEFAULT_STATE_FILE))
    return path, load(path)


def _read_value(name: str, from_env: str | None) -> str:
    if from_env is not None:
        if from_env not in os.environ:
            raise fail(f"--from-env {from_env}: {from_env} is not set: export it first")
        return os.environ[from_env]
    if sys.stdin.isatty():
        return str(typer.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True))
    # `printf %s "$VALUE" | cronpilot ...` or `... < file`: one trailing newline (echo's) is not part of it.
    return sys.stdin.read().removesuffix("\n").removesuffix("\r")


@secrets_app.command("set")
@one_line_errors
def secrets_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The name a job header references.")],
    parameter: ParameterFlag = False,
    from_env: Annotated[
        str | None,
        typer.Option("--from-env", metavar="VAR", help="Read the value from this environment variable."),
    ] = None,
) -> None:
    """Store a value for local mode (read from standard input, or --from-env VAR)."""
    kind: Kind = "parameter" if parameter else "secret"
    check_name(kind, name)
    path, stored = _local_secrets_path(ctx)
    stored.put(kind, name, _read_value(name, from_env))
    save(path, stored)
    console.print(f"set {kind} {name} for local mode (kept in {path}, readable by you only)")


@secrets_app.command("list")
@one_line_errors
def secrets_list(ctx: typer.Context) -> None:
    """The names local mode has values for (never the values)."""
    _path, stored = _local_secrets_path(ctx)
    for kind in ("secret", "parameter"):
        for name in sorted(stored.of(kind)):
            console.print(f"{kind} {name}", highlight=False, markup=False)


@secrets_app.command("delete")
@one_line_errors
def secrets_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The name to forget.")],
    parameter: ParameterFlag = False,
) -> None:
    """Forget a local value."""
    kind: Kind = "parameter" if parameter else "secret"
    path, stored = _local_secrets_path(ctx)
    if stored.of(kind).pop(name, None) is None:
        raise fail(f"local mode has no {kind} {name!r}: see 'cronpilot --local secrets list'", EXIT_NOT_FOUND)
    save(path, stored)
    console.print(f"deleted {kind} {name}")

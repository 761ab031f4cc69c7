"""`cronpilot mcp`: an MCP server over stdio for AI agents, on the same target options as the CLI."""

from __future__ import annotations

from typing import Annotated

import typer

from cronpilot.cli.common import target


def mcp(
    ctx: typer.Context,
    allow_writes: Annotated[
        bool,
        typer.Option(
            "--allow-writes",
            help="Let agents apply, pause, resume, trigger, delete jobs (default: read only).",
        ),
    ] = False,
) -> None:
    """Speak MCP over stdin/stdout (for Claude Code, Claude Desktop and other MCP clients).

    Operates where the CLI would: --local (local mode's state file), --stack NAME or --table NAME."""
    from cronpilot.cli.mcp_server import build_server

    # stdout carries the protocol: nothing else may print there.
    build_server(lambda: target(ctx), allow_writes=allow_writes).run("stdio")

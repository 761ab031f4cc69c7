"""What every command shares: the consoles, exit codes, one-line errors, the target and job-file loading."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cronpilot.jobfiles import JobFileError, load_job_file
from cronpilot.models.job import Job
from cronpilot.models.notify import topics_not_allowed

console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)

# Exit codes scripts can rely on.
EXIT_INVALID = 1  # invalid input or an action the job's state does not allow
EXIT_USAGE = 2  # bad command line (typer's own)
EXIT_NOT_FOUND = 3  # no such job or run
EXIT_TARGET = 4  # the target (AWS account, stack, state file) cannot be used
EXIT_RUNS_FAILED = 5  # `local run`: a run failed (or was partial, with --fail-on partial)
EXIT_TIMEOUT = 6  # local mode: a wait ran out (the report is still written)

DEFAULT_STATE_FILE = Path(".cronpilot/local-state.json")
# The stack's notify_topic_arns, comma-separated: job files naming other topics are refused offline.
NOTIFY_TOPICS_ENV = "CRONPILOT_NOTIFY_TOPICS"

Output = Annotated[str, typer.Option("--output", "-o", help="table or json")]


def one_line_errors[F: Callable[..., Any]](command: F) -> F:
    """Turn domain and AWS errors into one clear line and a stable exit code, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):  # already reported
            raise
        except Exception as exc:
            code = _exit_code(exc)
            if code is None:
                raise
            raise fail(str(exc), code) from None

    return wrapper  # type: ignore[return-value]


def _exit_code(exc: Exception) -> int | None:
    """The exit code of an error a command may raise; None for a bug. Imported only once a command has
    failed, so `validate` never pays for boto3 (about half a second)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from cronpilot.cli.targets import TargetError
    from cronpilot.domain.operations import OperationError
    from cronpilot.domain.ports import JobNotFound, RunNotFound

    if isinstance(exc, JobNotFound | RunNotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, OperationError):
        return EXIT_INVALID
    if isinstance(exc, TargetError | ClientError | BotoCoreError):
        return EXIT_TARGET
    if isinstance(exc, ValueError):  # includes invalid input to local mode (LocalSecretsError)
        return EXIT_INVALID
    return None


@contextmanager
def target(ctx: typer.Context) -> Iterator[Any]:
    """Where the command operates: local mode's state file, or a deployed stack's table."""
    from cronpilot.cli.targets import deployed_target, local_state_target

    options = ctx.obj or {}
    if options.get("local"):
        with local_state_target(options["state"]) as chosen:
            yield chosen
    else:
        with deployed_target(
            stack=options.get("stack"), table=options.get("table"), region=options.get("region")
        ) as chosen:
            yield chosen


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def iso(value: datetime | None) -> str:
    from cronpilot.clock import to_iso

    return to_iso(value) if value else "-"


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fail(message: str, code: int = EXIT_INVALID) -> typer.Exit:
    # Messages quote user input (file names, keys, values): never read them as rich markup.
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def allowed_notify_topics() -> frozenset[str] | None:
    """The SNS topics the deployment may publish to, when the operator says which (None: unknown)."""
    value = os.environ.get(NOTIFY_TOPICS_ENV)
    if value is None:
        return None
    return frozenset(topic.strip() for topic in value.split(",") if topic.strip())


def load_jobs(files: list[Path]) -> list[Job]:
    jobs, problems = [], []
    allowed = allowed_notify_topics()
    for path in files:
        try:
            job = load_job_file(path)
        except JobFileError as exc:
            problems.append(str(exc))
            continue
        jobs.append(job)
        if allowed is not None:
            problems += [
                f"{path}: notify: topic {topic} is not one this deployment may publish to: add it to "
                f"the stack's notify_topic_arns context (and {NOTIFY_TOPICS_ENV}), "
                f"or use one of {sorted(allowed)}"
                for topic in topics_not_allowed(job.notify, allowed)
            ]
    if problems:
        raise fail("\n".join(problems))
    ids = [job.id for job in jobs]
    if len(set(ids)) != len(ids):
        raise fail(f"two job files use the same id: {sorted({i for i in ids if ids.count(i) > 1})}")
    return jobs

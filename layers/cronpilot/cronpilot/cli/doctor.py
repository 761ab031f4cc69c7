"""`cronpilot doctor`: checks a deployment (or local mode's state) and says what to fix, one line each.
Exit code 1 when any check fails."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from cronpilot.cli.common import EXIT_INVALID, EXIT_TARGET, Output, console, emit_json, fail, one_line_errors
from cronpilot.domain.diagnosis import Finding, Verdict

_MARKS = {
    Verdict.OK: "[green]ok  [/green]",
    Verdict.WARN: "[yellow]warn[/yellow]",
    Verdict.FAIL: "[red]FAIL[/red]",
}
# The services the probe asks (read-only).
_SERVICES = ("dynamodb", "stepfunctions", "cloudwatch", "sns", "secretsmanager", "ssm")


@one_line_errors
def doctor(ctx: typer.Context, output: Output = "table") -> None:
    """Check what a deployment needs: table, state machines, discovery ticks, alarm subscribers, the
    Anthropic key, the secrets registered jobs reference (--local: local mode's jobs)."""
    options = ctx.obj or {}
    findings = _local(options) if options.get("local") else _deployed(options)
    if output == "json":
        emit_json([{**f.__dict__, "verdict": f.verdict.value} for f in findings])
    else:
        for finding in findings:
            line = f"{_MARKS[finding.verdict]} {finding.check}: {finding.detail}"
            if finding.fix and finding.verdict is not Verdict.OK:
                line += f" [dim]->[/dim] {finding.fix}"
            console.print(line, highlight=False, soft_wrap=True)
    if any(f.verdict is Verdict.FAIL for f in findings):
        raise typer.Exit(EXIT_INVALID)


def _deployed(options: dict[str, Any]) -> list[Finding]:
    import boto3

    from cronpilot.clock import SystemClock
    from cronpilot.dal.deployment import AwsDeploymentProbe, DeploymentNotFound, read_deployment
    from cronpilot.dal.store import Store
    from cronpilot.domain.diagnosis import diagnose_deployment

    stack = options.get("stack")
    if not stack:
        raise fail("doctor checks a stack: --stack NAME (or CRONPILOT_STACK), or --local", EXIT_TARGET)
    session = boto3.Session(region_name=options.get("region"))
    try:
        deployment = read_deployment(session.client("cloudformation"), stack)
    except DeploymentNotFound as exc:
        raise fail(str(exc), EXIT_TARGET) from None
    clients: dict[str, Any] = {name: session.client(name) for name in _SERVICES}  # type: ignore[call-overload]
    probe = AwsDeploymentProbe(deployment, clients)
    store = Store(deployment.table, session.client("dynamodb")) if probe.table_exists() else None
    return diagnose_deployment(probe, store, SystemClock().now())


def _local(options: dict[str, Any]) -> list[Finding]:
    from cronpilot.cli.targets import local_state_target
    from cronpilot.domain.diagnosis import diagnose_jobs

    state = options["state"]
    if not state.exists():
        return [
            Finding(
                "local state",
                Verdict.WARN,
                f"{state} does not exist yet",
                "cronpilot --local jobs apply JOB_FILE, then cronpilot --local local tick",
            )
        ]
    with local_state_target(state) as chosen:
        records = chosen.store.list_jobs()
        now = chosen.clock.now()
    found = [Finding("local state", Verdict.OK, f"{state} holds {len(records)} jobs")]
    # local mode ticks when told to: "overdue" means `local tick` has not run since they came due
    return found + diagnose_jobs(records, now, tick=timedelta(minutes=1))

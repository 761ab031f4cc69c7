"""`cronpilot doctor`: what a deployment (or local mode's state) needs before it schedules anything,
one finding per check, each failure with its fix.

The checks read the deployment through a DeploymentProbe (dal/deployment.py) and the jobs through the
store; nothing here writes, and no secret value ever leaves the probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cronpilot.clock import to_iso
from cronpilot.domain.ports import DeploymentProbe, JobRecord, JobStore
from cronpilot.models.job import JobStatus, SecretRef

# Ticks without a discovery report before "not ticking" (one missed tick is EventBridge's right).
TICKS_OF_SILENCE = 3


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    verdict: Verdict
    detail: str
    fix: str = ""


def diagnose_deployment(probe: DeploymentProbe, store: JobStore | None, now: datetime) -> list[Finding]:
    """The stack's resources, its tick, its alarms, its LLM key, then the registered jobs' secrets.
    `store` is None when the table is missing (nothing to read jobs from)."""
    found = [_table(probe)]
    if found[0].verdict is not Verdict.OK:
        return found
    deployment = probe.deployment
    found += [_state_machine(probe, arn) for arn in deployment.state_machine_arns]
    found.append(_tick(probe, now))
    found.append(_alarms(probe))
    found.append(_anthropic_key(probe))
    if store is not None:
        records = store.list_jobs()
        found += diagnose_jobs(records, now, tick=timedelta(minutes=deployment.tick_minutes))
        if records:
            found += _job_secrets(probe, records)
    return found


def diagnose_jobs(records: list[JobRecord], now: datetime, *, tick: timedelta) -> list[Finding]:
    """What the stored jobs say, deployed or local: any registered, none overdue, no stuck lease."""
    if not records:
        return [Finding("jobs", Verdict.WARN, "no jobs registered", "cronpilot jobs apply JOB_FILE")]
    found = [Finding("jobs", Verdict.OK, f"{len(records)} jobs registered")]
    late = now - TICKS_OF_SILENCE * tick
    overdue = sorted(
        r.job_id
        for r in records
        if r.job.status is JobStatus.ACTIVE
        and r.state.next_run_at is not None
        and r.state.next_run_at < late
        and not r.state.lease_live(now)
    )
    if overdue:
        found.append(
            Finding(
                "due jobs claimed",
                Verdict.FAIL,
                f"{len(overdue)} active jobs are overdue by more than {TICKS_OF_SILENCE} ticks: "
                + ", ".join(overdue[:5]),
                "discovery is not claiming them: see the discovery check and the DiscoveryErrors alarm "
                "(local mode: cronpilot --local local tick)",
            )
        )
    stuck = sorted(r.job_id for r in records if r.state.abandoned_runs(now))
    if stuck:
        found.append(
            Finding(
                "leases",
                Verdict.WARN,
                f"{len(stuck)} jobs hold a lease past its expiry: " + ", ".join(stuck[:5]),
                "the next claim fences and records the abandoned run; if it persists, check the "
                "finalize-failure function's errors and the async-failures queue",
            )
        )
    return found


def _table(probe: DeploymentProbe) -> Finding:
    d = probe.deployment
    if probe.table_exists():
        return Finding("table", Verdict.OK, f"table {d.table} exists")
    return Finding(
        "table",
        Verdict.FAIL,
        f"table {d.table} (output of {d.stack}) does not exist",
        "redeploy: make deploy STAGE=<stage> (after a destroy of prod: make import-retained first)",
    )


def _state_machine(probe: DeploymentProbe, arn: str) -> Finding:
    name = arn.rsplit(":", 1)[-1]
    if probe.state_machine_exists(arn):
        return Finding("state machine", Verdict.OK, f"state machine {name} exists")
    fix = "redeploy: make deploy STAGE=<stage>"
    return Finding("state machine", Verdict.FAIL, f"state machine {name} does not exist", fix)


def _tick(probe: DeploymentProbe, now: datetime) -> Finding:
    d = probe.deployment
    window = TICKS_OF_SILENCE * timedelta(minutes=d.tick_minutes)
    last = probe.last_tick(now - window, now)
    if last is not None:
        return Finding("discovery", Verdict.OK, f"discovery ticked at {to_iso(last)}")
    return Finding(
        "discovery",
        Verdict.FAIL,
        f"no discovery tick in the last {int(window.total_seconds() // 60)} minutes",
        f"check that the EventBridge rule {d.metrics_service}-tick is enabled and the "
        f"{d.metrics_service}-discovery function's errors (and the async-failures queue)",
    )


def _alarms(probe: DeploymentProbe) -> Finding:
    d = probe.deployment
    if d.alarm_topic_arn is None:
        return Finding("alarms", Verdict.WARN, "the stack names no alarm topic", "redeploy this version")
    confirmed = probe.confirmed_subscriptions()
    if confirmed:
        return Finding("alarms", Verdict.OK, f"alarm topic has {confirmed} confirmed subscriptions")
    return Finding(
        "alarms",
        Verdict.FAIL,
        "the alarm topic has no confirmed subscription: alarms reach nobody",
        f"aws sns subscribe --topic-arn {d.alarm_topic_arn} --protocol email --notification-endpoint "
        "YOU@example.com (or redeploy with alarm_email=...), then confirm the e-mail AWS sends",
    )


def _anthropic_key(probe: DeploymentProbe) -> Finding:
    arn = probe.deployment.anthropic_secret_arn
    if arn is None:
        return Finding("llm key", Verdict.OK, "no Anthropic key needed (llm_provider is not anthropic)")
    if probe.anthropic_key_set():
        return Finding("llm key", Verdict.OK, "the Anthropic API key is set")
    return Finding(
        "llm key",
        Verdict.FAIL,
        "the Anthropic key secret still holds the deploy-time placeholder: every run takes the "
        "deterministic path",
        f'aws secretsmanager put-secret-value --secret-id {arn} --secret-string "$ANTHROPIC_API_KEY"',
    )


# state -> (what is wrong, how to fix it); {create} is the command that creates the secret
_SECRET_PROBLEMS = {
    "missing": ("does not exist", "create it: {create}"),
    "customer-key": (
        "is encrypted with a customer managed KMS key the executor may not use",
        "re-create it with the AWS managed key: {create}",
    ),
    "no-json-key": (
        "is not a JSON object holding the header's json_key",
        "store a JSON object with that key, or drop json_key from the job file",
    ),
    "unreadable": ("cannot be read", "check its name and the stack's job_secret_prefix"),
}


def _job_secrets(probe: DeploymentProbe, records: list[JobRecord]) -> list[Finding]:
    prefix = probe.deployment.job_secret_prefix
    refs: dict[tuple[str | None, str | None, str | None], list[str]] = {}
    for record in records:
        for endpoint in record.job.endpoints:
            for header, value in endpoint.headers.items():
                if isinstance(value, SecretRef):
                    key = (value.secret, value.parameter, value.json_key)
                    refs.setdefault(key, []).append(f"{record.job_id}/{endpoint.id} {header}")
    if not refs:
        return [Finding("job secrets", Verdict.OK, "no registered job references a secret")]
    found = []
    for (secret, parameter, json_key), users in sorted(refs.items(), key=str):
        ref = SecretRef(secret=secret, parameter=parameter, json_key=json_key)
        name = secret if secret is not None else parameter
        assert name is not None
        used_by = ", ".join(users[:3])
        if not name.lstrip("/").startswith(prefix):
            found.append(
                Finding(
                    "job secrets",
                    Verdict.FAIL,
                    f"{name} (used by {used_by}) is outside the executor's prefix {prefix}",
                    f"rename it under {prefix} and update the job file",
                )
            )
            continue
        state = probe.secret_state(ref)
        if state == "readable":
            found.append(Finding("job secrets", Verdict.OK, f"{name} is readable (used by {used_by})"))
            continue
        create = (
            f"aws secretsmanager create-secret --name {name} --secret-string '<whole header value>'"
            if secret is not None
            else f"aws ssm put-parameter --name {name} --type SecureString --value '<whole header value>'"
        )
        problem, fix = _SECRET_PROBLEMS[state]
        detail = f"{name} (used by {used_by}) {problem}"
        found.append(Finding("job secrets", Verdict.FAIL, detail, fix.format(create=create)))
    return found

"""`cronpilot doctor`'s checks on in-memory ports: what each finding says for each state of a
deployment, without AWS (tests/integration/test_doctor.py runs the same against moto)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cronpilot.domain.diagnosis import Verdict, diagnose_deployment, diagnose_jobs
from cronpilot.models.deployment import Deployment, SecretState
from cronpilot.models.job import JobStatus, SecretRef

from tests.support.factories import endpoint, make_job
from tests.support.memory import InMemoryStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
EXPRESS = "arn:aws:states:us-east-1:1:stateMachine:cronpilot-prod-run-express"
STANDARD = "arn:aws:states:us-east-1:1:stateMachine:cronpilot-prod-run"


def _deployment(**overrides: object) -> Deployment:
    values: dict[str, object] = {
        "stack": "cronpilot-prod",
        "table": "cronpilot-prod-data",
        "state_machine_arns": (STANDARD,),
        "alarm_topic_arn": "arn:aws:sns:us-east-1:1:cronpilot-prod-alarms",
        "anthropic_secret_arn": None,
        "job_secret_prefix": "cronpilot/prod/",
        "tick_minutes": 5,
        "metrics_service": "cronpilot-prod",
    }
    values.update(overrides)
    return Deployment(**values)  # type: ignore[arg-type]


@dataclass
class FakeProbe:
    deployment: Deployment = field(default_factory=_deployment)
    table: bool = True
    machines: set[str] = field(default_factory=lambda: {STANDARD})
    tick: datetime | None = NOW - timedelta(minutes=4)
    subscribers: int = 1
    key_set: bool = True
    secrets: dict[str, SecretState] = field(default_factory=dict)
    asked_since: list[datetime] = field(default_factory=list)

    def table_exists(self) -> bool:
        return self.table

    def state_machine_exists(self, arn: str) -> bool:
        return arn in self.machines

    def last_tick(self, since: datetime, now: datetime) -> datetime | None:
        self.asked_since.append(since)
        return self.tick if self.tick and self.tick >= since else None

    def confirmed_subscriptions(self) -> int:
        return self.subscribers

    def anthropic_key_set(self) -> bool:
        return self.key_set

    def secret_state(self, ref: SecretRef) -> SecretState:
        return self.secrets.get(ref.secret or ref.parameter or "", "missing")


def _by_check(findings: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for finding in findings:
        out.setdefault(finding.check, []).append(finding)
    return out


def test_the_tick_window_is_three_ticks_of_the_deployment() -> None:
    # Given a 5-minute tick and a report 14 minutes ago, When diagnosed, Then it still counts
    probe = FakeProbe(tick=NOW - timedelta(minutes=14))
    (finding,) = _by_check(diagnose_deployment(probe, InMemoryStore(), NOW))["discovery"]
    assert finding.verdict is Verdict.OK
    assert probe.asked_since == [NOW - timedelta(minutes=15)]
    # and 16 minutes of silence is a failure
    silent = FakeProbe(tick=NOW - timedelta(minutes=16))
    (finding,) = _by_check(diagnose_deployment(silent, InMemoryStore(), NOW))["discovery"]
    assert finding.verdict is Verdict.FAIL
    assert "15 minutes" in finding.detail


def test_every_state_machine_is_checked_and_bedrock_needs_no_key() -> None:
    probe = FakeProbe(deployment=_deployment(state_machine_arns=(STANDARD, EXPRESS)))
    found = _by_check(diagnose_deployment(probe, InMemoryStore(), NOW))
    verdicts = [(f.detail, f.verdict) for f in found["state machine"]]
    assert verdicts == [
        ("state machine cronpilot-prod-run exists", Verdict.OK),
        ("state machine cronpilot-prod-run-express does not exist", Verdict.FAIL),
    ]
    (key,) = found["llm key"]
    assert key.verdict is Verdict.OK
    assert "not anthropic" in key.detail


def test_an_external_alarm_topic_without_output_is_a_warning() -> None:
    probe = FakeProbe(deployment=_deployment(alarm_topic_arn=None))
    (alarms,) = _by_check(diagnose_deployment(probe, InMemoryStore(), NOW))["alarms"]
    assert alarms.verdict is Verdict.WARN


def test_a_secret_shared_by_two_jobs_is_one_finding_naming_both() -> None:
    store = InMemoryStore()
    header = {"Authorization": {"secret": "cronpilot/prod/shared"}}
    for job_id in ("a-job", "b-job"):
        job = make_job(job_id, endpoints=[endpoint("call", headers=header)])
        store.put_job(job, next_run_at=NOW + timedelta(minutes=5), source="baseline", reason="", now=NOW)
    probe = FakeProbe(secrets={"cronpilot/prod/shared": "customer-key"})
    (finding,) = _by_check(diagnose_deployment(probe, store, NOW))["job secrets"]
    assert finding.verdict is Verdict.FAIL
    assert "a-job/call Authorization, b-job/call Authorization" in finding.detail
    assert "customer managed KMS key" in finding.detail
    assert "aws secretsmanager create-secret --name cronpilot/prod/shared" in finding.fix


def test_overdue_counts_only_active_unleased_jobs_and_stuck_leases_warn() -> None:
    store = InMemoryStore()
    long_ago = NOW - timedelta(hours=2)
    for job_id in ("late", "paused", "running"):
        status = JobStatus.PAUSED if job_id == "paused" else JobStatus.ACTIVE
        store.put_job(
            make_job(job_id, status=status), next_run_at=long_ago, source="baseline", reason="", now=NOW
        )
    records = {r.job_id: r for r in store.list_jobs()}
    # a run in flight holds its lease; another job's run ended without releasing one
    records["running"].state.current_run_id = "running.1"
    records["running"].state.lease_expires_at = NOW + timedelta(minutes=10)
    records["late"].state.current_run_id = "late.1"
    records["late"].state.lease_expires_at = NOW - timedelta(minutes=1)
    found = _by_check(diagnose_jobs(list(records.values()), NOW, tick=timedelta(minutes=1)))
    (overdue,) = found["due jobs claimed"]
    assert overdue.verdict is Verdict.FAIL
    assert overdue.detail.endswith(": late")
    (leases,) = found["leases"]
    assert leases.verdict is Verdict.WARN
    assert leases.detail.endswith(": late")

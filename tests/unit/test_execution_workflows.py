"""The executor's step-output, assertion and circuit decisions against in-memory ports and a scripted
sender: no sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cronpilot.clock import FixedClock
from cronpilot.domain.circuit import CircuitBreaker
from cronpilot.domain.execution import StepExecutor
from cronpilot.models.health import Health
from cronpilot.models.job import SecretRef
from cronpilot.models.run import PlanStep, RunRef, StepStatus, StepTask
from cronpilot.safehttp import HttpOutcome, RequestSpec

from tests.support.factories import claim_run, endpoint, make_job
from tests.support.memory import InMemoryHealthStore, InMemoryStore

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class Sender:
    """Answers each URL path with the next scripted JSON document, and keeps what it was asked to send."""

    def __init__(self, script: dict[str, list[object]]) -> None:
        self.script = script
        self.sent: list[RequestSpec] = []

    def __call__(self, spec: RequestSpec) -> HttpOutcome:
        self.sent.append(spec)
        path = str(spec.url).split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
        body = json.dumps(self.script[path].pop(0))
        return HttpOutcome(
            ok=True,
            http_status=200,
            attempts=1,
            latency_ms=5,
            body=body,
            body_truncated=False,
            body_bytes=len(body),
            error=None,
            error_kind=None,
            final_url=None,
            redirects=0,
        )


class CountingHealthStore(InMemoryHealthStore):
    def __init__(self) -> None:
        super().__init__()
        self.origins_read: list[str] = []

    def read(self, origin: str, *, consistent: bool = True) -> Health:
        self.origins_read.append(origin)
        return super().read(origin, consistent=consistent)


def no_secrets(ref: SecretRef) -> str:
    raise AssertionError("no secret is read")


def task(run: RunRef, step_id: str, *depends_on: str) -> StepTask:
    step = PlanStep(step_id=step_id, endpoint_id=step_id, depends_on=list(depends_on))
    return StepTask(run_id=run.run_id, job_id=run.job_id, epoch=run.epoch, step=step)


JOB = make_job(
    "flow",
    endpoints=[
        endpoint("login", "https://auth.example.com/login", extract={"token": "token"}),
        endpoint("list", "https://api.example.com/list", depends_on=["login"]),
        endpoint(
            "use",
            "https://use.example.com/use?t={{ steps.login.token }}",
            depends_on=["list"],
            expect={"json": {"ok": True}, "retry_on_failure": True},
        ),
    ],
)


def test_a_transitive_producer_is_read_and_an_assertion_retry_waits_through_the_injected_sleep():
    store = InMemoryStore()
    run = claim_run(store, JOB, START)
    sender = Sender({"login": [{"token": "t-1"}], "list": [{}], "use": [{"ok": False}, {"ok": True}]})
    sleeps: list[float] = []
    executor = StepExecutor(store, FixedClock(START), sender, resolver=no_secrets, sleep=sleeps.append)

    executor.execute(task(run, "login"))
    executor.execute(task(run, "list", "login"))
    outcome = executor.execute(task(run, "use", "list"))

    assert outcome.status == StepStatus.SUCCEEDED
    assert [str(spec.url) for spec in sender.sent[-2:]] == ["https://use.example.com/use?t=t-1"] * 2
    assert sleeps == [1.0]
    assert store.get_step_results(run.run_id, ["use"])["use"].attempts == 2


def test_a_missing_value_fails_the_step_without_asking_the_circuit_or_sending():
    store = InMemoryStore()
    run = claim_run(store, JOB, START)
    health = CountingHealthStore()
    sender = Sender({"login": [{"no_token": True}], "list": [{}]})
    executor = StepExecutor(
        store,
        FixedClock(START),
        sender,
        resolver=no_secrets,
        breaker=CircuitBreaker(health, FixedClock(START)),
    )
    executor.execute(task(run, "login"))
    executor.execute(task(run, "list", "login"))

    outcome = executor.execute(task(run, "use", "list"))

    result = store.get_step_results(run.run_id, ["use"])["use"]
    assert (outcome.status, result.error_kind) == (StepStatus.FAILED, "template")
    assert result.error == "{{ steps.login.token }} has no value: 'token' matched nothing in the response"
    assert len(sender.sent) == 2
    assert "https://use.example.com:443" not in health.origins_read
    assert "https://auth.example.com:443" in health.origins_read

"""The circuit breaker against a real server on 127.0.0.1, shared by two jobs that call the same origin."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from ipaddress import ip_network

import pytest
from botocore.exceptions import ClientError
from cronpilot.clock import FixedClock
from cronpilot.dal import schema
from cronpilot.dal.health import DynamoHealthStore
from cronpilot.dal.store import Store
from cronpilot.domain.circuit import (
    CircuitBreaker,
    CircuitPolicy,
    CircuitState,
    Permit,
    counts_as_failure,
    endpoint_health,
    origin_of,
)
from cronpilot.domain.execution import CIRCUIT_OPEN, StepExecutor
from cronpilot.models.job import Job
from cronpilot.models.run import PlanStep, StepStatus, StepTask, make_run_id
from cronpilot.safehttp import EgressPolicy, HttpOutcome, SafeHttpClient

from tests.integration.conftest import START
from tests.integration.http_servers import LoopbackHTTPServer, RecordedRequest, Reply
from tests.support.factories import make_job

POLICY = CircuitPolicy(
    failure_threshold=3,
    window=timedelta(minutes=1),
    cool_down=timedelta(seconds=30),
    probe_timeout=timedelta(minutes=5),
)


class Upstream:
    """A server whose health the test switches; a gate can hold requests in flight."""

    def __init__(self, server: LoopbackHTTPServer) -> None:
        self.server = server
        self.status = 503
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Event()
        for path in ("/a", "/b"):
            server.route("GET", path, self._reply)

    def _reply(self, request: RecordedRequest) -> Reply:
        self.arrived.set()
        self.gate.wait(timeout=10)
        return Reply(self.status, body=b"{}")

    @property
    def calls(self) -> int:
        return len(self.server.requests)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with LoopbackHTTPServer() as server:
        yield Upstream(server)


@pytest.fixture
def jobs(store: Store, upstream: Upstream, clock: FixedClock) -> dict[str, Job]:
    made = {}
    for job_id, path in (("job-a", "/a"), ("job-b", "/b")):
        job = make_job(
            job_id, endpoints=[{"id": "call", "url": upstream.server.url(path), "retryable": False}]
        )
        store.put_job(job, next_run_at=START, source="baseline", reason="test", now=clock.now())
        made[job_id] = job
    return made


@pytest.fixture
def executor(store: Store, clock: FixedClock, upstream: Upstream) -> StepExecutor:
    policy = EgressPolicy(
        allowed_cidrs=(ip_network("127.0.0.0/8"),), allowed_ports=frozenset({upstream.server.port})
    )
    breaker = CircuitBreaker(DynamoHealthStore(store.table_name, store.client), clock, POLICY)
    return StepExecutor(store, clock, SafeHttpClient(policy).send, breaker=breaker)


class Runs:
    """A fresh run id per call, so the executor never mistakes a new call for a retried one."""

    def __init__(self, executor: StepExecutor) -> None:
        self.executor = executor
        self.count = 0

    def step(self, job_id: str) -> tuple[StepStatus, str | None]:
        self.count += 1
        run_id = make_run_id(job_id, START + timedelta(minutes=self.count))
        task = StepTask(
            run_id=run_id, job_id=job_id, epoch=0, step=PlanStep(step_id="call", endpoint_id="call")
        )
        outcome = self.executor.execute(task)
        result = self.executor.store.get_step_results(run_id, ["call"])["call"]
        return StepStatus(outcome.status), result.skip_reason


@pytest.fixture
def runs(executor: StepExecutor) -> Runs:
    return Runs(executor)


def open_the_circuit(runs: Runs) -> None:
    for job_id in ("job-a", "job-b", "job-a"):
        assert runs.step(job_id) == (StepStatus.FAILED, None)


def health(store: Store, job: Job, clock: FixedClock) -> str:
    return endpoint_health(DynamoHealthStore(store.table_name, store.client), job, clock, POLICY)["call"]


def test_failures_from_two_jobs_open_the_shared_circuit(store, clock, jobs, upstream, runs):
    # Given two jobs calling the same origin, which answers 503
    # When three calls from either job fail within the window
    open_the_circuit(runs)

    # Then the circuit is open for both jobs: their next steps are skipped without a request
    assert upstream.calls == 3
    assert runs.step("job-b") == (StepStatus.SKIPPED, CIRCUIT_OPEN)
    assert runs.step("job-a") == (StepStatus.SKIPPED, CIRCUIT_OPEN)
    assert upstream.calls == 3
    assert health(store, jobs["job-a"], clock) == "open"
    assert health(store, jobs["job-b"], clock) == "open"


def test_failures_spread_wider_than_the_window_keep_it_closed(store, clock, jobs, upstream, runs):
    for _ in range(5):
        assert runs.step("job-a") == (StepStatus.FAILED, None)
        clock.advance(timedelta(seconds=31))  # never three failures inside one minute
    assert upstream.calls == 5
    assert health(store, jobs["job-b"], clock) == "closed"


def test_after_the_cool_down_one_probe_goes_through_and_its_success_closes(
    store, clock, jobs, upstream, runs
):
    # Given an open circuit whose cool-down has passed, and an upstream that recovered but is slow
    open_the_circuit(runs)
    clock.advance(POLICY.cool_down)
    assert health(store, jobs["job-b"], clock) == "half-open"
    upstream.status = 200
    upstream.gate.clear()
    upstream.arrived.clear()

    # When job-a's step becomes the probe, and job-b's step comes while the probe is in flight
    with ThreadPoolExecutor(max_workers=1) as pool:
        probe = pool.submit(runs.step, "job-a")
        assert upstream.arrived.wait(timeout=10)
        second = runs.step("job-b")
        upstream.gate.set()
        first = probe.result(timeout=10)

    # Then only the probe called the endpoint; its success closed the circuit for both jobs
    assert first == (StepStatus.SUCCEEDED, None)
    assert second == (StepStatus.SKIPPED, CIRCUIT_OPEN)
    assert upstream.calls == 4
    assert health(store, jobs["job-b"], clock) == "closed"
    assert runs.step("job-b") == (StepStatus.SUCCEEDED, None)
    assert upstream.calls == 5


def test_a_failed_probe_opens_it_again_for_another_cool_down(store, clock, jobs, upstream, runs):
    open_the_circuit(runs)
    clock.advance(POLICY.cool_down)

    assert runs.step("job-b") == (StepStatus.FAILED, None)  # the probe, still 503

    assert upstream.calls == 4
    assert health(store, jobs["job-a"], clock) == "open"
    assert runs.step("job-a") == (StepStatus.SKIPPED, CIRCUIT_OPEN)
    clock.advance(POLICY.cool_down - timedelta(seconds=1))
    assert runs.step("job-a") == (StepStatus.SKIPPED, CIRCUIT_OPEN)
    clock.advance(timedelta(seconds=1))
    upstream.status = 200
    assert runs.step("job-a") == (StepStatus.SUCCEEDED, None)
    assert health(store, jobs["job-b"], clock) == "closed"
    assert upstream.calls == 5


def test_exactly_one_of_many_concurrent_callers_becomes_the_probe(store, clock, jobs, upstream, runs):
    open_the_circuit(runs)
    clock.advance(POLICY.cool_down)
    breaker = CircuitBreaker(DynamoHealthStore(store.table_name, store.client), clock, POLICY)
    url = upstream.server.url("/a")
    barrier = threading.Barrier(16)

    def acquire() -> bool:
        barrier.wait()
        return breaker.acquire(url).is_probe

    with ThreadPoolExecutor(max_workers=16) as pool:
        probes = list(pool.map(lambda _: acquire(), range(16)))

    assert probes.count(True) == 1


def test_a_probe_that_never_reports_is_replaced_after_the_probe_timeout(store, clock, jobs, upstream, runs):
    open_the_circuit(runs)
    clock.advance(POLICY.cool_down)
    breaker = CircuitBreaker(DynamoHealthStore(store.table_name, store.client), clock, POLICY)
    url = upstream.server.url("/a")
    lost = breaker.acquire(url)  # its Lambda dies before reporting
    assert lost.is_probe
    assert not breaker.acquire(url).allowed

    clock.advance(POLICY.probe_timeout)
    upstream.status = 200
    assert runs.step("job-b") == (StepStatus.SUCCEEDED, None)
    breaker.record_failure(lost)  # the lost probe reports late: the newer probe already decided
    assert breaker.state(origin_of(url)) == CircuitState.CLOSED


def test_the_health_item_is_keyed_by_origin_and_holds_no_path(store, clock, jobs, upstream, runs):
    open_the_circuit(runs)
    origin = f"http://127.0.0.1:{upstream.server.port}"
    item = store.client.get_item(
        TableName=store.table_name, Key={k: {"S": v} for k, v in schema.endpoint_health_key(origin).items()}
    )["Item"]
    assert item["state"] == {"S": "open"}
    assert int(item["version"]["N"]) == 3
    assert "/a" not in str(item)
    assert schema.TTL_ATTRIBUTE in item


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://API.Example.com/x?y=1", "https://api.example.com:443"),
        ("http://example.com./a", "http://example.com:80"),
        ("https://example.com:8443/", "https://example.com:8443"),
        ("http://[::1]:81/p", "http://[::1]:81"),
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin


def _outcome(ok: bool, status: int | None, kind: str | None) -> HttpOutcome:
    return HttpOutcome(
        ok=ok,
        http_status=status,
        attempts=1,
        latency_ms=1,
        body="",
        body_truncated=False,
        body_bytes=0,
        error=None if ok else "x",
        error_kind=kind,
        final_url=None,
        redirects=0,
    )


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (_outcome(True, 200, None), False),
        (_outcome(False, 404, "http-status"), False),
        (_outcome(False, 429, "http-status"), True),
        (_outcome(False, 503, "http-status"), True),
        (_outcome(False, None, "connect"), True),
        (_outcome(False, None, "timeout"), True),
        (_outcome(False, 200, "too-large"), False),
        (_outcome(False, None, "egress-denied"), None),
        (_outcome(False, None, "invalid-request"), None),
    ],
)
def test_which_outcomes_count_against_the_endpoint(outcome, verdict):
    assert counts_as_failure(outcome) is verdict


def test_a_probe_whose_call_raised_is_released_for_the_next_caller(store, clock, jobs, upstream, runs):
    open_the_circuit(runs)
    clock.advance(POLICY.cool_down)
    breaker = CircuitBreaker(DynamoHealthStore(store.table_name, store.client), clock, POLICY)

    def broken_send(spec):
        raise RuntimeError("the secret could not be read")

    crashing = Runs(StepExecutor(store, clock, broken_send, breaker=breaker))
    crashing.count = runs.count  # a run id of its own
    with pytest.raises(RuntimeError):
        crashing.step("job-a")

    # the next caller becomes the probe at once instead of waiting out the probe timeout
    assert breaker.acquire(upstream.server.url("/b")).is_probe


class FailingDynamoDB:
    def __getattr__(self, name):
        def fail(**kwargs):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, name)

        return fail


def test_recording_an_outcome_never_fails_the_step_that_already_called(clock):
    breaker = CircuitBreaker(DynamoHealthStore("t", FailingDynamoDB()), clock, POLICY)  # type: ignore[arg-type]
    permit = Permit("http://127.0.0.1:1", allowed=True)

    breaker.record(permit, _outcome(False, 503, "http-status"))  # does not raise

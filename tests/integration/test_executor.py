"""The executor against real servers on 127.0.0.1 and moto: dependency outcomes, and the real handler's
idempotency (a re-invoked step never calls its endpoint twice)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_network
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from cronpilot import runtime
from cronpilot.clock import FixedClock
from cronpilot.dal.idempotency import EXECUTOR_PARTITION, EXPIRES_AFTER
from cronpilot.dal.store import Store
from cronpilot.domain.execution import StepExecutor, idempotency_key
from cronpilot.domain.ports import JobNotFound
from cronpilot.local.cloud import LambdaContext, load_handler
from cronpilot.models.run import PlanStep, StepStatus, StepTask, make_run_id
from cronpilot.safehttp import EgressPolicy, SafeHttpClient

from tests.integration.conftest import START, TABLE
from tests.integration.http_servers import LoopbackHTTPServer, RecordedRequest, Reply
from tests.support.factories import make_job

RUN_ID = make_run_id("job-1", START)


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as srv:
        srv.route("GET", "/ok", Reply(200, body=b'{"ok": true}'))
        srv.route("GET", "/fail", Reply(500, body=b"broken"))
        srv.route("POST", "/charge", Reply(201, body=b'{"charged": 1}'))
        yield srv


@pytest.fixture
def job(store: Store, clock: FixedClock, server: LoopbackHTTPServer) -> Any:
    job = make_job(
        endpoints=[
            {"id": "a", "url": server.url("/fail"), "retryable": False},
            {"id": "b", "url": server.url("/ok"), "depends_on": ["a"]},
            {"id": "c", "url": server.url("/ok"), "depends_on": ["b"]},
            {"id": "d", "url": server.url("/ok"), "depends_on": ["a"], "on_dependency_failure": "continue"},
            {"id": "e", "url": server.url("/ok"), "depends_on": ["d"]},
            {"id": "charge", "method": "POST", "url": server.url("/charge"), "body": {"amount": 1}},
        ]
    )
    store.put_job(job, next_run_at=START, source="baseline", reason="test", now=clock.now())
    return job


@pytest.fixture
def executor(store: Store, clock: FixedClock, server: LoopbackHTTPServer) -> StepExecutor:
    policy = EgressPolicy(allowed_cidrs=(ip_network("127.0.0.0/8"),), allowed_ports=frozenset({server.port}))
    return StepExecutor(store, clock, SafeHttpClient(policy).send)


def task(step_id: str, *depends_on: str, endpoint_id: str | None = None) -> StepTask:
    step = PlanStep(step_id=step_id, endpoint_id=endpoint_id or step_id, depends_on=list(depends_on))
    return StepTask(run_id=RUN_ID, job_id="job-1", epoch=0, step=step)


# ------------------------------------------------------------------ dependency outcomes


def test_a_failed_dependency_skips_the_step_without_calling_it(store, job, executor, server):
    assert executor.execute(task("a")).status == StepStatus.FAILED

    outcome = executor.execute(task("b", "a"))

    assert outcome.status == StepStatus.SKIPPED
    assert store.get_step_results(RUN_ID, ["b"])["b"].skip_reason == "dependency a failed"
    assert server.paths() == ["/fail"]


def test_a_skipped_dependency_skips_the_step_in_turn(store, job, executor, server):
    executor.execute(task("a"))
    executor.execute(task("b", "a"))

    outcome = executor.execute(task("c", "b"))

    assert outcome.status == StepStatus.SKIPPED
    assert store.get_step_results(RUN_ID, ["c"])["c"].skip_reason == "dependency b skipped"
    assert server.paths() == ["/fail"]


def test_a_missing_dependency_result_skips_the_step(store, job, executor, server):
    outcome = executor.execute(task("b", "a"))

    assert outcome.status == StepStatus.SKIPPED
    assert store.get_step_results(RUN_ID, ["b"])["b"].skip_reason == "dependency a missing"
    assert server.paths() == []


def test_a_step_whose_job_was_deleted_fails_without_calling_and_records_nothing(store, job, executor, server):
    store.delete_job(store.get_job("job-1"), START)

    with pytest.raises(JobNotFound):
        executor.execute(task("a"))

    assert server.paths() == []
    assert store.get_step_results(RUN_ID) == {}


def test_on_dependency_failure_continue_calls_the_endpoint_anyway(store, job, executor, server):
    executor.execute(task("a"))

    outcome = executor.execute(task("d", "a"))

    assert outcome.status == StepStatus.SUCCEEDED
    result = store.get_step_results(RUN_ID, ["d"])["d"]
    assert (result.http_status, result.skip_reason, result.body) == (200, None, '{"ok": true}')
    assert server.paths() == ["/fail", "/ok"]
    # ... and its own dependants see a success
    assert executor.execute(task("e", "d")).status == StepStatus.SUCCEEDED


def test_every_call_carries_the_idempotency_key_of_run_and_step(store, job, executor, server):
    executor.execute(task("charge"))

    [request] = server.requests
    assert request.headers["idempotency-key"] == idempotency_key(RUN_ID, "charge")
    assert request.body == b'{"amount": 1}'


# ------------------------------------------------------------------ the real handler


@pytest.fixture
def handler_env(store, job, server, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("EGRESS_ALLOWED_CIDRS", "127.0.0.0/8")
    monkeypatch.setenv("EGRESS_ALLOWED_PORTS", f"80,443,{server.port}")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    runtime.reset()
    runtime.override(clock=FixedClock(START))
    yield
    runtime.reset()


def charge_event() -> dict[str, Any]:
    return task("charge").model_dump(mode="json")


def context(request_id: str) -> LambdaContext:
    return LambdaContext(function_name="cronpilot-executor", aws_request_id=request_id)


def idempotency_items(store: Store) -> list[dict[str, Any]]:
    return store.client.query(
        TableName=store.table_name,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": EXECUTOR_PARTITION}},
    )["Items"]


def test_a_repeated_invocation_calls_the_endpoint_once(store, handler_env, server, caplog):
    # Given the executor handler ran the step once
    handler = load_handler("executor")
    first = handler(charge_event(), context("req-1"))

    # When Lambda retries in the same container, and Step Functions retries in a fresh one
    again = handler(charge_event(), context("req-2"))
    elsewhere = load_handler("executor")(charge_event(), context("req-3"))

    # Then the endpoint saw one request and every invocation returned the stored outcome
    assert first == again == elsewhere == {"step_id": "charge", "status": "succeeded"}
    assert server.paths() == ["/charge"]
    assert caplog.messages.count("step replayed from its idempotency record") == 2
    [record] = idempotency_items(store)
    assert record["idempotency_status"] == {"S": "COMPLETED"}
    expires_in = int(record["expires_at"]["N"]) - time.time()
    assert EXPIRES_AFTER.total_seconds() - 60 < expires_in <= EXPIRES_AFTER.total_seconds()
    assert record["SK"]["S"].startswith("executor#")


def test_a_concurrent_duplicate_is_refused_while_the_first_call_is_in_flight(store, handler_env, server):
    # Given the endpoint holds the first call open
    gate, arrived = threading.Event(), threading.Event()

    def slow(request: RecordedRequest) -> Reply:
        arrived.set()
        gate.wait(timeout=10)
        return Reply(201, body=b"{}")

    server.route("POST", "/charge", slow)
    handler = load_handler("executor")
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(handler, charge_event(), context("req-1"))
        assert arrived.wait(timeout=10)

        # When a duplicate invocation arrives meanwhile (an at-least-once retry racing the original)
        with pytest.raises(IdempotencyAlreadyInProgressError):
            load_handler("executor")(charge_event(), context("req-2"))
        gate.set()
        assert first.result(timeout=10) == {"step_id": "charge", "status": "succeeded"}

    # Then only one request reached the endpoint; a later retry gets the stored outcome
    assert handler(charge_event(), context("req-3")) == {"step_id": "charge", "status": "succeeded"}
    assert server.paths() == ["/charge"]


def test_an_invocation_that_raised_leaves_no_record_so_the_retry_runs(
    store, handler_env, server, monkeypatch
):
    # Given the first invocation raises before calling the endpoint (its job cannot be read)
    handler = load_handler("executor")
    event = task("a").model_dump(mode="json")
    event["job_id"] = "job-that-does-not-exist"
    with pytest.raises(Exception, match="no job"):
        handler(event, context("req-1"))
    assert idempotency_items(store) == []

    # When the retry comes with a good event, it runs
    assert handler(task("a").model_dump(mode="json"), context("req-2"))["status"] == "failed"
    assert server.paths() == ["/fail"]

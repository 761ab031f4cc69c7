"""A secret canary used in headers reaches the endpoint and nowhere else: not the logs (at DEBUG), not
DynamoDB, not Step Functions' execution input, output or history, not the local-mode report."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cronpilot.clock import AcceleratedClock
from cronpilot.dal.items import unpack_doc
from cronpilot.local.cloud import TABLE_NAME, LocalCloud
from cronpilot.local.runner import apply_jobs, run_report, tick_until
from cronpilot.models.run import StepStatus
from cronpilot.observability import logger
from cronpilot.runtime import get_runtime
from cronpilot.safehttp.signing import generate_key

from tests.e2e.conftest import START
from tests.integration.http_servers import LoopbackHTTPServer, Reply
from tests.support.factories import make_job


def readable(items: list[dict[str, Any]]) -> str:
    """The table's items as text to search, packed documents (zlib Binary) unpacked: a secret inside
    one is no less stored than one in a plain attribute."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return unpack_doc(value)
        if isinstance(value, dict):
            return {key: plain(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [plain(inner) for inner in value]
        return value

    return json.dumps(plain(items))


SECRET_CANARY = f"canary-secret-{uuid.uuid4().hex}"
PARAMETER_CANARY = f"canary-param-{uuid.uuid4().hex}"
CANARIES = (SECRET_CANARY, PARAMETER_CANARY)


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as srv:
        srv.route("GET", "/secure", Reply(200, body=b'{"ok": true}'))
        srv.route("GET", "/broken", Reply(500, body=b'{"error": "down"}'))
        srv.route("GET", "/hop", Reply(302, headers=[("Location", "/secure")]))
        yield srv


@pytest.fixture
def clock() -> AcceleratedClock:
    return AcceleratedClock(START)


@pytest.fixture
def cloud(server: LoopbackHTTPServer, clock: AcceleratedClock) -> Iterator[LocalCloud]:
    with LocalCloud(
        clock,
        egress_allowed_cidrs="127.0.0.0/8",
        egress_allowed_ports=f"80,443,{server.port}",
        extra_env={"POWERTOOLS_LOG_LEVEL": "DEBUG"},
    ) as local:
        yield local


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """Everything the handlers' Logger writes, at DEBUG. It read POWERTOOLS_LOG_LEVEL and bound its
    stream when this process first imported it, so both are pointed here for the test."""
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous_level = logger.log_level
    buffer = io.StringIO()
    previous_stream = handler.setStream(buffer)
    logger.setLevel(logging.DEBUG)
    yield buffer
    logger.setLevel(previous_level)
    if previous_stream is not None:
        handler.setStream(previous_stream)


def assert_no_canary(where: str, text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"a secret canary leaked into {where}"


def test_a_secret_canary_reaches_the_endpoint_and_nothing_else(
    cloud, clock, server, debug_logs, capfd, caplog
):
    caplog.set_level(logging.DEBUG, logger="aws_lambda_powertools")
    caplog.set_level(logging.DEBUG, logger="cronpilot")
    # Given header values kept in Secrets Manager (JSON, one key) and SSM (SecureString)
    cloud.client("secretsmanager").create_secret(
        Name="cronpilot/partner", SecretString=json.dumps({"token": SECRET_CANARY})
    )
    cloud.client("ssm").put_parameter(Name="/cronpilot/api-key", Value=PARAMETER_CANARY, Type="SecureString")
    secret_headers: dict[str, Any] = {
        "Authorization": {"secret": "cronpilot/partner", "json_key": "token"},
        "X-Api-Key": {"parameter": "/cronpilot/api-key"},
    }
    job = make_job(
        "canary",
        schedule={"rate": "10m"},
        endpoints=[
            {"id": "secure", "url": server.url("/secure"), "headers": secret_headers},
            {"id": "broken", "url": server.url("/broken"), "headers": secret_headers, "retryable": False},
            {"id": "hop", "url": server.url("/hop"), "headers": secret_headers},
        ],
    )
    store = get_runtime().store
    apply_jobs(store, [job], clock.now())

    # When the job runs end to end in local mode, logging at DEBUG
    tick_until(cloud, clock, store, ticks=1)

    # Then the endpoint received both values on every call
    [run] = store.list_runs("canary")[0]
    results = store.get_step_results(run.run_id)
    assert {k: r.status for k, r in results.items()} == {
        "secure": StepStatus.SUCCEEDED,
        "broken": StepStatus.FAILED,
        "hop": StepStatus.SUCCEEDED,
    }
    assert len(server.requests) == 4  # /secure, /broken, /hop and its same-origin redirect
    for request in server.requests:
        assert request.headers["authorization"] == SECRET_CANARY
        assert request.headers["x-api-key"] == PARAMETER_CANARY

    # ... and it is nowhere else: logs (stdout, stderr, log records), which did log the run at DEBUG
    out, err = capfd.readouterr()
    structured = debug_logs.getvalue()
    assert '"message":"step done"' in structured
    assert "DEBUG" in caplog.text
    logs = structured + out + err + caplog.text
    assert_no_canary("the logs", logs)

    # ... DynamoDB: every item of the table (jobs, runs, step results, health, idempotency records)
    dynamodb = cloud.client("dynamodb")
    items = [
        item
        for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME)
        for item in page["Items"]
    ]
    kinds = {item["PK"]["S"].split("#", 1)[0] for item in items}
    assert {"job", "run", "endpoint", "idempotency"} <= kinds
    assert_no_canary("DynamoDB", readable(items))

    # ... Step Functions: execution input, output and the whole history
    sfn = cloud.client("stepfunctions")
    [execution] = cloud.executions()
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "SUCCEEDED"
    history = [
        event
        for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution["executionArn"]
        )
        for event in page["events"]
    ]
    assert any(e["type"] == "TaskScheduled" for e in history)
    assert_no_canary("the execution input/output", json.dumps(described, default=str))
    assert_no_canary("the execution history", json.dumps(history, default=str))

    # ... the Lambda payloads local mode passed to the handlers
    assert_no_canary("Lambda payloads", json.dumps(cloud.invocations, default=str))

    # ... and the local-mode report
    report = run_report(store, cloud, ["canary"])
    assert [s["step_id"] for s in report["runs"][0]["steps"]]
    assert_no_canary("the local-mode report", json.dumps(report))


def test_a_hidden_extracted_value_and_a_signing_key_stay_out_of_logs_payloads_and_reports(
    cloud, clock, server, debug_logs, capfd, caplog
):
    caplog.set_level(logging.DEBUG, logger="cronpilot")
    token = f"canary-token-{uuid.uuid4().hex}"
    signing_key = generate_key()
    server.route("POST", "/login", Reply(200, body=json.dumps({"token": token, "cursor": "page-2"}).encode()))
    server.route("GET", "/items", Reply(200, body=b'{"ok": true}'))
    cloud.client("secretsmanager").create_secret(Name="cronpilot/signing", SecretString=signing_key)
    # Given a token extracted (hidden) by one step and sent by the next, with every request signed
    job = make_job(
        "hidden",
        schedule={"rate": "10m"},
        signing={"secret": "cronpilot/signing"},
        endpoints=[
            {
                "id": "login",
                "method": "POST",
                "url": server.url("/login"),
                "extract": {"token": "token", "cursor": {"path": "cursor", "show": True}},
            },
            {
                "id": "items",
                "url": server.url("/items?c={{ steps.login.cursor }}"),
                "headers": {"Authorization": "Bearer {{ steps.login.token }}"},
                "depends_on": ["login"],
            },
        ],
    )
    store = get_runtime().store
    apply_jobs(store, [job], clock.now())

    tick_until(cloud, clock, store, ticks=1)

    # Then the token reached the next step, and the signing key signed both calls
    [run] = store.list_runs("hidden")[0]
    results = store.get_step_results(run.run_id)
    assert {r.status for r in results.values()} == {StepStatus.SUCCEEDED}
    items = [r for r in server.requests if r.path.startswith("/items")]
    assert items[0].headers["authorization"] == f"Bearer {token}"
    # And the token is stored only as the producer's value: masked in its kept body, absent elsewhere
    assert results["login"].outputs["token"] == token
    assert token not in results["login"].body
    out, err = capfd.readouterr()
    everywhere_but_the_store = {
        "the logs": debug_logs.getvalue() + out + err + caplog.text,
        "the execution history": json.dumps(
            [
                event
                for execution in cloud.executions()
                for page in cloud.client("stepfunctions")
                .get_paginator("get_execution_history")
                .paginate(executionArn=execution["executionArn"])
                for event in page["events"]
            ],
            default=str,
        ),
        "Lambda payloads": json.dumps(cloud.invocations, default=str),
        "the local-mode report": json.dumps(run_report(store, cloud, ["hidden"])),
        "the summary": run.summary or "",
    }
    for where, text in everywhere_but_the_store.items():
        assert token not in text, f"a hidden extracted value leaked into {where}"
        assert signing_key.removeprefix("whsec_") not in text, f"the signing key leaked into {where}"
    items_in_table = readable(
        [
            i
            for page in cloud.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE_NAME)
            for i in page["Items"]
        ]
    )
    assert signing_key.removeprefix("whsec_") not in items_in_table

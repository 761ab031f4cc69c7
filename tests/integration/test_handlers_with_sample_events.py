"""Each handler, invoked with its sample event from events/, against moto (no state machine execution)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import boto3
import pytest
from cronpilot import runtime
from cronpilot.clock import FixedClock
from cronpilot.dal import schema
from cronpilot.dal.store import Store
from cronpilot.local.cloud import (
    ASL_SUBSTITUTIONS,
    LambdaContext,
    load_handler,
    render_asl,
    serialize_dynamodb_writes,
)
from cronpilot.models.run import RunStatus

from tests.conftest import load_event
from tests.integration.conftest import START
from tests.integration.http_servers import LoopbackHTTPServer, Reply
from tests.support.factories import make_job


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as srv:
        srv.route("GET", "/status", Reply(status=503, body=b"down"))
        yield srv


@pytest.fixture
def deployed(server, monkeypatch) -> Iterator[Store]:
    from moto import mock_aws

    with mock_aws():
        undo = serialize_dynamodb_writes()
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**schema.create_table_request("handlers"))
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
        definition = render_asl(dict.fromkeys(ASL_SUBSTITUTIONS, arn))
        machine = boto3.client("stepfunctions", region_name="us-east-1").create_state_machine(
            name="m", definition=definition, roleArn=role
        )["stateMachineArn"]
        monkeypatch.setenv("TABLE_NAME", "handlers")
        monkeypatch.setenv("STATE_MACHINE_ARN", machine)
        monkeypatch.setenv("EGRESS_ALLOWED_CIDRS", "127.0.0.0/8")
        monkeypatch.setenv("EGRESS_ALLOWED_PORTS", f"80,443,{server.port}")
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        runtime.reset()
        runtime.override(clock=FixedClock(START))
        store = runtime.get_runtime().store
        job = make_job(
            "sample-job",
            schedule={"rate": "5m"},
            guardrails={"min_interval": "5m", "max_interval": "1h"},
            endpoints=[{"id": "status", "url": server.url("/status"), "retryable": False}],
        )
        store.put_job(job, next_run_at=START, source="baseline", reason="sample", now=START)
        try:
            yield store
        finally:
            runtime.reset()
            undo()
    os.environ.pop("STATE_MACHINE_ARN", None)


def invoke(name: str, event: dict) -> dict:
    return load_handler(name)(event, LambdaContext(function_name=name, aws_request_id="req-1"))


def test_discovery_event_claims_the_due_job(deployed):
    result = invoke("discovery", load_event("discovery"))
    assert result["claimed"] == ["sample-job.20261122T090000Z"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    [execution] = sfn.list_executions(stateMachineArn=os.environ["STATE_MACHINE_ARN"])["executions"]
    assert execution["name"] == "sample-job.20261122T090000Z"


def test_planner_executor_summarizer_events_drive_one_run(deployed, server):
    invoke("discovery", load_event("discovery"))
    plan = invoke("planner", load_event("planner"))
    assert plan == {
        "waves": [[{"step_id": "status", "endpoint_id": "status", "depends_on": []}]],
        "max_parallel": 5,
    }
    step = invoke("executor", load_event("executor"))
    assert step == {"step_id": "status", "status": "failed"}
    assert len(server.requests) == 1
    outcome = invoke("summarizer", load_event("summarizer"))
    assert outcome == {"status": RunStatus.FAILED}
    run = deployed.get_run("sample-job.20261122T090000Z")
    assert run.next_run.source == "backoff"


def test_finalize_failure_event_records_the_timeout(deployed):
    invoke("discovery", load_event("discovery"))
    outcome = invoke("finalize_failure", load_event("finalize_failure"))
    assert outcome == {"status": RunStatus.FAILED}
    run = deployed.get_run("sample-job.20261122T090000Z")
    assert run.error == "States.Timeout: Sandbox.Timedout: Task timed out after 300.00 seconds"
    assert deployed.get_job("sample-job").state.lease_owner is None


def test_an_execution_that_timed_out_past_its_catch_is_finalized_from_the_status_change(deployed):
    # Given a run whose execution hit the state machine's own timeout (which no Catch sees)
    invoke("discovery", load_event("discovery"))
    # When EventBridge delivers the status change to finalize-failure
    outcome = invoke("finalize_failure", load_event("finalize_failure_execution_timed_out"))
    # Then the run is recorded as failed with why, and the lease is released at once
    assert outcome == {"status": RunStatus.FAILED}
    run = deployed.get_run("sample-job.20261122T090000Z")
    assert run.error == "States.Timeout: the execution ran past the state machine's TimeoutSeconds"
    assert deployed.get_job("sample-job").state.lease_owner is None
    assert run.next_run.source == "backoff"
    # And a second delivery of the same notice changes nothing
    assert invoke("finalize_failure", load_event("finalize_failure_execution_timed_out")) == {
        "status": RunStatus.FAILED
    }


def test_a_stale_epoch_is_fenced_everywhere(deployed):
    invoke("discovery", load_event("discovery"))
    stale = {**load_event("finalize_failure"), "epoch": 0}
    assert invoke("finalize_failure", stale) == {"status": "fenced"}
    with pytest.raises(Exception, match="epoch"):
        invoke("planner", {**load_event("planner"), "epoch": 0})


def emf_metrics(output: str) -> dict[str, list]:
    import json

    found: dict[str, list] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"]:
                for metric in definition["Metrics"]:
                    found[metric["Name"]] = document[metric["Name"]]
    return found


def test_handlers_emit_the_metrics_the_dashboard_and_alarms_read(deployed, monkeypatch, capsys):
    # Given metrics enabled (the fixture disables them for the other tests)
    from cronpilot.observability import metrics

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()  # drop what earlier tests buffered while metrics were disabled
    capsys.readouterr()
    # When a run goes through discovery, executor and summarizer
    invoke("discovery", load_event("discovery"))
    discovery = emf_metrics(capsys.readouterr().out)
    invoke("planner", load_event("planner"))
    capsys.readouterr()
    invoke("executor", load_event("executor"))
    executor = emf_metrics(capsys.readouterr().out)
    invoke("summarizer", load_event("summarizer"))
    summarizer = emf_metrics(capsys.readouterr().out)
    # Then each emits its metrics under the names the CDK monitoring construct uses
    assert discovery["RunsClaimed"] == [1.0]
    assert discovery["JobsDue"] == [1.0]
    assert discovery["LeasesStuck"] == [0.0]
    assert "DiscoveryLagSeconds" in discovery
    assert executor["EndpointFailures"] == [1.0]
    assert executor["EndpointLatency"][0] >= 0
    assert summarizer["RunsFailed"] == [1.0]


def test_api_event_reads_the_job(deployed):
    # Given the HTTP API's sample event (GET /jobs/sample-job, signed by an IAM principal)
    response = invoke("api", load_event("api"))
    # Then the resolver answers with the job and its ETag
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["job"]["id"] == "sample-job"
    assert response["headers"]["ETag"] == body["etag"]

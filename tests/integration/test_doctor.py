"""`cronpilot doctor` against a deployment on moto: the stack's outputs lead to the table, the state
machine, the tick metric, the alarm topic, the Anthropic key and the job secrets; one line each,
every failure with its fix, exit code 1 while anything fails."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cronpilot.cli import app
from cronpilot.cli.common import EXIT_INVALID, EXIT_TARGET
from cronpilot.dal import schema
from typer.testing import CliRunner

from tests.support.factories import endpoint, job_doc

REGION = "us-east-1"
STACK = "cronpilot-prod"
TABLE = "cronpilot-prod-data"
ANTHROPIC_SECRET = "cronpilot-prod/anthropic-api-key"


def _client(name: str) -> Any:
    return boto3.client(name, region_name=REGION)


@pytest.fixture
def deployed(aws: None) -> dict[str, str]:
    """What `make deploy STAGE=prod` leaves: the resources, and the stack outputs naming them."""
    _client("dynamodb").create_table(**schema.create_table_request(TABLE))
    machine = _client("stepfunctions").create_state_machine(
        name="cronpilot-prod-run",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/cronpilot-prod-run",
    )["stateMachineArn"]
    topic = _client("sns").create_topic(Name="cronpilot-prod-alarms")["TopicArn"]
    # the deploy-time placeholder: a random password, as CDK's Secret generates
    secret = _client("secretsmanager").create_secret(Name=ANTHROPIC_SECRET, SecretString="Zq8!x" * 6)["ARN"]
    outputs = {
        "TableName": TABLE,
        "StateMachineArn": machine,
        "AlarmTopicArn": topic,
        "AnthropicSecretArn": secret,
        "JobSecretPrefix": "cronpilot/prod/",
        "TickMinutes": "1",
        "MetricsService": "cronpilot-prod",
    }
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    _client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    return outputs


def _doctor(*extra: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["--stack", STACK, "--region", REGION, "doctor", *extra])
    return result.exit_code, result.output.strip().splitlines()


def _line(lines: list[str], check: str) -> str:
    (found,) = [line for line in lines if line.split(maxsplit=1)[1].startswith(f"{check}:")]
    return found


def _tick(at: datetime) -> None:
    _client("cloudwatch").put_metric_data(
        Namespace="cronpilot",
        MetricData=[
            {
                "MetricName": "DiscoveryLagSeconds",
                "Dimensions": [{"Name": "service", "Value": "cronpilot-prod"}],
                "Timestamp": at,
                "Value": 4.0,
            }
        ],
    )


def _apply(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / f"{doc['id']}.json"
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["--stack", STACK, "--region", REGION, "jobs", "apply", str(path)])
    assert result.exit_code == 0, result.output


def test_a_fresh_deployment_says_what_is_missing(deployed: dict[str, str]) -> None:
    # Given a deployment nobody has touched since `make deploy` (no tick yet, no subscriber, no key)
    # When the operator runs doctor
    code, lines = _doctor()
    # Then each check is one line; the failures name their fix
    assert code == EXIT_INVALID
    assert _line(lines, "table").startswith("ok")
    assert "cronpilot-prod-run exists" in _line(lines, "state machine")
    assert _line(lines, "discovery").startswith("FAIL")
    assert "cronpilot-prod-tick" in _line(lines, "discovery")
    alarms = _line(lines, "alarms")
    assert alarms.startswith("FAIL")
    assert "reach nobody" in alarms
    assert f"aws sns subscribe --topic-arn {deployed['AlarmTopicArn']}" in alarms
    key = _line(lines, "llm key")
    assert key.startswith("FAIL")
    assert "placeholder" in key
    assert "put-secret-value --secret-id" in key
    assert _line(lines, "jobs").startswith("warn")
    assert "cronpilot jobs apply" in _line(lines, "jobs")


def test_a_healthy_deployment_passes_and_each_job_secret_is_checked(
    deployed: dict[str, str], tmp_path: Path
) -> None:
    # Given a recent tick, a confirmed subscriber and the real key
    _tick(datetime.now(UTC) - timedelta(seconds=30))
    _client("sns").subscribe(
        TopicArn=deployed["AlarmTopicArn"],
        Protocol="sqs",
        Endpoint="arn:aws:sqs:us-east-1:123456789012:pager",
    )
    _client("secretsmanager").put_secret_value(SecretId=ANTHROPIC_SECRET, SecretString="sk-ant-api03-test")
    # And jobs whose headers reference secrets: one readable, one JSON one with its key, one parameter
    secrets = _client("secretsmanager")
    secrets.create_secret(Name="cronpilot/prod/orders-api-token", SecretString="Bearer abc")
    secrets.create_secret(Name="cronpilot/prod/warehouse", SecretString=json.dumps({"token": "t"}))
    _client("ssm").put_parameter(Name="/cronpilot/prod/db", Value="Basic xyz", Type="SecureString")
    _apply(
        tmp_path,
        job_doc(
            "orders-sync",
            endpoints=[
                endpoint("fetch", headers={"Authorization": {"secret": "cronpilot/prod/orders-api-token"}}),
                endpoint(
                    "push", headers={"X-Token": {"secret": "cronpilot/prod/warehouse", "json_key": "token"}}
                ),
                endpoint("db", headers={"Authorization": {"parameter": "/cronpilot/prod/db"}}),
            ],
        ),
    )
    # When doctor runs, Then everything passes
    code, lines = _doctor()
    assert code == 0, lines
    assert all(line.startswith("ok") for line in lines), lines
    secret_lines = [line for line in lines if "job secrets:" in line]
    assert len(secret_lines) == 3
    assert any(
        "cronpilot/prod/orders-api-token is readable (used by orders-sync/fetch Authorization)" in x
        for x in secret_lines
    )
    # And no secret value appears in what doctor prints
    for value in ("Bearer abc", "sk-ant-api03-test", "Basic xyz"):
        assert not any(value in line for line in lines)


def test_job_secrets_missing_outside_the_prefix_or_unusable_are_failures(
    deployed: dict[str, str], tmp_path: Path
) -> None:
    _tick(datetime.now(UTC))
    secrets = _client("secretsmanager")
    key = _client("kms").create_key()["KeyMetadata"]["KeyId"]
    secrets.create_secret(Name="cronpilot/prod/own-key", SecretString="Bearer k", KmsKeyId=key)
    secrets.create_secret(Name="cronpilot/prod/not-json", SecretString="Bearer plain")
    _apply(
        tmp_path,
        job_doc(
            "orders-sync",
            endpoints=[
                # the example file's dev name, applied to prod
                endpoint("a", headers={"Authorization": {"secret": "cronpilot/dev/orders-api-token"}}),
                endpoint("b", headers={"Authorization": {"secret": "cronpilot/prod/never-created"}}),
                endpoint("c", headers={"Authorization": {"secret": "cronpilot/prod/own-key"}}),
                endpoint(
                    "d", headers={"X-Token": {"secret": "cronpilot/prod/not-json", "json_key": "token"}}
                ),
                endpoint("e", headers={"Authorization": {"parameter": "/cronpilot/prod/missing"}}),
            ],
        ),
    )
    code, lines = _doctor()
    assert code == EXIT_INVALID
    secret_lines = {
        line.split(" (used by")[0].split("job secrets: ")[1]: line for line in lines if "job secrets:" in line
    }
    assert set(secret_lines) == {
        "cronpilot/dev/orders-api-token",
        "cronpilot/prod/never-created",
        "cronpilot/prod/own-key",
        "cronpilot/prod/not-json",
        "/cronpilot/prod/missing",
    }
    assert all(line.startswith("FAIL") for line in secret_lines.values())
    assert "outside the executor's prefix cronpilot/prod/" in secret_lines["cronpilot/dev/orders-api-token"]
    assert (
        "aws secretsmanager create-secret --name cronpilot/prod/never-created"
        in secret_lines["cronpilot/prod/never-created"]
    )
    assert "customer managed KMS key" in secret_lines["cronpilot/prod/own-key"]
    assert "json_key" in secret_lines["cronpilot/prod/not-json"]
    assert "aws ssm put-parameter --name /cronpilot/prod/missing" in secret_lines["/cronpilot/prod/missing"]


def test_a_stack_whose_table_is_gone_stops_at_the_table(deployed: dict[str, str]) -> None:
    _client("dynamodb").delete_table(TableName=TABLE)
    code, lines = _doctor()
    assert code == EXIT_INVALID
    assert len(lines) == 1
    assert lines[0].startswith(
        "FAIL table: table cronpilot-prod-data (output of cronpilot-prod) does not exist"
    )


def test_json_output_lists_every_finding(deployed: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["--stack", STACK, "--region", REGION, "doctor", "-o", "json"])
    findings = json.loads(result.stdout)
    assert {f["check"] for f in findings} == {
        "table",
        "state machine",
        "discovery",
        "alarms",
        "llm key",
        "jobs",
    }
    assert {f["verdict"] for f in findings} == {"ok", "fail", "warn"}


def test_without_a_stack_or_a_missing_stack_is_one_line(aws: None) -> None:
    result = CliRunner().invoke(app, ["doctor"], env={"CRONPILOT_STACK": ""})
    assert result.exit_code == EXIT_TARGET
    assert "--stack NAME" in result.output
    code, lines = _doctor()
    assert code == EXIT_TARGET
    assert len(lines) == 1
    assert "cannot read stack 'cronpilot-prod'" in lines[0]


def test_local_mode_reports_overdue_jobs_and_an_empty_state(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    runner = CliRunner()
    # Given no state file yet
    empty = runner.invoke(app, ["--local", "--state", str(state), "doctor"])
    assert empty.exit_code == 0
    assert empty.output.startswith("warn local state:")
    # Given a job applied long ago and never ticked
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job_doc("nightly", schedule={"rate": "10m"})))
    applied = runner.invoke(app, ["--local", "--state", str(state), "jobs", "apply", str(path)])
    assert applied.exit_code == 0, applied.output
    saved = json.loads(state.read_text())
    (job_item,) = [item for item in saved["items"] if item["SK"] == {"S": "job"}]
    job_item["next_run_at"] = {"S": "2020-01-01T00:00:00Z"}  # due years ago, never claimed
    state.write_text(json.dumps(saved))
    result = runner.invoke(app, ["--local", "--state", str(state), "doctor"])
    # Then the overdue job is a failure whose fix is a local tick
    assert result.exit_code == EXIT_INVALID, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("FAIL")]
    assert "nightly" in line
    assert "cronpilot --local local tick" in line

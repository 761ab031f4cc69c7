"""The CLI finds a deployed table from the CloudFormation stack's outputs (on moto)."""

from __future__ import annotations

import json

import boto3
from cronpilot.cli import app
from cronpilot.cli.common import EXIT_TARGET
from typer.testing import CliRunner

from tests.support.factories import job_doc

TEMPLATE = {
    "Resources": {
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": "cronpilot-prod",
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                    {"AttributeName": "due_shard", "AttributeType": "S"},
                    {"AttributeName": "due_at", "AttributeType": "S"},
                ],
                "KeySchema": [
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "due",
                        "KeySchema": [
                            {"AttributeName": "due_shard", "KeyType": "HASH"},
                            {"AttributeName": "due_at", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            },
        }
    },
    "Outputs": {"TableName": {"Value": {"Ref": "Table"}}},
}


def test_jobs_apply_and_list_through_the_stack_outputs(aws, tmp_path):
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="cronpilot-prod", TemplateBody=json.dumps(TEMPLATE)
    )
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job_doc("deployed-job")))
    runner = CliRunner()
    applied = runner.invoke(
        app, ["--stack", "cronpilot-prod", "--region", "us-east-1", "jobs", "apply", str(path)]
    )
    assert applied.exit_code == 0, applied.output
    listed = runner.invoke(
        app, ["--stack", "cronpilot-prod", "--region", "us-east-1", "jobs", "list", "-o", "json"]
    )
    assert [j["job_id"] for j in json.loads(listed.output)] == ["deployed-job"]


def test_unknown_stack_is_one_line_and_exit_code_4(aws):
    result = CliRunner().invoke(app, ["--stack", "nope", "--region", "us-east-1", "jobs", "list"])
    assert result.exit_code == EXIT_TARGET
    assert "cannot read stack 'nope'" in result.output
    assert "Traceback" not in result.output

"""The Makefile's stack chores: the import mapping for what a destroyed prod stack kept, and lifting
termination protection (against moto's CloudFormation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import stack_admin
from botocore.stub import Stubber

from tests.infra.conftest import resources

pytestmark = pytest.mark.xdist_group("infra-local")


def test_import_mapping_names_the_retained_table_and_log_groups(
    prod_json: dict[str, Any], tmp_path: Path
) -> None:
    # Given the synthesized prod template, When the mapping is written
    out = tmp_path / "import.json"
    template = tmp_path / "prod.template.json"
    template.write_text(json.dumps(prod_json))
    assert stack_admin.main(["import-mapping", str(template), str(out)]) == 0
    mapping = json.loads(out.read_text())
    # Then it holds exactly the retained resources, by the names CloudFormation imports them by
    (table_id,) = resources(prod_json, "AWS::DynamoDB::Table")
    assert mapping.pop(table_id) == {"TableName": "cronpilot-prod-data"}
    groups = resources(prod_json, "AWS::Logs::LogGroup")
    assert mapping == {k: {"LogGroupName": v["Properties"]["LogGroupName"]} for k, v in groups.items()}
    assert "/aws/vendedlogs/states/cronpilot-prod-run" in {v["LogGroupName"] for v in mapping.values()}


def test_import_mapping_refuses_a_stage_that_keeps_nothing(
    template_json: dict[str, Any], tmp_path: Path
) -> None:
    template = tmp_path / "dev.template.json"
    template.write_text(json.dumps(template_json))
    assert stack_admin.main(["import-mapping", str(template), str(tmp_path / "out.json")]) == 2
    assert not (tmp_path / "out.json").exists()


def _stubbed() -> tuple[Any, Stubber]:
    # moto does not implement UpdateTerminationProtection: the Stubber checks the exact request
    client = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


def test_unprotect_lifts_termination_protection(capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = _stubbed()
    stubber.add_response(
        "update_termination_protection",
        {"StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/cronpilot-prod/1"},
        {"EnableTerminationProtection": False, "StackName": "cronpilot-prod"},
    )
    with stubber:
        # CDK CLI arguments passed through CDK_ARGS are ignored
        assert stack_admin.main(["unprotect", "cronpilot-prod", "--require-approval", "never"], client) == 0
    stubber.assert_no_pending_responses()
    assert "lifted" in capsys.readouterr().out


def test_unprotect_of_a_missing_stack_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = _stubbed()
    stubber.add_client_error(
        "update_termination_protection", "ValidationError", "Stack [cronpilot-nope] does not exist"
    )
    with stubber:
        assert stack_admin.main(["unprotect", "cronpilot-nope"], client) == 1
    err = capsys.readouterr().err
    assert err.startswith("cannot lift termination protection of cronpilot-nope:")
    assert err.count("\n") == 1

"""The state machine and the table come from the same sources local mode uses: one ASL file, one schema."""

from __future__ import annotations

import json
import re
from typing import Any

import cronpilot_infra.paths as infra_paths
from cronpilot.dal import schema
from cronpilot.local import cloud

from tests.infra.conftest import Synthesized, resources


def _machine(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    return machine["Properties"]


def test_state_machine_is_standard_with_all_logging_and_tracing(template_json: dict[str, Any]) -> None:
    props = _machine(template_json)
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
    (destination,) = logging["Destinations"]
    group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group = template_json["Resources"][group_id]["Properties"]
    assert group["RetentionInDays"] == 30
    assert group["LogGroupName"].startswith("/aws/vendedlogs/states/")


def test_cdk_and_local_mode_deploy_the_same_asl_file(
    synthesized: Synthesized, template_json: dict[str, Any]
) -> None:
    # Given the one ASL file, When CDK stages it, Then the staged definition is that file byte for byte
    assert infra_paths.ASL_PATH == cloud.ASL_PATH
    props = _machine(template_json)
    key = props["DefinitionS3Location"]["Key"]
    staged = synthesized.outdir / f"asset.{key}"
    assert staged.read_bytes() == cloud.ASL_PATH.read_bytes()
    # And CDK substitutes exactly the placeholders local mode substitutes, each with a function ARN
    placeholders = set(re.findall(r"\$\{(\w+)\}", cloud.ASL_PATH.read_text()))
    substitutions = props["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders == set(cloud.ASL_SUBSTITUTIONS)
    functions = resources(template_json, "AWS::Lambda::Function")
    for value in substitutions.values():
        assert value["Fn::GetAtt"][0] in functions
        assert value["Fn::GetAtt"][1] == "Arn"


def test_table_matches_the_shared_schema(template_json: dict[str, Any]) -> None:
    # Given the CreateTable request local mode and the tests use, Then the deployed table has the same shape
    (table,) = resources(template_json, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    local = schema.create_table_request("any")
    assert props["KeySchema"] == local["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(local["AttributeDefinitions"], key=str)
    assert props["BillingMode"] == local["BillingMode"]
    (gsi,) = props["GlobalSecondaryIndexes"]
    (local_gsi,) = local["GlobalSecondaryIndexes"]
    assert gsi == local_gsi
    assert props["TimeToLiveSpecification"] == {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True}


def test_table_has_point_in_time_recovery_and_encryption(template_json: dict[str, Any]) -> None:
    (table,) = resources(template_json, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    # dev tables are destroyed with the stack; prod tables are retained and deletion-protected
    assert table["DeletionPolicy"] == "Delete"


def test_asl_file_is_valid_json_with_every_task_catching_into_finalize(repo_root) -> None:
    asl = json.loads(cloud.ASL_PATH.read_text())
    assert asl["States"]["FinalizeFailure"]["Next"] == "RunFailed"

"""The state machine and the table come from the same sources local mode uses: one ASL file, one schema."""

from __future__ import annotations

import json
import re
from typing import Any

import cronpilot_infra.paths as infra_paths
import pytest
from cronpilot.dal import schema
from cronpilot.local import cloud
from cronpilot_infra.settings import DeploySettings, SettingsError

from tests.infra.conftest import Synthesized, functions_by_name, grants, resources, role_statements


def _machine(template: dict[str, Any], kind: str = "STANDARD") -> dict[str, Any]:
    (machine,) = [
        m["Properties"]
        for m in resources(template, "AWS::StepFunctions::StateMachine").values()
        if m["Properties"]["StateMachineType"] == kind
    ]
    return machine


@pytest.mark.parametrize(
    ("kind", "name"), [("STANDARD", "cronpilot-dev-run"), ("EXPRESS", "cronpilot-dev-run-express")]
)
def test_both_state_machines_log_at_their_setting_and_trace(
    template_json: dict[str, Any], kind: str, name: str
) -> None:
    # Given cdk.json's defaults, Then each type logs at its own level (DeploySettings), to its own group
    props = _machine(template_json, kind)
    assert props["StateMachineName"] == name
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    setting = (
        DeploySettings().standard_log_level if kind == "STANDARD" else DeploySettings().express_log_level
    )
    assert logging["Level"] == setting
    assert logging["IncludeExecutionData"] is True
    (destination,) = logging["Destinations"]
    group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group = template_json["Resources"][group_id]["Properties"]
    assert group["RetentionInDays"] == 30
    assert group["LogGroupName"] == f"/aws/vendedlogs/states/{name}"


def test_log_levels_are_settings_per_type() -> None:
    settings = DeploySettings(standard_log_level="ALL", express_log_level="OFF")
    assert (settings.standard_log_level, settings.express_log_level) == ("ALL", "OFF")
    with pytest.raises(SettingsError, match="express_log_level 'DEBUG': one of ALL, ERROR, FATAL, OFF"):
        DeploySettings(express_log_level="DEBUG")


def test_discovery_may_start_both_and_knows_both_arns(template_json: dict[str, Any]) -> None:
    machines = {
        m["Properties"]["StateMachineType"]: key
        for key, m in resources(template_json, "AWS::StepFunctions::StateMachine").items()
    }
    discovery = functions_by_name(template_json)["discovery"]
    env = discovery["Properties"]["Environment"]["Variables"]
    assert env["STATE_MACHINE_ARN"] == {"Ref": machines["STANDARD"]}
    assert env["EXPRESS_STATE_MACHINE_ARN"] == {"Ref": machines["EXPRESS"]}
    starts = grants(role_statements(template_json, discovery["Properties"]["Role"]))["states:StartExecution"]
    assert sorted(map(str, starts)) == sorted(str({"Ref": m}) for m in machines.values())


def test_cdk_and_local_mode_deploy_the_same_asl_file(
    synthesized: Synthesized, template_json: dict[str, Any]
) -> None:
    # Given the one ASL file, When CDK stages it, Then the staged definition is that file byte for byte
    assert infra_paths.ASL_PATH == cloud.ASL_PATH
    standard, express = _machine(template_json), _machine(template_json, "EXPRESS")
    for props in (standard, express):
        key = props["DefinitionS3Location"]["Key"]
        staged = synthesized.outdir / f"asset.{key}"
        assert staged.read_bytes() == cloud.ASL_PATH.read_bytes()
    # And CDK substitutes exactly the placeholders local mode substitutes, each with a function ARN
    placeholders = set(re.findall(r"\$\{(\w+)\}", cloud.ASL_PATH.read_text()))
    substitutions = standard["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders == set(cloud.ASL_SUBSTITUTIONS)
    functions = resources(template_json, "AWS::Lambda::Function")
    for value in substitutions.values():
        assert value["Fn::GetAtt"][0] in functions
        assert value["Fn::GetAtt"][1] == "Arn"
    # And both types run the same functions
    assert express["DefinitionSubstitutions"] == substitutions


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

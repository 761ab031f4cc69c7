"""prod is protected: termination protection, logs kept with the table, and every taggable resource
tagged with the project and stage (in every stack)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import PROD_STACK, Synthesized, resources

# CloudFormation types these stacks hold that take no Tags property.
UNTAGGABLE = {
    "AWS::IAM::Policy",
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::LayerVersion",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::KMS::Alias",
    "AWS::CloudWatch::Dashboard",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Route",
    "AWS::CDK::Metadata",
}


def test_prod_stack_has_termination_protection(synthesized: Synthesized) -> None:
    assembly = synthesized.app.synth()
    assert assembly.get_stack_by_name(PROD_STACK).termination_protection is True
    assert assembly.get_stack_by_name("cronpilot-dev").termination_protection is False


def test_prod_keeps_its_log_groups_and_table(
    prod_json: dict[str, Any], template_json: dict[str, Any]
) -> None:
    groups = resources(prod_json, "AWS::Logs::LogGroup")
    assert len(groups) >= 6  # five functions and the state machine
    for group in groups.values():
        assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Retain", "Retain")
    (table,) = resources(prod_json, "AWS::DynamoDB::Table").values()
    assert table["DeletionPolicy"] == "Retain"
    # other stages clean up after themselves
    for group in resources(template_json, "AWS::Logs::LogGroup").values():
        assert group["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize(
    ("stack", "stage"), [("template_json", "dev"), ("bedrock_json", "bedrock"), ("prod_json", "prod")]
)
def test_every_taggable_resource_carries_project_and_stage(
    stack: str, stage: str, request: pytest.FixtureRequest
) -> None:
    template = request.getfixturevalue(stack)
    tagged = 0
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] in UNTAGGABLE:
            continue
        tags = resource["Properties"].get("Tags")
        assert tags is not None, (logical_id, resource["Type"])
        # most types take a list of Key/Value pairs; a few (e.g. SSM) take a map
        found = {t["Key"]: t["Value"] for t in tags} if isinstance(tags, list) else tags
        assert found.get("project") == "cronpilot", logical_id
        assert found.get("stage") == stage, logical_id
        tagged += 1
    assert tagged >= 20

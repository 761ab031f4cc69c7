"""The stack outputs the CLI reads (cronpilot.dal.deployment.read_deployment): the resources, and what
`cronpilot doctor` needs to know about the settings."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import resources, state_machine_id


def test_outputs_name_the_resources_and_the_doctors_settings(
    template_json: dict[str, Any], bedrock_json: dict[str, Any]
) -> None:
    outputs = {k: v["Value"] for k, v in template_json["Outputs"].items()}
    (table,) = resources(template_json, "AWS::DynamoDB::Table")
    machine, express = state_machine_id(template_json), state_machine_id(template_json, "EXPRESS")
    (topic,) = resources(template_json, "AWS::SNS::Topic")
    (secret,) = resources(template_json, "AWS::SecretsManager::Secret")
    assert outputs["TableName"] == {"Ref": table}
    assert outputs["StateMachineArn"] == {"Ref": machine}
    assert outputs["ExpressStateMachineArn"] == {"Ref": express}
    assert outputs["AlarmTopicArn"] == {"Ref": topic}
    assert outputs["AnthropicSecretArn"] == {"Ref": secret}
    assert (outputs["JobSecretPrefix"], outputs["TickMinutes"], outputs["MetricsService"]) == (
        "cronpilot/dev/",
        "1",
        "cronpilot-dev",
    )
    # Bedrock needs no key: doctor then skips that check
    bedrock = {k: v["Value"] for k, v in bedrock_json["Outputs"].items()}
    assert "AnthropicSecretArn" not in bedrock
    assert bedrock["TickMinutes"] == "5"

"""The discovery tick: rate expression, delivery retries, dead-letter queue."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import functions_by_name, resources


def _target(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    (rule,) = resources(template, "AWS::Events::Rule").values()
    (target,) = rule["Properties"]["Targets"]
    return rule["Properties"], target


@pytest.mark.parametrize(
    ("stack", "expression", "max_age"),
    [
        ("template_json", "rate(1 minute)", 60),
        ("bedrock_json", "rate(5 minutes)", 300),
    ],
)
def test_rule_ticks_discovery_with_retries_and_a_dead_letter_queue(
    stack: str, expression: str, max_age: int, request: pytest.FixtureRequest
) -> None:
    template = request.getfixturevalue(stack)
    rule, target = _target(template)
    assert rule["ScheduleExpression"] == expression
    assert rule["State"] == "ENABLED"
    discovery_id = next(
        k for k, v in template["Resources"].items() if v is functions_by_name(template)["discovery"]
    )
    assert target["Arn"] == {"Fn::GetAtt": [discovery_id, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": max_age}
    (queue_id,) = resources(template, "AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}


def test_dead_letter_queue_is_encrypted_and_tls_only(template_json: dict[str, Any]) -> None:
    (queue,) = resources(template_json, "AWS::SQS::Queue").values()
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    (policy,) = resources(template_json, "AWS::SQS::QueuePolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"


def test_lambda_does_not_replay_a_failed_tick(template_json: dict[str, Any]) -> None:
    # The next tick is the retry: discovery picks up every due job, so a replay would only overlap it
    (config,) = resources(template_json, "AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    assert config["Properties"]["MaximumEventAgeInSeconds"] == 60

"""The discovery tick and the ended-execution rule: patterns, delivery retries, dead-letter queue."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import functions_by_name, queue_id, resources, state_machine_id


def _rule(template: dict[str, Any], name_suffix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (rule,) = [
        r["Properties"]
        for r in resources(template, "AWS::Events::Rule").values()
        if r["Properties"]["Name"].endswith(name_suffix)
    ]
    (target,) = rule["Targets"]
    return rule, target


def _target(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return _rule(template, "-tick")


def _function_id(template: dict[str, Any], name: str) -> str:
    return next(k for k, v in template["Resources"].items() if v is functions_by_name(template)[name])


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
    assert target["Arn"] == {"Fn::GetAtt": [_function_id(template, "discovery"), "Arn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": max_age}
    dead_letters = queue_id(template, "events-dlq")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dead_letters, "Arn"]}}


def test_dead_letter_queue_is_encrypted_and_tls_only(template_json: dict[str, Any]) -> None:
    dead_letters = queue_id(template_json, "events-dlq")
    queue = template_json["Resources"][dead_letters]
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    (policy,) = [
        p
        for p in resources(template_json, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": dead_letters}]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allows) == 2  # one per rule that dead-letters here: the tick, the ended executions
    for allow in allows:
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert allow["Action"] == "sqs:SendMessage"


def test_lambda_does_not_replay_a_failed_tick(template_json: dict[str, Any]) -> None:
    # The next tick is the retry: discovery picks up every due job, so a replay would only overlap it
    (config,) = [
        c
        for c in resources(template_json, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": _function_id(template_json, "discovery")}
    ]
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    assert config["Properties"]["MaximumEventAgeInSeconds"] == 60


def test_executions_that_time_out_or_are_stopped_are_sent_to_finalize_failure(
    template_json: dict[str, Any],
) -> None:
    # No Catch sees the state machine's own timeout or a StopExecution: this rule is their finalizer
    rule, target = _rule(template_json, "-run-ended-abnormally")
    machine_id = state_machine_id(template_json)  # Express sends no status-change events
    assert rule["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"stateMachineArn": [{"Ref": machine_id}], "status": ["TIMED_OUT", "ABORTED"]},
    }
    assert target["Arn"] == {"Fn::GetAtt": [_function_id(template_json, "finalize_failure"), "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    dead_letters = queue_id(template_json, "events-dlq")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dead_letters, "Arn"]}}
    # and EventBridge may invoke that function
    permissions = resources(template_json, "AWS::Lambda::Permission").values()
    assert any(
        p["Properties"]["Principal"] == "events.amazonaws.com"
        and p["Properties"]["FunctionName"] == target["Arn"]
        for p in permissions
    )

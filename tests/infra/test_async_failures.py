"""Failed asynchronous invocations are kept: discovery's and finalize-failure's on-failure destination
is one queue, which an alarm watches."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import functions_by_name, grants, queue_id, resources, role_statements

ASYNC = {"discovery": (0, 60), "finalize_failure": (2, 6 * 3600), "notify": (2, 6 * 3600)}


def _function_id(template: dict[str, Any], name: str) -> str:
    return next(k for k, v in template["Resources"].items() if v is functions_by_name(template)[name])


@pytest.mark.parametrize("name", sorted(ASYNC))
def test_async_invocations_fail_into_the_queue(template_json: dict[str, Any], name: str) -> None:
    # Given the function invoked asynchronously (the tick rule, the ended-execution rule)
    configs = [
        c["Properties"]
        for c in resources(template_json, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": _function_id(template_json, name)}
    ]
    # Then Lambda retries it as designed and sends what still fails to the async-failures queue
    (config,) = configs
    retries, max_age = ASYNC[name]
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (retries, max_age)
    queue = queue_id(template_json, "async-failures")
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}}
    # and its role may send there (Lambda delivers with the function's role)
    role = functions_by_name(template_json)[name]["Properties"]["Role"]
    assert {"Fn::GetAtt": [queue, "Arn"]} in grants(role_statements(template_json, role))["sqs:SendMessage"]


def test_no_other_function_sends_to_the_queue(template_json: dict[str, Any]) -> None:
    for name in set(functions_by_name(template_json)) - set(ASYNC):
        role = functions_by_name(template_json)[name]["Properties"]["Role"]
        assert "sqs:SendMessage" not in grants(role_statements(template_json, role)), name


def test_queue_is_encrypted_tls_only_and_keeps_failures_two_weeks(template_json: dict[str, Any]) -> None:
    queue = queue_id(template_json, "async-failures")
    props = template_json["Resources"][queue]["Properties"]
    assert props["SqsManagedSseEnabled"] is True
    assert props["MessageRetentionPeriod"] == 14 * 24 * 3600
    (policy,) = [
        p["Properties"]
        for p in resources(template_json, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue}]
    ]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

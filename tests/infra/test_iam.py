"""Each function's role: exactly the actions it uses, on the resources it uses them on."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest
from cronpilot.dal import idempotency

from tests.infra.conftest import (
    BEDROCK_SETTINGS,
    LAMBDA_VPC_ENI,
    NO_RESOURCE_LEVEL,
    functions_by_name,
    grants,
    resources,
    role_statements,
    state_machine_id,
)

ITEMS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
}
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# what a Lambda on-failure destination grants the function's role on the async-failures queue
SQS_SEND = {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
INVOKE_NOTIFY = {"lambda:InvokeFunction"}
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}


def _ids(template: dict[str, Any]) -> dict[str, str]:
    def one(kind: str) -> str:
        (found,) = resources(template, kind)
        return found

    return {
        "table": one("AWS::DynamoDB::Table"),
        "machine": state_machine_id(template),
        "express": state_machine_id(template, "EXPRESS"),
    }


def _function_grants(template: dict[str, Any], name: str) -> dict[str, list[Any]]:
    role = functions_by_name(template)[name]["Properties"]["Role"]
    return grants(role_statements(template, role))


def _table_arn(ids: dict[str, str]) -> dict[str, Any]:
    return {"Fn::GetAtt": [ids["table"], "Arn"]}


def _log_group_arn(template: dict[str, Any], name: str) -> dict[str, Any]:
    group = functions_by_name(template)[name]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    return {"Fn::GetAtt": [group, "Arn"]}


def test_each_function_has_its_own_role_without_managed_policies(template_json: dict[str, Any]) -> None:
    roles = [fn["Properties"]["Role"]["Fn::GetAtt"][0] for fn in functions_by_name(template_json).values()]
    assert len(set(roles)) == len(roles) == 7
    for role in roles:
        props = template_json["Resources"][role]["Properties"]
        assert "ManagedPolicyArns" not in props
        (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}


@pytest.mark.parametrize(
    "name", ["discovery", "planner", "executor", "summarizer", "finalize_failure", "notify"]
)
def test_common_grants_logs_to_own_group_xray_and_table_items(
    template_json: dict[str, Any], name: str
) -> None:
    got = _function_grants(template_json, name)
    ids = _ids(template_json)
    for action in LOGS:
        assert got[action] == [_log_group_arn(template_json, name)]
    for action in XRAY:
        assert got[action] == ["*"]
    for action in ITEMS - {"dynamodb:Query"}:
        assert got[action] == [_table_arn(ids)], action
    assert _table_arn(ids) in got["dynamodb:Query"]
    for forbidden in ("dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:*"):
        assert forbidden not in got
    assert ("dynamodb:DeleteItem" in got) == (name == "executor")


READS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
WRITES = ("dynamodb:PutItem", "dynamodb:UpdateItem")
# The partitions each role may touch, as the synthesized template says (dynamodb:LeadingKeys).
EXPECTED_PARTITIONS = {
    "discovery": {"read": {"job#*"}, "write": {"job#*"}, "delete": set()},
    "planner": {"read": {"job#*", "endpoint#*"}, "write": {"job#*"}, "delete": set()},
    "executor": {
        "read": {"job#*", "run#*", "endpoint#*", "idempotency#executor"},
        "write": {"run#*", "endpoint#*", "idempotency#executor"},
        "delete": {"idempotency#executor"},
    },
    "summarizer": {"read": {"job#*", "run#*"}, "write": {"job#*"}, "delete": set()},
    "finalize_failure": {"read": {"job#*", "run#*"}, "write": {"job#*"}, "delete": set()},
    "notify": {"read": {"job#*"}, "write": {"job#*"}, "delete": set()},
}


def _table_partitions(template: dict[str, Any], name: str) -> dict[str, set[str]]:
    """action -> the LeadingKeys patterns the role is allowed it on, over the table's own ARN."""
    role = functions_by_name(template)[name]["Properties"]["Role"]
    table = _table_arn(_ids(template))
    out: dict[str, set[str]] = {}
    for statement in role_statements(template, role):
        found = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if table not in found:
            continue
        assert found == [table], statement  # never merged with another resource's grant
        # every key of the request must match (ForAllValues); a grant without the condition is a bug
        ((operator, keys),) = statement["Condition"].items()
        assert operator == "ForAllValues:StringLike", statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            assert action not in out, f"{action} granted twice on the table"
            out[action] = set(keys["dynamodb:LeadingKeys"])
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED_PARTITIONS))
def test_each_role_reads_and_writes_only_its_partitions(template_json: dict[str, Any], name: str) -> None:
    got = _table_partitions(template_json, name)
    expected = EXPECTED_PARTITIONS[name]
    for action in READS:
        assert got[action] == expected["read"], action
    for action in WRITES:
        assert got[action] == expected["write"], action
    assert got.get("dynamodb:DeleteItem", set()) == expected["delete"]
    deletes = {"dynamodb:DeleteItem"} if expected["delete"] else set()
    assert set(got) == set(READS) | set(WRITES) | deletes


def test_executor_cannot_write_jobs_runs_or_leases(template_json: dict[str, Any]) -> None:
    # The function that calls external URLs: whatever a response does to it, it cannot rewrite job
    # definitions (their URLs and header secret names), run records or leases
    got = _table_partitions(template_json, "executor")
    for action in (*WRITES, "dynamodb:DeleteItem"):
        for key in ("job#orders-sync", "job#x"):
            assert not any(fnmatchcase(key, pattern) for pattern in got.get(action, set())), action
    # it may still check the epoch fence on the job (ConditionCheckItem reads)
    assert "job#*" in got["dynamodb:ConditionCheckItem"]


def test_partition_patterns_come_from_the_schema_module() -> None:
    from cronpilot.dal import schema
    from cronpilot_infra.access import ACCESS

    prefixes = (schema.JOB_PARTITION, schema.RUN_PARTITION, schema.ENDPOINT_PARTITION)
    for access in ACCESS.values():
        for pattern in (*access.read, *access.write, *access.delete):
            assert pattern.removesuffix("*") in prefixes or pattern == idempotency.EXECUTOR_PARTITION
    assert idempotency.EXECUTOR_PARTITION.startswith(schema.IDEMPOTENCY_PARTITION)


def test_discovery_queries_the_due_index_and_starts_the_state_machine(template_json: dict[str, Any]) -> None:
    got = _function_grants(template_json, "discovery")
    ids = _ids(template_json)
    index = {"Fn::Join": ["", [{"Fn::GetAtt": [ids["table"], "Arn"]}, "/index/due"]]}
    assert sorted(map(str, got["dynamodb:Query"])) == sorted(map(str, [_table_arn(ids), index]))
    assert sorted(map(str, got["states:StartExecution"])) == sorted(
        str({"Ref": ids[machine]}) for machine in ("machine", "express")
    )
    assert set(got) == LOGS | XRAY | ITEMS | SQS_SEND | INVOKE_NOTIFY | {"states:StartExecution"}


def test_executor_reads_only_job_secrets_under_the_prefix(template_json: dict[str, Any]) -> None:
    got = _function_grants(template_json, "executor")
    assert set(got) == LOGS | XRAY | ITEMS | {
        "secretsmanager:GetSecretValue",
        "ssm:GetParameter",
        "dynamodb:DeleteItem",
    }
    (secret,) = got["secretsmanager:GetSecretValue"]
    (parameter,) = got["ssm:GetParameter"]
    assert secret["Fn::Join"][1][-1] == ":secret:cronpilot/dev/*"
    assert parameter["Fn::Join"][1][-1] == ":parameter/cronpilot/dev/*"


@pytest.mark.parametrize("name", ["planner", "summarizer"])
def test_llm_functions_read_only_the_anthropic_secret(template_json: dict[str, Any], name: str) -> None:
    got = _function_grants(template_json, name)
    (secret,) = resources(template_json, "AWS::SecretsManager::Secret")
    assert got["secretsmanager:GetSecretValue"] == [{"Ref": secret}]
    expected = LOGS | XRAY | ITEMS | {"secretsmanager:GetSecretValue"}
    assert set(got) == expected | (INVOKE_NOTIFY if name == "summarizer" else set())


@pytest.mark.parametrize("name", ["planner", "summarizer"])
def test_bedrock_variant_invokes_only_the_configured_model(bedrock_json: dict[str, Any], name: str) -> None:
    got = _function_grants(bedrock_json, name)
    expected = LOGS | XRAY | ITEMS | {"bedrock:InvokeModel"}
    assert set(got) == expected | (INVOKE_NOTIFY if name == "summarizer" else set())
    arns = [str(arn) for arn in got["bedrock:InvokeModel"]]
    assert len(arns) == 2
    assert any(":inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0" in arn for arn in arns)
    assert any(":bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0" in arn for arn in arns)


def test_finalize_failure_touches_only_the_table(template_json: dict[str, Any]) -> None:
    assert (
        set(_function_grants(template_json, "finalize_failure"))
        == LOGS | XRAY | ITEMS | SQS_SEND | INVOKE_NOTIFY
    )


@pytest.mark.parametrize("kind", ["STANDARD", "EXPRESS"])
def test_state_machine_invokes_exactly_the_four_task_functions(
    template_json: dict[str, Any], kind: str
) -> None:
    machine = template_json["Resources"][state_machine_id(template_json, kind)]
    got = grants(role_statements(template_json, machine["Properties"]["RoleArn"]))
    fns = functions_by_name(template_json)
    ids = {
        name: next(k for k, v in template_json["Resources"].items() if v is fn) for name, fn in fns.items()
    }
    expected = [
        {"Fn::GetAtt": [ids[n], "Arn"]} for n in ("planner", "executor", "summarizer", "finalize_failure")
    ]
    assert sorted(got["lambda:InvokeFunction"], key=json.dumps) == sorted(expected, key=json.dumps)
    assert set(got) - {"lambda:InvokeFunction"} <= NO_RESOURCE_LEVEL


@pytest.mark.parametrize("stack", ["template_json", "bedrock_json"])
def test_no_wildcard_resource_where_a_specific_arn_exists(stack: str, request: pytest.FixtureRequest) -> None:
    template = request.getfixturevalue(stack)
    for policy in resources(template, "AWS::IAM::Policy").values():
        for action, found in grants(policy["Properties"]["PolicyDocument"]["Statement"]).items():
            if "*" in found:
                assert action in NO_RESOURCE_LEVEL | LAMBDA_VPC_ENI, action
            assert not action.endswith(":*"), action


def _function_id(template: dict[str, Any], name: str) -> str:
    return next(k for k, v in template["Resources"].items() if v is functions_by_name(template)[name])


@pytest.mark.parametrize("stack", ["template_json", "bedrock_json"])
def test_notify_is_invoked_by_the_functions_that_raise_notices_and_publishes_only_to_allowed_topics(
    stack: str, request: pytest.FixtureRequest
) -> None:
    template = request.getfixturevalue(stack)
    notify = {"Fn::GetAtt": [_function_id(template, "notify"), "Arn"]}
    for name in ("discovery", "summarizer", "finalize_failure"):
        # the unqualified function only: no `:*` for every version and alias
        assert _function_grants(template, name)["lambda:InvokeFunction"] == [notify], name
        env = functions_by_name(template)[name]["Properties"]["Environment"]["Variables"]
        assert env["NOTIFY_FUNCTION_NAME"] == {"Ref": _function_id(template, "notify")}
    for name in ("planner", "executor", "notify"):
        assert "lambda:InvokeFunction" not in _function_grants(template, name), name
    got = _function_grants(template, "notify")
    topics = BEDROCK_SETTINGS.topic_arns if stack == "bedrock_json" else []
    assert got.get("sns:Publish", []) == topics
    env = functions_by_name(template)["notify"]["Properties"]["Environment"]["Variables"]
    assert env["NOTIFY_TOPIC_ARNS"] == ",".join(topics)
    assert env["EGRESS_ALLOWED_PORTS"] == "80,443"
    assert "EGRESS_ALLOWED_CIDRS" not in env  # in no VPC: public networks only
    # signing secrets are Secrets Manager secrets under the job prefix; no SSM parameter at all
    (secret,) = got["secretsmanager:GetSecretValue"]
    stage = "bedrock" if stack == "bedrock_json" else "dev"
    assert secret["Fn::Join"][1][-1] == f":secret:cronpilot/{stage}/*"
    assert "ssm:GetParameter" not in got

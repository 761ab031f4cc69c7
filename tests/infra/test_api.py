"""The HTTP API: IAM on every route, the resolver's routes exactly, a role that reaches only what the
operations need, access logs, stage throttling, alarms and dashboard widgets."""

from __future__ import annotations

import json
from typing import Any

from cronpilot_infra.access import READ_ACTIONS, WRITE_ACTIONS
from cronpilot_infra.api import ACCESS_LOG_FORMAT, route_keys

from tests.infra.conftest import NO_RESOURCE_LEVEL, functions_by_name, grants, resources, role_statements


def _one(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    ((logical, resource),) = resources(template, kind).items()
    return logical, resource["Properties"]


def test_every_route_requires_iam_and_the_routes_are_the_resolvers(template_json: dict[str, Any]) -> None:
    # Given the synthesized API, When its routes are read
    routes = resources(template_json, "AWS::ApiGatewayV2::Route").values()
    keys = {r["Properties"]["RouteKey"] for r in routes}
    # Then each route the resolver serves is deployed (no catch-all), and every one needs SigV4
    assert keys == {f"{method} {path}" for method, path in route_keys()}
    assert {"GET /jobs", "PUT /jobs/{job_id}", "GET /jobs/{job_id}/runs", "GET /openapi.json"} <= keys
    assert "$default" not in keys
    assert {r["Properties"]["AuthorizationType"] for r in routes} == {"AWS_IAM"}


def test_stage_throttles_and_writes_json_access_logs(template_json: dict[str, Any]) -> None:
    _, stage = _one(template_json, "AWS::ApiGatewayV2::Stage")
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert (
        stage["DefaultRouteSettings"]["ThrottlingBurstLimit"]
        >= stage["DefaultRouteSettings"]["ThrottlingRateLimit"]
    )
    logs = stage["AccessLogSettings"]
    group_id = logs["DestinationArn"]["Fn::GetAtt"][0]
    group = template_json["Resources"][group_id]["Properties"]
    assert group["RetentionInDays"] == 30
    assert json.loads(logs["Format"]) == ACCESS_LOG_FORMAT
    assert {"caller", "status", "routeKey", "latencyMs"} <= set(ACCESS_LOG_FORMAT)


def test_role_reaches_only_what_the_operations_need(template_json: dict[str, Any]) -> None:
    # Given the api function's role
    fn = functions_by_name(template_json)["api"]["Properties"]
    statements = role_statements(template_json, fn["Role"])
    got = grants(statements)
    (table_id,) = resources(template_json, "AWS::DynamoDB::Table")
    table_arn = {"Fn::GetAtt": [table_id, "Arn"]}
    # Then: the table itself (no index); item reads of jobs, runs and steps; writes of job items only;
    # a Scan to list jobs; no DeleteItem, no Step Functions, secrets or Bedrock
    dynamodb = {a for a in got if a.startswith("dynamodb:")}
    assert dynamodb == {*READ_ACTIONS, *WRITE_ACTIONS, "dynamodb:Scan"}
    for action in dynamodb:
        assert got[action] == [table_arn], action
    partitions = {}
    for statement in statements:
        for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
            if action.startswith("dynamodb:") and action != "dynamodb:Scan":
                ((operator, keys),) = statement["Condition"].items()
                assert operator == "ForAllValues:StringLike"
                partitions[action] = set(keys["dynamodb:LeadingKeys"])
    assert {partitions[a] == {"job#*", "run#*"} for a in READ_ACTIONS} == {True}
    assert {partitions[a] == {"job#*"} for a in WRITE_ACTIONS} == {True}
    group = fn["LoggingConfig"]["LogGroup"]["Ref"]
    assert got["logs:PutLogEvents"] == [{"Fn::GetAtt": [group, "Arn"]}]
    others = set(got) - dynamodb - {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert others <= NO_RESOURCE_LEVEL  # X-Ray only


def test_integration_is_the_api_function(template_json: dict[str, Any]) -> None:
    _, integration = _one(template_json, "AWS::ApiGatewayV2::Integration")
    fns = functions_by_name(template_json)
    api_id = next(k for k, v in template_json["Resources"].items() if v is fns["api"])
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": [api_id, "Arn"]}


def test_5xx_and_latency_alarms_notify_the_alarm_topic(template_json: dict[str, Any]) -> None:
    alarms = {
        v["Properties"]["AlarmName"]: v["Properties"]
        for v in resources(template_json, "AWS::CloudWatch::Alarm").values()
    }
    (topic,) = resources(template_json, "AWS::SNS::Topic")
    server_errors = alarms["cronpilot-dev-Api5xx"]
    assert server_errors["MetricName"] == "5xx"
    assert server_errors["Namespace"] == "AWS/ApiGateway"
    assert server_errors["Threshold"] == 1
    latency = alarms["cronpilot-dev-ApiLatency"]
    assert latency["MetricName"] == "Latency"
    assert latency["ExtendedStatistic"] == "p99"
    for alarm in (server_errors, latency):
        assert alarm["AlarmActions"] == [{"Ref": topic}]
        assert {d["Name"] for d in alarm["Dimensions"]} == {"ApiId", "Stage"}


def test_dashboard_shows_the_api(template_json: dict[str, Any]) -> None:
    (dashboard,) = resources(template_json, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in ("HTTP API requests", "HTTP API latency (ms)", "api function", "HTTP API alarms"):
        assert title in body, title

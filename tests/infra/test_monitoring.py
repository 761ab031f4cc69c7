"""Alarms (metric, threshold, topic) and the dashboard's widgets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import resources, state_machine_id


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        v["Properties"]["AlarmName"].removeprefix("cronpilot-dev-"): v["Properties"]
        for v in resources(template, "AWS::CloudWatch::Alarm").values()
    }


def _resolve(value: Any) -> str:
    """A Fn::Join of strings and refs, as text (each Ref / GetAtt written as its logical id)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return value["Ref"]
    if "Fn::GetAtt" in value:
        return ".".join(value["Fn::GetAtt"])
    separator, parts = value["Fn::Join"]
    return separator.join(_resolve(p) for p in parts)


def _widgets(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(_resolve(dashboard["Properties"]["DashboardBody"]))
    return {w["properties"]["title"]: w["properties"] for w in body["widgets"]}


SERVICE = [{"Name": "service", "Value": "cronpilot-dev"}]


@pytest.mark.parametrize(
    ("alarm", "namespace", "metric", "statistic", "period", "threshold", "comparison"),
    [
        (
            "ExecutionsFailed",
            "AWS/States",
            "ExecutionsFailed",
            "Sum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
        ),
        (
            "ExecutionsTimedOut",
            "AWS/States",
            "ExecutionsTimedOut",
            "Sum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
        ),
        ("DiscoveryErrors", "AWS/Lambda", "Errors", "Sum", 300, 1, "GreaterThanOrEqualToThreshold"),
        ("DiscoveryLag", "cronpilot", "DiscoveryLagSeconds", "Maximum", 60, 180, "GreaterThanThreshold"),
        ("LeasesStuck", "cronpilot", "LeasesStuck", "Maximum", 900, 1, "GreaterThanOrEqualToThreshold"),
        (
            "TickDeadLetters",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
        ),
    ],
)
def test_metric_alarms(
    template_json: dict[str, Any],
    alarm: str,
    namespace: str,
    metric: str,
    statistic: str,
    period: int,
    threshold: float,
    comparison: str,
) -> None:
    props = _alarms(template_json)[alarm]
    (topic,) = resources(template_json, "AWS::SNS::Topic")
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (namespace, metric, statistic)
    assert (props["Period"], props["Threshold"], props["ComparisonOperator"]) == (
        period,
        threshold,
        comparison,
    )
    assert props["AlarmActions"] == [{"Ref": topic}]
    if namespace == "cronpilot":
        assert props["Dimensions"] == SERVICE


def test_alarm_dimensions_point_at_this_stacks_resources(template_json: dict[str, Any]) -> None:
    alarms = _alarms(template_json)
    machine = state_machine_id(template_json)
    assert alarms["ExecutionsFailed"]["Dimensions"] == [
        {"Name": "StateMachineArn", "Value": {"Ref": machine}}
    ]
    (dimension,) = alarms["DiscoveryErrors"]["Dimensions"]
    assert template_json["Resources"][dimension["Value"]["Ref"]]["Properties"]["FunctionName"] == (
        "cronpilot-dev-discovery"
    )


def test_discovery_lag_alarm_treats_silence_as_breaching(template_json: dict[str, Any]) -> None:
    # Discovery reports its lag on every tick, so no data means no ticks: the scheduler is down
    props = _alarms(template_json)["DiscoveryLag"]
    assert props["TreatMissingData"] == "breaching"
    assert props["EvaluationPeriods"] == 3


def test_daily_token_spend_alarm_prices_tokens_over_one_day(template_json: dict[str, Any]) -> None:
    props = _alarms(template_json)["DailyTokenSpend"]
    assert props["Threshold"] == 5
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    (expression,) = [m for m in props["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "(tin * 1.0 + tout * 5.0 + tcr * 0.1 + tcw * 1.25) / 1000000"
    inputs = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
    assert {k: v["Metric"]["MetricName"] for k, v in inputs.items()} == {
        "tin": "TokensInput",
        "tout": "TokensOutput",
        "tcr": "TokensCacheRead",
        "tcw": "TokensCacheWrite",
    }
    for stat in inputs.values():
        assert (stat["Period"], stat["Stat"]) == (86400, "Sum")
        assert stat["Metric"]["Dimensions"] == SERVICE


def test_topic_is_tls_only_and_email_subscribed_when_configured(
    template_json: dict[str, Any], bedrock_json: dict[str, Any]
) -> None:
    assert not resources(template_json, "AWS::SNS::Subscription")
    (subscription,) = resources(bedrock_json, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "oncall@example.com"
    (policy,) = resources(template_json, "AWS::SNS::TopicPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def _metric_names(widget: dict[str, Any]) -> set[str]:
    return {m[1] for m in widget.get("metrics", []) if len(m) > 1 and isinstance(m[1], str)}


def test_dashboard_widgets(template_json: dict[str, Any]) -> None:
    widgets = _widgets(template_json)
    expected = {
        "Runs": {"ExecutionsStarted", "RunsSucceeded", "RunsFailed", "RunsSkipped"},
        "Discovery": {"DiscoveryLagSeconds", "JobsDue", "RunsClaimed", "ClaimConflicts", "StartFailures"},
        "Step Functions executions": {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"},
        "Endpoints": {"EndpointLatency", "EndpointFailures", "CircuitsOpen"},
        "LLM tokens": {"TokensInput", "TokensOutput", "TokensCacheRead", "TokensCacheWrite"},
        "Lambda errors": {"Errors"},
        "Lambda throttles": {"Throttles"},
        "Leases stuck": {"LeasesStuck"},
    }
    for title, names in expected.items():
        assert names <= _metric_names(widgets[title]), title
    for title in ("Lambda errors", "Lambda throttles"):
        assert len(widgets[title]["metrics"]) == 5
    assert len(widgets["Alarms"]["alarms"]) == len(_alarms(template_json))


def test_dashboard_graphs_llm_fallbacks_per_failure_class(template_json: dict[str, Any]) -> None:
    widget = _widgets(template_json)["LLM fallbacks by failure class"]
    ((search,),) = widget["metrics"]
    assert search["expression"].startswith(
        'SEARCH(\'{cronpilot,FailureClass,phase,service} MetricName="LlmFallbacks"'
    )
    assert 'service="cronpilot-dev"' in search["expression"]

"""Alarms (metric, threshold, topic) and the dashboard's widgets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import functions_by_name, queue_id, resources, state_machine_id

FUNCTION_ALARM_NAMES = {
    "discovery": "Discovery",
    "planner": "Planner",
    "executor": "Executor",
    "summarizer": "Summarizer",
    "finalize_failure": "FinalizeFailure",
    "notify": "Notify",
}


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        v["Properties"]["AlarmName"].split("-", 2)[2]: v["Properties"]
        for v in resources(template, "AWS::CloudWatch::Alarm").values()
    }


def _topic(template: dict[str, Any]) -> str:
    (topic,) = resources(template, "AWS::SNS::Topic")
    return topic


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
            "DiscoveryBehind",
            "cronpilot",
            "JobsLeftForNextTick",
            "Maximum",
            60,
            1,
            "GreaterThanOrEqualToThreshold",
        ),
        ("LateStarts", "cronpilot", "LateStarts", "Sum", 900, 1, "GreaterThanOrEqualToThreshold"),
        (
            "ExecutionsAborted",
            "AWS/States",
            "ExecutionsAborted",
            "Sum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
        ),
        (
            "ExecutionsThrottled",
            "AWS/States",
            "ExecutionThrottled",
            "Sum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
        ),
        (
            "AsyncFailures",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
        ),
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
    assert props["AlarmActions"] == props["OKActions"] == [{"Ref": topic}]
    if namespace == "cronpilot":
        assert props["Dimensions"] == SERVICE


@pytest.mark.parametrize("metric", ["ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"])
def test_express_runs_have_the_standard_runs_alarms(template_json: dict[str, Any], metric: str) -> None:
    # Express sends no status-change events: its alarms are the only word of a run that died there
    alarms = _alarms(template_json)
    express, standard = alarms[f"Express{metric}"], alarms[metric]
    (topic,) = resources(template_json, "AWS::SNS::Topic")
    assert (express["Namespace"], express["MetricName"]) == ("AWS/States", metric)
    assert express["AlarmActions"] == express["OKActions"] == [{"Ref": topic}]
    assert express["Dimensions"] == [
        {"Name": "StateMachineArn", "Value": {"Ref": state_machine_id(template_json, "EXPRESS")}}
    ]
    assert express["Dimensions"] != standard["Dimensions"]


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


@pytest.mark.parametrize(("stack", "tick_seconds"), [("template_json", 60), ("bedrock_json", 300)])
def test_discovery_lag_alarm_follows_the_tick_and_treats_silence_as_breaching(
    stack: str, tick_seconds: int, request: pytest.FixtureRequest
) -> None:
    # Discovery reports its lag once per tick, so no data means no ticks: the scheduler is down.
    # One period per tick: a 5-minute tick never leaves a 1-minute period empty (a false alarm).
    props = _alarms(request.getfixturevalue(stack))["DiscoveryLag"]
    assert props["Period"] == tick_seconds
    assert props["TreatMissingData"] == "breaching"
    assert props["EvaluationPeriods"] == 3
    # a job due just after a tick waits a whole tick by design: the threshold leaves room for it
    assert props["Threshold"] == tick_seconds + 120


def test_every_alarm_notifies_on_alarm_and_on_ok(
    template_json: dict[str, Any], bedrock_json: dict[str, Any]
) -> None:
    for template in (template_json, bedrock_json):
        topic = {"Ref": _topic(template)}
        for name, props in _alarms(template).items():
            assert props["AlarmActions"] == [topic], name
            assert props["OKActions"] == [topic], name


@pytest.mark.parametrize("name", sorted(FUNCTION_ALARM_NAMES))
def test_every_function_has_error_and_throttle_alarms(template_json: dict[str, Any], name: str) -> None:
    alarms = _alarms(template_json)
    function_id = next(
        k for k, v in template_json["Resources"].items() if v is functions_by_name(template_json)[name]
    )
    ident = FUNCTION_ALARM_NAMES[name]
    errors, throttles = alarms[f"{ident}Errors"], alarms[f"{ident}Throttles"]
    for props, metric in ((errors, "Errors"), (throttles, "Throttles")):
        assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", metric, "Sum")
        assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
        assert props["Threshold"] == 1
    assert errors["EvaluationPeriods"] == 1
    # short bursts are retried; a quarter of an hour of throttling is a capacity problem
    assert (throttles["Period"], throttles["EvaluationPeriods"]) == (300, 3)


def test_async_failures_alarm_watches_the_on_failure_queue(template_json: dict[str, Any]) -> None:
    props = _alarms(template_json)["AsyncFailures"]
    queue = queue_id(template_json, "async-failures")
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]


def test_daily_token_spend_alarm_sums_the_recorded_cost_of_each_call_over_one_day(
    template_json: dict[str, Any],
) -> None:
    # Each call is priced at its own model's price when it is made (a stack-wide price would be wrong
    # for every model but one), so the alarm sums that cost.
    props = _alarms(template_json)["DailyTokenSpend"]
    assert props["Threshold"] == 5
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert (props["Namespace"], props["MetricName"]) == ("cronpilot", "TokenSpendUsd")
    assert (props["Period"], props["Statistic"]) == (86400, "Sum")
    assert props["Dimensions"] == SERVICE


def test_topic_is_tls_only_and_email_subscribed_when_configured(
    template_json: dict[str, Any], bedrock_json: dict[str, Any]
) -> None:
    assert not resources(template_json, "AWS::SNS::Subscription")
    (subscription,) = resources(bedrock_json, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "oncall@example.com"
    (policy,) = resources(template_json, "AWS::SNS::TopicPolicy").values()
    (deny,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


PUBLISHERS = {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
SAME_ACCOUNT = {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_topic_policy_lets_cloudwatch_and_eventbridge_publish(template_json: dict[str, Any]) -> None:
    # A topic policy replaces SNS's default one: without these statements no alarm is ever delivered
    topic = _topic(template_json)
    (policy,) = resources(template_json, "AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic}]
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert {s["Principal"]["Service"] for s in allows} == PUBLISHERS
    for statement in allows:
        assert statement["Action"] == "sns:Publish"
        assert statement["Resource"] == {"Ref": topic}
        assert statement["Condition"] == SAME_ACCOUNT


def test_topic_is_encrypted_with_a_key_the_publishers_may_use(template_json: dict[str, Any]) -> None:
    # The AWS managed SNS key's policy cannot be changed and does not admit CloudWatch: a key of its own
    topic = template_json["Resources"][_topic(template_json)]["Properties"]
    (key_id,) = resources(template_json, "AWS::KMS::Key")
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = template_json["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    services = [s for s in key["KeyPolicy"]["Statement"] if "Service" in s["Principal"]]
    assert {s["Principal"]["Service"] for s in services} == PUBLISHERS
    for statement in services:
        assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
        assert statement["Condition"] == SAME_ACCOUNT


def _metric_names(widget: dict[str, Any]) -> set[str]:
    return {m[1] for m in widget.get("metrics", []) if len(m) > 1 and isinstance(m[1], str)}


def test_dashboard_widgets(template_json: dict[str, Any]) -> None:
    widgets = _widgets(template_json)
    expected = {
        "Runs": {"ExecutionsStarted", "RunsSucceeded", "RunsFailed", "RunsPartial", "RunsSkipped"},
        "Discovery": {
            "DiscoveryLagSeconds",
            "JobsDue",
            "RunsClaimed",
            "ClaimConflicts",
            "StartFailures",
            "LateStarts",
            "JobsLeftForNextTick",
        },
        "Step Functions executions": {
            "ExecutionsFailed",
            "ExecutionsTimedOut",
            "ExecutionsAborted",
            "ExecutionThrottled",
        },
        "Endpoints": {"EndpointLatency", "EndpointFailures", "CircuitsOpen"},
        "LLM tokens": {"TokensInput", "TokensOutput", "TokensCacheRead", "TokensCacheWrite"},
        "Lambda errors": {"Errors"},
        "Lambda throttles": {"Throttles"},
        "Leases stuck": {"LeasesStuck"},
    }
    for title, names in expected.items():
        assert names <= _metric_names(widgets[title]), title
    for title in ("Lambda errors", "Lambda throttles"):
        assert len(widgets[title]["metrics"]) == 6
    shown = widgets["Alarms"]["alarms"] + widgets["HTTP API alarms"]["alarms"]
    assert len(shown) == len(_alarms(template_json))


def test_dashboard_graphs_llm_fallbacks_per_failure_class(template_json: dict[str, Any]) -> None:
    widget = _widgets(template_json)["LLM fallbacks by failure class"]
    ((search,),) = widget["metrics"]
    assert search["expression"].startswith(
        'SEARCH(\'{cronpilot,FailureClass,phase,service} MetricName="LlmFallbacks"'
    )
    assert 'service="cronpilot-dev"' in search["expression"]

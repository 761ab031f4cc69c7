"""The HTTP API: API Gateway (HTTP API) with IAM authorization on every route, one `api` Lambda built
on the same resolver `cronpilot local api` serves, access logs, stage throttling, alarms and a
dashboard row. The routes are the resolver's own (from its OpenAPI document), so the two cannot drift.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .access import ACCESS
from .functions import (
    ARCHITECTURE,
    RUNTIME,
    CronpilotFunctions,
    function_logs_and_role,
    logging_options,
    retention,
)
from .monitoring import FIVE_MINUTES, Monitoring
from .nag import XRAY_REASON, _ack
from .paths import FUNCTIONS_DIR
from .settings import DeploySettings
from .table import CronpilotTable

# Listing jobs is a Scan (it has no partition key for a LeadingKeys condition); every other table call
# is granted by partition from the access map (access.py): reads of jobs, runs and steps, job writes.
API_SCAN = "dynamodb:Scan"

# Per stage: API Gateway answers 429 beyond these, before the function runs.
THROTTLE_RATE_PER_SECOND = 20
THROTTLE_BURST = 40
LATENCY_ALARM_MS = 3000

# HTTP API access log fields ($context variables of HTTP APIs); the caller is the SigV4 principal.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "caller": "$context.identity.userArn",
    "sourceIp": "$context.identity.sourceIp",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integration.latency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}


def route_keys() -> list[tuple[str, str]]:
    """(method, path) of every route the resolver serves, from the OpenAPI document it generates."""
    from cronpilot.api.app import openapi_document

    document = openapi_document()
    routes = [(method.upper(), path) for path, item in document["paths"].items() for method in item]
    return [*routes, ("GET", "/openapi.json")]  # served, but not described in itself


class CronpilotApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        functions: CronpilotFunctions,
        table: CronpilotTable,
        monitoring: Monitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = self._function(settings, functions)
        self._grant_table(table)

        integration = integrations.HttpLambdaIntegration("Integration", self.function)
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"{settings.prefix}-api",
            description="cronpilot: operate jobs and read runs (IAM authorization)",
            default_authorizer=authorizers.HttpIamAuthorizer(),
            create_default_stage=False,
        )
        for method, path in route_keys():
            self.http_api.add_routes(path=path, methods=[apigwv2.HttpMethod(method)], integration=integration)

        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{settings.prefix}-api",
            retention=retention(settings.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.http_api,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=THROTTLE_RATE_PER_SECOND, burst_limit=THROTTLE_BURST
            ),
            access_log_settings=_AccessLogSettings(self.access_logs),
        )
        self.alarms = self._alarms(settings, monitoring)
        self._dashboard(monitoring)
        self._acknowledge()
        CfnOutput(
            scope,
            "ApiUrl",
            value=self.stage.url,
            description="cronpilot HTTP API (SigV4, service execute-api)",
        )

    def _function(self, settings: DeploySettings, functions: CronpilotFunctions) -> lambda_.Function:
        name = f"{settings.prefix}-api"
        log_group, self.role = function_logs_and_role(self, "Function", "api", name, settings)
        return lambda_.Function(
            self,
            "Function",
            function_name=name,
            description="The HTTP API: operates jobs and reads runs",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / "api"), exclude=["__pycache__", "*.pyc"]),
            layers=[functions.package_layer, functions.deps_layer],
            # API Gateway waits at most 30 s for an integration; a page of runs takes well under 1 s.
            timeout=Duration.seconds(15),
            memory_size=512,
            **logging_options(settings),
            tracing=lambda_.Tracing.ACTIVE,
            role=self.role,
            log_group=log_group,
            environment=dict(functions.environment),
            # caps what a burst of API calls can take from the account's concurrency (the scheduler's)
            reserved_concurrent_executions=10 if settings.reserved_concurrency else None,
        )

    def _grant_table(self, table: CronpilotTable) -> None:
        table.grant_items(self.function, ACCESS["api"])
        self.role.add_to_policy(iam.PolicyStatement(actions=[API_SCAN], resources=[table.table.table_arn]))

    def _alarms(self, settings: DeploySettings, monitoring: Monitoring) -> dict[str, cloudwatch.Alarm]:
        alarms = {
            "Api5xx": cloudwatch.Alarm(
                self,
                "ServerErrors",
                alarm_name=f"{settings.prefix}-Api5xx",
                alarm_description="The HTTP API answered 5xx (the api function failed or timed out)",
                metric=self.stage.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "ApiLatency": cloudwatch.Alarm(
                self,
                "Latency",
                alarm_name=f"{settings.prefix}-ApiLatency",
                alarm_description=f"HTTP API p99 latency above {LATENCY_ALARM_MS} ms for 15 minutes",
                metric=self.stage.metric_latency(period=FIVE_MINUTES, statistic="p99"),
                threshold=LATENCY_ALARM_MS,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        }
        for alarm in alarms.values():  # as the stack's other alarms: notify on alarm and on recovery
            alarm.add_alarm_action(actions.SnsAction(monitoring.topic))
            alarm.add_ok_action(actions.SnsAction(monitoring.topic))  # as every alarm (monitoring.py)
        return alarms

    def _dashboard(self, monitoring: Monitoring) -> None:
        stage = self.stage
        monitoring.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="HTTP API requests",
                width=8,
                left=[
                    stage.metric_count(period=FIVE_MINUTES, statistic="Sum", label="requests"),
                    stage.metric_client_error(period=FIVE_MINUTES, statistic="Sum", label="4xx"),
                    stage.metric_server_error(period=FIVE_MINUTES, statistic="Sum", label="5xx"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="HTTP API latency (ms)",
                width=8,
                left=[
                    stage.metric_latency(period=FIVE_MINUTES, statistic="p50", label="p50"),
                    stage.metric_latency(period=FIVE_MINUTES, statistic="p99", label="p99"),
                    stage.metric_integration_latency(
                        period=FIVE_MINUTES, statistic="p99", label="function p99"
                    ),
                ],
            ),
            cloudwatch.GraphWidget(
                title="api function",
                width=8,
                left=[
                    self.function.metric_errors(period=FIVE_MINUTES, statistic="Sum", label="errors"),
                    self.function.metric_throttles(period=FIVE_MINUTES, statistic="Sum", label="throttles"),
                ],
                right=[
                    self.function.metric_duration(period=FIVE_MINUTES, statistic="p99", label="duration p99")
                ],
            ),
        )
        monitoring.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="HTTP API alarms", width=24, alarms=list(self.alarms.values()))
        )

    def _acknowledge(self) -> None:
        _ack(
            self.function,
            "AwsSolutions-L1",
            "api is pinned to python3.13 on purpose: the dependency layer holds cp313 aarch64 wheels.",
        )
        _ack(self.role, "AwsSolutions-IAM5[Resource::*]", f"api: {XRAY_REASON}")


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """One JSON line per request in the stage's access log group."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT))

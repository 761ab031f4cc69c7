"""Dashboard, alarms and the alarm topic.

Custom metrics come from Powertools EMF: namespace "cronpilot", dimension `service` (one per stage);
LlmFallbacks adds FailureClass and phase dimensions and is graphed per class with a SEARCH expression.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import (
    Duration,
)
from aws_cdk import (
    aws_cloudwatch as cloudwatch,
)
from aws_cdk import (
    aws_cloudwatch_actions as actions,
)
from aws_cdk import (
    aws_lambda as lambda_,
)
from aws_cdk import (
    aws_sns as sns,
)
from aws_cdk import (
    aws_sns_subscriptions as subscriptions,
)
from aws_cdk import (
    aws_sqs as sqs,
)
from aws_cdk import (
    aws_stepfunctions as sfn,
)
from constructs import Construct

from .settings import DeploySettings

NAMESPACE = "cronpilot"
FIVE_MINUTES = Duration.minutes(5)
AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


@dataclass(frozen=True)
class MonitoredResources:
    state_machine: sfn.StateMachine
    functions: dict[str, lambda_.Function]
    dead_letters: sqs.IQueue


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploySettings, resources: MonitoredResources
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        if settings.alarm_topic_arn:
            self.topic: sns.ITopic = sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn)
        else:
            self.topic = sns.Topic(
                self,
                "AlarmTopic",
                topic_name=f"{settings.prefix}-alarms",
                display_name="cronpilot alarms",
                enforce_ssl=True,
            )
            if settings.alarm_email:
                self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        machine = resources.state_machine
        discovery = resources.functions["discovery"]
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        self._alarm(
            "ExecutionsFailed",
            machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description="Runs failed (their stage failed even after finalize-failure recorded it)",
        )
        self._alarm(
            "ExecutionsTimedOut",
            machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description="Runs hit the state machine's 1500 s timeout (the ended-execution rule then "
            "records them as failed): a stage hangs",
        )
        self._alarm(
            "DiscoveryErrors",
            discovery.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description="The discovery function failed: due jobs are not being claimed",
        )
        self._alarm(
            "DiscoveryLag",
            self.metric("DiscoveryLagSeconds", "Maximum", Duration.minutes(1)),
            threshold=settings.discovery_lag_alarm_seconds,
            evaluation_periods=3,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            # Discovery reports its lag on every tick, even with nothing due: no data = no ticks.
            missing=cloudwatch.TreatMissingData.BREACHING,
            description=f"Jobs claimed more than {settings.discovery_lag_alarm_seconds} s late, or no ticks",
        )
        self._alarm(
            "LeasesStuck",
            self.metric("LeasesStuck", "Maximum", Duration.minutes(15)),
            threshold=1,
            description="Jobs hold a lease past its expiry: a run ended without releasing it",
        )
        self._alarm(
            "TickDeadLetters",
            resources.dead_letters.metric_approximate_number_of_messages_visible(
                period=FIVE_MINUTES, statistic="Maximum"
            ),
            threshold=1,
            description="EventBridge could not deliver discovery ticks or ended-execution notices "
            "(see the events dead-letter queue)",
        )
        self.daily_spend = self.spend(Duration.days(1))
        self._alarm(
            "DailyTokenSpend",
            self.daily_spend,
            threshold=settings.daily_budget_usd,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=f"LLM tokens cost more than {settings.daily_budget_usd} USD over the last day",
        )
        self.dashboard = self._dashboard(resources)

    def metric(self, name: str, statistic: str = "Sum", period: Duration = FIVE_MINUTES) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self.settings.service},
            statistic=statistic,
            period=period,
        )

    def spend(self, period: Duration) -> cloudwatch.MathExpression:
        """USD spent on tokens per period, at the configured prices per million tokens."""
        p = self.settings.token_prices
        return cloudwatch.MathExpression(
            expression=f"(tin * {p.input} + tout * {p.output} + tcr * {p.cache_read} + tcw * {p.cache_write})"
            " / 1000000",
            using_metrics={
                "tin": self.metric("TokensInput", period=period),
                "tout": self.metric("TokensOutput", period=period),
                "tcr": self.metric("TokensCacheRead", period=period),
                "tcw": self.metric("TokensCacheWrite", period=period),
            },
            label="Token spend (USD)",
            period=period,
        )

    def _ai_widgets(self, width: int) -> list[cloudwatch.IWidget]:
        """What the AI pilot does for its money: calls made, calls a standing decision avoided, and the
        share of prompt tokens read from the prompt cache."""
        m = self.metric
        hit_ratio = cloudwatch.MathExpression(
            expression="100 * tcr / (tin + tcr + tcw)",
            using_metrics={
                "tin": m("TokensInput"),
                "tcr": m("TokensCacheRead"),
                "tcw": m("TokensCacheWrite"),
            },
            label="cache hit ratio (%)",
            period=FIVE_MINUTES,
        )
        return [
            cloudwatch.GraphWidget(
                title="LLM model calls", width=width, left=[m("ModelCalls").with_(label="model calls")]
            ),
            cloudwatch.GraphWidget(
                title="LLM calls avoided by reuse",
                width=width,
                left=[m("ModelCallsReused").with_(label="avoided by a standing decision")],
            ),
            cloudwatch.GraphWidget(title="LLM prompt cache hit ratio", width=width, left=[hit_ratio]),
        ]

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        comparison: cloudwatch.ComparisonOperator = AT_LEAST,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=f"{self.settings.prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=comparison,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms[name] = alarm

    def _dashboard(self, resources: MonitoredResources) -> cloudwatch.Dashboard:
        machine = resources.state_machine
        m = self.metric
        width = 8
        fallbacks = cloudwatch.MathExpression(
            expression=(
                f'SEARCH(\'{{{NAMESPACE},FailureClass,phase,service}} MetricName="LlmFallbacks" '
                f"service=\"{self.settings.service}\"', 'Sum', 300)"
            ),
            using_metrics={},
            label="",
            period=FIVE_MINUTES,
        )
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=self.settings.prefix)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Runs",
                width=width,
                left=[
                    machine.metric_started(period=FIVE_MINUTES, statistic="Sum", label="started"),
                    m("RunsSucceeded").with_(label="succeeded"),
                    m("RunsFailed").with_(label="failed"),
                    m("RunsSkipped").with_(label="skipped"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Discovery",
                width=width,
                left=[m("DiscoveryLagSeconds", "Maximum", Duration.minutes(1)).with_(label="lag (s, max)")],
                right=[
                    m("JobsDue").with_(label="due"),
                    m("RunsClaimed").with_(label="claimed"),
                    m("ClaimConflicts").with_(label="claim conflicts"),
                    m("StartFailures").with_(label="start failures"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Step Functions executions",
                width=width,
                left=[
                    machine.metric_failed(period=FIVE_MINUTES, statistic="Sum", label="failed"),
                    machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum", label="timed out"),
                    machine.metric_aborted(period=FIVE_MINUTES, statistic="Sum", label="aborted"),
                ],
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Endpoints",
                width=width,
                left=[
                    m("EndpointLatency", "p50").with_(label="latency p50"),
                    m("EndpointLatency", "p99").with_(label="latency p99"),
                ],
                right=[
                    m("EndpointFailures").with_(label="failures"),
                    m("CircuitsOpen", "Maximum").with_(label="circuits open"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="LLM tokens",
                width=width,
                left=[
                    m("TokensInput").with_(label="input"),
                    m("TokensOutput").with_(label="output"),
                    m("TokensCacheRead").with_(label="cache read"),
                    m("TokensCacheWrite").with_(label="cache write"),
                ],
                right=[self.spend(Duration.hours(1))],
            ),
            cloudwatch.GraphWidget(title="LLM fallbacks by failure class", width=width, left=[fallbacks]),
        )
        fns = resources.functions
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors",
                width=width,
                left=[fn.metric_errors(period=FIVE_MINUTES, label=name) for name, fn in fns.items()],
            ),
            cloudwatch.GraphWidget(
                title="Lambda throttles",
                width=width,
                left=[fn.metric_throttles(period=FIVE_MINUTES, label=name) for name, fn in fns.items()],
            ),
            cloudwatch.GraphWidget(
                title="Leases stuck",
                width=width,
                left=[m("LeasesStuck", "Maximum").with_(label="leases past expiry")],
            ),
        )
        dashboard.add_widgets(*self._ai_widgets(width))
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", width=24, alarms=list(self.alarms.values()))
        )
        return dashboard

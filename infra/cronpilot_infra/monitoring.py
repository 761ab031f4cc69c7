"""Dashboard, alarms and the alarm topic.

Alarms reach people: the topic (encrypted with its own key) lets CloudWatch and EventBridge publish,
in its policy and in the key's; every alarm notifies on ALARM and on OK.

Custom metrics come from Powertools EMF: namespace "cronpilot", dimension `service` (one per stage);
LlmFallbacks adds FailureClass and phase dimensions and is graphed per class with a SEARCH expression.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import (
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import (
    aws_cloudwatch as cloudwatch,
)
from aws_cdk import (
    aws_cloudwatch_actions as actions,
)
from aws_cdk import (
    aws_iam as iam,
)
from aws_cdk import (
    aws_kms as kms,
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
    # failed asynchronous invocations of discovery, finalize-failure and notify (on-failure destination)
    async_failures: sqs.IQueue
    # runs whose worst case fits well inside 5 minutes run here (domain/budget.py)
    express_state_machine: sfn.StateMachine | None = None


# Services that publish to the alarm topic: CloudWatch alarms, and EventBridge rules an operator adds.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploySettings, resources: MonitoredResources
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.topic_key: kms.Key | None = None
        if settings.alarm_topic_arn:
            # An existing topic's policy (and key) are its owner's: docs/deploy.md says what they must allow.
            self.topic: sns.ITopic = sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn)
        else:
            self.topic = self._topic()
            if settings.alarm_email:
                self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        machine = resources.state_machine
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        # The same four alarms for each state machine type: Express runs fail, time out (at their
        # 5-minute limit) and are throttled too, and send no status-change events to anyone.
        for prefix, each in (("", machine), ("Express", resources.express_state_machine)):
            if each is not None:
                self._execution_alarms(prefix, each)
        for name, fn in resources.functions.items():
            self._function_alarms(name, fn)
        tick = Duration.minutes(settings.tick_minutes)
        self._alarm(
            "DiscoveryLag",
            self.metric("DiscoveryLagSeconds", "Maximum", tick),
            threshold=settings.lag_alarm_seconds,
            evaluation_periods=3,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            # Discovery reports its lag once per tick, even with nothing due: with the period equal to
            # the tick, every period holds one datum, so no data = no ticks.
            missing=cloudwatch.TreatMissingData.BREACHING,
            description=f"Jobs claimed more than {settings.lag_alarm_seconds} s late, or no ticks for "
            f"{3 * settings.tick_minutes} minutes",
        )
        # A tick that reached its deadline leaves due jobs to the next one; three in a row means discovery
        # cannot keep up (more due jobs than a tick claims: shards, workers or the tick's timeout).
        self._alarm(
            "DiscoveryBehind",
            self.metric("JobsLeftForNextTick", "Maximum", tick),
            threshold=1,
            evaluation_periods=3,
            description="Discovery left due jobs for the next tick three ticks in a row: runs start late",
        )
        self._alarm(
            "LateStarts",
            self.metric("LateStarts", "Sum", Duration.minutes(15)),
            threshold=1,
            description="Runs were started by their start check, a minute or more after the claim: a tick "
            "died or StartExecution failed between claim and start (see StartFailures)",
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
        self._alarm(
            "AsyncFailures",
            resources.async_failures.metric_approximate_number_of_messages_visible(
                period=FIVE_MINUTES, statistic="Maximum"
            ),
            threshold=1,
            description="A discovery tick, a finalize-failure or a notify invocation failed after "
            "Lambda's retries (the async-failures queue holds the event and the error)",
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

    def _topic(self) -> sns.Topic:
        """The alarm topic, encrypted with a key of its own whose policy lets the publishers use it (the
        AWS managed SNS key does not allow CloudWatch, so alarms would be dropped)."""
        prefix = self.settings.prefix
        self.topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            alias=f"alias/{prefix}-alarms",
            description=f"{prefix}: encrypts the alarm topic; CloudWatch and EventBridge may use it",
            enable_key_rotation=True,
            # Messages are delivered at once, nothing stays encrypted under this key: it can go.
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{prefix}-alarms",
            display_name="cronpilot alarms",
            enforce_ssl=True,
            master_key=self.topic_key,
        )
        account = Stack.of(self).account
        for service in PUBLISHERS:
            principal = iam.ServicePrincipal(service)
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Publish{service.split('.')[0].title()}",
                    actions=["sns:Publish"],
                    principals=[principal],
                    resources=[topic.topic_arn],
                    conditions={"StringEquals": {"aws:SourceAccount": account}},
                )
            )
            self.topic_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Publish{service.split('.')[0].title()}",
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[principal],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": account}},
                )
            )
        return topic

    def _function_alarms(self, name: str, fn: lambda_.Function) -> None:
        ident = "".join(part.title() for part in name.split("_"))
        self._alarm(
            f"{ident}Errors",
            fn.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description=f"The {name} function raised (see its log group)"
            + (": due jobs are not being claimed" if name == "discovery" else ""),
        )
        # Short throttling bursts are retried (the state machine's Retry, Lambda's async retries);
        # a quarter of an hour of it means the reserved concurrency is too small for the load.
        self._alarm(
            f"{ident}Throttles",
            fn.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            evaluation_periods=3,
            description=f"The {name} function was throttled for 15 minutes: raise its reserved "
            "concurrency (executor_concurrency / llm_concurrency) or the account's limit",
        )

    def metric(self, name: str, statistic: str = "Sum", period: Duration = FIVE_MINUTES) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self.settings.service},
            statistic=statistic,
            period=period,
        )

    def spend(self, period: Duration) -> cloudwatch.Metric:
        """USD spent on model calls per period: each call's cost at its own model's price, as recorded
        on its run (list prices, or the deployment's llm_prices)."""
        return self.metric("TokenSpendUsd", period=period)

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

    def _execution_alarms(self, prefix: str, machine: sfn.StateMachine) -> None:
        kind = "Express" if prefix else "Standard"
        self._alarm(
            f"{prefix}ExecutionsFailed",
            machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description=f"{kind} runs failed (their stage failed even after finalize-failure recorded it)",
        )
        self._alarm(
            f"{prefix}ExecutionsTimedOut",
            machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description=(
                "Express runs hit Express's 5-minute limit: no Catch ran, the next claim records them "
                "as abandoned after their lease (the run budget underestimated them)"
                if prefix
                else "Runs hit the state machine's 1500 s timeout (the ended-execution rule then "
                "records them as failed): a stage hangs"
            ),
        )
        self._alarm(
            f"{prefix}ExecutionsAborted",
            machine.metric_aborted(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description=f"{kind} runs were stopped (StopExecution)"
            + ("" if prefix else ": the ended-execution rule records them as failed"),
        )
        self._alarm(
            f"{prefix}ExecutionsThrottled",
            machine.metric_throttled(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description=f"Step Functions throttled {kind} state transitions or StartExecution: runs are "
            "delayed (raise the account's Step Functions quotas)",
        )

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
        # OK too: the people paged learn when it is over without opening the console.
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
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
                    m("RunsPartial").with_(label="partial"),
                    m("RunsSkipped").with_(label="skipped"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Discovery",
                width=width,
                left=[
                    m("DiscoveryLagSeconds", "Maximum", Duration.minutes(self.settings.tick_minutes)).with_(
                        label="lag (s, max)"
                    )
                ],
                right=[
                    m("JobsDue").with_(label="due"),
                    m("RunsClaimed").with_(label="claimed"),
                    m("ClaimConflicts").with_(label="claim conflicts"),
                    m("StartFailures").with_(label="start failures"),
                    m("LateStarts").with_(label="late starts"),
                    m("JobsLeftForNextTick", "Maximum").with_(label="left for next tick"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Step Functions executions",
                width=width,
                left=[
                    machine.metric_failed(period=FIVE_MINUTES, statistic="Sum", label="failed"),
                    machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum", label="timed out"),
                    machine.metric_aborted(period=FIVE_MINUTES, statistic="Sum", label="aborted"),
                    machine.metric_throttled(period=FIVE_MINUTES, statistic="Sum", label="throttled"),
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
                right=[self.spend(Duration.hours(1)).with_(label="Token spend (USD)")],
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

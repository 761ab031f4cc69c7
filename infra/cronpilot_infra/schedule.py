"""The discovery tick: an EventBridge rule, with delivery retries and a dead-letter queue."""

from __future__ import annotations

from aws_cdk import (
    Duration,
)
from aws_cdk import (
    aws_events as events,
)
from aws_cdk import (
    aws_events_targets as targets,
)
from aws_cdk import (
    aws_lambda as lambda_,
)
from aws_cdk import (
    aws_sqs as sqs,
)
from constructs import Construct

from .failures import AsyncFailures
from .settings import DeploySettings

DELIVERY_RETRIES = 2


class DiscoverySchedule(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        discovery: lambda_.Function,
        failures: AsyncFailures,
    ) -> None:
        super().__init__(scope, construct_id)
        # Events EventBridge could not deliver after its retries (ticks, and the notices of executions
        # that ended abnormally: RunStateMachine.finalize_abnormal_ends); kept 14 days for inspection.
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            queue_name=f"{settings.prefix}-events-dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        unit = "minute" if settings.tick_minutes == 1 else "minutes"
        self.expression = f"rate({settings.tick_minutes} {unit})"
        # A tick older than one interval is worthless: the next tick picks up every due job anyway.
        max_age = Duration.minutes(max(settings.tick_minutes, 1))
        self.rule = events.Rule(
            self,
            "Tick",
            rule_name=f"{settings.prefix}-tick",
            description="cronpilot discovery tick",
            schedule=events.Schedule.expression(self.expression),
            targets=[
                targets.LambdaFunction(
                    discovery,
                    dead_letter_queue=self.dead_letters,
                    retry_attempts=DELIVERY_RETRIES,
                    max_event_age=max_age,
                )
            ],
        )
        # Lambda's own async retries would replay a failed tick after the next one already ran:
        # discovery is idempotent and every tick picks up all due jobs, so the next tick is the retry.
        # The failed tick itself (event and error) is kept on the async-failures queue, which alarms.
        failures.keep_failures_of(discovery, retry_attempts=0, max_event_age=max_age)

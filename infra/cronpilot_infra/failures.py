"""Where failed asynchronous invocations go: one queue, the on-failure destination of discovery,
finalize-failure and notify (the functions invoked asynchronously), so their errors outlive Lambda's
retries."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .settings import DeploySettings

# finalize-failure records a run and releases its lease, notify delivers a notice: both are worth
# Lambda's full async retries.
FINALIZE_RETRIES = 2


class AsyncFailures(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: DeploySettings) -> None:
        super().__init__(scope, construct_id)
        # Each message is Lambda's invocation record: the original event, the error and the attempts.
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=f"{settings.prefix}-async-failures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )

    @property
    def destination(self) -> destinations.SqsDestination:
        return destinations.SqsDestination(self.queue)

    def keep_failures_of(self, fn: lambda_.Function, *, retry_attempts: int, max_event_age: Duration) -> None:
        """Lambda's async retries, then the failed event with its error lands on the queue."""
        fn.configure_async_invoke(
            on_failure=self.destination, retry_attempts=retry_attempts, max_event_age=max_event_age
        )

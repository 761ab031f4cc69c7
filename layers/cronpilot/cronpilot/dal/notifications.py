"""How notices travel on AWS: an asynchronous invocation of the notify function (Lambda retries it
and sends what still fails to its on-failure destination), and SNS for topic targets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cronpilot.models.notify import Notice, NoticeBatch

if TYPE_CHECKING:
    from cronpilot.safehttp import HttpOutcome, RequestSpec

# Lambda's asynchronous invocation payload limit is 256 KB; a notice is well under 1 KB.
BATCH_SIZE = 100


class LambdaNoticeQueue:
    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self.client = lambda_client
        self.function_name = function_name

    def enqueue(self, notices: list[Notice]) -> None:
        for start in range(0, len(notices), BATCH_SIZE):
            batch = NoticeBatch(notices=notices[start : start + BATCH_SIZE])
            self.client.invoke(
                FunctionName=self.function_name,
                InvocationType="Event",
                Payload=batch.model_dump_json().encode(),
            )


class DisabledNoticeQueue:
    """No notify function configured (a deployment without it): notices are logged, not sent."""

    def enqueue(self, notices: list[Notice]) -> None:
        from cronpilot.observability import logger

        logger.info("notices not sent: no notify function configured", count=len(notices))


class AwsChannels:
    def __init__(self, sns_client: Any, send: Any) -> None:
        self.sns = sns_client
        self._send = send

    def publish_sns(self, topic_arn: str, subject: str, message: str) -> None:
        self.sns.publish(TopicArn=topic_arn, Subject=subject[:100], Message=message)

    def send(self, spec: RequestSpec) -> HttpOutcome:
        outcome: HttpOutcome = self._send(spec)
        return outcome

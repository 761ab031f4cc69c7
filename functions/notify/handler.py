"""Notify Lambda: delivers job notifications (SNS or signed webhooks) and records them on their runs.
Invoked asynchronously by discovery, the summarizer and finalize-failure, so delivery never delays a run."""

from cronpilot import coldstart

coldstart.loading()  # no garbage collection while init loads: see cronpilot.coldstart

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from cronpilot.domain.notifications import DeliveryCounts, deliver_notices, delivery_counts
from cronpilot.models.notify import NoticeBatch
from cronpilot.observability import logger, metrics, tracer
from cronpilot.runtime import get_runtime

coldstart.loaded()


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> DeliveryCounts:
    batch = NoticeBatch.model_validate(event)
    runtime = get_runtime()
    deliveries = deliver_notices(
        runtime.store, runtime.notify_channels, runtime.signing_secret, batch.notices, runtime.clock.now
    )
    counts = delivery_counts(deliveries)
    logger.info("notices delivered", **counts)
    return counts

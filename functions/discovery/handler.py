"""Discovery Lambda: triggered every minute by the schedule; claims due jobs and starts their runs."""

from cronpilot import coldstart

coldstart.loading()  # no garbage collection while init loads: see cronpilot.coldstart

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from cronpilot.domain.discovery import Deadline, Discovery
from cronpilot.models.run import ScheduledEvent
from cronpilot.observability import logger, metrics, tracer
from cronpilot.runtime import get_runtime

coldstart.loaded()


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tick = ScheduledEvent.model_validate(event)
    runtime = get_runtime()
    result = Discovery(
        runtime.store,
        runtime.starter,
        runtime.clock,
        owner=context.aws_request_id,
        notices=runtime.notice_queue,
        budget=runtime.run_budgeter,
    ).tick(Deadline.of_lambda(context))
    logger.info("discovery tick", tick_time=tick.time.isoformat(), **result.log_fields())
    return result.output()

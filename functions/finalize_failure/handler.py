"""Finalize-failure Lambda: the Catch target, and the target of EventBridge's notice of an execution
that timed out or was stopped (which no Catch sees). Records the failure, backs off, releases the lease."""

from cronpilot import coldstart

coldstart.loading()  # no garbage collection while init loads: see cronpilot.coldstart

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from cronpilot.domain.finalizing import finalize_failure
from cronpilot.domain.ports import RunOutcome
from cronpilot.models.run import FailureEvent
from cronpilot.observability import logger, metrics, tracer
from cronpilot.runtime import get_runtime

coldstart.loaded()


@logger.inject_lambda_context(correlation_id_path="run_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> RunOutcome:
    failure = FailureEvent.from_event(event)
    runtime = get_runtime()
    outcome = finalize_failure(runtime.store, runtime.clock, failure, notices=runtime.notice_queue)
    logger.warning(
        "run failed", run_id=failure.run_id, error=failure.error.get("Error"), outcome=outcome["status"]
    )
    return outcome

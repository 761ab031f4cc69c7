"""Summarizer Lambda: records the run's outcome and chooses the next run inside the guardrails."""

from cronpilot import coldstart

coldstart.loading()  # no garbage collection while init loads: see cronpilot.coldstart

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from cronpilot.domain.ports import RunOutcome
from cronpilot.domain.summarizing import summarize_run
from cronpilot.models.run import RunRef
from cronpilot.observability import logger, metrics, tracer
from cronpilot.runtime import get_runtime

coldstart.loaded()


@logger.inject_lambda_context(correlation_id_path="run_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> RunOutcome:
    ref = RunRef.model_validate(event)
    runtime = get_runtime()
    outcome = summarize_run(
        runtime.store, runtime.clock, ref, runtime.summary_strategy, notices=runtime.notice_queue
    )
    logger.info("run summarized", run_id=ref.run_id, status=outcome["status"])
    return outcome

"""Planner Lambda: decides which endpoints this run calls, as dependency waves."""

from cronpilot import coldstart

coldstart.loading()  # no garbage collection while init loads: see cronpilot.coldstart

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from cronpilot.domain.planning import plan_run
from cronpilot.models.run import RunRef
from cronpilot.observability import logger, metrics, tracer
from cronpilot.runtime import get_runtime

coldstart.loaded()


@logger.inject_lambda_context(correlation_id_path="run_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ref = RunRef.model_validate(event)
    runtime = get_runtime()
    output = plan_run(runtime.store, runtime.health_store, runtime.clock, ref, runtime.plan_strategy)
    logger.info("run planned", run_id=ref.run_id, waves=len(output.waves))
    return output.model_dump()

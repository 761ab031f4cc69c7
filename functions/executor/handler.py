"""Executor Lambda: one endpoint call; the result goes to DynamoDB, the state machine gets a status."""

from cronpilot import coldstart

coldstart.loading()  # no garbage collection while init loads: see cronpilot.coldstart

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from cronpilot.dal.idempotency import Handler
from cronpilot.models.run import StepTask
from cronpilot.observability import logger, metrics, tracer
from cronpilot.runtime import get_runtime

coldstart.loaded()


def execute_step(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StepTask.model_validate(event)
    outcome = get_runtime().step_executor.execute(task)
    logger.info("step done", run_id=task.run_id, step_id=task.step.step_id, status=outcome.status)
    return outcome.model_dump()


def _replayed(response: Any) -> None:
    logger.info("step replayed from its idempotency record", outcome=response)


@cache
def idempotent_execute_step() -> Handler:
    return get_runtime().idempotent(execute_step, on_replay=_replayed)


@logger.inject_lambda_context(correlation_id_path="run_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result: dict[str, Any] = idempotent_execute_step()(event, context)
    return result

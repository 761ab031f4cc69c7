"""Executor Lambda: one endpoint call; the result goes to DynamoDB, the state machine gets a status."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from cronpilot.executor import StepExecutor
from cronpilot.models.run import StepTask
from cronpilot.observability import logger, metrics, tracer
from cronpilot.runtime import get_runtime
from cronpilot.safehttp import EgressPolicy, SafeHttpClient


@cache
def http_client() -> SafeHttpClient:
    settings = get_runtime().settings
    policy = EgressPolicy.from_settings(
        allowed_ports=settings.egress_allowed_ports, allowed_cidrs=settings.egress_allowed_cidrs
    )
    if policy.allowed_cidrs:
        logger.warning(
            "private networks reachable by the executor", cidrs=[str(c) for c in policy.allowed_cidrs]
        )
    return SafeHttpClient(policy)


@logger.inject_lambda_context(correlation_id_path="run_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StepTask.model_validate(event)
    runtime = get_runtime()
    outcome = StepExecutor(runtime.store, runtime.clock, http_client().send).execute(task)
    logger.info("step done", run_id=task.run_id, step_id=task.step.step_id, status=outcome.status)
    return outcome.model_dump()

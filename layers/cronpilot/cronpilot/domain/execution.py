"""Executor: one endpoint call per invocation. The full result goes to DynamoDB; the state machine
only gets the step's status back (state payloads are capped at 256 KB and must never carry secrets)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from cronpilot.clock import Clock
from cronpilot.domain.circuit import CircuitBreaker, Permit
from cronpilot.domain.ports import JobStore
from cronpilot.domain.step_calls import (
    MAX_TOTAL_BUDGET,
    CallNotMade,
    SecretResolver,
    Sender,
    build_request,
    call,
)
from cronpilot.domain.templating import referenced_endpoints
from cronpilot.models.job import Endpoint, Job, SecretRef
from cronpilot.models.run import StepOutcome, StepResult, StepStatus, StepTask
from cronpilot.observability import record_step

__all__ = ["CIRCUIT_OPEN", "MAX_TOTAL_BUDGET", "StepExecutor", "idempotency_key", "resolve_secret"]

CIRCUIT_OPEN = "circuit-open"


def resolve_secret(ref: SecretRef) -> str:
    """Secrets Manager or SSM through Powertools parameters, cached for 5 minutes per container."""
    from aws_lambda_powertools.utilities import parameters

    if ref.secret is not None:
        value = str(parameters.get_secret(ref.secret, max_age=300))
    else:
        assert ref.parameter is not None
        value = str(parameters.get_parameter(ref.parameter, decrypt=True, max_age=300))
    if ref.json_key is not None:
        value = _json_field(value, ref.json_key)
    return value


def _json_field(value: str, key: str) -> str:
    # The messages never quote the value: it is the secret.
    try:
        document = json.loads(value)
    except ValueError:
        raise ValueError(f"json_key {key!r} is set but the value is not JSON") from None
    if not isinstance(document, dict) or key not in document:
        raise ValueError(f"its JSON has no key {key!r}")
    return str(document[key])


def idempotency_key(run_id: str, step_id: str) -> str:
    return f"cronpilot-{run_id}-{step_id}"


class StepExecutor:
    def __init__(
        self,
        store: JobStore,
        clock: Clock,
        send: Sender,
        resolver: SecretResolver = resolve_secret,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,  # between assertion retries
    ) -> None:
        self.store = store
        self.clock = clock
        self.send = send
        self.resolver = resolver
        self.breaker = breaker
        self.sleep = sleep

    def execute(self, task: StepTask) -> StepOutcome:
        step = task.step
        # One read: the job, this step's own result (a retry after the call) and its dependencies'.
        wanted = [step.step_id, *step.depends_on]
        record, known = self.store.get_step_context(task.job_id, task.run_id, wanted)
        if step.step_id in known:  # re-invoked by a retry: the call already happened
            return StepOutcome(step_id=step.step_id, status=known[step.step_id].status)
        endpoint = record.job.endpoint(step.endpoint_id)
        started = self.clock.now()
        result = self._blocked_by_dependency(task, endpoint, known)
        if result is None:
            # Values may come from transitive dependencies, which the first read did not include.
            producers = [p for p in referenced_endpoints(endpoint) if p not in known]
            if producers:
                known = {**known, **self.store.get_step_results(task.run_id, producers)}
            result = self._call(task, record.job, endpoint, known)
        result.started_at = started
        result.finished_at = self.clock.now()
        self.store.put_step_result(task.job_id, task.run_id, task.epoch, result, result.finished_at)
        record_step(result, circuit_open=result.skip_reason == CIRCUIT_OPEN)
        return StepOutcome(step_id=step.step_id, status=result.status)

    def _call(self, task: StepTask, job: Job, endpoint: Endpoint, known: dict[str, StepResult]) -> StepResult:
        """Build the request (earlier steps' values, secrets, signature), then call the endpoint unless
        its origin's circuit is open; report the outcome to the circuit."""
        step_id = task.step.step_id
        try:
            spec = build_request(job, endpoint, idempotency_key(task.run_id, step_id), self.resolver, known)
        except CallNotMade as exc:
            return StepResult(
                step_id=step_id,
                endpoint_id=endpoint.id,
                status=StepStatus.FAILED,
                error=str(exc),
                error_kind=exc.kind,
            )
        breaker = self.breaker
        permit: Permit | None = breaker.acquire(spec.url) if breaker is not None else None
        if permit is not None and not permit.allowed:
            return StepResult(
                step_id=step_id, endpoint_id=endpoint.id, status=StepStatus.SKIPPED, skip_reason=CIRCUIT_OPEN
            )
        try:
            verdict, outcome = call(self.send, spec, endpoint, self.sleep)
        except Exception:
            if breaker is not None and permit is not None:
                breaker.release(permit)  # no verdict on the endpoint
            raise
        if breaker is not None and permit is not None:
            breaker.record(permit, outcome)
        return verdict.result(step_id, endpoint.id)

    def _blocked_by_dependency(
        self, task: StepTask, endpoint: Endpoint, deps: dict[str, StepResult]
    ) -> StepResult | None:
        if endpoint.on_dependency_failure == "continue":
            return None
        for dep in task.step.depends_on:
            status = deps[dep].status if dep in deps else "missing"
            if status != StepStatus.SUCCEEDED:
                return StepResult(
                    step_id=task.step.step_id,
                    endpoint_id=endpoint.id,
                    status=StepStatus.SKIPPED,
                    skip_reason=f"dependency {dep} {status}",
                )
        return None

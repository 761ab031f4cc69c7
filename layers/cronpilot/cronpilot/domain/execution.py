"""Executor: one endpoint call per invocation. The full result goes to DynamoDB; the state machine
only gets the step's status back (state payloads are capped at 256 KB and must never carry secrets)."""

from __future__ import annotations

import json
from collections.abc import Callable

from cronpilot.clock import Clock
from cronpilot.domain.budget import MAX_CALL_BUDGET, call_budget
from cronpilot.domain.circuit import CircuitBreaker, Permit
from cronpilot.domain.ports import JobStore
from cronpilot.models.job import Endpoint, SecretRef
from cronpilot.models.run import StepOutcome, StepResult, StepStatus, StepTask
from cronpilot.observability import record_step
from cronpilot.safehttp import HttpOutcome, RequestSpec

# The executor Lambda's timeout is 300 s; a call's total budget stays well inside it (and is what the
# run's budget counts for the step: cronpilot.domain.budget).
MAX_TOTAL_BUDGET = MAX_CALL_BUDGET

SecretResolver = Callable[[SecretRef], str]
Sender = Callable[[RequestSpec], HttpOutcome]
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
        value = str(json.loads(value)[ref.json_key])
    return value


def build_request(endpoint: Endpoint, idempotency_key: str, resolver: SecretResolver) -> RequestSpec:
    headers = {
        name: (resolver(value) if isinstance(value, SecretRef) else value)
        for name, value in endpoint.headers.items()
    }
    body: str | None
    if endpoint.body is None or isinstance(endpoint.body, str):
        body = endpoint.body
    else:
        body = json.dumps(endpoint.body)
        headers.setdefault("Content-Type", "application/json")
    timeout = endpoint.timeout.total_seconds()
    return RequestSpec(
        method=endpoint.method,
        url=endpoint.url,
        headers=headers,
        body=body,
        connect_timeout=min(5.0, timeout),
        read_timeout=timeout,
        total_timeout=call_budget(endpoint).total_seconds(),
        retry_non_idempotent=bool(endpoint.retryable),
        max_attempts=3 if endpoint.retryable is not False else 1,
        secret_header_names=endpoint.secret_header_names(),
        idempotency_key=idempotency_key,
    )


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
    ) -> None:
        self.store = store
        self.clock = clock
        self.send = send
        self.resolver = resolver
        self.breaker = breaker

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
            result = self._call(task, endpoint)
        result.started_at = started
        result.finished_at = self.clock.now()
        self.store.put_step_result(task.job_id, task.run_id, task.epoch, result, result.finished_at)
        record_step(result, circuit_open=result.skip_reason == CIRCUIT_OPEN)
        return StepOutcome(step_id=step.step_id, status=result.status)

    def _call(self, task: StepTask, endpoint: Endpoint) -> StepResult:
        """Call the endpoint unless its origin's circuit is open; report the outcome to the circuit."""
        step_id = task.step.step_id
        breaker = self.breaker
        permit: Permit | None = breaker.acquire(endpoint.url) if breaker is not None else None
        if permit is not None and not permit.allowed:
            return StepResult(
                step_id=step_id, endpoint_id=endpoint.id, status=StepStatus.SKIPPED, skip_reason=CIRCUIT_OPEN
            )
        try:
            outcome = self.send(build_request(endpoint, idempotency_key(task.run_id, step_id), self.resolver))
        except Exception:
            if breaker is not None and permit is not None:
                breaker.release(permit)  # e.g. the secret could not be read: no verdict on the endpoint
            raise
        if breaker is not None and permit is not None:
            breaker.record(permit, outcome)
        return StepResult(
            step_id=step_id,
            endpoint_id=endpoint.id,
            status=StepStatus.SUCCEEDED if outcome.ok else StepStatus.FAILED,
            http_status=outcome.http_status,
            attempts=outcome.attempts,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            body=outcome.body,
            body_truncated=outcome.body_truncated,
        )

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

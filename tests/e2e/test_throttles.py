"""Throttles are absorbed: a burst of 4x the executor's reserved concurrency completes, because the
ASL retries Lambda.TooManyRequestsException long enough. Local mode enforces reserved concurrency the
way Lambda does (an invocation beyond it gets HTTP 429 TooManyRequestsException)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cronpilot.local.cloud import LocalCloud, function_name
from cronpilot.local.runner import apply_jobs, tick_until
from cronpilot.models.run import RunStatus, StepStatus
from cronpilot.runtime import get_runtime

from tests.support.factories import make_job

CONCURRENCY = 2
BURST = CONCURRENCY * 4


@pytest.fixture
def throttled_cloud(target, clock) -> Iterator[LocalCloud]:
    with LocalCloud(
        clock,
        egress_allowed_cidrs="127.0.0.0/8",
        egress_allowed_ports=f"80,443,{target.port}",
        reserved_concurrency={"executor": CONCURRENCY},
    ) as local:
        yield local


def test_an_invocation_beyond_reserved_concurrency_is_refused_like_lambda(throttled_cloud):
    # Given the executor's reserved concurrency, all of it in use
    lambda_ = throttled_cloud.client("lambda")
    config = lambda_.get_function_concurrency(FunctionName=function_name("executor"))
    assert config["ReservedConcurrentExecutions"] == CONCURRENCY
    for _ in range(CONCURRENCY):
        throttled_cloud._enter(function_name("executor"), CONCURRENCY)
    # When one more invocation arrives, Then Lambda's 429 TooManyRequestsException answers it
    with pytest.raises(lambda_.exceptions.TooManyRequestsException):
        lambda_.invoke(FunctionName=function_name("executor"), Payload=b"{}")
    for _ in range(CONCURRENCY):
        throttled_cloud._leave(function_name("executor"))
    assert set(throttled_cloud.throttled) == {function_name("executor")}


def test_a_burst_of_four_times_the_reserved_concurrency_completes(throttled_cloud, clock, target):
    # Given one wave of 4x the executor's reserved concurrency, every step started at once
    job = make_job(
        "burst",
        schedule={"rate": "10m"},
        guardrails={"max_parallel": BURST, "max_steps": BURST},
        endpoints=[{"id": f"call-{n}", "url": f"{target.base_url}/slow?ms=300"} for n in range(BURST)],
    )
    store = get_runtime().store
    apply_jobs(store, [job], clock.now())
    # When the run executes
    tick_until(throttled_cloud, clock, store, ticks=1)
    # Then Lambda refused some invocations, and every step still ran and succeeded
    assert function_name("executor") in throttled_cloud.throttled
    [run] = store.list_runs("burst")[0]
    assert run.status == RunStatus.SUCCEEDED, run.error
    results = store.get_step_results(run.run_id)
    assert len(results) == BURST
    assert {r.status for r in results.values()} == {StepStatus.SUCCEEDED}

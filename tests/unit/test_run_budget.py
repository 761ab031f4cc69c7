"""A run's worst case decides its state machine type and becomes its task timeouts (domain/budget.py)."""

from __future__ import annotations

import heapq
import json
import math
from datetime import timedelta
from typing import Any

from cronpilot.dag import topological_waves
from cronpilot.domain import budget
from cronpilot.domain.budget import (
    EXPRESS_BUDGET,
    EXPRESS_LIMIT,
    NO_MODEL,
    SERVICE_RETRY_WAIT,
    LlmTiming,
    RunBudgeter,
    call_budget,
    run_budget,
)
from cronpilot.jobfiles import load_job_file
from cronpilot.local.cloud import ASL_PATH
from cronpilot.models.job import Job
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from tests.support.factories import make_job

ANTHROPIC = LlmTiming(provider="anthropic", timeout_seconds=30.0, max_retries=2)


def _job(timeouts: list[int], chain: bool = False, max_parallel: int = 5, **fields: Any) -> Job:
    endpoints = []
    for n, seconds in enumerate(timeouts):
        endpoint: dict[str, Any] = {
            "id": f"e{n}",
            "url": f"https://api.example.com/{n}",
            "timeout": f"{seconds}s",
        }
        if chain and n:
            endpoint["depends_on"] = [f"e{n - 1}"]
        endpoints.append(endpoint)
    guardrails = {"max_parallel": max_parallel, "max_steps": max(len(timeouts), 1)}
    return make_job("budget", endpoints=endpoints, guardrails=guardrails, **fields)


# ----------------------------------------------------------------------------------------- examples


def test_the_shipped_example_job_runs_on_express() -> None:
    # Given examples/orders-sync.yaml (2 endpoints in 2 waves, 10 s timeouts), no LLM
    job = load_job_file(REPO_ROOT / "examples" / "orders-sync.yaml")
    result = run_budget(job)
    # Then plan 15 s + 2 waves x (3 x 10 s call + 10 s around it + 7 s service retries) + summarize 15 s
    # + 2 x 7 s of service retries on the two stages
    assert result.worst_case == timedelta(seconds=15 + 2 * (40 + 7) + 15 + 14)
    assert result.execution_type == "express"
    assert result.limits.as_input() == {"plan_seconds": 15, "step_seconds": 40, "summarize_seconds": 15}


def test_a_slow_endpoint_sends_the_run_to_standard() -> None:
    # Given one endpoint allowed 2 minutes per attempt (3 attempts cap at the 240 s call budget)
    result = run_budget(_job([120]))
    assert call_budget(_job([120]).endpoints[0]) == timedelta(seconds=240)
    assert result.limits.step_seconds == 250
    assert result.execution_type == "standard"


def test_a_model_on_the_default_settings_sends_the_run_to_standard() -> None:
    # Given the deployment's Anthropic settings (30 s timeout, 2 SDK retries), the plan conversation
    # may take 3 answers x 3 attempts x 30 s: more than Express can hold
    job = _job([10, 10])
    assert run_budget(job, ANTHROPIC).execution_type == "standard"
    # And the planner's limit is capped at the planner Lambda's own timeout
    assert run_budget(job, ANTHROPIC).limits.plan_seconds == 180
    # But a job that opts out of the model runs on Express under the same deployment
    opted_out = _job([10, 10], llm={"provider": "none"})
    assert RunBudgeter(ANTHROPIC)(opted_out).execution_type == "express"


def test_a_fast_model_setting_can_keep_model_runs_on_express() -> None:
    # Given a deployment that allows 5 s per model answer and no SDK retry
    quick = LlmTiming(provider="bedrock", timeout_seconds=5, max_retries=0)
    result = run_budget(_job([5]), quick)
    # plan: 15 + 3 answers x 5 s; summarize: 15 + 2 x 5 s; one step: 15 + 10 + 7; 14 s of stage retries
    assert result.limits.plan_seconds == 30
    assert result.limits.summarize_seconds == 25
    assert result.worst_case == timedelta(seconds=30 + 25 + 32 + 14)
    assert result.execution_type == "express"


def test_a_job_that_names_a_provider_counts_model_time_even_when_the_deployment_has_none() -> None:
    job = _job([10], llm={"provider": "bedrock"})
    timing = LlmTiming(provider="none", timeout_seconds=30, max_retries=2)
    assert timing.uses_model(job)
    assert not NO_MODEL.uses_model(_job([10]))


def test_model_plans_are_bounded_one_step_after_another() -> None:
    # Given 4 independent endpoints: the deterministic plan runs them as one wave, 5 at a time
    job = _job([10, 10, 10, 10])
    deterministic = run_budget(job, LlmTiming("anthropic", 1, 0))
    # a model may chain them, so its bound is the four steps in a row
    steps = run_budget(job).worst_case - timedelta(seconds=15 + 15 + 14)
    assert steps == timedelta(seconds=40 + 7)
    model_steps = deterministic.worst_case - timedelta(seconds=(15 + 3) + (15 + 2) + 14)
    assert model_steps == 4 * timedelta(seconds=40 + 7)


# ------------------------------------------------------------------------- constants kept in step


def test_the_service_retry_wait_is_the_asls_retrier() -> None:
    asl = json.loads(ASL_PATH.read_text())
    (service,) = [r for r in asl["States"]["Plan"]["Retry"] if "Lambda.ServiceException" in r["ErrorEquals"]]
    waits = [
        min(service["IntervalSeconds"] * service["BackoffRate"] ** n, service["MaxDelaySeconds"])
        for n in range(service["MaxAttempts"])
    ]
    assert timedelta(seconds=sum(waits)) == SERVICE_RETRY_WAIT


def test_express_budget_leaves_room_for_finalize_failure_inside_the_limit() -> None:
    # An Express run that fails at the very end of its worst case must still reach FinalizeFailure
    # and finish it (its timeout, its service retries) before Express's 5 minutes end.
    asl = json.loads(ASL_PATH.read_text())
    finalize = timedelta(seconds=asl["States"]["FinalizeFailure"]["TimeoutSeconds"])
    assert EXPRESS_BUDGET + finalize + SERVICE_RETRY_WAIT < EXPRESS_LIMIT


# ------------------------------------------------------------------------------------- properties

timeouts = st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=12)


def _simulated_deterministic_run(job: Job, step_seconds: dict[str, float]) -> float:
    """The steps' wall time when every step takes `step_seconds` plus the full service-retry wait:
    waves one after another, each a Map that starts the next item whenever one of its
    max_parallel slots frees up (in plan order)."""
    graph = {e.id: list(e.depends_on) for e in job.endpoints}
    total = 0.0
    for wave in topological_waves(graph):
        slots = [0.0] * min(job.guardrails.max_parallel, len(wave))
        for step_id in wave:
            start = heapq.heappop(slots)
            heapq.heappush(slots, start + step_seconds[step_id] + SERVICE_RETRY_WAIT.total_seconds())
        total += max(slots)
    return total


@settings(max_examples=60, deadline=None)
@given(timeouts=timeouts, chain=st.booleans(), max_parallel=st.integers(min_value=1, max_value=6))
def test_the_worst_case_bounds_a_run_whose_every_step_takes_its_whole_limit(
    timeouts: list[int], chain: bool, max_parallel: int
) -> None:
    job = _job(timeouts, chain=chain, max_parallel=max_parallel)
    result = run_budget(job)
    limits = result.limits
    steps = _simulated_deterministic_run(job, dict.fromkeys(graph_ids(job), float(limits.step_seconds)))
    stages = limits.plan_seconds + limits.summarize_seconds + 2 * SERVICE_RETRY_WAIT.total_seconds()
    assert steps + stages <= result.worst_case.total_seconds()


def graph_ids(job: Job) -> list[str]:
    return [e.id for e in job.endpoints]


@settings(max_examples=60, deadline=None)
@given(timeouts=timeouts, chain=st.booleans(), model=st.booleans())
def test_limits_are_whole_positive_seconds_within_the_lambda_timeouts(
    timeouts: list[int], chain: bool, model: bool
) -> None:
    result = run_budget(_job(timeouts, chain=chain), ANTHROPIC if model else NO_MODEL)
    for stage, seconds in (
        ("planner", result.limits.plan_seconds),
        ("executor", result.limits.step_seconds),
        ("summarizer", result.limits.summarize_seconds),
    ):
        assert isinstance(seconds, int)
        assert 0 < seconds <= budget.LAMBDA_TIMEOUTS[stage].total_seconds()
    # every step's whole call fits its task timeout
    assert result.limits.step_seconds >= max(call_budget(e).total_seconds() for e in _job(timeouts).endpoints)


@settings(max_examples=60, deadline=None)
@given(timeouts=timeouts, chain=st.booleans(), extra=st.integers(min_value=1, max_value=300))
def test_a_slower_endpoint_or_a_model_never_shortens_the_worst_case(
    timeouts: list[int], chain: bool, extra: int
) -> None:
    job = _job(timeouts, chain=chain)
    slower = _job([min(timeouts[0] + extra, 600), *timeouts[1:]], chain=chain)
    assert run_budget(slower).worst_case >= run_budget(job).worst_case
    assert run_budget(job, ANTHROPIC).worst_case >= run_budget(job).worst_case


@settings(max_examples=60, deadline=None)
@given(timeouts=timeouts, model=st.booleans())
def test_express_exactly_when_the_worst_case_fits_the_budget(timeouts: list[int], model: bool) -> None:
    result = run_budget(_job(timeouts), ANTHROPIC if model else NO_MODEL)
    assert (result.execution_type == "express") == (result.worst_case <= EXPRESS_BUDGET)
    if result.execution_type == "express":
        assert result.worst_case + timedelta(seconds=30) < EXPRESS_LIMIT
    assert math.isfinite(result.worst_case.total_seconds())

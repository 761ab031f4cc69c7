"""A run's worst case, computed from its job before it starts, and the state machine type it runs on.

Express executions cost a request and their duration instead of every state transition, but end at
5 minutes without a Catch and send no status-change events. So a run goes to Express only when its
worst case (every stage timing out at its limit after the retries the ASL allows) ends well inside
that limit, leaving room for finalize-failure to record the outcome. The same numbers become the
run's task timeouts (the ASL reads them from the execution input), so a stage that overruns fails
with States.Timeout into the Catch instead of running into the 5-minute wall.

Pure: no I/O, no clock; the deployment's LLM settings come in as `LlmTiming`.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Literal, NamedTuple

from cronpilot.dag import topological_waves
from cronpilot.models.job import Endpoint, Job, LlmProvider

ExecutionType = Literal["express", "standard"]

EXPRESS_LIMIT = timedelta(minutes=5)
# "Well inside": what the worst case leaves of the limit pays for finalize-failure (its task timeout
# in the ASL, 30 s), throttled tasks' retries (beyond it the lease decides) and Step Functions' own
# time per state.
EXPRESS_BUDGET = timedelta(seconds=180)

# An endpoint call's total budget (every attempt), capped well inside the executor Lambda's 300 s.
MAX_CALL_BUDGET = timedelta(seconds=240)
CALL_ATTEMPTS = 3
# Around the call: secrets, circuit breaker, idempotency record, result write and a cold start.
STEP_OVERHEAD = timedelta(seconds=10)
# Planner and summarizer without their model calls: reads, writes and a cold start.
STAGE_OVERHEAD = timedelta(seconds=15)
# The ASL's retrier for Lambda service errors (3 retries, 1 s doubling): errors that come back when
# the invocation is refused, not after it ran, so only the waits add up.
SERVICE_RETRY_WAIT = timedelta(seconds=1 + 2 + 4)
# Model conversations: the first answer plus the repairs ai.plan_model / ai.summary_model allow.
PLAN_MODEL_CALLS = 1 + 2
SUMMARY_MODEL_CALLS = 1 + 1
# The SDK's wait between its own retries is at most this long.
SDK_RETRY_WAIT = timedelta(seconds=8)
# The Lambda timeouts (infra/cronpilot_infra/functions.py): a task limit beyond them buys nothing.
LAMBDA_TIMEOUTS = {
    "planner": timedelta(seconds=180),
    "executor": timedelta(seconds=300),
    "summarizer": timedelta(seconds=180),
}


class LlmTiming(NamedTuple):
    """The deployment's model settings (LLM_PROVIDER, LLM_TIMEOUT_SECONDS, LLM_MAX_RETRIES)."""

    provider: str
    timeout_seconds: float
    max_retries: int

    def uses_model(self, job: Job) -> bool:
        """Whether this job's runs ask a model: its own provider, or `inherit` the deployment's."""
        provider = job.llm.provider
        if provider == LlmProvider.INHERIT:
            return self.provider.lower() not in ("", "none", "inherit")
        return provider != LlmProvider.NONE

    def conversation(self, calls: int) -> timedelta:
        """Longest model conversation of `calls` answers, each retried by the SDK up to max_retries."""
        attempts = timedelta(seconds=self.timeout_seconds) * (self.max_retries + 1)
        one = attempts + SDK_RETRY_WAIT * self.max_retries
        return one * calls


NO_MODEL = LlmTiming(provider="none", timeout_seconds=0, max_retries=0)


class RunLimits(NamedTuple):
    """The run's task timeouts in whole seconds, read by the ASL's TimeoutSecondsPath."""

    plan_seconds: int
    step_seconds: int
    summarize_seconds: int

    def as_input(self) -> dict[str, int]:
        return {
            "plan_seconds": self.plan_seconds,
            "step_seconds": self.step_seconds,
            "summarize_seconds": self.summarize_seconds,
        }


class RunBudget(NamedTuple):
    """A run's limits and its worst-case duration (which picks Express or Standard)."""

    limits: RunLimits
    worst_case: timedelta

    @property
    def execution_type(self) -> ExecutionType:
        return "express" if self.worst_case <= EXPRESS_BUDGET else "standard"


def call_budget(endpoint: Endpoint) -> timedelta:
    """Every attempt of one endpoint call together (the executor's total timeout for it)."""
    return min(MAX_CALL_BUDGET, endpoint.timeout * CALL_ATTEMPTS)


def _seconds(value: timedelta, cap: timedelta) -> int:
    return math.ceil(min(value, cap).total_seconds())


def run_budget(job: Job, llm: LlmTiming = NO_MODEL) -> RunBudget:
    """The worst case of one run of `job`, and the task timeouts that bound it."""
    model = llm.uses_model(job)
    plan = STAGE_OVERHEAD + (llm.conversation(PLAN_MODEL_CALLS) if model else timedelta(0))
    summarize = STAGE_OVERHEAD + (llm.conversation(SUMMARY_MODEL_CALLS) if model else timedelta(0))
    step = {e.id: call_budget(e) + STEP_OVERHEAD for e in job.endpoints}
    limits = RunLimits(
        plan_seconds=_seconds(plan, LAMBDA_TIMEOUTS["planner"]),
        step_seconds=_seconds(max(step.values()), LAMBDA_TIMEOUTS["executor"]),
        summarize_seconds=_seconds(summarize, LAMBDA_TIMEOUTS["summarizer"]),
    )
    # A stage takes no longer than its limit (States.Timeout ends it) plus the service retries' waits;
    # every step shares the one step limit, so that is each step's hard bound.
    bound = dict.fromkeys(step, timedelta(seconds=limits.step_seconds))
    waves = _waves_worst_case(job, bound, any_order=model)
    worst = (
        timedelta(seconds=limits.plan_seconds)
        + timedelta(seconds=limits.summarize_seconds)
        + waves
        + SERVICE_RETRY_WAIT * 2
    )
    return RunBudget(limits=limits, worst_case=worst)


def _waves_worst_case(job: Job, step: dict[str, timedelta], *, any_order: bool) -> timedelta:
    """The steps' worst case. The deterministic plan runs the job's dependency waves, max_parallel
    at a time: a wave of k steps takes at most ceil(k / max_parallel) of its slowest step. A model's
    plan may add dependencies (any order of any subset), so then only one step after another bounds it.
    """
    if any_order:
        return sum((duration + SERVICE_RETRY_WAIT for duration in step.values()), timedelta(0))
    parallel = job.guardrails.max_parallel
    graph = {e.id: list(e.depends_on) for e in job.endpoints}
    total = timedelta(0)
    for wave in topological_waves(graph):
        rounds = math.ceil(len(wave) / parallel)
        total += (max(step[s] for s in wave) + SERVICE_RETRY_WAIT) * rounds
    return total


class RunBudgeter:
    """Discovery's view: the deployment's model settings, applied to each claimed job."""

    def __init__(self, llm: LlmTiming = NO_MODEL) -> None:
        self.llm = llm

    def __call__(self, job: Job) -> RunBudget:
        return run_budget(job, self.llm)

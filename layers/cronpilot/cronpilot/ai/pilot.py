"""Chooses the decision strategies for a run: the AI pilot when a provider is configured (per
deployment, overridable per job), the deterministic strategies otherwise, both in shadow mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cronpilot.ai.client import LlmChoice, LlmConfigError, choose, make_client
from cronpilot.ai.pricing import price_table
from cronpilot.domain.strategies import (
    DeterministicPlanner,
    DeterministicSummarizer,
    PlanContext,
    PlanDecision,
    PlanStrategy,
    Proposal,
    SummaryContext,
    SummaryStrategy,
)
from cronpilot.models.job import Job
from cronpilot.observability import logger

if TYPE_CHECKING:
    from cronpilot.runtime import Runtime


class _Pilot:
    """Resolves the job's LLM choice; the SDK is imported only when a job actually uses a provider."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _choice(self, job: Job) -> LlmChoice | None:
        try:
            return choose(job, self.runtime.settings)
        except LlmConfigError:
            logger.exception("LLM provider misconfigured: deterministic strategies", job_id=job.id)
            return None

    def _model_args(self, choice: LlmChoice) -> dict[str, Any]:
        """What every AI strategy is built with: the model, its client, usage accounting, the clock."""
        return {
            "model": choice.model,
            "client_factory": lambda: make_client(choice.provider, self.runtime.settings),
            "usage_store": self.runtime.usage_ledger,
            "clock": self.runtime.clock,
            "prices": price_table(self.runtime.settings.llm_prices),
        }


class PilotPlanner(_Pilot):
    def plan(self, job: Job, context: PlanContext) -> PlanDecision:
        choice = self._choice(job)
        if choice is None or not choice.enabled:
            return DeterministicPlanner().plan(job, context)
        from cronpilot.ai.plan_model import AiPlanner
        from cronpilot.ai.standing import StandingPlanner

        model = AiPlanner(**self._model_args(choice), decided_by=f"{choice.provider}:{choice.model}")
        ai = StandingPlanner(model, self.runtime.clock)
        if not choice.shadow:
            return ai.plan(job, context)
        return shadow_plan(job, context, ai)


class PilotSummarizer(_Pilot):
    def propose(self, job: Job, context: SummaryContext) -> Proposal:
        choice = self._choice(job)
        if choice is None or not choice.enabled:
            return DeterministicSummarizer().propose(job, context)
        from cronpilot.ai.standing import StandingSummarizer
        from cronpilot.ai.summary_model import AiSummarizer

        ai = StandingSummarizer(AiSummarizer(**self._model_args(choice)))
        if not choice.shadow:
            return ai.propose(job, context)
        return shadow_proposal(job, context, ai)


def shadow_plan(job: Job, context: PlanContext, ai: PlanStrategy) -> PlanDecision:
    """Shadow mode: the deterministic plan runs; the AI's plan is recorded beside it."""
    executed = DeterministicPlanner().plan(job, context)
    proposed = ai.plan(job, context)
    executed.plan = executed.plan.model_copy(update={"shadow": proposed.plan})
    return PlanDecision(
        plan=executed.plan,
        tokens=proposed.tokens,
        failures=proposed.failures,
        standing=proposed.standing,
        consult=proposed.consult,
    )


def shadow_proposal(job: Job, context: SummaryContext, ai: SummaryStrategy) -> Proposal:
    """Shadow mode: the baseline schedules; the AI's proposal is clamped and recorded beside it."""
    executed = DeterministicSummarizer().propose(job, context)
    proposed = ai.propose(job, context)
    executed.tokens = proposed.tokens
    executed.failures = proposed.failures
    executed.standing = proposed.standing
    executed.consult = proposed.consult
    executed.shadow = proposed
    return executed

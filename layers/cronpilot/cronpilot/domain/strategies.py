"""Decision seams. The deterministic strategies live here; the AI pilot plugs into the same protocols."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import NamedTuple, Protocol

from cronpilot.dag import topological_waves
from cronpilot.domain.scheduling import cadence_anchor, next_slot, with_jitter
from cronpilot.models.job import Job
from cronpilot.models.run import (
    AiConsult,
    DecisionInputs,
    LlmFailure,
    PlanRecord,
    PlanStep,
    RunRecord,
    StandingDecision,
    StepResult,
    StepStatus,
    TokenUsage,
)


class PlanContext(NamedTuple):
    """What a plan strategy sees: the run, recent history, circuits and any standing plan."""

    run: RunRecord
    history: list[RunRecord]
    endpoint_health: Mapping[str, str] = MappingProxyType({})  # endpoint id -> closed/open/half-open
    # The AI pilot's standing plan (if any) and what this run would base a new one on.
    standing: StandingDecision | None = None
    inputs: DecisionInputs | None = None


@dataclass
class PlanDecision:
    """A strategy's plan, what deciding it cost, and any decision to keep for reuse."""

    plan: PlanRecord
    tokens: TokenUsage = field(default_factory=TokenUsage)
    failures: list[LlmFailure] = field(default_factory=list)
    valid_for: timedelta | None = None  # how long the model says its plan holds without news
    standing: StandingDecision | None = None  # a new standing decision to record with the run
    consult: AiConsult | None = None


@dataclass
class Proposal:
    """What a strategy suggests after a run; the summarizer clamps it to the guardrails."""

    summary: str
    at: datetime | None
    source: str
    reason: str
    pause_until: datetime | None = None
    tokens: TokenUsage = field(default_factory=TokenUsage)
    failures: list[LlmFailure] = field(default_factory=list)
    shadow: Proposal | None = None
    valid_for: timedelta | None = None  # how long the model says its proposal holds without news
    consult_again_at: datetime | None = None  # the model asks to be consulted again at this time
    reused_from: str | None = None  # source `ai-reused`: the run whose standing decision this is
    standing: StandingDecision | None = None  # a new standing decision to record with the run
    consult: AiConsult | None = None


class SummaryContext(NamedTuple):
    """What a summary strategy sees: the run, its step results and any standing decision."""

    run: RunRecord
    results: list[StepResult]
    now: datetime
    standing: StandingDecision | None = None
    inputs: DecisionInputs | None = None


class PlanStrategy(Protocol):
    def plan(self, job: Job, context: PlanContext) -> PlanDecision: ...


class SummaryStrategy(Protocol):
    def propose(self, job: Job, context: SummaryContext) -> Proposal: ...


def deterministic_plan(job: Job, source: str = "deterministic", rationale: str | None = None) -> PlanRecord:
    """Every registered endpoint, in waves that respect `depends_on`."""
    graph = {e.id: list(e.depends_on) for e in job.endpoints}
    steps = [PlanStep(step_id=e.id, endpoint_id=e.id, depends_on=list(e.depends_on)) for e in job.endpoints]
    return PlanRecord(
        source=source,
        rationale=rationale or "every endpoint, in the order their declared dependencies require",
        steps=steps,
        waves=topological_waves(graph),
        decided_by="deterministic",
    )


class DeterministicPlanner:
    def plan(self, job: Job, context: PlanContext) -> PlanDecision:
        return PlanDecision(plan=deterministic_plan(job))


def plain_summary(results: list[StepResult]) -> str:
    """A summary a person can read in one line: counts, then each problem."""
    by_status = {s: [r for r in results if r.status == s] for s in StepStatus}
    parts = [f"{len(by_status[s])} {s}" for s in StepStatus if by_status[s]]
    text = f"{len(results)} steps: " + ", ".join(parts) if results else "no steps ran"
    problems = [
        f"{r.step_id}: {r.error or ('HTTP ' + str(r.http_status) if r.http_status else 'failed')}"
        for r in by_status[StepStatus.FAILED]
    ] + [f"{r.step_id} skipped ({r.skip_reason})" for r in by_status[StepStatus.SKIPPED]]
    if problems:
        text += ". " + "; ".join(problems[:10])
    return text


class DeterministicSummarizer:
    """Baseline schedule; the failure backoff is applied by the summarizer domain for every strategy."""

    def propose(self, job: Job, context: SummaryContext) -> Proposal:
        slot = next_slot(job.schedule, after=context.now, previous=cadence_anchor(context.run))
        return Proposal(
            summary=plain_summary(context.results),
            at=with_jitter(job, slot) if job.schedule.rate is None else slot,
            source="baseline",
            reason=f"next slot of {job.schedule.describe()}"
            if slot
            else "one-off schedule has no further run",
        )

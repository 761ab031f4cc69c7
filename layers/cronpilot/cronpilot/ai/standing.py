"""Standing AI decisions: the model's plan and next-run proposal are kept and reused by later runs
until news arrives (cronpilot.domain.news decides what news is).

Each phase wraps its AI strategy: with news, ask the model and record the answer as a new standing
decision (valid for what the model proposes, capped by `max_decision_age`); without news, reuse the
standing decision with no model call, source `ai-reused`, naming the run that made it and why no
call was made. A failed call records no decision: the fallback applies and the next run asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cronpilot.ai.failures import record_reuses
from cronpilot.clock import Clock
from cronpilot.domain.news import News, find_news
from cronpilot.domain.strategies import (
    DeterministicSummarizer,
    PlanContext,
    PlanDecision,
    PlanStrategy,
    Proposal,
    SummaryContext,
    SummaryStrategy,
    plain_summary,
)
from cronpilot.models.job import Job
from cronpilot.models.run import (
    AiConsult,
    DecisionInputs,
    PlanRecord,
    StandingDecision,
    StandingProposal,
    TokenUsage,
)

AI_PLAN_SOURCES = frozenset({"ai", "ai-repaired"})
REUSED = "ai-reused"


def valid_until(job: Job, decided_at: datetime, valid_for: timedelta | None) -> datetime:
    """The model proposes how long its decision holds; `max_decision_age` caps it."""
    cap = job.guardrails.max_decision_age
    span = cap if valid_for is None else max(min(valid_for, cap), timedelta(0))
    return decided_at + span


def consult_again(asked: datetime | None, decided_at: datetime, until: datetime) -> datetime | None:
    """The model's "ask me again at": never before the decision, never past its expiry (which asks anyway)."""
    if asked is None or asked >= until:
        return None
    return max(asked, decided_at)


def _news(
    job: Job, standing: StandingDecision | None, inputs: DecisionInputs, now: datetime, trigger: str
) -> list[News]:
    return find_news(standing, inputs, now=now, trigger=trigger, every_run=job.llm.consult == "every-run")


def _no_news_reason(standing: StandingDecision, inputs: DecisionInputs) -> str:
    return (
        f"no news since run {standing.run_id}: job unchanged, {len(inputs.circuits)} circuit(s) and "
        f"{len(inputs.steps)} endpoint result(s) as then; its decision stands until "
        f"{standing.valid_until.isoformat().replace('+00:00', 'Z')}"
    )


@dataclass
class StandingPlanner:
    """A PlanStrategy: reuse the standing AI plan without news, else ask `ai` and keep its answer."""

    ai: PlanStrategy
    clock: Clock

    def plan(self, job: Job, context: PlanContext) -> PlanDecision:
        now = self.clock.now()
        inputs = context.inputs or DecisionInputs(job="")
        standing = context.standing if context.standing is not None and context.standing.plan else None
        news = _news(job, standing, inputs, now, context.run.trigger)
        if not news and standing is not None and standing.plan is not None:
            record_reuses("plan")
            return PlanDecision(
                plan=reused_plan(standing.plan, standing.run_id),
                tokens=TokenUsage(reuses=1),
                consult=AiConsult(
                    phase="plan",
                    called=False,
                    reused_from=standing.run_id,
                    reason=_no_news_reason(standing, inputs),
                ),
            )
        decision = self.ai.plan(job, context)
        consult = AiConsult(phase="plan", called=True, news=[str(n) for n in news])
        if decision.plan.source in AI_PLAN_SOURCES:
            decision.standing = StandingDecision(
                phase="plan",
                run_id=context.run.run_id,
                decided_at=now,
                valid_until=valid_until(job, now, decision.valid_for),
                inputs=inputs,
                plan=decision.plan,
            )
        else:
            consult.reason = f"no standing plan recorded: the AI plan failed ({decision.plan.failure_class})"
        decision.consult = consult
        return decision


def reused_plan(plan: PlanRecord, run_id: str) -> PlanRecord:
    return plan.model_copy(update={"source": REUSED, "reused_from": run_id, "shadow": None}, deep=True)


@dataclass
class StandingSummarizer:
    """A SummaryStrategy: reuse the standing next-run proposal without news, else ask `ai`."""

    ai: SummaryStrategy

    def propose(self, job: Job, context: SummaryContext) -> Proposal:
        now = context.now
        inputs = context.inputs or DecisionInputs(job="")
        standing = context.standing if context.standing is not None and context.standing.next_run else None
        news = _news(job, standing, inputs, now, context.run.trigger)
        if not news and standing is not None:
            return reused_proposal(job, context, standing, _no_news_reason(standing, inputs))
        proposal = self.ai.propose(job, context)
        consult = AiConsult(phase="summarize", called=True, news=[str(n) for n in news])
        if proposal.source == "ai":
            proposal.standing = standing_proposal(job, context, proposal)
        else:
            consult.reason = "no standing proposal recorded: the AI proposal failed"
        proposal.consult = consult
        return proposal


def standing_proposal(job: Job, context: SummaryContext, proposal: Proposal) -> StandingDecision:
    """The answer as a decision later runs can reuse: an interval from the run that reuses it, or a
    pause (which stands only until it ends: the run after a pause asks again)."""
    now = context.now.replace(microsecond=0)
    until = valid_until(job, now, proposal.valid_for)
    interval = None
    pause_until = proposal.pause_until
    if pause_until is not None:  # clamped as the summarizer will clamp it
        pause_until = min(pause_until, now + job.guardrails.max_pause)
        until = min(until, pause_until)
    elif proposal.at is not None:
        interval = max(int((proposal.at - now).total_seconds()), 0)
    return StandingDecision(
        phase="summarize",
        run_id=context.run.run_id,
        decided_at=now,
        valid_until=until,
        consult_again_at=consult_again(proposal.consult_again_at, now, until),
        inputs=context.inputs or DecisionInputs(job=""),
        next_run=StandingProposal(
            interval_seconds=interval,
            pause_until=pause_until,
            summary=proposal.summary,
            reason=proposal.reason,
        ),
    )


def reused_proposal(job: Job, context: SummaryContext, standing: StandingDecision, why: str) -> Proposal:
    """The standing proposal applied to this run; the summary states this run's facts (no model read them)."""
    kept = standing.next_run or StandingProposal()
    now = context.now.replace(microsecond=0)
    pause_until = kept.pause_until if kept.pause_until is not None and kept.pause_until > now else None
    if pause_until is not None:
        at: datetime | None = pause_until
    elif kept.interval_seconds is not None:
        at = now + timedelta(seconds=kept.interval_seconds)
    else:
        at = DeterministicSummarizer().propose(job, context).at
    record_reuses("summarize")
    return Proposal(
        summary=f"{plain_summary(context.results)} (no news: run {standing.run_id}'s AI decision stands)",
        at=at,
        source=REUSED,
        reason=f"standing decision of run {standing.run_id}: {kept.reason}"[:500],
        pause_until=pause_until,
        reused_from=standing.run_id,
        tokens=TokenUsage(reuses=1),
        consult=AiConsult(phase="summarize", called=False, reused_from=standing.run_id, reason=why),
    )

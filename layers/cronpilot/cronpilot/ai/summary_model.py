"""The AI summarizer: Claude reads the (untrusted) results and proposes the next run.

The proposal is only a proposal: the summarizer domain clamps it to the guardrails, honours
pause-until and applies the failure backoff (cronpilot.domain.summarizing.decide_next_run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cronpilot.ai.caching import CachePlan
from cronpilot.ai.conversation import ModelStrategy, StrictAnswer
from cronpilot.ai.failures import FailureClass, LlmCallError
from cronpilot.ai.prompts import SUMMARY_TOOL, summary_request
from cronpilot.domain.scheduling import cadence_anchor, next_slot, with_jitter
from cronpilot.domain.strategies import DeterministicSummarizer, Proposal, SummaryContext
from cronpilot.models.job import Job

MAX_REPAIRS = 1
SUMMARY_MAX_TOKENS = 1024
MAX_SUMMARY_CHARS = 2000
MAX_REASON_CHARS = 500
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


class NextRunAnswer(StrictAnswer):
    kind: Literal["interval", "at", "pause_until"]
    interval_seconds: int | None
    at: str | None
    reason: str


class SummaryAnswer(StrictAnswer):
    summary: str
    next_run: NextRunAnswer
    rationale: str
    valid_for_seconds: int | None = None
    consult_again_at: str | None = None


def _instant(value: str | None, field: str, prefix: str = "next_run.") -> datetime:
    if not value:
        raise LlmCallError(FailureClass.STRUCTURAL_INCONSISTENCY, f"{prefix}{field} is null for this kind")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise LlmCallError(
            FailureClass.SCHEMA_PARSE_ERROR, f"{prefix}{field} {value[:60]!r} is not an ISO-8601 time"
        ) from exc
    if parsed.tzinfo is None:
        raise LlmCallError(
            FailureClass.SEMANTIC_VIOLATION, f"{prefix}{field} {value[:60]!r} has no UTC offset; add 'Z'"
        )
    return parsed.astimezone(UTC).replace(microsecond=0)


def to_proposal(job: Job, answer: SummaryAnswer, now: datetime) -> Proposal:
    """Turn a parsed answer into a proposal, or a classified failure; the standing-decision fields
    (validity, consult-again time) ride along unclamped: the pilot clamps them to the guardrails."""
    proposal = _next_run_proposal(job, answer, now)
    if answer.valid_for_seconds is not None:
        proposal.valid_for = timedelta(seconds=max(answer.valid_for_seconds, 0))
    if answer.consult_again_at:
        proposal.consult_again_at = _instant(answer.consult_again_at, "consult_again_at", prefix="")
    return proposal


def _next_run_proposal(job: Job, answer: SummaryAnswer, now: datetime) -> Proposal:
    nxt = answer.next_run
    now = now.replace(microsecond=0)  # next runs are whole seconds
    reason = f"{nxt.reason.strip()} ({answer.rationale.strip()})"[:MAX_REASON_CHARS]
    summary = answer.summary.strip()[:MAX_SUMMARY_CHARS] or "(no summary)"
    if nxt.kind == "interval":
        if nxt.interval_seconds is None:
            raise LlmCallError(
                FailureClass.STRUCTURAL_INCONSISTENCY, "kind 'interval' needs interval_seconds, which is null"
            )
        if not 0 < nxt.interval_seconds <= MAX_INTERVAL_SECONDS:
            raise LlmCallError(
                FailureClass.SEMANTIC_VIOLATION,
                f"interval_seconds {nxt.interval_seconds} is outside 1..{MAX_INTERVAL_SECONDS}",
            )
        at = with_jitter(job, now + timedelta(seconds=nxt.interval_seconds))
        return Proposal(summary=summary, at=at, source="ai", reason=reason)
    if nxt.kind == "at":
        at = with_jitter(job, _instant(nxt.at, "at"))
        return Proposal(summary=summary, at=at, source="ai", reason=reason)
    until = _instant(nxt.at, "at")
    if until <= now:
        raise LlmCallError(
            FailureClass.SEMANTIC_VIOLATION, f"pause_until {until.isoformat()} is not in the future"
        )
    return Proposal(summary=summary, at=until, source="ai", reason=reason, pause_until=until)


@dataclass(kw_only=True)
class AiSummarizer(ModelStrategy):
    """A SummaryStrategy. On any failure (or over budget) the baseline proposal, source `fallback`."""

    max_repairs: int = MAX_REPAIRS

    def request(self, job: Job, context: SummaryContext) -> dict[str, Any]:
        return self.prepared(job, context)[0]

    def prepared(self, job: Job, context: SummaryContext) -> tuple[dict[str, Any], CachePlan]:
        baseline = next_slot(job.schedule, after=context.now, previous=cadence_anchor(context.run))
        request = summary_request(
            job,
            model=self.model,
            max_tokens=SUMMARY_MAX_TOKENS,
            run=context.run,
            results=context.results,
            now=context.now,
            baseline=baseline,
        )
        return request, self.place_cache(request, job, context.run.scheduled_at)

    def propose(self, job: Job, context: SummaryContext) -> Proposal:
        conversation = self.conversation(
            phase="summarize", job=job, tool_name=SUMMARY_TOOL, run_tokens=context.run.tokens
        )
        request, cache = self.prepared(job, context)
        outcome = conversation.run(
            request, lambda value: to_proposal(job, SummaryAnswer.model_validate(value), context.now), cache
        )
        if outcome.answer is not None:
            proposal = outcome.answer
            if outcome.repaired:
                proposal.reason = f"{proposal.reason} [after repair]"[:MAX_REASON_CHARS]
        else:
            proposal = DeterministicSummarizer().propose(job, context)
            failure = outcome.failure_class or FailureClass.API_ERROR
            proposal.source = "fallback"
            proposal.reason = f"{proposal.reason} (the AI proposal failed: {failure})"
        proposal.tokens = outcome.tokens
        proposal.failures = outcome.failures
        return proposal

"""The run record (everything needed to explain a run afterwards) and the state machine's small payloads."""

# No `from __future__ import annotations` in modules that define pydantic models: pydantic would
# compile and evaluate every annotation string while building them, on every Lambda cold start.

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from cronpilot.models.notify import Delivery

RUN_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# Step Functions execution names: at most 80 characters (job ids are constrained so a plain run id fits).
EXECUTION_NAME_LIMIT = 80


def make_run_id(job_id: str, scheduled_at: datetime, *, sequence: int | None = None) -> str:
    """Deterministic: the same job, slot and record sequence always give the same id.

    A slot in a second newer than every earlier record of the job gets the plain `<job id>.<stamp>`;
    any other record (a buffered or manual run in the same second as a skip, a clock that stepped
    back) adds the job's record sequence, `<job id>.<stamp>-<n>`, which no other record of the job has.
    """
    stamp = run_stamp(scheduled_at)
    return f"{job_id}.{stamp}" if sequence is None else f"{job_id}.{stamp}-{sequence}"


def run_stamp(scheduled_at: datetime) -> str:
    return scheduled_at.astimezone(UTC).strftime(RUN_STAMP_FORMAT)


def parse_run_id(run_id: str) -> tuple[str, str]:
    """(job id, the run's key within the job: its stamp and any sequence suffix)."""
    job_id, sep, key = run_id.rpartition(".")
    stamp, _, sequence = key.partition("-")
    if not sep or not job_id or (sequence and not sequence.isdigit()):
        raise ValueError(f"{run_id!r} is not a run id: expected '<job id>.<YYYYMMDDTHHMMSSZ>[-<n>]'")
    datetime.strptime(stamp, RUN_STAMP_FORMAT)
    return job_id, key


def execution_name(run_id: str) -> str:
    """The run's Step Functions execution name: the run id itself when it fits in 80 characters,
    else its first 71 characters and a hash of the whole id (still deterministic and unique)."""
    if len(run_id) <= EXECUTION_NAME_LIMIT:
        return run_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{run_id[: EXECUTION_NAME_LIMIT - 9]}.{digest}"


class Model(BaseModel):
    # defer_build: a function builds the validators of only the models it uses, when first used.
    model_config = ConfigDict(extra="ignore", use_enum_values=True, defer_build=True)


class RunStatus(StrEnum):
    CLAIMED = "claimed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, but at least one step failed or was skipped
    FAILED = "failed"
    SKIPPED = "skipped"
    START_FAILED = "start_failed"
    ABANDONED = "abandoned"  # its holder went silent past the lease; the next claim fenced it

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.CLAIMED, RunStatus.RUNNING)


class StepStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class TokenUsage(Model):
    """What a run's (or a phase's) model calls used and cost. Sums with `+` as the phases add up."""

    input: int = 0  # uncached input tokens
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0  # the part of cache_write written with the 1-hour TTL (priced 2x, not 1.25x)
    calls: int = 0  # model calls made
    reuses: int = 0  # model calls avoided by reusing a standing decision
    cost_usd: float = 0.0  # at the configured prices of the model each call used
    unpriced_calls: int = 0  # calls to a model with no configured price (not in cost_usd)
    cache_ttl: str | None = None  # the prompt-cache choice of the last call: "5m", "1h" or "none"
    cache_reason: str | None = None  # why that choice

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
            cache_write_1h=self.cache_write_1h + other.cache_write_1h,
            calls=self.calls + other.calls,
            reuses=self.reuses + other.reuses,
            cost_usd=self.cost_usd + other.cost_usd,
            unpriced_calls=self.unpriced_calls + other.unpriced_calls,
            cache_ttl=other.cache_ttl or self.cache_ttl,
            cache_reason=other.cache_reason or self.cache_reason,
        )

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    @property
    def prompt_tokens(self) -> int:
        return self.input + self.cache_read + self.cache_write

    @property
    def cache_hit_ratio(self) -> float | None:
        """The share of prompt tokens read from the cache; None without any prompt."""
        return self.cache_read / self.prompt_tokens if self.prompt_tokens else None

    def spend(self) -> dict[str, Any]:
        """What the AI cost and saved, for reports and --output json."""
        ratio = self.cache_hit_ratio
        return {
            "model_calls": self.calls,
            "calls_avoided_by_reuse": self.reuses,
            "cost_usd": round(self.cost_usd, 6),
            "unpriced_calls": self.unpriced_calls,
            "cache_hit_ratio": round(ratio, 4) if ratio is not None else None,
            "cache_ttl": self.cache_ttl,
            "cache_reason": self.cache_reason,
        }

    def counts(self) -> dict[str, int]:
        """The four token kinds the API reports (what budgets and the daily ledger count)."""
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
        }


class PlanStep(Model):
    step_id: str
    endpoint_id: str
    depends_on: list[str] = Field(default_factory=list)


class PlanRecord(Model):
    source: str  # "ai", "ai-repaired", "fallback", "baseline"
    rationale: str
    steps: list[PlanStep]
    waves: list[list[str]]
    decided_by: str = "deterministic"  # the strategy that produced it
    failure_class: str | None = None
    reused_from: str | None = None  # source `ai-reused`: the run whose model call made this plan
    shadow: "PlanRecord | None" = None  # what the AI proposed when the job runs in shadow mode


class StepResult(Model):
    step_id: str
    endpoint_id: str
    status: StepStatus
    http_status: int | None = None
    attempts: int = 0
    latency_ms: int = 0
    error: str | None = None
    skip_reason: str | None = None
    body: str = ""
    body_truncated: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # What the AI pilot's news detection reads besides the status (cronpilot.domain.news).
    content_type: str | None = None
    body_bytes: int | None = None
    error_kind: str | None = None  # e.g. assertion, template, signing, http-status, timeout, egress-denied
    # Values extracted for later steps (kept here only, never in state payloads), why any are missing,
    # and which ones the endpoint marks safe to show to people and the AI.
    outputs: dict[str, Any] = Field(default_factory=dict)
    output_problems: dict[str, str] = Field(default_factory=dict)
    outputs_shown: list[str] = Field(default_factory=list)
    reused_from: str | None = None  # a replay reused this result from the original run

    def shown_outputs(self) -> dict[str, Any]:
        return {name: self.outputs[name] for name in self.outputs_shown if name in self.outputs}

    def for_display(self) -> "StepResult":
        """The result as people see it: values not marked safe to show are replaced by '[hidden]'."""
        shown = set(self.outputs_shown)
        outputs = {name: value if name in shown else "[hidden]" for name, value in self.outputs.items()}
        return self.model_copy(update={"outputs": outputs})


class NextRunDecision(Model):
    at: datetime | None  # None: the job has no further run (a one-off that ran)
    source: str  # ai, clamped-min, clamped-max, baseline, backoff, paused, manual, fallback, superseded, ...
    reason: str
    proposed_at: datetime | None = None
    shadow: "NextRunDecision | None" = None
    reused_from: str | None = None  # source `ai-reused`: the run whose model call made this proposal


class StepObservation(Model):
    """One endpoint's result as news detection compares it: the outcome class and, when the endpoint
    answered, the parts of the response fingerprint (never the body itself: values are digests)."""

    outcome: str  # success/2xx, failure/5xx, failure/4xx, failure/network, timeout, skipped, ...
    status: int | None = None
    content_type: str | None = None
    size_class: str | None = None
    keys: str | None = None  # digest of the sorted top-level JSON keys
    watch: dict[str, str] = Field(default_factory=dict)  # watch expression -> digest of its value


class DecisionInputs(Model):
    """What a standing AI decision was based on; a difference from the current inputs is news."""

    job: str  # digest of the job definition (its status excluded)
    circuits: dict[str, str] = Field(default_factory=dict)  # endpoint id -> closed | open
    steps: dict[str, StepObservation] = Field(default_factory=dict)  # endpoint id -> observation


class StandingProposal(Model):
    """A next-run proposal kept for reuse: relative to the run that reuses it, so it never goes stale."""

    interval_seconds: int | None = None  # None: the baseline's next slot
    pause_until: datetime | None = None
    summary: str = ""
    reason: str = ""


class StandingDecision(Model):
    """An AI plan or next-run proposal that later runs reuse without a model call while no news arrives."""

    phase: str  # plan | summarize
    run_id: str  # the run whose model call made it
    decided_at: datetime
    valid_until: datetime  # after it, the decision is news (expired) and the baseline applies meanwhile
    consult_again_at: datetime | None = None  # the model asked to be consulted again at this time
    inputs: DecisionInputs
    plan: PlanRecord | None = None
    next_run: StandingProposal | None = None


class AiConsult(Model):
    """Why a phase did or did not call the model: the news that made it call, or the decision reused."""

    phase: str  # plan | summarize
    called: bool
    news: list[str] = Field(default_factory=list)
    reused_from: str | None = None
    reason: str = ""


class LlmFailure(Model):
    phase: str  # plan | summarize
    failure_class: str
    detail: str


class RunRecord(Model):
    run_id: str
    job_id: str
    scheduled_at: datetime
    status: RunStatus
    epoch: int = 0
    concurrent: bool = False  # claimed under overlap `allow`: it holds its own lease beside other runs
    trigger: str = "schedule"  # why the run happened at this time
    claimed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    plan: PlanRecord | None = None
    summary: str | None = None
    next_run: NextRunDecision | None = None
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    step_counts: dict[str, int] = Field(default_factory=dict)
    skip_reason: str | None = None
    error: str | None = None
    # When discovery's StartExecution for the run succeeded, and, if a later tick than the claiming
    # one made it, why the start was late.
    execution_started_at: datetime | None = None
    late_start: str | None = None
    llm_failures: list[LlmFailure] = Field(default_factory=list)
    # The AI pilot: each phase's call-or-reuse, and this run's step observations (the next plan's news).
    consults: list[AiConsult] = Field(default_factory=list)
    observations: dict[str, StepObservation] = Field(default_factory=dict)
    # Notifications about this run (or the slot it skipped), as the notify function delivered them.
    notifications: list[Delivery] = Field(default_factory=list)
    retry_of: str | None = None  # the run this replay re-executes (trigger `retry`)
    retry_failed_only: bool = False  # reuse the original's succeeded steps, re-execute the rest

    @classmethod
    def claimed(
        cls,
        job_id: str,
        scheduled_at: datetime,
        epoch: int,
        trigger: str,
        now: datetime,
        *,
        concurrent: bool = False,
        sequence: int | None = None,
    ) -> Self:
        return cls(
            concurrent=concurrent,
            run_id=make_run_id(job_id, scheduled_at, sequence=sequence),
            job_id=job_id,
            scheduled_at=scheduled_at,
            status=RunStatus.CLAIMED,
            epoch=epoch,
            trigger=trigger,
            claimed_at=now,
        )


# --- Events and state machine payloads: small, ids only (never headers, bodies or secrets) ---
# Handlers validate with these models directly: Powertools' parser would import ~200 ms of event
# models we never use, on every cold start.


class ScheduledEvent(Model):
    """The part of EventBridge's scheduled event discovery reads."""

    id: str
    time: datetime
    source: str = "aws.events"


class RunRef(Model):
    run_id: str
    job_id: str
    epoch: int


class PlanOutput(Model):
    waves: list[list[dict[str, Any]]]
    max_parallel: int


class StepTask(RunRef):
    step: PlanStep


class StepOutcome(Model):
    step_id: str
    status: StepStatus


class FailureEvent(RunRef):
    """Finalize-failure's input: the state machine's Catch output, or EventBridge's notice of an
    execution that ended where no Catch sees it (see ExecutionStatusChange)."""

    error: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "FailureEvent":
        if event.get("detail-type") == EXECUTION_STATUS_CHANGE:
            return ExecutionStatusChange.model_validate(event).failure()
        return cls.model_validate(event)


EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
# How an execution that never reached its Catch ended, as the Catch would have described it.
_ABNORMAL_ENDS = {
    "TIMED_OUT": ("States.Timeout", "the execution ran past the state machine's TimeoutSeconds"),
    "ABORTED": ("ExecutionAborted", "the execution was stopped (StopExecution)"),
}
# The statuses whose change event is routed to finalize-failure (the CDK rule and local mode).
ABNORMAL_END_STATUSES = tuple(_ABNORMAL_ENDS)


class ExecutionDetail(Model):
    status: str
    input: str  # the execution's input document, as a JSON string
    error: str | None = None
    cause: str | None = None


class ExecutionStatusChange(Model):
    """EventBridge's notice that an execution ended. One that timed out or was stopped never reached
    its Catch, so this notice is how finalize-failure still records its run and releases the lease."""

    detail: ExecutionDetail

    def failure(self) -> FailureEvent:
        ref = RunRef.model_validate_json(self.detail.input)
        name, cause = _ABNORMAL_ENDS.get(self.detail.status, ("Execution" + self.detail.status, ""))
        return FailureEvent(
            run_id=ref.run_id,
            job_id=ref.job_id,
            epoch=ref.epoch,
            error={"Error": self.detail.error or name, "Cause": self.detail.cause or cause},
        )

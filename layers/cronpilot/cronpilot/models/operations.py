"""What the operator operations return: one shape that the CLI renders, the HTTP API serializes and the
MCP server hands to a model as structured content."""

# No `from __future__ import annotations` in modules that define pydantic models: pydantic would
# compile and evaluate every annotation string while building them, on every Lambda cold start.

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cronpilot.models.job import Job, JobStatus
from cronpilot.models.run import NextRunDecision, RunRecord, RunStatus, StepResult

PAGE_LIMIT_MAX = 100
# AI spend per day is summed from the runs of those days: a month at most per request.
MAX_SPEND_DAYS = 31


class View(BaseModel):
    # defer_build: built when first used, so importing these costs a function little (cold start).
    model_config = ConfigDict(extra="forbid", defer_build=True)


class NextRun(View):
    at: datetime | None = Field(description="UTC; null when the job has no further run")
    source: str = Field(description="who chose it: baseline, ai, clamped-min, backoff, paused, manual, ...")
    reason: str


class JobSummary(View):
    job_id: str
    name: str
    status: JobStatus
    schedule: str = Field(description="the schedule in words, e.g. 'every 15m'")
    next_run_at: datetime | None
    next_run_source: str
    running: str | None = Field(description="the run holding the job's lease, if any")


class JobPage(View):
    jobs: list[JobSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class Lease(View):
    owner: str | None
    expires_at: datetime | None
    epoch: int = Field(description="the fencing token: incremented by every claim")


class AiSpend(View):
    """What the AI pilot's model calls cost and saved (a run, or a job's day)."""

    model_calls: int
    calls_avoided_by_reuse: int = Field(description="model calls a standing decision made unnecessary")
    cost_usd: float = Field(description="at the configured prices (list prices or LLM_PRICES)")
    unpriced_calls: int = Field(description="calls to a model with no configured price (not in cost_usd)")
    cache_hit_ratio: float | None = Field(description="prompt tokens read from the cache / all prompt tokens")
    cache_ttl: str | None = Field(default=None, description="a run's prompt-cache choice: 5m, 1h or none")
    cache_reason: str | None = None


class DaySpend(AiSpend):
    day: str = Field(description="UTC day (YYYY-MM-DD) of the runs' scheduled times")
    runs: int
    tokens: dict[str, int] = Field(description="input, output, cache_read, cache_write")


class JobDetail(View):
    job: Job
    etag: str = Field(description="the job document's version: send it as If-Match to update safely")
    next_run: NextRun
    lease: Lease
    current_run_id: str | None
    runs_in_flight: dict[str, datetime] = Field(
        description="overlap `allow`: every concurrent run and when its own lease expires"
    )
    consecutive_failures: int
    paused_until: datetime | None
    ai_spend_per_day: list[DaySpend] = Field(
        default_factory=list,
        description="AI spend of the last UTC days with runs, newest first (as many days as asked for)",
    )


class ApplyResult(View):
    job_id: str
    action: Literal["created", "updated", "unchanged"]
    diff: str = Field(description="unified diff of the stored job against the new one; empty if unchanged")
    next_run_at: datetime | None
    etag: str


class JobChange(View):
    """The outcome of pause, resume, trigger or delete."""

    job_id: str
    action: Literal["paused", "resumed", "triggered", "deleted"]
    status: JobStatus | None = Field(description="the job's status afterwards; null once deleted")
    next_run_at: datetime | None
    message: str


class RetryRequest(View):
    """A replay of a finished run, started by the next scheduler tick (trigger `retry`)."""

    job_id: str
    retry_of: str = Field(description="the run being replayed")
    failed_only: bool
    reexecute: list[str] = Field(description="the steps called again; the others' results are reused")


class RunSummary(View):
    run_id: str
    scheduled_at: datetime
    status: RunStatus
    trigger: str = Field(description="why the run happened then: schedule, manual, catch-up, retry, ...")
    retry_of: str | None = Field(description="the run this one replays (trigger retry)")
    skip_reason: str | None
    steps: dict[str, int] = Field(description="step counts by status")
    next_run: NextRunDecision | None
    ai_spend: AiSpend | None = None


class RunPage(View):
    runs: list[RunSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class RunDetail(RunRecord):
    """A run with each step's result (response bodies are truncated and untrusted)."""

    steps: list[StepResult]
    ai_spend: AiSpend | None = None


class Explanation(View):
    """Why a job's last run happened when it did and why its next one is when it is."""

    job_id: str
    run_id: str | None = Field(description="the run explained; null if the job has not run yet")
    run_scheduled_at: datetime | None
    why_then: str | None = Field(description="the run's trigger, in words")
    skip_reason: str | None
    run_next_decision: NextRunDecision | None = Field(description="what the run decided for the next run")
    next_run: NextRun = Field(description="the job's next run as it stands now")
    text: str = Field(description="the explanation in a few sentences")


class FieldProblem(View):
    field: str = Field(description="where the problem is, e.g. 'schedule.cron' or 'endpoints[0:fetch].url'")
    message: str = Field(description="what is wrong and how to fix it")


class Problem(View):
    """RFC 9457 problem details, with one entry per invalid field."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] = Field(default_factory=list)

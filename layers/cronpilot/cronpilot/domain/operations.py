"""The operator operations: validate, apply with a diff, list, show, pause, resume, trigger, delete,
runs list/show and explain. The CLI, the HTTP API and the MCP server are thin adapters over these;
each returns a typed result (cronpilot.models.operations) that the CLI renders and the others serialize.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cronpilot.domain.news import ASK_AI_TRIGGER
from cronpilot.domain.ports import ClaimConflict, JobChanged, JobNotFound, JobRecord, JobStore
from cronpilot.domain.replay import replay_problem, to_reexecute
from cronpilot.domain.scheduling import first_run_at
from cronpilot.domain.spend import DEFAULT_WINDOW_DAYS, spend_by_day, spend_of
from cronpilot.jobfiles import JobFileError, parse_job_data
from cronpilot.models.job import Job, JobStatus
from cronpilot.models.operations import (
    PAGE_LIMIT_MAX,
    ApplyResult,
    Explanation,
    JobChange,
    JobDetail,
    JobPage,
    JobSummary,
    Lease,
    NextRun,
    RetryRequest,
    RunDetail,
    RunPage,
    RunSummary,
)
from cronpilot.models.run import RunRecord, RunStatus, parse_run_id

# A filtered listing reads at most this many runs per page, so a rare filter cannot read 90 days of runs
# in one request; the cursor then continues where it stopped.
MAX_RUNS_EXAMINED = 1000


class OperationError(Exception):
    """An operator action that cannot be done in the job's current state."""


class InvalidInput(OperationError):
    """A request field that cannot be used; names the field and the fix."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class JobDocumentInvalid(OperationError):
    """A job document that does not validate: every problem as (field, message)."""

    def __init__(self, error: JobFileError) -> None:
        self.problems = [_split_problem(p) for p in error.problems]
        super().__init__(str(error))


class PreconditionFailed(OperationError):
    """The job changed since the caller read it (its ETag no longer matches)."""


def _split_problem(problem: str) -> tuple[str, str]:
    field, _, message = problem.partition(": ")
    return (field, message) if message else ("(job)", problem)


def parse_job_document(data: Any, source: str = "job document") -> Job:
    """A job from a JSON-like document, with the job-file errors (field and fix) on failure."""
    try:
        return parse_job_data(data, source)
    except JobFileError as exc:
        raise JobDocumentInvalid(exc) from None


# ------------------------------------------------------------------ versions and cursors


def job_etag(job: Job) -> str:
    """A strong ETag of the job document: changes with every change to the definition or status."""
    return '"' + hashlib.sha256(job.model_dump_json().encode()).hexdigest()[:32] + '"'


def _encode_cursor(kind: str, scope: str, after: str) -> str:
    raw = json.dumps({"k": kind, "s": scope, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None, kind: str, scope: str) -> str | None:
    """The position a cursor stands for; a cursor from another listing or a damaged one is refused."""
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if value["k"] == kind and value["s"] == scope and isinstance(value["a"], str):
            return str(value["a"])
    except (ValueError, binascii.Error, KeyError, TypeError):
        pass
    raise InvalidInput("cursor", "not a cursor of this listing: pass the next_cursor of the previous page")


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise InvalidInput("limit", f"must be between 1 and {PAGE_LIMIT_MAX}")


# ------------------------------------------------------------------ jobs


def summarize_job(record: JobRecord) -> JobSummary:
    return JobSummary(
        job_id=record.job_id,
        name=record.job.name,
        status=record.job.status,
        schedule=record.job.schedule.describe(),
        next_run_at=record.state.next_run_at,
        next_run_source=record.state.next_run_source,
        running=record.state.current_run_id,
    )


def list_jobs(store: JobStore, *, limit: int = PAGE_LIMIT_MAX, cursor: str | None = None) -> JobPage:
    """Jobs in id order, a page at a time."""
    _check_limit(limit)
    after = _decode_cursor(cursor, "jobs", "")
    records = [r for r in store.list_jobs() if after is None or r.job_id > after]
    page = records[:limit]
    more = len(records) > limit
    return JobPage(
        jobs=[summarize_job(r) for r in page],
        next_cursor=_encode_cursor("jobs", "", page[-1].job_id) if more else None,
    )


def detail_of(record: JobRecord) -> JobDetail:
    state = record.state
    return JobDetail(
        job=record.job,
        etag=job_etag(record.job),
        next_run=NextRun(at=state.next_run_at, source=state.next_run_source, reason=state.next_run_reason),
        lease=Lease(owner=state.lease_owner, expires_at=state.lease_expires_at, epoch=state.epoch),
        current_run_id=state.current_run_id,
        runs_in_flight=dict(state.inflight or {}),
        consecutive_failures=state.consecutive_failures,
        paused_until=state.paused_until,
    )


def show_job(
    store: JobStore, job_id: str, now: datetime | None = None, *, spend_days: int = DEFAULT_WINDOW_DAYS
) -> JobDetail:
    """The job's detail; with `now`, also its AI spend per UTC day over the last `spend_days` days (read
    from the runs of those days, so a frequent job's week is many reads: the API and MCP ask for it)."""
    detail = detail_of(store.get_job(job_id))
    if now is not None and spend_days > 0:
        detail.ai_spend_per_day = [day.view() for day in spend_by_day(store, job_id, now, spend_days)]
    return detail


def _pretty(job: Job) -> list[str]:
    return json.dumps(
        job.model_dump(mode="json", exclude_defaults=True), indent=2, sort_keys=True
    ).splitlines()


def _check_version(current: JobRecord | None, job_id: str, if_match: str | None, create_only: bool) -> None:
    if create_only and current is not None:
        raise PreconditionFailed(
            f"job {job_id!r} already exists (If-None-Match: *): leave the header out to update it"
        )
    if if_match is None or (if_match.strip() == "*" and current is not None):
        return
    if current is None:
        raise PreconditionFailed(
            f"job {job_id!r} does not exist, so it cannot match {if_match}: leave If-Match out to create it"
        )
    tags = [tag.strip() for tag in if_match.split(",")]
    if job_etag(current.job) not in tags:
        raise PreconditionFailed(
            f"job {job_id!r} changed since you read it (ETag {job_etag(current.job)}, not {if_match}): "
            "read it again, re-apply your change and send the new ETag"
        )


def apply_job(
    store: JobStore,
    job: Job,
    now: datetime,
    *,
    if_match: str | None = None,
    create_only: bool = False,
    dry_run: bool = False,
) -> ApplyResult:
    """Create or update a job. An unchanged job keeps its next run; a changed schedule is re-planned.
    `if_match` (an ETag) updates only the version the caller read; `dry_run` shows the diff only."""
    try:
        current: JobRecord | None = store.get_job(job.id)
    except JobNotFound:
        current = None
    _check_version(current, job.id, if_match, create_only)
    # An operator's pause (or the AI's pause-until) outlives re-applying the file: resume is explicit.
    kept_paused = (
        current is not None and current.job.status == JobStatus.PAUSED and job.status == JobStatus.ACTIVE
    )
    if kept_paused:
        job = job.model_copy(update={"status": JobStatus.PAUSED})
    if current is not None and current.job == job:
        return ApplyResult(
            job_id=job.id,
            action="unchanged",
            diff="",
            next_run_at=current.state.next_run_at,
            etag=job_etag(job),
        )
    before = _pretty(current.job) if current else []
    diff = "\n".join(difflib.unified_diff(before, _pretty(job), "stored", "file", lineterm=""))
    keep_slot = current is not None and current.job.schedule == job.schedule and current.state.next_run_at
    next_run = current.state.next_run_at if keep_slot and current else first_run_at(job, now)
    result = ApplyResult(
        job_id=job.id,
        action="updated" if current else "created",
        diff=diff,
        next_run_at=next_run,
        etag=job_etag(job),
    )
    if dry_run:
        return result
    reason = "schedule unchanged" if keep_slot else "first slot of the schedule"
    try:  # the version checked above, or nothing: a write in between is a 412, not a lost update
        store.put_job(
            job,
            next_run_at=next_run,
            source="baseline",
            reason=reason,
            now=now,
            seen=current if if_match is not None else None,
            create_only=create_only,
        )
    except JobChanged as exc:
        raise PreconditionFailed(f"{exc}: read it again and re-apply your change") from exc
    if kept_paused and current is not None:
        store.set_job_schedule_state(
            JobRecord(job=job, state=current.state),
            status=JobStatus.PAUSED,
            next_run_at=next_run,
            source="paused",
            reason=current.state.next_run_reason,
            paused_until=current.state.paused_until,
            now=now,
        )
    return result


def pause_job(store: JobStore, job_id: str, now: datetime, until: datetime | None = None) -> JobChange:
    record = store.get_job(job_id)
    reason = f"paused by operator until {until.isoformat()}" if until else "paused by operator"
    store.set_job_schedule_state(
        record,
        status=JobStatus.PAUSED,
        next_run_at=record.state.next_run_at,
        source="paused",
        reason=reason,
        paused_until=until,
        now=now,
    )
    return JobChange(
        job_id=job_id, action="paused", status=JobStatus.PAUSED, next_run_at=until, message=reason
    )


def resume_job(store: JobStore, job_id: str, now: datetime) -> JobChange:
    record = store.get_job(job_id)
    next_run = first_run_at(record.job, now)
    store.set_job_schedule_state(
        record,
        status=JobStatus.ACTIVE,
        next_run_at=next_run,
        source="baseline",
        reason="resumed by operator",
        paused_until=None,
        now=now,
    )
    return JobChange(
        job_id=job_id,
        action="resumed",
        status=JobStatus.ACTIVE,
        next_run_at=next_run,
        message="resumed by operator",
    )


def trigger_job(store: JobStore, job_id: str, now: datetime, *, ask_ai: bool = False) -> JobChange:
    """Run now: the next tick claims it under the job's overlap policy; the run's trigger is `manual`,
    or `ask-ai` when the operator wants the AI pilot consulted whatever its standing decisions."""
    record = store.get_job(job_id)
    if record.job.status == JobStatus.PAUSED:
        raise OperationError(f"job {job_id!r} is paused: resume it first (cronpilot jobs resume {job_id})")
    store.set_job_schedule_state(
        record,
        status=record.job.status,
        next_run_at=now,
        source=ASK_AI_TRIGGER if ask_ai else "manual",
        reason="triggered by operator, asking the AI pilot" if ask_ai else "triggered by operator",
        paused_until=record.state.paused_until,
        now=now,
    )
    return JobChange(
        job_id=job_id,
        action="triggered",
        status=record.job.status,
        next_run_at=now,
        message="it runs on the next scheduler tick" + (" and consults the AI pilot" if ask_ai else ""),
    )


def retry_run(store: JobStore, run_id: str, now: datetime, *, failed_only: bool = False) -> RetryRequest:
    """Replay a finished run: the next tick claims a new run (trigger `retry`, linked to `run_id`)
    under the job's overlap policy. It follows the original's plan and re-executes every step, or with
    `failed_only` only the failed and skipped ones, reusing the others' results and extracted values."""
    _check_run_id(run_id)
    original = store.get_run(run_id)
    record = store.get_job(original.job_id)
    results = store.get_step_results(run_id)
    problem = replay_problem(original, record.job, results, failed_only)
    if problem is not None or original.plan is None:
        raise OperationError(problem or f"run {run_id} has no plan to replay")
    job_id = record.job_id
    if record.job.status == JobStatus.PAUSED:
        raise OperationError(f"job {job_id!r} is paused: resume it first (cronpilot jobs resume {job_id})")
    pending = record.state.retry_of
    if pending is not None:
        raise OperationError(
            f"a retry of run {pending} is already waiting for the next tick: let it start first"
        )
    mode = "failed and skipped steps" if failed_only else "every step"
    try:
        store.request_retry(
            record, run_id=run_id, failed_only=failed_only, reason=f"retry of {run_id} ({mode})", now=now
        )
    except ClaimConflict as exc:
        raise OperationError(f"{exc} (a run was just claimed): try again") from exc
    reexecute = (
        to_reexecute(original.plan, results) if failed_only else [s.step_id for s in original.plan.steps]
    )
    return RetryRequest(job_id=job_id, retry_of=run_id, failed_only=failed_only, reexecute=reexecute)


def delete_job(store: JobStore, job_id: str, now: datetime, *, force: bool = False) -> JobChange:
    """Refuse while runs are in flight unless forced: their remaining writes are then discarded and
    each is recorded as failed when its execution ends."""
    record = store.get_job(job_id)
    in_flight = record.state.runs_in_flight(now)
    if in_flight and not force:
        raise OperationError(
            f"job {job_id!r} has run(s) in flight ({', '.join(in_flight)}): wait for them to finish, "
            "or pass --force to delete it anyway"
        )
    try:
        store.delete_job(record, now)  # the version checked above, or nothing
    except ClaimConflict as exc:
        raise OperationError(f"{exc} (a run was just claimed): try again") from exc
    return JobChange(job_id=job_id, action="deleted", status=None, next_run_at=None, message="deleted")


# ------------------------------------------------------------------ runs


def _run_filter(status: RunStatus | None, trigger: str | None) -> Callable[[RunRecord], bool]:
    return lambda run: (
        (status is None or run.status == status) and (trigger is None or run.trigger == trigger)
    )


def _stamp(run: RunRecord) -> str:
    return parse_run_id(run.run_id)[1]


def summarize_run(run: RunRecord) -> RunSummary:
    return RunSummary(
        run_id=run.run_id,
        scheduled_at=run.scheduled_at,
        status=run.status,
        trigger=run.trigger,
        retry_of=run.retry_of,
        skip_reason=run.skip_reason,
        steps=run.step_counts,
        next_run=run.next_run,
        ai_spend=spend_of(run.tokens),
    )


def list_runs(
    store: JobStore,
    job_id: str,
    *,
    limit: int = 20,
    cursor: str | None = None,
    status: RunStatus | None = None,
    trigger: str | None = None,
) -> RunPage:
    """A job's runs, newest first, optionally only those with a status or trigger."""
    _check_limit(limit)
    after = _decode_cursor(cursor, "runs", job_id)
    store.get_job(job_id)  # a job that does not exist is "not found", not an empty list
    keep = _run_filter(status, trigger)
    matches: list[RunRecord] = []
    examined: RunRecord | None = None
    count = 0
    token = after
    while True:
        page, token = store.list_runs(job_id, limit=limit + 1, after=token)
        for run in page:
            count += 1
            examined = run
            if keep(run):
                matches.append(run)
            if len(matches) > limit:
                break
        if len(matches) > limit or token is None or count >= MAX_RUNS_EXAMINED:
            break
    runs = matches[:limit]
    if len(matches) > limit:
        next_cursor: str | None = _encode_cursor("runs", job_id, _stamp(runs[-1]))
    elif token is not None and examined is not None:  # stopped at the read cap: continue from there
        next_cursor = _encode_cursor("runs", job_id, _stamp(examined))
    else:
        next_cursor = None
    return RunPage(runs=[summarize_run(r) for r in runs], next_cursor=next_cursor)


def _check_run_id(run_id: str) -> None:
    try:
        parse_run_id(run_id)
    except ValueError as exc:
        raise InvalidInput("run_id", str(exc)) from None


def show_run(store: JobStore, run_id: str) -> RunDetail:
    _check_run_id(run_id)
    run = store.get_run(run_id)
    steps = store.get_step_results(run_id)
    # hidden extracted values stay hidden from every face (CLI, API, MCP): only those marked safe show
    return RunDetail(
        **run.model_dump(),
        steps=[step.for_display() for step in steps.values()],
        ai_spend=spend_of(run.tokens),
    )


_WHY_THEN = {
    "schedule": "it was the job's next slot on its baseline schedule",
    "baseline": "it was the job's next slot on its baseline schedule",
    "manual": "an operator triggered it",
    "ask-ai": "an operator triggered it and asked for the AI pilot",
    "catch-up": "its slot was missed (the scheduler was behind) and it ran as one catch-up run",
    "buffered": "it was buffered behind the previous run (overlap buffer_one) and ran when that ended",
    "backoff": "the previous run failed and the failure backoff chose this time",
    "ai": "the AI pilot chose this time within the guardrails",
    "ai-reused": "a standing AI decision chose this time within the guardrails",
    "clamped-min": "the AI proposed an earlier time; the guardrails moved it to min_interval",
    "clamped-max": "the AI proposed a later time; the guardrails moved it to max_interval",
    "paused": "the job's pause ended",
}


def _why(source: str) -> str:
    return _WHY_THEN.get(source, f"its time was chosen by '{source}'")


def explain_job(store: JobStore, job_id: str) -> Explanation:
    """Why the last run happened when it did, and why the next one is when it is."""
    record = store.get_job(job_id)
    state = record.state
    runs, _ = store.list_runs(job_id, limit=2)
    last = runs[0] if runs else None
    previous = runs[1] if len(runs) > 1 else None
    next_run = NextRun(at=state.next_run_at, source=state.next_run_source, reason=state.next_run_reason)
    sentences = []
    if last is None:
        sentences.append(f"{job_id} has not run yet.")
    else:
        sentences.append(
            f"The last run {last.run_id} ({last.status}) was scheduled then because {_why(last.trigger)}."
        )
        if previous is not None and previous.next_run is not None:
            sentences.append(
                f"The run before it decided so ({previous.next_run.source}: {previous.next_run.reason})."
            )
        if last.skip_reason:
            sentences.append(
                f"It was skipped: {last.skip_reason}" + (f" ({last.error})." if last.error else ".")
            )
    if state.next_run_at is None:
        sentences.append("There is no next run.")
    else:
        at = state.next_run_at.isoformat().replace("+00:00", "Z")
        why = state.next_run_reason or _why(state.next_run_source)
        sentences.append(f"The next run is at {at} ({state.next_run_source}): {why}.")
    if record.job.status == "paused":
        until = f" until {state.paused_until.isoformat()}" if state.paused_until else ""
        sentences.append(f"The job is paused{until}.")
    return Explanation(
        job_id=job_id,
        run_id=last.run_id if last else None,
        run_scheduled_at=last.scheduled_at if last else None,
        why_then=_why(last.trigger) if last else None,
        skip_reason=last.skip_reason if last else None,
        run_next_decision=last.next_run if last else None,
        next_run=next_run,
        text=" ".join(sentences),
    )


def aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)

"""Discovery: find due jobs, apply the overlap and catch-up policies, claim, start one execution per run.

Safe to run twice for the same tick and after dropped ticks: it reads every job with
next_run_at <= now, and the claim's conditional write lets exactly one invocation win a slot.

One tick scales out: readers walk the due-index shards page by page and hand each due job to a
bounded pool of workers that claim and start concurrently. The tick stops taking new work a margin
before its invocation's deadline and reports what it left; the next tick takes it up, because a job
stays in the due index until its claim or skip is written. A run claimed but not started (the
invocation died, Step Functions was unreachable or kept throttling) keeps its claim: the job is
indexed again at its start check, a minute after the claim, and the tick that reads it then starts
the run under the same execution name and records why it started late.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from cronpilot.clock import Clock
from cronpilot.domain.budget import RunBudgeter
from cronpilot.domain.notifications import enqueue, missed_notices
from cronpilot.domain.ports import (
    ClaimConflict,
    ExecutionStarter,
    JobRecord,
    JobStore,
    LeaseLost,
    NoticeQueue,
    RecordIdTaken,
    RunNotFound,
    StartDeferred,
    StartFailed,
    StartThrottled,
)
from cronpilot.domain.scheduling import CATCH_UP, first_run_at, next_slot, with_jitter
from cronpilot.models.job import JobStatus, OverlapPolicy
from cronpilot.models.notify import Notice
from cronpilot.models.run import RunRecord, RunStatus, make_run_id, run_stamp
from cronpilot.observability import logger, record_discovery

# Longer than the state machine's TimeoutSeconds (25 min), so a live execution never outlives its lease.
LEASE_DURATION = timedelta(minutes=30)
# A run claimed this much after its slot is a catch-up (the scheduler was down or ticks were dropped).
CATCH_UP_AFTER = timedelta(minutes=2)
# A claimed run whose start was not confirmed is looked at again this long after its claim.
START_CHECK_AFTER = timedelta(minutes=1)

# Concurrent claims per invocation: ~55 ms per job (a transaction and a StartExecution) makes 32
# workers ~580 jobs/s, above Standard StartExecution's refill of 300/s; the boto3 clients' connection
# pools are sized to match (runtime.py).
DEFAULT_WORKERS = 32
DEFAULT_READERS = 4
# Stop taking new jobs this many seconds before the invocation's deadline: the work in flight (one
# transaction and one StartExecution per worker, plus a throttled start's last backoff) fits in it.
STOP_MARGIN = 5.0
# A throttled start keeps retrying until this little time is left; then the start check takes it up.
START_RETRY_UNTIL = 2.0
# Full-jitter exponential backoff for throttled or unreachable StartExecution calls.
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
UNAVAILABLE_ATTEMPTS = 3


class Deadline:
    """How long this invocation may still run: the Lambda context's remaining time."""

    def __init__(self, seconds_left: Callable[[], float] | None = None) -> None:
        self._seconds_left = seconds_left

    @classmethod
    def of_lambda(cls, context: Any) -> Deadline:
        return cls(lambda: context.get_remaining_time_in_millis() / 1000)

    def left(self) -> float:
        return math.inf if self._seconds_left is None else self._seconds_left()

    def takes_new_work(self) -> bool:
        return self.left() > STOP_MARGIN


@dataclass
class DiscoveryResult:
    """What one tick did: counts for the log line and the metrics, ids for the output."""

    due: int = 0
    scanned: int = 0
    claimed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason)
    resumed: list[str] = field(default_factory=list)
    late_starts: list[str] = field(default_factory=list)  # runs a previous tick claimed but never started
    conflicts: int = 0
    already_started: int = 0
    start_retries: int = 0
    start_failures: int = 0  # starts left to the start check (still claimed) or recorded start_failed
    errors: int = 0
    stopped_early: bool = False  # the deadline came before every due job was handled
    left: int = 0  # jobs still due in the index when the tick stopped early: the next tick's work
    unread_shards: int = 0  # shards not read to the end before the deadline
    leases_stuck: int = 0  # due jobs whose run never released its lease before it expired
    max_lag_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def log_fields(self) -> dict[str, Any]:
        """The tick's log line: what it found, did and left."""
        return {
            "due": self.due,
            "claimed": len(self.claimed),
            "skipped": self.skipped,
            "conflicts": self.conflicts,
            "late_starts": self.late_starts,
            "start_failures": self.start_failures,
            "left_for_next_tick": self.left,
            "items_read": self.scanned,
        }

    def output(self) -> dict[str, Any]:
        """What the discovery Lambda returns: ids and counts only."""
        return {
            "due": self.due,
            "claimed": self.claimed,
            "skipped": [run_id for run_id, _ in self.skipped],
            "late_starts": self.late_starts,
            "conflicts": self.conflicts,
            "start_failures": self.start_failures,
            "left": self.left,
            "unread_shards": self.unread_shards,
        }


def record_id(record: JobRecord, slot: datetime) -> str:
    """The id of the job's next record (run or skip) for `slot`: plain in a second newer than every
    earlier record of the job, else with the record sequence (see make_run_id)."""
    state = record.state
    if state.newest_stamp is None or run_stamp(slot) > state.newest_stamp:
        return make_run_id(record.job_id, slot)
    return make_run_id(record.job_id, slot, sequence=state.records + 1)


def _sequenced_id(record: JobRecord, slot: datetime) -> str:
    return make_run_id(record.job_id, slot, sequence=record.state.records + 1)


class Discovery:
    def __init__(
        self,
        store: JobStore,
        starter: ExecutionStarter,
        clock: Clock,
        owner: str,
        *,
        workers: int = DEFAULT_WORKERS,
        readers: int = DEFAULT_READERS,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        budget: RunBudgeter | None = None,
        notices: NoticeQueue | None = None,
    ) -> None:
        self.store = store
        self.starter = starter
        self.budget = budget or RunBudgeter()  # the deployment's model settings (runtime.run_budgeter)
        self.clock = clock
        self.owner = owner
        self.notices = notices
        self._missed: list[Notice] = []  # slots skipped as too late this tick: `missed` notifications
        self.workers = max(1, workers)
        self.readers = max(1, min(readers, self.workers))
        self._sleep = sleep
        self._random = rng or random.Random(owner)  # noqa: S311 - spreading work, not secrecy

    def tick(self, deadline: Deadline | None = None) -> DiscoveryResult:
        deadline = deadline or Deadline()
        now = self.clock.now()
        result = DiscoveryResult()
        self._missed = []
        shards = self.store.due_shards()
        self._random.shuffle(shards)
        # Jobs read ahead of the workers: enough to keep them busy, few enough to leave to the next tick.
        backlog = threading.BoundedSemaphore(self.workers * 2)
        with (
            ThreadPoolExecutor(self.workers, thread_name_prefix="claim") as workers,
            ThreadPoolExecutor(self.readers, thread_name_prefix="read") as readers,
        ):
            for future in [
                _submit(readers, self._read, shard, now, deadline, workers, backlog, result)
                for shard in shards
            ]:
                future.result()
        if result.stopped_early:
            # What the next tick inherits, counted from the index (keys only, a query per shard).
            result.left = sum(self.store.count_due(shard, now) for shard in shards)
            logger.warning("discovery stopped before its deadline", left=result.left)
        record_discovery(result)
        if self.notices is not None:
            enqueue(self.notices, self._missed)
        return result

    def _read(
        self,
        shard: str,
        now: datetime,
        deadline: Deadline,
        workers: ThreadPoolExecutor,
        backlog: threading.BoundedSemaphore,
        result: DiscoveryResult,
    ) -> None:
        """Hand one shard's due jobs to the workers, page by page, while the deadline allows."""
        pages = self.store.query_due(shard, now)
        while True:
            if not deadline.takes_new_work():
                with result.lock:
                    result.stopped_early = True
                    result.unread_shards += 1
                return
            page = next(pages, None)
            if page is None:
                return
            with result.lock:
                result.scanned += page.scanned
            # Concurrent invocations walk each page in different orders, so they rarely collide.
            self._random.shuffle(page.records)
            for record in page.records:
                if not deadline.takes_new_work():
                    with result.lock:
                        result.stopped_early = True
                        result.unread_shards += 1
                    return
                backlog.acquire()
                future = _submit(workers, self._work, record, now, deadline, result)
                future.add_done_callback(lambda _: backlog.release())

    def _work(self, record: JobRecord, now: datetime, deadline: Deadline, result: DiscoveryResult) -> None:
        if not deadline.takes_new_work():  # it waited in the backlog past the margin
            with result.lock:
                result.stopped_early = True
            return
        try:
            self._handle(record, now, deadline, result)
        except ClaimConflict:
            with result.lock:
                result.conflicts += 1
        except Exception:  # one job's failure must not cost the others their tick
            logger.exception("discovery failed on a job", job_id=record.job_id)
            with result.lock:
                result.errors += 1

    def _handle(self, record: JobRecord, now: datetime, deadline: Deadline, result: DiscoveryResult) -> None:
        """Check an unconfirmed start, then claim, skip or resume one due job."""
        job, state = record.job, record.state
        if job.status == JobStatus.PAUSED:
            self._resume_if_pause_ended(record, now, result)
            return
        if state.start_check_at is not None and state.start_check_at <= now and state.current_run_id:
            self._check_start(record, state.current_run_id, now, deadline, result)
        slot = state.next_run_at
        if slot is None or slot > now:  # due only for its start check, or claimed since the index read
            return
        lag = now - slot
        with result.lock:
            result.due += 1
            result.leases_stuck += len(state.abandoned_runs(now))
            result.max_lag_seconds = max(result.max_lag_seconds, lag.total_seconds())
        skip = _overlap_skip(record, now) or _lateness_skip(record, lag)
        if skip is None:
            self._claim(record, slot, now, deadline, result)
        else:
            self._skip(record, slot, now, skip, result)

    def _next_after(self, record: JobRecord, now: datetime, anchor: datetime) -> datetime | None:
        """The slot after this one: cron's next slot after now; a rate's one interval after the
        anchor (this slot, or a catch-up run's own time), never at or before now."""
        schedule = record.job.schedule
        slot = next_slot(schedule, after=now, previous=anchor)
        return slot if schedule.rate is not None else with_jitter(record.job, slot)

    def _claim(
        self, record: JobRecord, slot: datetime, now: datetime, deadline: Deadline, result: DiscoveryResult
    ) -> None:
        state = record.state
        catch_up = now - slot > CATCH_UP_AFTER
        trigger = CATCH_UP if catch_up else _trigger_of(state.next_run_source)
        # A catch-up run restarts the cadence from itself: one run for every missed slot, never a burst.
        anchor = now.replace(microsecond=0) if catch_up else slot
        concurrent = record.job.guardrails.allows_concurrent_runs
        run = RunRecord.claimed(record.job_id, slot, state.epoch + 1, trigger, now, concurrent=concurrent)
        if state.retry_of is not None:  # a replay an operator asked for (the claim clears the request)
            run.trigger, run.retry_of, run.retry_failed_only = (
                "retry",
                state.retry_of,
                state.retry_failed_only,
            )
        next_run_at = self._next_after(record, now, anchor)

        def claim(run_id: str) -> None:
            run.run_id = run_id
            self.store.claim(
                record,
                run,
                owner=self.owner,
                lease_until=now + LEASE_DURATION,
                now=now,
                next_run_at=next_run_at,
                next_run_source="baseline",
                next_run_reason="next slot while a run is in flight",
                start_check_at=now.replace(microsecond=0) + START_CHECK_AFTER,
            )

        try:
            claim(record_id(record, slot))
        except RecordIdTaken:
            # An item written before the job counted its records holds this id: step around it.
            claim(_sequenced_id(record, slot))
        with result.lock:
            result.claimed.append(run.run_id)
        self._start(run, record, now, deadline, result)

    def _start(
        self,
        run: RunRecord,
        record: JobRecord,
        now: datetime,
        deadline: Deadline,
        result: DiscoveryResult,
        late: str | None = None,
    ) -> bool:
        """StartExecution, retried with backoff while throttled or unreachable; True once started.

        A start that still fails keeps its claim (the start check takes it up); one that Step
        Functions refuses outright is recorded as start_failed and its slot put back."""
        attempt = 0
        while True:
            try:
                outcome = self.starter.start(run, self.budget(record.job))
                break
            except StartDeferred as exc:
                attempt += 1
                throttled = isinstance(exc, StartThrottled)
                if deadline.left() < START_RETRY_UNTIL or (not throttled and attempt >= UNAVAILABLE_ATTEMPTS):
                    logger.warning("start left to the start check", run_id=run.run_id, error=str(exc))
                    with result.lock:
                        result.start_failures += 1
                    return False
                with result.lock:
                    result.start_retries += 1
                self._sleep(self._random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))
            except StartFailed as exc:
                self._record_start_failure(run, record, now, exc, result)
                return False
        if outcome == "already-started":
            with result.lock:
                result.already_started += 1
        self.store.mark_started(run, self.clock.now(), late_start=late)
        return True

    def _record_start_failure(
        self, run: RunRecord, record: JobRecord, now: datetime, exc: StartFailed, result: DiscoveryResult
    ) -> None:
        """Put the slot back so the next tick retries it; the run record says what happened."""
        with result.lock:
            result.start_failures += 1
        run.status = RunStatus.START_FAILED
        run.error = str(exc)
        run.finished_at = now
        with contextlib.suppress(LeaseLost):
            self.store.finish_run(
                run,
                next_run_at=run.scheduled_at,
                next_run_source=record.state.next_run_source,
                next_run_reason="retrying a run whose execution failed to start",
                consecutive_failures=record.state.consecutive_failures,
            )

    def _check_start(
        self, record: JobRecord, run_id: str, now: datetime, deadline: Deadline, result: DiscoveryResult
    ) -> None:
        """The job's current run was claimed a while ago: start it if its execution never began."""
        try:
            run = self.store.get_run(run_id)
        except RunNotFound:
            run = None
        if run is not None and run.status == RunStatus.CLAIMED and run.execution_started_at is None:
            waited = int((now - (run.claimed_at or now)).total_seconds())
            late = (
                f"not started {waited}s after its claim (the claiming tick ended or could not reach "
                "Step Functions before StartExecution succeeded); started by a later tick"
            )
            if not self._start(run, record, now, deadline, result, late=late):
                return  # still due for its check: the next tick tries again
            with result.lock:
                result.late_starts.append(run_id)
        self.store.confirm_start(record, run_id)
        record.state.start_check_at = None  # a skip written next must not index the old check again

    def _skip(
        self, record: JobRecord, slot: datetime, now: datetime, skip: Skip, result: DiscoveryResult
    ) -> None:
        skipped = RunRecord(
            run_id=record_id(record, slot),
            job_id=record.job_id,
            scheduled_at=slot,
            status=RunStatus.SKIPPED,
            epoch=record.state.epoch,
            trigger=_trigger_of(record.state.next_run_source),
            retry_of=record.state.retry_of,
            claimed_at=now,
            finished_at=now,
            skip_reason=skip.reason,
            error=skip.detail,
        )
        next_run_at = self._next_after(record, now, slot)

        def record_skip(run_id: str) -> None:
            skipped.run_id = run_id
            self.store.record_skip(
                record,
                skipped,
                next_run_at=next_run_at,
                next_run_source="baseline",
                next_run_reason=f"previous slot skipped ({skip.reason})",
                buffer=skip.buffer or record.state.buffered,
            )

        try:
            record_skip(skipped.run_id)
        except RecordIdTaken:
            record_skip(_sequenced_id(record, slot))
        with result.lock:
            result.skipped.append((skipped.run_id, skip.reason))
            if skip.reason == "too-late":
                self._missed += missed_notices(record.job, skipped, now)

    def _resume_if_pause_ended(self, record: JobRecord, now: datetime, result: DiscoveryResult) -> None:
        until = record.state.paused_until
        if until is None or until > now:
            return
        self.store.set_job_schedule_state(
            record,
            status=JobStatus.ACTIVE,
            next_run_at=first_run_at(record.job, now) if record.job.schedule.rate is None else now,
            source="baseline",
            reason=f"resumed: pause ended at {until.isoformat()}",
            paused_until=None,
            now=now,
        )
        with result.lock:
            result.resumed.append(record.job_id)


class Skip(NamedTuple):
    """Why a due slot is recorded as skipped instead of claimed."""

    reason: str  # recorded as the skipped run's skip_reason
    detail: str
    buffer: bool = False  # buffer_one: run once right after the current run ends


def _overlap_skip(record: JobRecord, now: datetime) -> Skip | None:
    """Why this slot cannot start beside the runs in flight, under the job's overlap policy."""
    guardrails, state = record.job.guardrails, record.state
    if guardrails.allows_concurrent_runs:
        in_flight = len(state.runs_in_flight(now))
        if in_flight < guardrails.max_concurrent_runs:
            return None
        return Skip(
            "overlap", f"{in_flight} runs in flight, max_concurrent_runs is {guardrails.max_concurrent_runs}"
        )
    if not state.lease_live(now):
        return None
    running = f"run {state.current_run_id} still in flight"
    if guardrails.overlap == OverlapPolicy.BUFFER_ONE and not state.buffered:
        return Skip("overlap-buffered", f"{running}; one run buffered for when it ends", buffer=True)
    return Skip("overlap", running)


def _lateness_skip(record: JobRecord, lag: timedelta) -> Skip | None:
    max_lateness = record.job.guardrails.max_lateness
    if lag <= max_lateness:
        return None
    return Skip("too-late", f"{int(lag.total_seconds())}s late, more than max_lateness {max_lateness}")


def _trigger_of(next_run_source: str) -> str:
    """Why a run happens at its time, from the decision that set the slot."""
    return "schedule" if next_run_source in ("baseline", "schedule") else next_run_source


def _submit(pool: ThreadPoolExecutor, work: Callable[..., None], *args: Any) -> Future[None]:
    """Run work on the pool in a copy of this invocation's context, so what the context carries (the
    invocation's identity: local mode attributes each DynamoDB call to the function that made it)
    follows the work onto the pool's threads."""
    return pool.submit(contextvars.copy_context().run, work, *args)

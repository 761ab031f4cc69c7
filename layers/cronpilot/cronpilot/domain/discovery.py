"""Discovery: find due jobs, apply the overlap and catch-up policies, claim, start one execution per run.

Safe to run twice for the same tick and after dropped ticks: it reads every job with
next_run_at <= now, and the claim's conditional write lets exactly one invocation win a slot.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cronpilot.clock import Clock
from cronpilot.domain.notifications import enqueue, missed_notices
from cronpilot.domain.ports import (
    ClaimConflict,
    ExecutionStarter,
    JobRecord,
    JobStore,
    LeaseLost,
    NoticeQueue,
    StartFailed,
)
from cronpilot.domain.scheduling import first_run_at, next_slot, with_jitter
from cronpilot.models.job import JobStatus, OverlapPolicy
from cronpilot.models.notify import Notice
from cronpilot.models.run import RunRecord, RunStatus, make_run_id
from cronpilot.observability import record_discovery

# Longer than the state machine's TimeoutSeconds (25 min), so a live execution never outlives its lease.
LEASE_DURATION = timedelta(minutes=30)
# A run claimed this much after its slot is a catch-up (the scheduler was down or ticks were dropped).
CATCH_UP_AFTER = timedelta(minutes=2)
# Conflicts in a row that mark a stale snapshot, and how often one tick may re-read a shard.
STALE_AFTER_CONFLICTS = 3
MAX_REREADS = 20


@dataclass
class DiscoveryResult:
    due: int = 0
    scanned: int = 0
    claimed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason)
    resumed: list[str] = field(default_factory=list)
    conflicts: int = 0
    already_started: int = 0
    start_failures: int = 0
    leases_stuck: int = 0  # due jobs whose run never released its lease before it expired
    max_lag_seconds: float = 0.0

    def output(self) -> dict[str, Any]:
        """What the discovery Lambda returns: ids only."""
        return {
            "due": self.due,
            "claimed": self.claimed,
            "skipped": [run_id for run_id, _ in self.skipped],
            "conflicts": self.conflicts,
        }


class Discovery:
    def __init__(
        self,
        store: JobStore,
        starter: ExecutionStarter,
        clock: Clock,
        owner: str,
        notices: NoticeQueue | None = None,
    ) -> None:
        self.store = store
        self.starter = starter
        self.clock = clock
        self.owner = owner
        self.notices = notices
        self._missed: list[Notice] = []  # slots skipped as too late this tick: `missed` notifications
        self._random = random.Random(owner)  # noqa: S311 - spreading work, not secrecy

    def tick(self) -> DiscoveryResult:
        now = self.clock.now()
        result = DiscoveryResult()
        self._missed = []
        shards = self.store.due_shards()
        self._random.shuffle(shards)
        for shard in shards:
            for _ in range(MAX_REREADS + 1):
                if not self._sweep(shard, now, result):
                    break
        record_discovery(result)
        if self.notices is not None:
            enqueue(self.notices, self._missed)
        return result

    def _sweep(self, shard: str, now: datetime, result: DiscoveryResult) -> bool:
        """Handle one shard's due jobs; True if the snapshot went stale and the shard should be re-read.

        Concurrent invocations read the same snapshot. Claimed jobs leave the due index, so after a
        run of conflicts a fresh read is cheaper than trying every job another invocation already took.
        """
        conflicts_in_a_row = 0
        for page in self.store.query_due(shard, now):
            result.scanned += page.scanned
            # Concurrent invocations walk each page in different orders, so they rarely collide.
            self._random.shuffle(page.records)
            for record in page.records:
                if self._handle(record, now, result):
                    conflicts_in_a_row = 0
                    continue
                conflicts_in_a_row += 1
                if conflicts_in_a_row >= STALE_AFTER_CONFLICTS:
                    return True
        return False

    def _handle(self, record: JobRecord, now: datetime, result: DiscoveryResult) -> bool:
        """Claim, skip or resume one due job; False if another invocation changed it first."""
        job, state = record.job, record.state
        if job.status == JobStatus.PAUSED:
            self._resume_if_pause_ended(record, now, result)
            return True
        slot = state.next_run_at
        if slot is None:
            return True
        result.due += 1
        result.leases_stuck += len(state.abandoned_runs(now))
        lag = now - slot
        result.max_lag_seconds = max(result.max_lag_seconds, lag.total_seconds())
        after_slot = self._next_after(record, now)
        skip = _overlap_skip(record, now) or _lateness_skip(record, lag)
        try:
            if skip is None:
                self._claim(record, slot, now, after_slot, result)
            else:
                self._skip(record, slot, now, after_slot, skip, result)
        except ClaimConflict:
            result.conflicts += 1
            return False
        return True

    def _next_after(self, record: JobRecord, now: datetime) -> datetime | None:
        schedule = record.job.schedule
        slot = next_slot(schedule, after=now, previous=record.state.next_run_at)
        return slot if schedule.rate is not None else with_jitter(record.job, slot)

    def _claim(
        self,
        record: JobRecord,
        slot: datetime,
        now: datetime,
        after_slot: datetime | None,
        result: DiscoveryResult,
    ) -> None:
        state = record.state
        trigger = "catch-up" if now - slot > CATCH_UP_AFTER else _trigger_of(state.next_run_source)
        concurrent = record.job.guardrails.allows_concurrent_runs
        run = RunRecord.claimed(record.job_id, slot, state.epoch + 1, trigger, now, concurrent=concurrent)
        if state.retry_of is not None:  # a replay an operator asked for (the claim clears the request)
            run.trigger, run.retry_of, run.retry_failed_only = (
                "retry",
                state.retry_of,
                state.retry_failed_only,
            )
        self.store.claim(
            record,
            run,
            owner=self.owner,
            lease_until=now + LEASE_DURATION,
            now=now,
            next_run_at=after_slot,
            next_run_source="baseline",
            next_run_reason="next slot while a run is in flight",
        )
        result.claimed.append(run.run_id)
        try:
            if self.starter.start(run) == "already-started":
                result.already_started += 1
        except StartFailed as exc:
            # Put the slot back so the next tick retries it; the run record says what happened.
            result.start_failures += 1
            run.status = RunStatus.START_FAILED
            run.error = str(exc)
            run.finished_at = now
            with contextlib.suppress(LeaseLost):
                self.store.finish_run(
                    run,
                    next_run_at=slot,
                    next_run_source=state.next_run_source,
                    next_run_reason="retrying a run whose execution failed to start",
                    consecutive_failures=state.consecutive_failures,
                )

    def _skip(
        self,
        record: JobRecord,
        slot: datetime,
        now: datetime,
        after_slot: datetime | None,
        skip: Skip,
        result: DiscoveryResult,
    ) -> None:
        skipped = RunRecord(
            run_id=make_run_id(record.job_id, slot),
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
        self.store.record_skip(
            record,
            skipped,
            next_run_at=after_slot,
            next_run_source="baseline",
            next_run_reason=f"previous slot skipped ({skip.reason})",
            buffer=skip.buffer or record.state.buffered,
        )
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
        result.resumed.append(record.job_id)


@dataclass(frozen=True)
class Skip:
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

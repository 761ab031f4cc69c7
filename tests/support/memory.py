"""In-memory implementations of the domain's ports (cronpilot.domain.ports), for unit tests.

They keep the DynamoDB store's rules, not kinder ones: a claim conflicts when the job moved since it
was read or a live lease exists, every run write is fenced on the run's epoch (or its own lease entry
for concurrent runs), a deleted job leaves a tombstone with the next epoch, leases compare in whole
seconds as the stored epoch seconds do. tests/integration/test_store_contract.py runs the same
scenarios against this and the real store on moto, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from cronpilot.domain.budget import RunBudget
from cronpilot.domain.ports import (
    ClaimConflict,
    DuePage,
    HealthUnavailable,
    JobChanged,
    JobNotFound,
    JobRecord,
    JobState,
    LeaseLost,
    RecordIdTaken,
    Reservation,
    RunNotFound,
    StartFailed,
)
from cronpilot.models.health import CircuitState, Health
from cronpilot.models.job import Job, JobStatus
from cronpilot.models.notify import Delivery, Notice
from cronpilot.models.run import (
    RunRecord,
    RunStatus,
    StandingDecision,
    StepResult,
    TokenUsage,
    parse_run_id,
    run_stamp,
)


def _seconds(value: datetime) -> int:
    return int(value.timestamp())


@dataclass
class _Tombstone:
    epoch: int
    records: int = 0  # a job re-created under the id goes on counting records, as in the table
    newest_stamp: str | None = None


class InMemoryStore:
    """The JobStore port in memory. Records are copied in and out, as a database would."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRecord | _Tombstone] = {}
        self.runs: dict[str, RunRecord] = {}
        self.steps: dict[str, dict[str, StepResult]] = {}
        self.decisions: dict[tuple[str, str], StandingDecision] = {}  # (job id, phase) -> decision
        # The sparse due index, maintained on exactly the write paths that maintain the real one.
        self.due_at: dict[str, datetime | None] = {}
        self.reads = 0
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- jobs

    def put_job(
        self,
        job: Job,
        *,
        next_run_at: datetime | None,
        source: str,
        reason: str,
        now: datetime,
        seen: JobRecord | None = None,
        create_only: bool = False,
    ) -> None:
        with self._lock:
            existing = self.jobs.get(job.id)
            if seen is not None and not (isinstance(existing, JobRecord) and existing.job == seen.job):
                raise JobChanged(f"job {job.id!r} changed since it was read")
            if create_only and isinstance(existing, JobRecord):
                raise JobChanged(f"job {job.id!r} changed since it was read")
            if isinstance(existing, JobRecord):
                state = copy.deepcopy(existing.state)
            else:
                state = JobState(
                    epoch=existing.epoch if existing else 0,
                    records=existing.records if existing else 0,
                    newest_stamp=existing.newest_stamp if existing else None,
                )
            state.next_run_at = next_run_at
            state.next_run_source, state.next_run_reason, state.updated_at = source, reason, now
            self.jobs[job.id] = JobRecord(job=job, state=state)
            self.due_at[job.id] = next_run_at if job.status == JobStatus.ACTIVE else None

    def get_job(self, job_id: str) -> JobRecord:
        with self._lock:
            self.reads += 1
            record = self.jobs.get(job_id)
            if not isinstance(record, JobRecord):
                raise JobNotFound(f"no job with id {job_id!r}")
            return copy.deepcopy(record)

    def list_jobs(self) -> list[JobRecord]:
        with self._lock:
            records = [copy.deepcopy(r) for r in self.jobs.values() if isinstance(r, JobRecord)]
        return sorted(records, key=lambda r: r.job_id)

    def close_orphaned_run(self, run: RunRecord) -> None:
        with self._lock:
            if isinstance(self.jobs.get(run.job_id), JobRecord):
                raise LeaseLost(f"job {run.job_id} exists again")
            self.runs[run.run_id] = copy.deepcopy(run)

    def delete_job(self, seen: JobRecord, now: datetime) -> None:
        with self._lock:
            current = self.jobs.get(seen.job_id)
            if not isinstance(current, JobRecord) or current.state.epoch != seen.state.epoch:
                raise ClaimConflict(f"job {seen.job_id!r} changed while it was being deleted")
            self.jobs[seen.job_id] = _Tombstone(
                epoch=seen.state.epoch + 1, records=seen.state.records, newest_stamp=seen.state.newest_stamp
            )
            self.due_at.pop(seen.job_id, None)

    def set_job_schedule_state(
        self,
        record: JobRecord,
        *,
        status: JobStatus,
        next_run_at: datetime | None,
        source: str,
        reason: str,
        paused_until: datetime | None,
        now: datetime,
    ) -> None:
        with self._lock:
            current = self._job(record.job_id)
            self.jobs[record.job_id] = current._replace(job=current.job.model_copy(update={"status": status}))
            state = current.state
            state.next_run_source, state.next_run_reason, state.updated_at = source, reason, now
            if next_run_at is not None:
                state.next_run_at = next_run_at
            state.paused_until = paused_until
            self.due_at[record.job_id] = next_run_at if status == JobStatus.ACTIVE else paused_until

    def request_retry(
        self, seen: JobRecord, *, run_id: str, failed_only: bool, reason: str, now: datetime
    ) -> None:
        with self._lock:
            state = self._as_seen(seen).state
            state.retry_of, state.retry_failed_only = run_id, failed_only
            state.next_run_at, state.next_run_source, state.next_run_reason = now, "retry", reason
            state.updated_at = now
            self.due_at[seen.job_id] = now

    # ------------------------------------------------------------ discovery

    def due_shards(self) -> list[str]:
        from cronpilot.dal.schema import all_due_shards  # the same shard names as the real index

        return all_due_shards()

    def count_due(self, shard: str, now: datetime) -> int:
        with self._lock:
            return sum(
                1
                for job_id, at in self.due_at.items()
                if at is not None and at <= now and self._shard(job_id) == shard
            )

    def query_due(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DuePage]:
        with self._lock:
            due = [
                copy.deepcopy(r)
                for r in self.jobs.values()
                if isinstance(r, JobRecord)
                and self._shard(r.job_id) == shard
                and (at := self.due_at.get(r.job_id)) is not None
                and at <= now
            ]
        due.sort(key=lambda r: (self.due_at[r.job_id] or now, r.job_id))
        for start in range(0, max(len(due), 1), page_size):
            page = due[start : start + page_size]
            yield DuePage(records=page, scanned=len(page))

    def claim(
        self,
        seen: JobRecord,
        run: RunRecord,
        *,
        owner: str,
        lease_until: datetime,
        now: datetime,
        next_run_at: datetime | None,
        next_run_source: str,
        next_run_reason: str,
        start_check_at: datetime | None = None,
    ) -> None:
        with self._lock:
            current = self._as_seen(seen)
            state = current.state
            if current.job.status != JobStatus.ACTIVE:
                raise ClaimConflict("job is not active")
            # A lease ends at its second: a claim in that second finds it expired.
            live = state.lease_expires_at is not None and _seconds(state.lease_expires_at) > _seconds(now)
            if not run.concurrent and live:
                raise ClaimConflict("a live lease exists")
            existing = self.runs.get(run.run_id)
            if existing is not None and existing.status != RunStatus.START_FAILED:
                raise RecordIdTaken(f"run {run.run_id} already exists")
            abandoned = seen.state.abandoned_runs(now)
            for run_id in abandoned:
                old = self.runs.get(run_id)
                if old is None or old.status not in (RunStatus.CLAIMED, RunStatus.RUNNING):
                    raise ClaimConflict(f"run {run_id} finished meanwhile")
            for run_id in abandoned:
                old = self.runs[run_id]
                old.status = RunStatus.ABANDONED
                old.finished_at = now
                old.error = f"its lease expired before it finished; fenced when {run.run_id} was claimed"
                if state.inflight and run_id in state.inflight:
                    del state.inflight[run_id]
            if run.concurrent:
                state.inflight = {**(state.inflight or {}), run.run_id: lease_until}
            state.lease_owner, state.lease_expires_at = owner, lease_until
            state.epoch, state.current_run_id = run.epoch, run.run_id
            state.next_run_at, state.next_run_source, state.next_run_reason = (
                next_run_at,
                next_run_source,
                next_run_reason,
            )
            state.buffered = False
            state.retry_of, state.retry_failed_only = None, False  # a pending retry becomes this run
            self._count_record(state, run)
            state.start_check_at = start_check_at
            self.due_at[seen.job_id] = state.due_at(next_run_at)
            self.runs[run.run_id] = copy.deepcopy(run)

    def record_skip(
        self,
        seen: JobRecord,
        skipped: RunRecord,
        *,
        next_run_at: datetime | None,
        next_run_source: str,
        next_run_reason: str,
        buffer: bool = False,
    ) -> None:
        with self._lock:
            state = self._as_seen(seen).state
            if skipped.run_id in self.runs:
                raise RecordIdTaken(f"run {skipped.run_id} already exists")
            state.next_run_at, state.next_run_source, state.next_run_reason = (
                next_run_at,
                next_run_source,
                next_run_reason,
            )
            state.buffered = buffer
            if not buffer:
                state.retry_of, state.retry_failed_only = None, False  # a skipped retry is dropped
            self._count_record(state, skipped)
            self.due_at[seen.job_id] = seen.state.due_at(next_run_at)
            self.runs[skipped.run_id] = copy.deepcopy(skipped)

    def mark_started(self, run: RunRecord, now: datetime, *, late_start: str | None = None) -> None:
        with self._lock:
            stored = self.runs.get(run.run_id)
            if stored is not None and stored.status == RunStatus.CLAIMED and stored.epoch == run.epoch:
                stored.execution_started_at = now
                stored.late_start = late_start

    def confirm_start(self, seen: JobRecord, run_id: str) -> None:
        with self._lock:
            current = self.jobs.get(seen.job_id)
            if not isinstance(current, JobRecord):
                return
            state = current.state
            if state.current_run_id == run_id and state.epoch == seen.state.epoch and state.start_check_at:
                state.start_check_at = None
                active = current.job.status == JobStatus.ACTIVE
                self.due_at[seen.job_id] = seen.state.next_run_at if active else None

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            self.reads += 1
            if run_id not in self.runs:
                raise RunNotFound(f"no run with id {run_id!r}")
            return copy.deepcopy(self.runs[run_id])

    def get_fenced_run(self, run_id: str, epoch: int) -> RunRecord:
        run = self.get_run(run_id)
        if run.epoch != epoch:
            raise LeaseLost(f"run {run_id} has epoch {run.epoch}, this execution holds {epoch}")
        return run

    def list_runs(
        self, job_id: str, *, limit: int = 20, after: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        with self._lock:
            runs = sorted(
                (r for r in self.runs.values() if r.job_id == job_id), key=lambda r: r.run_id, reverse=True
            )
        if after:
            runs = [r for r in runs if parse_run_id(r.run_id)[1] < after]
        page = [copy.deepcopy(r) for r in runs[:limit]]
        token = parse_run_id(page[-1].run_id)[1] if len(runs) > limit else None
        return page, token

    def save_run(self, run: RunRecord, decision: StandingDecision | None = None) -> None:
        with self._lock:
            self._fence(run.job_id, run.run_id, run.epoch)
            self.runs[run.run_id] = copy.deepcopy(run)
            self._keep_decision(decision)

    def get_decision(self, job_id: str, phase: str) -> StandingDecision | None:
        with self._lock:
            self.reads += 1
            return copy.deepcopy(self.decisions.get((job_id, phase)))

    def _keep_decision(self, decision: StandingDecision | None) -> None:
        if decision is not None:
            self.decisions[(parse_run_id(decision.run_id)[0], decision.phase)] = copy.deepcopy(decision)

    def put_step_result(
        self, job_id: str, run_id: str, epoch: int, result: StepResult, now: datetime
    ) -> None:
        with self._lock:
            self._fence(job_id, run_id, epoch)
            self.steps.setdefault(run_id, {})[result.step_id] = copy.deepcopy(result)

    def get_step_context(
        self, job_id: str, run_id: str, step_ids: list[str]
    ) -> tuple[JobRecord, dict[str, StepResult]]:
        return self.get_job(job_id), self.get_step_results(run_id, step_ids)

    def get_step_results(self, run_id: str, step_ids: list[str] | None = None) -> dict[str, StepResult]:
        with self._lock:
            results = self.steps.get(run_id, {})
            wanted = results if step_ids is None else {s: results[s] for s in step_ids if s in results}
            return copy.deepcopy(dict(wanted))

    def finish_run(
        self,
        run: RunRecord,
        *,
        next_run_at: datetime | None,
        next_run_source: str,
        next_run_reason: str,
        consecutive_failures: int,
        pause_until: datetime | None = None,
        index_due: bool = True,
        latest: bool = True,
        decision: StandingDecision | None = None,
    ) -> None:
        with self._lock:
            record = self._job_or_lease_lost(run.job_id)
            state = record.state
            if not latest:
                if not state.inflight or run.run_id not in state.inflight:
                    raise LeaseLost(f"run {run.run_id} no longer holds its lease")
                del state.inflight[run.run_id]
                self.runs[run.run_id] = copy.deepcopy(run)
                self._keep_decision(decision)
                return
            if state.epoch != run.epoch:
                raise LeaseLost(f"run {run.run_id} has epoch {run.epoch}, the job is at {state.epoch}")
            state.next_run_source, state.next_run_reason = next_run_source, next_run_reason
            state.consecutive_failures = consecutive_failures
            state.lease_owner = state.lease_expires_at = state.current_run_id = None
            state.start_check_at = None
            state.next_run_at = next_run_at
            if pause_until is not None:
                self.jobs[run.job_id] = record._replace(
                    job=record.job.model_copy(update={"status": JobStatus.PAUSED})
                )
                state.paused_until = pause_until
            if run.concurrent and state.inflight:
                state.inflight.pop(run.run_id, None)
            self.due_at[run.job_id] = (pause_until or next_run_at) if index_due else None
            self.runs[run.run_id] = copy.deepcopy(run)
            self._keep_decision(decision)

    def record_notifications(self, run_id: str, deliveries: list[Delivery]) -> None:
        with self._lock:
            if run_id not in self.runs:
                raise RunNotFound(f"no run with id {run_id!r}")
            self.runs[run_id].notifications += deliveries

    # -------------------------------------------------------------- helpers

    @staticmethod
    def _shard(job_id: str) -> str:
        from cronpilot.dal.schema import due_shard

        return str(due_shard(job_id))

    def _job(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if not isinstance(record, JobRecord):
            raise JobNotFound(f"no job with id {job_id!r}")
        return record

    def _job_or_lease_lost(self, job_id: str) -> JobRecord:
        record = self.jobs.get(job_id)
        if not isinstance(record, JobRecord):
            raise LeaseLost(f"job {job_id} is gone")
        return record

    def _as_seen(self, seen: JobRecord) -> JobRecord:
        current = self.jobs.get(seen.job_id)
        if not isinstance(current, JobRecord):
            raise ClaimConflict(f"job {seen.job_id} is gone")
        same_slot = current.state.next_run_at == seen.state.next_run_at
        same_records = current.state.records == seen.state.records
        if not same_slot or not same_records or current.state.epoch != seen.state.epoch:
            raise ClaimConflict(f"job {seen.job_id} moved since it was read")
        return current

    @staticmethod
    def _count_record(state: JobState, record: RunRecord) -> None:
        state.records += 1
        state.newest_stamp = max(state.newest_stamp or "", run_stamp(record.scheduled_at))

    def _fence(self, job_id: str, run_id: str, epoch: int) -> None:
        state = self._job_or_lease_lost(job_id).state
        if state.epoch != epoch and not (state.inflight and run_id in state.inflight):
            raise LeaseLost(f"run {run_id} has epoch {epoch}, the job is at {state.epoch}")


class InMemoryHealthStore:
    """The HealthStore port: conditional on the version read, as the DynamoDB item is."""

    def __init__(self) -> None:
        self.items: dict[str, Health] = {}
        self.unavailable = False
        self.reads: list[bool] = []  # each read: consistent or not

    def read(self, origin: str, *, consistent: bool = True) -> Health:
        self._check()
        self.reads.append(consistent)
        return copy.deepcopy(self.items.get(origin, Health(origin=origin)))

    def start_probe(self, seen: Health, now: datetime, probe_id: str) -> bool:
        return self._write(
            seen,
            state=CircuitState.HALF_OPEN,
            probe_id=probe_id,
            probe_started_at=now,
        )

    def record_failures(
        self, seen: Health, now: datetime, failures: list[datetime], *, open_circuit: bool
    ) -> bool:
        if open_circuit:
            return self._write(seen, failures=tuple(failures), state=CircuitState.OPEN, opened_at=now)
        return self._write(seen, failures=tuple(failures))

    def end_probe(self, origin: str, probe_id: str, now: datetime, *, closed: bool) -> None:
        if closed:
            self._end(origin, probe_id, state=CircuitState.CLOSED, failures=(), opened_at=None)
        else:
            self._end(origin, probe_id, state=CircuitState.OPEN, opened_at=now)

    def release_probe(self, origin: str, probe_id: str, now: datetime) -> None:
        self._end(origin, probe_id, state=CircuitState.OPEN)

    def _check(self) -> None:
        if self.unavailable:
            raise HealthUnavailable("health store unavailable")

    def _write(self, seen: Health, **changes: object) -> bool:
        self._check()
        current = self.items.get(seen.origin, Health(origin=seen.origin))
        if current.version != seen.version:
            return False
        self.items[seen.origin] = copy.replace(current, version=current.version + 1, **changes)  # type: ignore[arg-type]
        return True

    def _end(self, origin: str, probe_id: str, **changes: object) -> None:
        self._check()
        current = self.items.get(origin)
        if current is None or current.state != CircuitState.HALF_OPEN or current.probe_id != probe_id:
            return  # a stale probe's late report: the newer probe decides
        self.items[origin] = copy.replace(  # type: ignore[arg-type]
            current, version=current.version + 1, probe_id=None, probe_started_at=None, **changes
        )


@dataclass
class InMemoryUsageLedger:
    """The UsageLedger port: a reservation succeeds only while used + reserved stays within the limit."""

    used: dict[tuple[str, str], TokenUsage] = field(default_factory=dict)
    committed_tokens: dict[tuple[str, str], int] = field(default_factory=dict)

    def reserve(self, job_id: str, now: datetime, tokens: int, limit: int) -> Reservation | None:
        key = (job_id, now.astimezone(UTC).date().isoformat())
        if self.committed_tokens.get(key, 0) + tokens > limit:
            return None
        self.committed_tokens[key] = self.committed_tokens.get(key, 0) + tokens
        return Reservation(job_id=job_id, day=key[1], tokens=tokens)

    def settle(self, reservation: Reservation, now: datetime, usage: TokenUsage, calls: int = 1) -> None:
        key = (reservation.job_id, reservation.day)
        self.used[key] = self.used.get(key, TokenUsage()) + usage
        self.committed_tokens[key] += usage.total - reservation.tokens

    def release(self, reservation: Reservation, now: datetime) -> None:
        self.committed_tokens[(reservation.job_id, reservation.day)] -= reservation.tokens

    def committed(self, job_id: str, now: datetime) -> int:
        return self.committed_tokens.get((job_id, now.astimezone(UTC).date().isoformat()), 0)

    def today(self, job_id: str, now: datetime) -> TokenUsage:
        return self.used.get((job_id, now.astimezone(UTC).date().isoformat()), TokenUsage())


@dataclass
class RecordingNoticeQueue:
    """The NoticeQueue port: keeps what was enqueued."""

    notices: list[Notice] = field(default_factory=list)

    def enqueue(self, notices: list[Notice]) -> None:
        self.notices += notices


@dataclass
class RecordingStarter:
    """The ExecutionStarter port: records starts; the run id is the execution name, so a second start
    of the same run is `already-started`, as Step Functions answers ExecutionAlreadyExists."""

    started: list[str] = field(default_factory=list)
    refuse_with: str | None = None
    budgets: dict[str, RunBudget] = field(default_factory=dict)  # the budget each run started with

    def start(self, run: RunRecord, budget: RunBudget) -> Literal["started", "already-started"]:
        if self.refuse_with:
            raise StartFailed(self.refuse_with)
        if run.run_id in self.started:
            return "already-started"
        self.started.append(run.run_id)
        self.budgets[run.run_id] = budget
        return "started"

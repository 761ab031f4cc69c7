"""The scale model: the real discovery code, 10,000 jobs due at the same minute, AWS-like latencies.

Not a timed test: discovery runs against a store and a starter that sleep for what DynamoDB and Step
Functions take (defaults from published figures, configurable) and that enforce StartExecution's
published token-bucket quota. Time is simulated by scaling every sleep (`SCALE` real seconds per
simulated second), so a 60-second tick takes a few real seconds; discovery's own CPU time is scaled up
by the same factor, which makes the figures pessimistic, never kind.

The store keeps the rules of the real one (dal/store.py) that decide who wins: a claim holds only when
the job is as discovery read it (epoch, slot, record count) and no live lease exists, the run item must
not exist yet, a skip holds on the same conditions; the tests pin that behaviour on moto.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from cronpilot.dal.schema import all_due_shards, due_shard
from cronpilot.domain.discovery import DEFAULT_WORKERS, Deadline, Discovery
from cronpilot.domain.ports import (
    ClaimConflict,
    DuePage,
    JobRecord,
    JobState,
    LeaseLost,
    RunNotFound,
    StartThrottled,
)
from cronpilot.models.job import Job, JobStatus
from cronpilot.models.run import RunRecord, RunStatus, run_stamp

SLOT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
JOBS = 10_000
TICK = timedelta(seconds=60)
LAMBDA_TIMEOUT = 60.0  # the discovery function's timeout (infra/cronpilot_infra/functions.py)
TICK_DELIVERY = 1.0  # EventBridge delivers a rate(1 minute) tick about a second after the minute

# Real seconds per simulated second (CRONPILOT_SCALE_MODEL_SCALE to change it).
SCALE = float(os.environ.get("CRONPILOT_SCALE_MODEL_SCALE", "0.25"))


@dataclass(frozen=True)
class Latencies:
    """Seconds per call, from published figures (single-digit-millisecond DynamoDB reads, a
    transaction of two items ~15 ms, StartExecution ~40 ms); override with CRONPILOT_LATENCY_<NAME>."""

    query_page: float = 0.010
    batch_get: float = 0.010
    transaction: float = 0.015
    update: float = 0.008
    get: float = 0.005
    start_execution: float = 0.040

    @classmethod
    def from_env(cls) -> Latencies:
        values = {
            name: float(os.environ.get(f"CRONPILOT_LATENCY_{name.upper()}", default))
            for name, default in vars(cls()).items()
        }
        return cls(**values)


@dataclass(frozen=True)
class StartQuota:
    """StartExecution's token bucket (Step Functions quotas, per account and region)."""

    name: str
    bucket: int
    refill_per_second: float


# US East (N. Virginia), US West (Oregon), Europe (Ireland); other regions: Standard 800 / 150.
STANDARD = StartQuota("Standard", bucket=1_300, refill_per_second=300)
EXPRESS = StartQuota("Express", bucket=6_000, refill_per_second=6_000)


class SimTime:
    """Simulated time: real time divided by the scale. Sleeps are real sleeps, scaled."""

    def __init__(self, start: datetime, scale: float) -> None:
        self.scale = scale
        self._start = start
        self._real_start = time.perf_counter()

    def elapsed(self) -> float:
        return (time.perf_counter() - self._real_start) / self.scale

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.elapsed())

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds * self.scale)

    def jump_to(self, moment: datetime) -> None:
        """Skip idle time between ticks."""
        self._start = moment - timedelta(seconds=self.elapsed())


class TokenBucket:
    def __init__(self, quota: StartQuota, sim: SimTime) -> None:
        self.quota = quota
        self.sim = sim
        self.tokens = float(quota.bucket)
        self.at = sim.elapsed()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = self.sim.elapsed()
            refill = (now - self.at) * self.quota.refill_per_second
            self.tokens = min(float(self.quota.bucket), self.tokens + refill)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


class SimStarter:
    """StartExecution with its latency and quota; remembers every execution it started."""

    def __init__(self, sim: SimTime, latencies: Latencies, quota: StartQuota) -> None:
        self.sim = sim
        self.latency = latencies.start_execution
        self.bucket = TokenBucket(quota, sim)
        self.lock = threading.Lock()
        self.started: dict[str, datetime] = {}
        self.duplicates = 0
        self.throttled = 0

    def start(self, run: RunRecord, budget: object = None) -> Literal["started", "already-started"]:
        self.sim.sleep(self.latency)
        if not self.bucket.take():
            with self.lock:
                self.throttled += 1
            raise StartThrottled("ThrottlingException: Rate exceeded")
        with self.lock:
            if run.run_id in self.started:
                self.duplicates += 1  # Standard answers with the existing execution; counted anyway
                return "already-started"
            self.started[run.run_id] = self.sim.now()
        return "started"


@dataclass
class _Item:
    job: Job
    state: JobState
    due: datetime | None  # the job's due-index entry
    shard: str


@dataclass
class SimStore:
    """In-memory jobs and runs with the real store's conditions, and DynamoDB's latencies."""

    sim: SimTime
    latencies: Latencies
    jobs: dict[str, _Item] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, job: Job, next_run_at: datetime) -> None:
        self.jobs[job.id] = _Item(
            job=job, state=JobState(next_run_at=next_run_at), due=next_run_at, shard=due_shard(job.id)
        )

    # ------------------------------------------------------------ reads

    def due_shards(self) -> list[str]:
        return all_due_shards()

    def count_due(self, shard: str, now: datetime) -> int:
        self.sim.sleep(self.latencies.query_page)
        with self.lock:
            return sum(
                1
                for item in self.jobs.values()
                if item.shard == shard and item.due is not None and item.due <= now
            )

    def query_due(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DuePage]:
        with self.lock:
            due = sorted(
                (item.due, job_id)
                for job_id, item in self.jobs.items()
                if item.shard == shard and item.due is not None and item.due <= now
            )
        for start in range(0, max(len(due), 1), page_size):
            self.sim.sleep(self.latencies.query_page)
            page = [job_id for _, job_id in due[start : start + page_size]]
            if page:
                self.sim.sleep(self.latencies.batch_get)  # the consistent read of the page's jobs
            with self.lock:
                records = [self._record(job_id) for job_id in page]
            yield DuePage(records=records, scanned=len(page))

    def _record(self, job_id: str) -> JobRecord:
        item = self.jobs[job_id]
        return JobRecord(job=item.job, state=replace(item.state, inflight=dict(item.state.inflight or {})))

    def get_run(self, run_id: str) -> RunRecord:
        self.sim.sleep(self.latencies.get)
        with self.lock:
            if run_id not in self.runs:
                raise RunNotFound(run_id)
            return self.runs[run_id].model_copy(deep=True)

    # ------------------------------------------------------------ writes

    def _as_seen(self, seen: JobRecord) -> _Item:
        item = self.jobs[seen.job_id]
        state = item.state
        if (state.epoch, state.next_run_at, state.records) != (
            seen.state.epoch,
            seen.state.next_run_at,
            seen.state.records,
        ):
            raise ClaimConflict(f"job {seen.job_id} changed")
        return item

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
        self.sim.sleep(self.latencies.transaction)
        with self.lock:
            item = self._as_seen(seen)
            state = item.state
            if item.job.status != JobStatus.ACTIVE:
                raise ClaimConflict("not active")
            if not run.concurrent and state.lease_live(now):
                raise ClaimConflict("lease live")
            if run.run_id in self.runs and self.runs[run.run_id].status != RunStatus.START_FAILED:
                raise ClaimConflict(f"run {run.run_id} exists")
            item.state = replace(
                state,
                lease_owner=owner,
                lease_expires_at=lease_until,
                epoch=run.epoch,
                current_run_id=run.run_id,
                next_run_at=next_run_at,
                next_run_source=next_run_source,
                next_run_reason=next_run_reason,
                buffered=False,
                start_check_at=start_check_at,
                records=state.records + 1,
                newest_stamp=max(state.newest_stamp or "", run_stamp(run.scheduled_at)),
            )
            item.due = item.state.due_at(next_run_at)
            self.runs[run.run_id] = run  # discovery hands the run over; it changes it only on failure

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
        self.sim.sleep(self.latencies.transaction)
        with self.lock:
            item = self._as_seen(seen)
            if skipped.run_id in self.runs:
                raise ClaimConflict(f"run {skipped.run_id} exists")
            item.state = replace(
                item.state,
                next_run_at=next_run_at,
                next_run_source=next_run_source,
                next_run_reason=next_run_reason,
                buffered=buffer,
                records=item.state.records + 1,
                newest_stamp=max(item.state.newest_stamp or "", run_stamp(skipped.scheduled_at)),
            )
            item.due = seen.state.due_at(next_run_at)
            self.runs[skipped.run_id] = skipped

    def mark_started(self, run: RunRecord, now: datetime, *, late_start: str | None = None) -> None:
        self.sim.sleep(self.latencies.update)
        with self.lock:
            stored = self.runs.get(run.run_id)
            if stored is not None and stored.status == RunStatus.CLAIMED and stored.epoch == run.epoch:
                stored.execution_started_at = now
                stored.late_start = late_start

    def confirm_start(self, seen: JobRecord, run_id: str) -> None:
        self.sim.sleep(self.latencies.update)
        with self.lock:
            item = self.jobs[seen.job_id]
            state = item.state
            if state.current_run_id == run_id and state.epoch == seen.state.epoch and state.start_check_at:
                item.state = replace(state, start_check_at=None)
                item.due = state.next_run_at

    def finish_run(self, run: RunRecord, **_: object) -> None:
        raise LeaseLost("the scale model starts every run; nothing finishes within one minute")


@dataclass
class Outcome:
    label: str
    workers: int
    ticks: list[dict[str, float]]
    started_in_first_tick: int
    last_start_after_slot: float | None
    past_deadline: int
    duplicates: int
    lost: int
    left: int
    throttled: int


def _jobs(count: int) -> list[Job]:
    template = Job.model_validate(
        {
            "id": "scale-00000",
            "schedule": {"cron": "0 * * * *"},  # a top-of-the-hour cron shared by every job
            "endpoints": [{"id": "a", "url": "https://example.com"}],
        }
    )
    return [template.model_copy(update={"id": f"scale-{n:05d}"}) for n in range(count)]


def simulate(quota: StartQuota, *, workers: int, max_ticks: int = 3, jobs: int = JOBS) -> Outcome:
    latencies = Latencies.from_env()
    sim = SimTime(SLOT, SCALE)
    store = SimStore(sim, latencies)
    for job in _jobs(jobs):
        store.add(job, SLOT)
    starter = SimStarter(sim, latencies, quota)
    ticks: list[dict[str, float]] = []
    past_deadline = 0
    started_first = 0
    for number in range(max_ticks):
        tick_at = SLOT + number * TICK + timedelta(seconds=TICK_DELIVERY)
        sim.jump_to(max(tick_at, sim.now()))
        invoked = sim.elapsed()
        deadline = Deadline(lambda invoked=invoked: LAMBDA_TIMEOUT - (sim.elapsed() - invoked))
        discovery = Discovery(
            store,
            starter,
            sim,
            owner=f"tick-{number}",
            workers=workers,
            sleep=sim.sleep,
            rng=random.Random(7),
        )
        before = len(starter.started)
        result = discovery.tick(deadline)
        took = sim.elapsed() - invoked
        past_deadline += took > LAMBDA_TIMEOUT
        started = len(starter.started) - before
        if number == 0:
            started_first = started
        ticks.append({"claimed": len(result.claimed), "started": started, "left": result.left, "took": took})
        if len(starter.started) >= jobs:
            break
    slot_runs = Counter(run.job_id for run in store.runs.values() if run.status != RunStatus.SKIPPED)
    started_jobs = {store.runs[run_id].job_id for run_id in starter.started}
    # Lost: neither started nor still due in the index for a later tick to take up.
    end = sim.now()
    lost = sum(
        1
        for job_id, item in store.jobs.items()
        if job_id not in started_jobs and (item.due is None or item.due > end + TICK * 2)
    )
    left = sum(1 for job_id in store.jobs if job_id not in started_jobs) - lost
    last = max(starter.started.values(), default=None)
    return Outcome(
        label=quota.name,
        workers=workers,
        ticks=ticks,
        started_in_first_tick=started_first,
        last_start_after_slot=(last - SLOT).total_seconds() if last else None,
        past_deadline=past_deadline,
        duplicates=starter.duplicates + sum(count - 1 for count in slot_runs.values() if count > 1),
        lost=lost,
        left=left,
        throttled=starter.throttled,
    )


def _row(outcome: Outcome) -> tuple[str, str, str]:
    per_tick = " / ".join(f"{int(t['started'])}" for t in outcome.ticks)
    last = f"{outcome.last_start_after_slot:.1f}s" if outcome.last_start_after_slot is not None else "never"
    mode = "sequential" if outcome.workers == 1 else f"{outcome.workers} workers"
    figure = (
        f"{outcome.started_in_first_tick:,} started in tick 1 (per tick: {per_tick}); last started {last} "
        f"after its slot; {outcome.past_deadline} past deadline, {outcome.duplicates} dup, "
        f"{outcome.lost} lost, {outcome.left:,} left for later ticks, {outcome.throttled} throttled calls"
    )
    return (f"{JOBS:,} due, {outcome.label}, {mode}", figure, "all within 60s, 0 past/dup/lost")


def run() -> list[tuple[str, str, str]]:
    rows = [
        _row(simulate(STANDARD, workers=DEFAULT_WORKERS)),
        _row(simulate(EXPRESS, workers=DEFAULT_WORKERS)),
        _row(simulate(STANDARD, workers=1, max_ticks=1)),
    ]
    latencies = Latencies.from_env()
    rows.append(
        (
            "model inputs",
            f"transaction {latencies.transaction * 1000:.0f} ms, "
            f"query page {latencies.query_page * 1000:.0f} ms, "
            f"StartExecution {latencies.start_execution * 1000:.0f} ms; quotas Standard "
            f"{STANDARD.bucket}+{STANDARD.refill_per_second:.0f}/s, Express {EXPRESS.bucket}+"
            f"{EXPRESS.refill_per_second:.0f}/s; {len(all_due_shards())} shards; scale {SCALE}",
            "-",
        )
    )
    return rows

"""What the domain needs from storage and AWS, as interfaces (Protocols) and the records they return.

The data-access package (`cronpilot.dal`) implements these against DynamoDB and Step Functions; the
unit tests implement them in memory. Domain modules import from here, never from `cronpilot.dal`,
boto3 or botocore.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, TypedDict

if TYPE_CHECKING:
    # re-exported: the starter (data access) sees the budget through the ports only
    from cronpilot.domain.budget import RunBudget as RunBudget
    from cronpilot.models.deployment import Deployment, SecretState
    from cronpilot.models.health import Health
    from cronpilot.models.job import Job, JobStatus, SecretRef
    from cronpilot.models.notify import Delivery, Notice
    from cronpilot.models.run import RunRecord, StandingDecision, StepResult, TokenUsage


class RunOutcome(TypedDict):
    """What the summarizer and finalize-failure answer the state machine: the run's final status, or
    "fenced" when a newer claim had replaced this run's holder."""

    status: str


class StoreError(Exception):
    """Base class of data-access errors the domain handles."""


class JobNotFound(StoreError):
    pass


class RunNotFound(StoreError):
    pass


class ClaimConflict(StoreError):
    """Another discovery invocation changed the job first (claimed it, or moved its slot)."""


class RecordIdTaken(ClaimConflict):
    """The job was as seen, but an item already holds the new record's id (written before the job
    counted its records): the caller retries once under the record-sequence id."""


class JobChanged(StoreError):
    """The job is not the version the caller read (or exists, when the caller meant to create it)."""


class LeaseLost(StoreError):
    """The run's fencing epoch is stale: the lease expired and someone else holds the job now."""


@dataclass
class JobState:
    """Scheduling state kept beside the job definition."""

    next_run_at: datetime | None = None
    next_run_source: str = "baseline"
    next_run_reason: str = ""
    epoch: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    current_run_id: str | None = None
    consecutive_failures: int = 0
    paused_until: datetime | None = None
    buffered: bool = False
    updated_at: datetime | None = None
    # Concurrent runs (overlap `allow`) and their own leases; None until the first concurrent claim.
    inflight: dict[str, datetime] | None = None
    # Records (runs and skips) written for the job, and the newest second among their slots: a record
    # in a second not newer than that one gets a sequence suffix, so no two records share an id.
    records: int = 0
    newest_stamp: str | None = None
    # When discovery looks again at the current run, to start it if its execution never began.
    start_check_at: datetime | None = None
    # A replay requested by an operator (`runs retry`): the next claim creates it and clears these.
    retry_of: str | None = None
    retry_failed_only: bool = False
    # The job document exactly as the store holds it (opaque here): an If-Match write is conditional
    # on it, so the check holds whatever format or compressor wrote the item.
    stored_doc: str | bytes | None = field(default=None, repr=False, compare=False)

    def lease_live(self, now: datetime) -> bool:
        return self.lease_expires_at is not None and self.lease_expires_at > now

    def runs_in_flight(self, now: datetime) -> list[str]:
        """Runs holding a live lease: the concurrent ones, and the current run."""
        return sorted(run_id for run_id, until in self._leases().items() if until > now)

    def abandoned_runs(self, now: datetime) -> list[str]:
        """Runs whose lease expired before they finished: the next claim fences them and records why."""
        return sorted(run_id for run_id, until in self._leases().items() if until <= now)

    def due_at(self, next_run_at: datetime | None) -> datetime | None:
        """When the job is due in the index with this next run: its slot, or its start check if sooner."""
        times = [t for t in (next_run_at, self.start_check_at) if t is not None]
        return min(times) if times else None

    def _leases(self) -> dict[str, datetime]:
        """Every unfinished run's lease expiry (the current run's is also in `inflight` when concurrent)."""
        leases = dict(self.inflight or {})
        if self.current_run_id and self.lease_expires_at is not None:
            leases.setdefault(self.current_run_id, self.lease_expires_at)
        return leases


class JobRecord(NamedTuple):
    """A job definition and its scheduling state, as read together."""

    job: Job
    state: JobState

    @property
    def job_id(self) -> str:
        return self.job.id


class DuePage(NamedTuple):
    """One page of due jobs and how many index items it read."""

    records: list[JobRecord]
    scanned: int


class StartFailed(StoreError):
    """Step Functions refused to start an execution for good (a missing state machine, a denied
    call, an invalid input): the run is recorded as start_failed and its slot put back."""

    def __init__(self, code: str) -> None:
        super().__init__(f"StartExecution failed: {code}")
        self.code = code


class StartDeferred(StartFailed):
    """The start may succeed if tried again: discovery retries with backoff, and the run keeps its
    claim (the start check takes it up) if it still fails."""


class StartThrottled(StartDeferred):
    """StartExecution's token bucket is empty (ThrottlingException)."""


class StartUnavailable(StartDeferred):
    """Step Functions could not be reached, or failed on its side (connection error, 5xx)."""


class HealthUnavailable(StoreError):
    """Endpoint health could not be read or written (best-effort bookkeeping)."""


# ------------------------------------------------------------------ interfaces


class JobStore(Protocol):
    """Jobs, runs and step results, every run write fenced on the run's epoch (see dal/store.py)."""

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
    ) -> None: ...
    def get_job(self, job_id: str) -> JobRecord: ...
    def list_jobs(self) -> list[JobRecord]: ...
    def close_orphaned_run(self, run: RunRecord) -> None: ...
    def delete_job(self, seen: JobRecord, now: datetime) -> None: ...
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
    ) -> None: ...
    def request_retry(
        self, seen: JobRecord, *, run_id: str, failed_only: bool, reason: str, now: datetime
    ) -> None: ...
    def due_shards(self) -> list[str]: ...
    def query_due(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DuePage]: ...
    def count_due(self, shard: str, now: datetime) -> int: ...
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
    ) -> None: ...
    def mark_started(self, run: RunRecord, now: datetime, *, late_start: str | None = None) -> None: ...
    def confirm_start(self, seen: JobRecord, run_id: str) -> None: ...
    def record_skip(
        self,
        seen: JobRecord,
        skipped: RunRecord,
        *,
        next_run_at: datetime | None,
        next_run_source: str,
        next_run_reason: str,
        buffer: bool = False,
    ) -> None: ...
    def get_run(self, run_id: str) -> RunRecord: ...
    def get_fenced_run(self, run_id: str, epoch: int) -> RunRecord: ...
    def list_runs(
        self, job_id: str, *, limit: int = 20, after: str | None = None
    ) -> tuple[list[RunRecord], str | None]: ...
    def save_run(self, run: RunRecord, decision: StandingDecision | None = None) -> None: ...
    def get_decision(self, job_id: str, phase: str) -> StandingDecision | None: ...
    def put_step_result(
        self, job_id: str, run_id: str, epoch: int, result: StepResult, now: datetime
    ) -> None: ...
    def get_step_context(
        self, job_id: str, run_id: str, step_ids: list[str]
    ) -> tuple[JobRecord, dict[str, StepResult]]: ...
    def get_step_results(self, run_id: str, step_ids: list[str] | None = None) -> dict[str, StepResult]: ...
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
    ) -> None: ...
    def record_notifications(self, run_id: str, deliveries: list[Delivery]) -> None: ...


class Reservation(NamedTuple):
    """Tokens held against one job-day's budget while a call is in flight."""

    job_id: str
    day: str
    tokens: int


class UsageLedger(Protocol):
    """Tokens used per job per UTC day; a call reserves its estimate first and settles afterwards."""

    def reserve(self, job_id: str, now: datetime, tokens: int, limit: int) -> Reservation | None: ...
    def settle(self, reservation: Reservation, now: datetime, usage: TokenUsage, calls: int = 1) -> None: ...
    def release(self, reservation: Reservation, now: datetime) -> None: ...
    def committed(self, job_id: str, now: datetime) -> int: ...
    def today(self, job_id: str, now: datetime) -> TokenUsage: ...


class HealthStore(Protocol):
    """Circuit state per endpoint origin. Writes are conditional: False (or no change) when the item
    moved under us. Storage trouble raises HealthUnavailable. A read that is not `consistent` may miss
    a write of the last second (eventually consistent: half the price)."""

    def read(self, origin: str, *, consistent: bool = True) -> Health: ...
    def start_probe(self, seen: Health, now: datetime, probe_id: str) -> bool: ...
    def record_failures(
        self, seen: Health, now: datetime, failures: list[datetime], *, open_circuit: bool
    ) -> bool: ...
    def end_probe(self, origin: str, probe_id: str, now: datetime, *, closed: bool) -> None: ...
    def release_probe(self, origin: str, probe_id: str, now: datetime) -> None: ...


class NoticeQueue(Protocol):
    """Hands notices to the notify function without waiting for their delivery."""

    def enqueue(self, notices: list[Notice]) -> None: ...


class ExecutionStarter(Protocol):
    """Starts a run's execution on the state machine type its budget fits (Express or Standard), with
    the budget's task limits in the input; its name derives from the run id. A second start of a
    Standard execution is harmless; Express does not dedupe names, so a second start runs twice, which
    the epoch fence and the idempotent steps make harmless. Raises StartDeferred (StartThrottled,
    StartUnavailable) when trying again may help, StartFailed when the service refuses for good."""

    def start(self, run: RunRecord, budget: RunBudget) -> Literal["started", "already-started"]: ...


class DeploymentProbe(Protocol):
    """Read-only questions `cronpilot doctor` asks about a deployment (AWS, or moto in tests)."""

    deployment: Deployment

    def table_exists(self) -> bool: ...
    def state_machine_exists(self, arn: str) -> bool: ...
    def last_tick(self, since: datetime, now: datetime) -> datetime | None: ...
    def confirmed_subscriptions(self) -> int: ...
    def anthropic_key_set(self) -> bool: ...
    def secret_state(self, ref: SecretRef) -> SecretState: ...

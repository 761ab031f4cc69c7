"""Data access: the only module that talks to DynamoDB.

Guarantees (DESIGN.md): a claim is one transaction — a conditional update of the job (next_run_at is
what discovery saw, no live lease, epoch unchanged) that takes the lease and bumps the fencing epoch,
plus the creation of the run item. Every later write for that run is conditional on the epoch, so a
holder whose lease expired and was re-claimed can no longer write.

Jobs with overlap `allow` run concurrently, so one epoch cannot fence them all: each concurrent run
also holds its own lease in the job's `inflight` map (run id -> lease expiry). A run may write while
the epoch is still its own or while it is in that map; a claim drops expired entries, which fences
their stale holders exactly as a re-claim does for a single run.

Every record a job gets (a claimed run or a skipped slot) bumps the job's record count in the same
transaction, so record ids never collide (see make_run_id), and a claim also sets the job's start
check: the job is due in the index again a minute later unless its run finishes first, so a run whose
execution never started is found by the next ticks (discovery's start check).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cronpilot.clock import from_iso, to_iso
from cronpilot.dal import schema
from cronpilot.dal.items import (
    deserialize,
    epoch_seconds,
    is_condition_failure,
    pack_doc,
    serialize,
    unpack_doc,
)
from cronpilot.domain.ports import (
    ClaimConflict,
    DuePage,
    JobChanged,
    JobNotFound,
    JobRecord,
    JobState,
    LeaseLost,
    RecordIdTaken,
    RunNotFound,
)
from cronpilot.models.job import Job, JobStatus
from cronpilot.models.notify import Delivery
from cronpilot.models.run import RunRecord, RunStatus, StandingDecision, StepResult, parse_run_id, run_stamp

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RUN_RETENTION = timedelta(days=90)
# An expired decision still explains the next run's news ("expired"); a week later it goes by TTL.
DECISION_RETENTION = timedelta(days=7)
# A deleted job leaves this tombstone; it outlives any execution of the job (25-minute timeout).
DELETED = "deleted-job"
TOMBSTONE_RETENTION = timedelta(days=1)


@functools.lru_cache(maxsize=32)
def _parse_job(stored_doc: str | bytes) -> Job:
    """Jobs are frozen and change rarely: a warm container unpacks and validates each stored version
    once (every executor invocation reads its job; validating a 50-endpoint job costs about a
    millisecond)."""
    return Job.model_validate_json(unpack_doc(stored_doc))


def _stored(value: Any) -> str | bytes:
    """A document attribute as read: a JSON string, or the bytes of a packed (Binary) one."""
    return value if isinstance(value, str) else bytes(value)


def _job_doc(job: Job) -> str | bytes:
    """The job definition as stored: its JSON with every default, packed (see items.pack_doc)."""
    return pack_doc(job.model_dump_json(exclude_defaults=False))


# The job attributes of a pending replay (`cronpilot runs retry`).
RETRY_REQUEST = ("retry_of", "retry_failed_only")


def _job_from_item(item: dict[str, Any]) -> JobRecord:
    data = deserialize(item)
    lease = data.get("lease_expires_at")
    inflight = data.get("inflight")
    stored_doc = _stored(data["job_doc"])
    state = JobState(
        next_run_at=from_iso(data["next_run_at"]) if data.get("next_run_at") else None,
        next_run_source=data.get("next_run_source", "baseline"),
        next_run_reason=data.get("next_run_reason", ""),
        epoch=int(data.get("epoch", 0)),
        lease_owner=data.get("lease_owner"),
        lease_expires_at=datetime.fromtimestamp(int(lease), UTC) if lease is not None else None,
        current_run_id=data.get("current_run_id"),
        consecutive_failures=int(data.get("consecutive_failures", 0)),
        paused_until=from_iso(data["paused_until"]) if data.get("paused_until") else None,
        buffered=bool(data.get("buffered", False)),
        updated_at=from_iso(data["updated_at"]) if data.get("updated_at") else None,
        inflight=(
            {run_id: datetime.fromtimestamp(int(until), UTC) for run_id, until in inflight.items()}
            if inflight is not None
            else None
        ),
        records=int(data.get("records", 0)),
        newest_stamp=data.get("newest_stamp"),
        start_check_at=from_iso(data["start_check_at"]) if data.get("start_check_at") else None,
        retry_of=data.get("retry_of"),
        retry_failed_only=bool(data.get("retry_failed_only", False)),
        stored_doc=stored_doc,
    )
    job = _parse_job(stored_doc)
    # The status attribute is authoritative: pauses (operator or AI pause-until) change it alone.
    if data.get("status") and data["status"] != job.status:
        job = job.model_copy(update={"status": JobStatus(data["status"])})
    return JobRecord(job=job, state=state)


def _run_to_item(run: RunRecord) -> dict[str, Any]:
    job_id, stamp = parse_run_id(run.run_id)
    doc = run.model_dump(mode="json", exclude={"notifications"})
    item = {
        **schema.run_key(job_id, stamp),
        "kind": "run",
        "run_id": run.run_id,
        "job_id": run.job_id,
        "status": run.status,
        "scheduled_at": to_iso(run.scheduled_at),
        "epoch": run.epoch,
        "doc": pack_doc(json.dumps(doc, separators=(",", ":"))),
        schema.TTL_ATTRIBUTE: epoch_seconds(run.scheduled_at + RUN_RETENTION),
    }
    return serialize(item)


def _step_results(items: list[dict[str, Any]]) -> dict[str, StepResult]:
    results = (StepResult.model_validate_json(unpack_doc(deserialize(item)["doc"])) for item in items)
    return {result.step_id: result for result in results}


def _run_from_item(item: dict[str, Any]) -> RunRecord:
    data = deserialize(item)
    run = RunRecord.model_validate_json(unpack_doc(data["doc"]))
    # A claim marks a fenced run's status attribute alone (its stale holder can no longer write the doc).
    if data.get("status") == RunStatus.ABANDONED and not RunStatus(run.status).is_final:
        run.status = RunStatus.ABANDONED
        run.finished_at = from_iso(data["abandoned_at"])
        run.error = data.get("abandoned_reason")
    # Discovery marks a started run's attributes alone (the planner may be writing the doc).
    if run.execution_started_at is None and data.get("execution_started_at"):
        run.execution_started_at = from_iso(data["execution_started_at"])
        run.late_start = run.late_start or data.get("late_start")
    # Deliveries are appended beside the document by the notify function (never a fenced write).
    run.notifications = [Delivery.model_validate_json(entry) for entry in data.get("notifications") or []]
    return run


def _seen_doc_condition(seen: JobRecord) -> tuple[str, dict[str, Any]]:
    """The job's definition and status are as the caller read them (an operator's If-Match).

    The stored document is compared with the one read, byte for byte, and with the read job in every
    form a writer stores it: its JSON (items written before documents were packed) and packed, each
    with either status (a pause changes the status attribute alone, so the stored document may carry
    either). The value as read is what makes the check hold whatever zlib build packed the item."""
    other = JobStatus.ACTIVE if seen.job.status == JobStatus.PAUSED else JobStatus.PAUSED
    forms: list[str | bytes] = [] if seen.state.stored_doc is None else [seen.state.stored_doc]
    for job in (seen.job, seen.job.model_copy(update={"status": other})):
        text = job.model_dump_json()
        forms += [text, pack_doc(text)]
    unique = list(dict.fromkeys(forms))
    values: dict[str, Any] = {f":seen_doc{n}": form for n, form in enumerate(unique)}
    values[":seen_status"] = seen.job.status.value
    alternatives = " OR ".join(f"job_doc = :seen_doc{n}" for n in range(len(unique)))
    return f"({alternatives}) AND #status = :seen_status", values


def _abandon(table_name: str, run_id: str, now: datetime, *, fenced_by: str) -> dict[str, Any]:
    """Mark a run whose lease expired; conditional on it not having finished meanwhile."""
    job_id, stamp = parse_run_id(run_id)
    return {
        "Update": {
            "TableName": table_name,
            "Key": serialize(schema.run_key(job_id, stamp)),
            "UpdateExpression": "SET #status = :abandoned, abandoned_at = :now, abandoned_reason = :why",
            "ConditionExpression": "#status IN (:claimed, :running)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": serialize(
                {
                    ":abandoned": RunStatus.ABANDONED.value,
                    ":now": to_iso(now),
                    ":why": f"its lease expired before it finished; fenced when {fenced_by} was claimed",
                    ":claimed": RunStatus.CLAIMED.value,
                    ":running": RunStatus.RUNNING.value,
                }
            ),
        }
    }


class _JobUpdate:
    """One UpdateExpression on a job item. Every write path builds it here, so the sparse due index
    (a job is in it exactly while it has a due time) is maintained the same way everywhere."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def set(self, attribute: str, value: Any) -> _JobUpdate:
        # Attribute names go through placeholders: several ("status") are DynamoDB reserved words.
        self.names[f"#{attribute}"] = attribute
        self.values[f":{attribute}"] = value
        self.sets.append(f"#{attribute} = :{attribute}")
        return self

    def set_if_absent(self, attribute: str, value: Any) -> _JobUpdate:
        self.names[f"#{attribute}"] = attribute
        self.values[f":{attribute}"] = value
        self.sets.append(f"#{attribute} = if_not_exists(#{attribute}, :{attribute})")
        return self

    def remove(self, *attributes: str) -> _JobUpdate:
        for attribute in attributes:
            self.names[f"#{attribute}"] = attribute
            self.removes.append(f"#{attribute}")
        return self

    def next_run(self, at: datetime | None) -> _JobUpdate:
        return self.set("next_run_at", to_iso(at)) if at is not None else self.remove("next_run_at")

    def run_path(self, run_id: str) -> str:
        """The document path of one run's entry in the job's map of concurrent runs."""
        return f"#inflight.#{self._run_name(run_id)}"

    def _run_name(self, run_id: str) -> str:
        """A placeholder name per run id (run ids contain '.', which a path would read as nesting)."""
        self.names["#inflight"] = "inflight"
        for placeholder, value in self.names.items():
            if placeholder.startswith("#run") and value == run_id:
                return placeholder[1:]
        name = f"run{sum(p.startswith('#run') for p in self.names)}"
        self.names[f"#{name}"] = run_id
        return name

    def lease_run(self, run_id: str, until: datetime) -> _JobUpdate:
        name = self._run_name(run_id)
        self.values[f":{name}"] = epoch_seconds(until)
        self.sets.append(f"#inflight.#{name} = :{name}")
        return self

    def release_run(self, run_id: str) -> _JobUpdate:
        self.removes.append(self.run_path(run_id))
        return self

    def due(self, due_at: datetime | None) -> _JobUpdate:
        if due_at is None:
            return self.remove(schema.DUE_INDEX_PK, schema.DUE_INDEX_SK)
        self.set(schema.DUE_INDEX_PK, schema.due_shard(self.job_id))
        return self.set(schema.DUE_INDEX_SK, f"{to_iso(due_at)}#{self.job_id}")

    def request(
        self, table_name: str, condition: str | None = None, condition_values: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        clauses = []
        if self.sets:
            clauses.append("SET " + ", ".join(self.sets))
        if self.removes:
            clauses.append("REMOVE " + ", ".join(self.removes))
        expression = " ".join(clauses)
        request: dict[str, Any] = {
            "TableName": table_name,
            "Key": serialize(schema.job_key(self.job_id)),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": dict(self.names),
        }
        values = {**self.values, **(condition_values or {})}
        if values:  # DynamoDB rejects an empty map here
            request["ExpressionAttributeValues"] = serialize(values)
        if condition is not None:
            request["ConditionExpression"] = condition
            if "#status" in condition:
                request["ExpressionAttributeNames"]["#status"] = "status"
        return request


class Store:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    # ---------------------------------------------------------------- jobs

    def due_shards(self) -> list[str]:
        return schema.all_due_shards()

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
        """Create or replace a job's definition; scheduling state other than the next run is kept.
        With `seen`, only if the stored document is still the one the caller read; with `create_only`,
        only if no job has the id. JobChanged otherwise (an operator's If-Match / If-None-Match)."""
        update = (
            _JobUpdate(job.id)
            .set("job_doc", _job_doc(job))
            .set("job_id", job.id)
            .set("kind", "job")
            .set("status", job.status.value)
            .set("next_run_source", source)
            .set("next_run_reason", reason)
            .set("updated_at", to_iso(now))
            .set_if_absent("epoch", 0)  # a re-created job continues from its tombstone's epoch
            .remove(schema.TTL_ATTRIBUTE)
            .next_run(next_run_at)
            .due(next_run_at if job.status == JobStatus.ACTIVE else None)
        )
        condition: str | None = None
        values: dict[str, Any] = {}
        if seen is not None:
            condition, values = _seen_doc_condition(seen)
        elif create_only:  # a deleted job's tombstone does not count as a job
            condition, values = "attribute_not_exists(job_doc) OR kind = :deleted", {":deleted": DELETED}
        try:
            self.client.update_item(**update.request(self.table_name, condition, values))
        except ClientError as exc:
            if is_condition_failure(exc):
                raise JobChanged(f"job {job.id!r} changed since it was read") from exc
            raise

    def get_job(self, job_id: str) -> JobRecord:
        response = self.client.get_item(
            TableName=self.table_name, Key=serialize(schema.job_key(job_id)), ConsistentRead=True
        )
        if response.get("Item", {}).get("kind") != {"S": "job"}:  # absent, or a deleted job's tombstone
            raise JobNotFound(f"no job with id {job_id!r}")
        return _job_from_item(response["Item"])

    def list_jobs(self) -> list[JobRecord]:
        """Every job, for operators (the scheduler itself only ever reads the due index)."""
        records: list[JobRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "kind = :job",
            "ExpressionAttributeValues": serialize({":job": "job"}),
        }
        while True:
            page = self.client.scan(**kwargs)
            records += [_job_from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(records, key=lambda r: r.job_id)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def close_orphaned_run(self, run: RunRecord) -> None:
        """Record the outcome of a run whose job was deleted while it ran. Fenced on the job being gone:
        nothing can claim a job that does not exist, so no other holder can write this run."""
        gone = {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": serialize(schema.job_key(run.job_id)),
                "ConditionExpression": "attribute_not_exists(PK) OR kind = :deleted",
                "ExpressionAttributeValues": serialize({":deleted": DELETED}),
            }
        }
        put = {"Put": {"TableName": self.table_name, "Item": _run_to_item(run)}}
        self._transact([gone, put])

    def delete_job(self, seen: JobRecord, now: datetime) -> None:
        """Replace the job the caller read with a tombstone that keeps its fencing epoch, one past the
        last claim, for a day: a run of the deleted job can then never write to a job re-created under
        the same id. ClaimConflict if a run was claimed since the caller read the job."""
        epoch = seen.state.epoch
        tombstone = {
            **schema.job_key(seen.job_id),
            "kind": DELETED,
            "job_id": seen.job_id,
            "epoch": epoch + 1,
            # A job re-created under the id goes on counting records, so its ids stay new too.
            "records": seen.state.records,
            schema.TTL_ATTRIBUTE: epoch_seconds(now + TOMBSTONE_RETENTION),
        }
        if seen.state.newest_stamp is not None:
            tombstone["newest_stamp"] = seen.state.newest_stamp
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=serialize(tombstone),
                ConditionExpression="kind = :job AND epoch = :seen",
                ExpressionAttributeValues=serialize({":job": "job", ":seen": epoch}),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ClaimConflict(f"job {seen.job_id!r} changed while it was being deleted") from exc
            raise

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
        """Pause, resume or re-point a job the caller has read. Paused jobs leave the due index,
        except that a pause with an end date stays indexed at that date so discovery resumes it."""
        job = record.job.model_copy(update={"status": status})
        update = (
            _JobUpdate(job.id)
            .set("job_doc", _job_doc(job))
            .set("status", status.value)
            .set("next_run_source", source)
            .set("next_run_reason", reason)
            .set("updated_at", to_iso(now))
            .due(record.state.due_at(next_run_at) if status == JobStatus.ACTIVE else paused_until)
        )
        if next_run_at is not None:
            update.next_run(next_run_at)
        if paused_until is not None:
            update.set("paused_until", to_iso(paused_until))
        else:
            update.remove("paused_until")
        self.client.update_item(**update.request(self.table_name, "attribute_exists(PK)"))

    # ------------------------------------------------------------ discovery

    def _due_query(self, shard: str, now: datetime) -> dict[str, Any]:
        """The due index's entries of one shard with due_at <= now (Query arguments)."""
        return {
            "TableName": self.table_name,
            "IndexName": schema.DUE_INDEX,
            "KeyConditionExpression": "#pk = :shard AND #sk <= :now",
            "ExpressionAttributeNames": {"#pk": schema.DUE_INDEX_PK, "#sk": schema.DUE_INDEX_SK},
            # "~" sorts after every job id character, so every job due at exactly `now` is included.
            "ExpressionAttributeValues": serialize({":shard": shard, ":now": f"{to_iso(now)}#~"}),
        }

    def query_due(self, shard: str, now: datetime, page_size: int = 100) -> Iterator[DuePage]:
        """Due jobs of one shard, oldest first. Reads only items with due_at <= now (never a Scan).

        The index holds keys only, so a claim or a finish rewrites a small index entry, never the job
        document; each page's jobs are then read with one consistent BatchGetItem (100 keys, the page
        size), so discovery decides on their current state rather than a lagging index copy."""
        kwargs = {**self._due_query(shard, now), "Limit": page_size}
        while True:
            page = self.client.query(**kwargs)
            keys = [
                {key: item[key]["S"] for key in (schema.PARTITION_KEY, schema.SORT_KEY)}
                for item in page.get("Items", [])
            ]
            items = self._batch_get(keys) if keys else []
            yield DuePage(
                # A job deleted since the index was read is gone, or a tombstone: nothing to do.
                records=[_job_from_item(item) for item in items if item.get("kind") == {"S": "job"}],
                scanned=int(page.get("ScannedCount", 0)),
            )
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def count_due(self, shard: str, now: datetime) -> int:
        """How many jobs of one shard are due (a COUNT query of the keys-only index)."""
        kwargs = {**self._due_query(shard, now), "Select": "COUNT"}
        count = 0
        while True:
            page = self.client.query(**kwargs)
            count += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return count
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def request_retry(
        self, seen: JobRecord, *, run_id: str, failed_only: bool, reason: str, now: datetime
    ) -> None:
        """Make the job due now with a pending replay of `run_id`, which the next claim turns into a
        run (trigger `retry`) under the job's overlap policy; ClaimConflict if the job moved meanwhile."""
        update = (
            _JobUpdate(seen.job_id)
            .set("retry_of", run_id)
            .set("retry_failed_only", failed_only)
            .set("next_run_source", "retry")
            .set("next_run_reason", reason)
            .set("updated_at", to_iso(now))
            .next_run(now)
            .due(now)
        )
        condition_values: dict[str, Any] = {}
        condition = self._seen_condition(seen, condition_values)
        try:
            self.client.update_item(**update.request(self.table_name, condition, condition_values))
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ClaimConflict(f"job {seen.job_id!r} changed while the retry was requested") from exc
            raise

    def _seen_condition(self, seen: JobRecord, values: dict[str, Any]) -> str:
        """The job is exactly as discovery saw it: same slot, same epoch, same count of records."""
        values[":seen_epoch"] = seen.state.epoch
        values[":seen_records"] = seen.state.records
        records = "records = :seen_records"
        if seen.state.records == 0:  # jobs written before records were counted have none
            records = f"(attribute_not_exists(records) OR {records})"
        if seen.state.next_run_at is None:
            return f"epoch = :seen_epoch AND {records} AND attribute_not_exists(next_run_at)"
        values[":seen_next"] = to_iso(seen.state.next_run_at)
        return f"epoch = :seen_epoch AND {records} AND next_run_at = :seen_next"

    @staticmethod
    def _count_record(update: _JobUpdate, seen: JobRecord, record: RunRecord) -> None:
        update.set("records", seen.state.records + 1)
        update.set("newest_stamp", max(seen.state.newest_stamp or "", run_stamp(record.scheduled_at)))

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
        """Take the lease and create the run in one transaction; raise ClaimConflict if anything moved
        (RecordIdTaken if only the run's id is held by an older item).

        The job is indexed again at `start_check_at` if that comes before its next run, so that a
        run whose execution never started is found by a later tick (see `confirm_start`).

        A concurrent run (overlap `allow`) is claimed beside live runs and gets its own lease entry.
        Runs whose lease expired are fenced (their entries dropped, the epoch bumped) and recorded as
        abandoned in the same transaction; one that finished after discovery read the job makes the
        claim conflict, and the next read no longer sees it."""
        update = (
            _JobUpdate(seen.job_id)
            .set("lease_owner", owner)
            .set("lease_expires_at", epoch_seconds(lease_until))
            .set("epoch", run.epoch)
            .set("current_run_id", run.run_id)
            .set("next_run_source", next_run_source)
            .set("next_run_reason", next_run_reason)
            .set("buffered", False)
            .next_run(next_run_at)
            .remove(*RETRY_REQUEST)  # a pending retry becomes this run
        )
        self._count_record(update, seen, run)
        if start_check_at is not None:
            update.set("start_check_at", to_iso(start_check_at))
        else:
            update.remove("start_check_at")
        times = [t for t in (next_run_at, start_check_at) if t is not None]
        update.due(min(times) if times else None)
        abandoned = seen.state.abandoned_runs(now)
        for run_id in abandoned:
            if seen.state.inflight and run_id in seen.state.inflight:
                update.release_run(run_id)
        if run.concurrent and seen.state.inflight is None:
            update.set("inflight", {run.run_id: epoch_seconds(lease_until)})
        elif run.concurrent:
            update.lease_run(run.run_id, lease_until)
        condition_values: dict[str, Any] = {":now_s": epoch_seconds(now), ":active": JobStatus.ACTIVE.value}
        condition = self._seen_condition(seen, condition_values) + " AND #status = :active"
        if not run.concurrent:
            # Expired at `now` exactly, as JobState.lease_live reads it: the lease ends at its second.
            condition += " AND (attribute_not_exists(lease_expires_at) OR lease_expires_at <= :now_s)"
        self._transact_record(
            [
                {"Update": update.request(self.table_name, condition, condition_values)},
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": _run_to_item(run),
                        # A run that failed to start may be claimed again for the same slot.
                        "ConditionExpression": "attribute_not_exists(PK) OR #status = :start_failed",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": serialize({":start_failed": "start_failed"}),
                    }
                },
                *(_abandon(self.table_name, run_id, now, fenced_by=run.run_id) for run_id in abandoned),
            ]
        )

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
        """Record a skipped slot and move the job on, conditional on the job being as seen."""
        update = (
            _JobUpdate(seen.job_id)
            .set("next_run_source", next_run_source)
            .set("next_run_reason", next_run_reason)
            .set("buffered", buffer)
            .next_run(next_run_at)
            # A pending start check stays indexed: the run in flight may still need its start.
            .due(seen.state.due_at(next_run_at))
        )
        self._count_record(update, seen, skipped)
        if not buffer:
            update.remove(*RETRY_REQUEST)  # a skipped retry is recorded (trigger `retry`) and dropped
        condition_values: dict[str, Any] = {}
        condition = self._seen_condition(seen, condition_values)
        self._transact_record(
            [
                {"Update": update.request(self.table_name, condition, condition_values)},
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": _run_to_item(skipped),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
            ]
        )

    def mark_started(self, run: RunRecord, now: datetime, *, late_start: str | None = None) -> None:
        """Note on the run item that its execution was started (and, if late, why), so a later start
        check leaves it alone. Attributes beside the doc: the planner may be writing the doc now; once
        it has, the run is no longer `claimed` and needs no mark."""
        job_id, key = parse_run_id(run.run_id)
        values: dict[str, Any] = {
            ":now": to_iso(now),
            ":claimed": RunStatus.CLAIMED.value,
            ":epoch": run.epoch,
        }
        expression = "SET execution_started_at = :now"
        if late_start is not None:
            values[":why"] = late_start
            expression += ", late_start = :why"
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=serialize(schema.run_key(job_id, key)),
                UpdateExpression=expression,
                ConditionExpression="#status = :claimed AND epoch = :epoch",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialize(values),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def confirm_start(self, seen: JobRecord, run_id: str) -> None:
        """The start check of the job's current run is done: index the job at its next run again.
        A no-op if the run finished or a newer claim came meanwhile (they re-index the job)."""
        update = _JobUpdate(seen.job_id).remove("start_check_at")
        update.due(seen.state.next_run_at if seen.job.status == JobStatus.ACTIVE else None)
        condition = "current_run_id = :run AND epoch = :epoch AND attribute_exists(start_check_at)"
        try:
            self.client.update_item(
                **update.request(self.table_name, condition, {":run": run_id, ":epoch": seen.state.epoch})
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: str) -> RunRecord:
        job_id, stamp = parse_run_id(run_id)
        response = self.client.get_item(
            TableName=self.table_name, Key=serialize(schema.run_key(job_id, stamp)), ConsistentRead=True
        )
        if "Item" not in response:
            raise RunNotFound(f"no run with id {run_id!r}")
        return _run_from_item(response["Item"])

    def get_fenced_run(self, run_id: str, epoch: int) -> RunRecord:
        """The run, if the caller still holds it: a stale epoch raises LeaseLost."""
        run = self.get_run(run_id)
        if run.epoch != epoch:
            raise LeaseLost(f"run {run_id} has epoch {run.epoch}, this execution holds {epoch}")
        return run

    def list_runs(
        self, job_id: str, *, limit: int = 20, after: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        """Runs of one job, newest first. `after` is the token returned by the previous page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :run)",
            "ExpressionAttributeValues": serialize({":pk": schema.job_partition(job_id), ":run": "run#"}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if after:
            kwargs["ExclusiveStartKey"] = serialize(schema.run_key(job_id, after))
        page = self.client.query(**kwargs)
        runs = [_run_from_item(item) for item in page.get("Items", [])]
        token = None
        if "LastEvaluatedKey" in page:
            token = deserialize(page["LastEvaluatedKey"])["SK"].removeprefix("run#")
        return runs, token

    def save_run(self, run: RunRecord, decision: StandingDecision | None = None) -> None:
        """Write the run record (and the standing AI decision it made), fenced by its epoch: rejected
        once another claim bumped the job's epoch."""
        put = {"Put": {"TableName": self.table_name, "Item": _run_to_item(run)}}
        self._transact([self._fence(run.job_id, run.run_id, run.epoch), put, *self._decision_puts(decision)])

    def get_decision(self, job_id: str, phase: str) -> StandingDecision | None:
        """The job's standing AI decision of a phase, if one was recorded and has not aged out.

        Eventually consistent (half the price): an earlier run wrote it, minutes ago; one written in the
        last second and missed costs at most a model call, which weighs the same inputs again."""
        response = self.client.get_item(
            TableName=self.table_name, Key=serialize(schema.decision_key(job_id, phase)), ConsistentRead=False
        )
        if "Item" not in response:
            return None
        return StandingDecision.model_validate_json(unpack_doc(deserialize(response["Item"])["doc"]))

    def _decision_puts(self, decision: StandingDecision | None) -> list[dict[str, Any]]:
        """The decision item: written in the run's fenced transaction. Last writer wins, which is safe
        for concurrent runs: each decision carries the inputs it was based on, so a later run that sees
        different inputs treats them as news. It ages out by TTL a while after it expires."""
        if decision is None:
            return []
        job_id, _ = parse_run_id(decision.run_id)
        item = {
            **schema.decision_key(job_id, decision.phase),
            "kind": "decision",
            "doc": pack_doc(decision.model_dump_json()),
            schema.TTL_ATTRIBUTE: epoch_seconds(decision.valid_until + DECISION_RETENTION),
        }
        return [{"Put": {"TableName": self.table_name, "Item": serialize(item)}}]

    def put_step_result(
        self, job_id: str, run_id: str, epoch: int, result: StepResult, now: datetime
    ) -> None:
        item = {
            **schema.step_key(run_id, result.step_id),
            "kind": "step",
            "doc": pack_doc(result.model_dump_json()),
            schema.TTL_ATTRIBUTE: epoch_seconds(now + RUN_RETENTION),
        }
        put = {"Put": {"TableName": self.table_name, "Item": serialize(item)}}
        self._transact([self._fence(job_id, run_id, epoch), put])

    def get_step_context(
        self, job_id: str, run_id: str, step_ids: list[str]
    ) -> tuple[JobRecord, dict[str, StepResult]]:
        """The job and the results of these steps that exist, in one consistent batch read (the
        executor's only read before its call)."""
        items = self._batch_get([schema.job_key(job_id), *(schema.step_key(run_id, s) for s in step_ids)])
        jobs = [item for item in items if item["kind"]["S"] == "job"]
        if not jobs:
            raise JobNotFound(f"no job with id {job_id!r}")
        return _job_from_item(jobs[0]), _step_results([item for item in items if item["kind"]["S"] == "step"])

    def get_step_results(self, run_id: str, step_ids: list[str] | None = None) -> dict[str, StepResult]:
        if step_ids is not None:
            return _step_results(self._batch_get([schema.step_key(run_id, s) for s in step_ids]))
        results: dict[str, StepResult] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :step)",
            "ExpressionAttributeValues": serialize({":pk": schema.run_partition(run_id), ":step": "step#"}),
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                result = StepResult.model_validate_json(unpack_doc(deserialize(item)["doc"]))
                results[result.step_id] = result
            if "LastEvaluatedKey" not in page:
                return results
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

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
        """Record the outcome, set the next run and release the lease: one transaction, fenced by the epoch.

        `pause_until` pauses the job (the AI's pause-until uses the operator's mechanism); `index_due`
        is False when an operator paused the job while it ran, so it stays out of the due index.
        `latest` is False for a concurrent run that a newer run overtook: the newest run decides the
        next run, so this one only records its outcome and gives back its own lease.
        """
        put = {"Put": {"TableName": self.table_name, "Item": _run_to_item(run)}}
        if not latest:
            release = _JobUpdate(run.job_id).release_run(run.run_id)
            still_held = f"attribute_exists({release.run_path(run.run_id)})"
            self._transact(
                [
                    {"Update": release.request(self.table_name, still_held)},
                    put,
                    *self._decision_puts(decision),
                ]
            )
            return
        update = (
            _JobUpdate(run.job_id)
            .set("next_run_source", next_run_source)
            .set("next_run_reason", next_run_reason)
            .set("consecutive_failures", consecutive_failures)
            .remove("lease_owner", "lease_expires_at", "current_run_id", "start_check_at")
            .next_run(next_run_at)
            .due((pause_until or next_run_at) if index_due else None)
        )
        if pause_until is not None:
            update.set("status", JobStatus.PAUSED.value).set("paused_until", to_iso(pause_until))
        if run.concurrent:
            update.release_run(run.run_id)
        job_update = update.request(self.table_name, "epoch = :fence_epoch", {":fence_epoch": run.epoch})
        self._transact([{"Update": job_update}, put, *self._decision_puts(decision)])

    def record_notifications(self, run_id: str, deliveries: list[Delivery]) -> None:
        """Append deliveries to the run they are about (after it ended: not fenced)."""
        job_id, stamp = parse_run_id(run_id)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=serialize(schema.run_key(job_id, stamp)),
                UpdateExpression="SET notifications = list_append(if_not_exists(notifications, :none), :new)",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues=serialize(
                    {":none": [], ":new": [d.model_dump_json() for d in deliveries]}
                ),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise RunNotFound(f"no run with id {run_id!r}") from exc
            raise

    # -------------------------------------------------------------- helpers

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):  # BatchGetItem's limit
            chunk = [serialize(key) for key in keys[start : start + 100]]
            request: dict[str, Any] = {self.table_name: {"Keys": chunk, "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                items += response.get("Responses", {}).get(self.table_name, [])
                request = response.get("UnprocessedKeys") or {}
        return items

    def _fence(self, job_id: str, run_id: str, epoch: int) -> dict[str, Any]:
        """The run still holds the job: its epoch is current, or it is a concurrent run whose own
        lease has not been dropped by a later claim."""
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": serialize(schema.job_key(job_id)),
                "ConditionExpression": "epoch = :epoch OR attribute_exists(#inflight.#run)",
                "ExpressionAttributeNames": {"#inflight": "inflight", "#run": run_id},
                "ExpressionAttributeValues": serialize({":epoch": epoch}),
            }
        }

    def _transact_record(self, items: list[dict[str, Any]]) -> None:
        """A claim or skip: the job update first, the new record's put second. ClaimConflict if the job
        moved; RecordIdTaken if only the record's id was taken (the job's condition held)."""
        try:
            self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if len(reasons) >= 2 and reasons[0] == "None" and reasons[1] == "ConditionalCheckFailed":
                raise RecordIdTaken(message) from exc
            raise ClaimConflict(message) from exc

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """A conditional write (mostly epoch-fenced): LeaseLost if a condition no longer holds."""
        try:
            self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if is_condition_failure(exc):
                raise LeaseLost(str(exc.response.get("Error", {}).get("Message", ""))) from exc
            raise

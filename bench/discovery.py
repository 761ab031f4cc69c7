"""Discovery cost against registered jobs: 1,000 due among 1,000 and among 100,000 registered."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
from cronpilot.clock import FixedClock, to_iso
from cronpilot.dal import schema
from cronpilot.dal.items import deserialize, pack_doc, serialize, unpack_doc
from cronpilot.dal.store import Store
from cronpilot.domain.budget import RunBudget
from cronpilot.domain.discovery import Discovery
from cronpilot.local.cloud import serialize_dynamodb_writes
from cronpilot.models.job import Job
from cronpilot.models.run import RunRecord
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
DUE = 1_000


class _Starter:
    def start(self, run: RunRecord, budget: RunBudget) -> Literal["started", "already-started"]:
        return "started"


def _job(n: int) -> Job:
    return Job.model_validate(
        {
            "id": f"job-{n:06d}",
            "schedule": {"rate": "1h"},
            "endpoints": [{"id": "a", "url": "https://example.com"}],
        }
    )


def _measure(registered: int) -> tuple[float, float, float, int]:
    with mock_aws():
        undo = serialize_dynamodb_writes()
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**schema.create_table_request("bench"))
        store = Store("bench", client)
        # One job written through the store, then cloned straight into moto's table: the setup is not
        # measured, and 4,000 BatchWriteItem calls through boto3 and moto's request parsing took most
        # of this suite's CPU time. The items are the same as a batch write would store; moto derives
        # the due index from the table on every query. The first DUE jobs are due now; the rest later.
        store.put_job(_job(0), next_run_at=NOW, source="baseline", reason="bench", now=NOW)
        template = client.get_item(
            TableName="bench", Key={"PK": {"S": "job#job-000000"}, "SK": {"S": "job"}}
        )["Item"]
        # The definition as stored (packed when that is smaller), with each job's own id in it.
        template_doc = unpack_doc(deserialize({"doc": template["job_doc"]})["doc"])
        backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        for n in range(1, registered):
            job_id = f"job-{n:06d}"
            when = to_iso(NOW if n < DUE else NOW + timedelta(hours=1))
            item = {
                **template,
                "PK": {"S": f"job#{job_id}"},
                "job_id": {"S": job_id},
                "job_doc": serialize({"doc": pack_doc(template_doc.replace("job-000000", job_id))})["doc"],
                "next_run_at": {"S": when},
                "due_shard": {"S": schema.due_shard(job_id)},
                "due_at": {"S": f"{when}#{job_id}"},
            }
            backend.put_item("bench", item)
        in_dynamodb = _time_api_calls(client)
        started, cpu_started = time.perf_counter(), time.process_time()
        result = Discovery(store, _Starter(), FixedClock(NOW), owner="bench").tick()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        undo()
    claimed = len(result.claimed)
    return elapsed, cpu - in_dynamodb[0], result.scanned / max(claimed, 1), claimed


def _time_api_calls(client: Any) -> list[float]:
    """CPU seconds spent inside the client's API calls (moto's simulated DynamoDB), accumulated in
    place. Thread CPU time, not wall time: discovery calls from several worker threads at once, so
    summed wall times overlap (and exceeded the tick's own duration)."""
    spent = [0.0]
    lock = threading.Lock()
    call = client._make_api_call

    def timed(operation: str, params: dict[str, Any]) -> Any:
        started = time.thread_time()
        try:
            return call(operation, params)
        finally:
            with lock:
                spent[0] += time.thread_time() - started

    client._make_api_call = timed
    return spent


def run() -> list[tuple[str, str, str]]:
    small_time, small_own, small_read, small_claimed = _measure(DUE)
    large_time, large_own, large_read, large_claimed = _measure(100_000)
    return [
        (f"tick, {small_claimed} due of 1,000 registered", f"{small_time:.2f}s", "-"),
        (f"tick, {large_claimed} due of 100,000 registered", f"{large_time:.2f}s", "-"),
        ("items read per claimed job (1,000 / 100,000)", f"{small_read:.2f} / {large_read:.2f}", "<= 1.1"),
        ("time ratio 100,000 : 1,000 registered", f"{large_time / small_time:.2f}x", "<= 1.5x"),
        # moto answers a GSI query by walking the whole table and slows with its heap; DynamoDB does not.
        (
            "  CPU outside DynamoDB calls (discovery's own work), 1,000 / 100,000 registered",
            f"{small_own:.2f}s / {large_own:.2f}s = {large_own / small_own:.2f}x",
            "-",
        ),
    ]

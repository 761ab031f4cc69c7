"""Documents stored packed (zlib, Binary) beside items the previous version wrote as JSON strings: both
are read, updated and fenced alike, and an If-Match write compares against what was read, whichever
format (or zlib build) wrote it."""

from __future__ import annotations

import zlib
from datetime import timedelta
from typing import Any

import pytest
from boto3.dynamodb.types import Binary
from cronpilot.dal import schema
from cronpilot.dal.items import deserialize, serialize
from cronpilot.dal.store import Store
from cronpilot.domain.ports import JobChanged, JobRecord, JobState, LeaseLost
from cronpilot.models.job import JobStatus
from cronpilot.models.run import RunRecord, RunStatus, StepResult, StepStatus, parse_run_id

from tests.integration.conftest import START, TABLE
from tests.support.factories import make_job

LEASE = timedelta(minutes=30)


def raw(store: Store, key: dict[str, str]) -> dict[str, Any]:
    return deserialize(store.client.get_item(TableName=TABLE, Key=serialize(key))["Item"])


def rewrite(store: Store, key: dict[str, str], attribute: str, value: str | bytes) -> None:
    """Set one attribute as another writer (the previous version, another zlib build) stored it."""
    store.client.update_item(
        TableName=TABLE,
        Key=serialize(key),
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues=serialize({":v": value}),
    )


def as_json(store: Store, key: dict[str, str], attribute: str) -> None:
    """The attribute as the previous version wrote it: the document's JSON string."""
    stored = raw(store, key)[attribute]
    assert isinstance(stored, Binary), "the current version packs this document"
    rewrite(store, key, attribute, zlib.decompress(stored.value).decode())


def apply(store: Store, **fields: Any) -> None:
    store.put_job(make_job("job", **fields), next_run_at=START, source="baseline", reason="r", now=START)


def put(store: Store, seen: JobRecord | None, **fields: Any) -> None:
    job = make_job("job", **fields)
    store.put_job(job, next_run_at=START, source="baseline", reason="r", now=START, seen=seen)


def claim(store: Store) -> RunRecord:
    seen = store.get_job("job")
    run = RunRecord.claimed("job", START, seen.state.epoch + 1, "schedule", START)
    store.claim(
        seen,
        run,
        owner="tick",
        lease_until=START + LEASE,
        now=START,
        next_run_at=START + timedelta(minutes=5),
        next_run_source="baseline",
        next_run_reason="next slot",
    )
    return run


JOB_KEY = schema.job_key("job")


def test_the_job_document_is_packed_and_read_back(store):
    apply(store, goal="nightly inventory sync " * 20)
    stored = raw(store, JOB_KEY)["job_doc"]
    assert isinstance(stored, Binary)
    assert len(stored.value) < len(make_job("job", goal="nightly inventory sync " * 20).model_dump_json()) / 3
    assert store.get_job("job").job == make_job("job", goal="nightly inventory sync " * 20)


def test_a_job_the_previous_version_stored_as_json_is_read_updated_under_if_match_and_packed(store):
    # Given a job item written by the previous version (job_doc its JSON string)
    apply(store, goal="v1")
    as_json(store, JOB_KEY, "job_doc")
    assert isinstance(raw(store, JOB_KEY)["job_doc"], str)
    # When it is read and updated against that read (an operator's If-Match)
    seen = store.get_job("job")
    assert seen.job == make_job("job", goal="v1")
    put(store, seen, goal="v2")
    # Then the update holds and the item is packed from then on
    assert isinstance(raw(store, JOB_KEY)["job_doc"], Binary)
    assert store.get_job("job").job.goal == "v2"


def test_if_match_against_an_old_item_changed_since_is_refused(store):
    # Given an operator's read of an old-format item, then a change by the current version
    apply(store, goal="v1")
    as_json(store, JOB_KEY, "job_doc")
    stale = store.get_job("job")
    put(store, store.get_job("job"), goal="v2")
    # Then a write against the stale read is refused, and the change stands
    with pytest.raises(JobChanged):
        put(store, stale, goal="v3")
    assert store.get_job("job").job.goal == "v2"


def test_if_match_from_a_record_without_the_stored_value_compares_the_content_in_either_format(store):
    # Given a record built from the job alone (no stored value), as callers did before it existed
    apply(store, goal="v1")
    by_content = JobRecord(job=make_job("job", goal="v1"), state=JobState())
    as_json(store, JOB_KEY, "job_doc")
    # Then the write holds against the old JSON item, and again against the packed item it leaves
    put(store, by_content, goal="v1")
    assert isinstance(raw(store, JOB_KEY)["job_doc"], Binary)
    put(store, by_content, goal="v2")
    with pytest.raises(JobChanged):
        put(store, by_content, goal="v3")


def test_if_match_holds_against_a_document_another_zlib_build_packed(store):
    # Given the job packed with other bytes for the same JSON (another zlib build or level)
    apply(store, goal="v1")
    text = make_job("job", goal="v1").model_dump_json()
    other_bytes = zlib.compress(text.encode(), 1)
    assert other_bytes != zlib.compress(text.encode(), 9)
    rewrite(store, JOB_KEY, "job_doc", other_bytes)
    # Then it reads as the same job, and a write against that read holds (it compares what was read)
    seen = store.get_job("job")
    assert seen.job == make_job("job", goal="v1")
    put(store, seen, goal="v2")
    assert store.get_job("job").job.goal == "v2"
    with pytest.raises(JobChanged):
        put(store, seen, goal="v3")


def test_pause_and_resume_of_an_old_item_then_if_match_with_the_status_changed_alone(store):
    # Given an old-format job paused and resumed by the current version
    apply(store, goal="v1")
    as_json(store, JOB_KEY, "job_doc")
    for status in (JobStatus.PAUSED, JobStatus.ACTIVE):
        store.set_job_schedule_state(
            store.get_job("job"),
            status=status,
            next_run_at=START,
            source=status.value,
            reason="operator",
            paused_until=None,
            now=START,
        )
    assert store.get_job("job").job.status == JobStatus.ACTIVE
    # When the old document is put back and the status attribute alone says paused (the AI's pause)
    as_json(store, JOB_KEY, "job_doc")
    rewrite(store, JOB_KEY, "status", JobStatus.PAUSED.value)
    seen = store.get_job("job")
    assert seen.job.status == JobStatus.PAUSED
    # Then a write against that read holds
    put(store, seen, goal="v2", status="paused")
    assert store.get_job("job").job.goal == "v2"


def test_runs_and_step_results_stored_as_json_are_read_fenced_and_finished(store):
    # Given a run and a step result the previous version wrote as JSON, on an old-format job item
    apply(store)
    run = claim(store)
    job_id, stamp = parse_run_id(run.run_id)
    as_json(store, JOB_KEY, "job_doc")
    as_json(store, schema.run_key(job_id, stamp), "doc")
    result = StepResult(step_id="a", endpoint_id="a", status=StepStatus.SUCCEEDED)
    store.put_step_result("job", run.run_id, run.epoch, result, START)
    as_json(store, schema.step_key(run.run_id, "a"), "doc")
    # Then they read back as written
    assert store.get_fenced_run(run.run_id, run.epoch) == store.get_run(run.run_id)
    assert store.get_step_results(run.run_id) == {"a": result}
    assert store.get_step_context("job", run.run_id, ["a"])[1] == {"a": result}
    [listed], _ = store.list_runs("job")
    assert listed.run_id == run.run_id
    # And every write is still fenced by the epoch
    with pytest.raises(LeaseLost):
        store.put_step_result("job", run.run_id, run.epoch - 1, result, START)
    # When the run finishes, its record is packed
    finished = store.get_run(run.run_id)
    finished.status = RunStatus.SUCCEEDED
    finished.finished_at = START + timedelta(seconds=3)
    store.finish_run(
        finished,
        next_run_at=START + timedelta(minutes=5),
        next_run_source="baseline",
        next_run_reason="n",
        consecutive_failures=0,
    )
    assert isinstance(raw(store, schema.run_key(job_id, stamp))["doc"], Binary)
    assert store.get_run(run.run_id).status == RunStatus.SUCCEEDED

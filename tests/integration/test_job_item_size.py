"""The job-file size budget against what the store really writes: a job `validate` accepts still fits
one DynamoDB item (moto enforces the item limit) with its scheduling state at its largest.

The budget is on the job's JSON. The store packs the document (zlib) only when that makes it smaller,
so the JSON is the most a job_doc can take whatever its content: the budget holds for content that
does not compress, and a job is never accepted or refused by how well its text compresses."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from boto3.dynamodb.types import Binary
from cronpilot import jobfiles
from cronpilot.dal import schema
from cronpilot.dal.items import deserialize, pack_doc, serialize
from cronpilot.models.job import Job
from cronpilot.models.run import RunRecord

from tests.integration.conftest import START, TABLE
from tests.support.factories import endpoint, job_doc

# The largest next_run_reason the summarizer writes: 500 characters, here 4 bytes each.
LONGEST_REASON = "\U0001f600" * 500


def job_with_stored_size(size: int) -> Job:
    """A job with overlap `allow` (the most state: one lease per concurrent run) whose job_doc is `size`."""
    doc = job_doc(
        job_id="j" * 63,  # the longest id: the longest keys, run ids and index values
        guardrails={"overlap": "allow", "max_concurrent_runs": 20},
        endpoints=[endpoint("a", method="POST", body="")],
    )
    bare = len(Job.model_validate(doc).model_dump_json().encode())
    doc["endpoints"][0]["body"] = "z" * (size - bare)
    job = Job.model_validate(doc)
    assert len(job.model_dump_json().encode()) == size
    return job


def item_size(item: dict) -> int:
    """DynamoDB's item size: attribute names plus values, UTF-8 (numbers counted as their digits)."""

    def value_size(value: object) -> int:
        if isinstance(value, dict):
            return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in value.items())
        if isinstance(value, list):
            return 3 + sum(value_size(v) + 1 for v in value)
        if isinstance(value, Binary):
            return len(value.value)
        return len(str(value).encode()) if not isinstance(value, bool) else 1

    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def test_job_at_the_budget_fits_with_its_largest_scheduling_state(store):
    # Given a job exactly at the budget validate allows
    job = job_with_stored_size(jobfiles.MAX_JOB_DOC_BYTES)
    assert jobfiles.stored_size_problems(job) == []
    store.put_job(job, next_run_at=START, source="baseline", reason=LONGEST_REASON, now=START)
    # When the scheduler fills in every piece of state it keeps on the job item: 20 concurrent leases,
    # the longest reasons, an owner
    for number in range(20):
        seen = store.get_job(job.id)
        slot = START + timedelta(minutes=number)
        run = RunRecord.claimed(job.id, slot, seen.state.epoch + 1, "schedule", slot, concurrent=True)
        store.claim(
            seen,
            run,
            owner="discovery-" + "0" * 64,
            lease_until=slot + timedelta(minutes=30),
            now=slot,
            next_run_at=slot + timedelta(minutes=1),
            next_run_source="clamped-min",
            next_run_reason=LONGEST_REASON,
        )
    assert len(store.get_job(job.id).state.inflight or {}) == 20
    # Then the item was written every time, and its state stayed inside the reserve
    item = job_item(store, job.id)
    state = {name: value for name, value in item.items() if name != "job_doc"}
    # A pause adds paused_until. (Not written here: moto counts an attribute's old value beside its new
    # one when an update replaces it, so rewriting a ~390 KB job_doc fails in moto, not in DynamoDB.)
    state["paused_until"] = "2026-11-23T09:00:00Z"
    assert item_size(state) <= jobfiles.STATE_RESERVE, json.dumps(state)[:200]
    assert item_size(item) <= jobfiles.DYNAMODB_ITEM_LIMIT


def job_item(store, job_id: str) -> dict:
    response = store.client.get_item(TableName=TABLE, Key=serialize(schema.job_key(job_id)))
    return deserialize(response["Item"])


def test_job_over_the_budget_is_refused_naming_the_field_though_it_would_compress():
    # Given a job one reserve over the budget, whose padding packs to almost nothing
    job = job_with_stored_size(jobfiles.MAX_JOB_DOC_BYTES + jobfiles.STATE_RESERVE)
    assert len(pack_doc(job.model_dump_json())) < 10_000
    # Then validate refuses it by its JSON, naming the field to shrink
    [problem] = jobfiles.stored_size_problems(job)
    assert problem.startswith("endpoints[0:a].body: the stored job would be 400.0 KiB")


@pytest.mark.parametrize("text", ["{}", '{"a":"' + "\u00e9\u4e2d" * 3 + '"}', "x", ""])
def test_a_document_that_packing_would_not_shrink_is_stored_as_its_json(text):
    assert pack_doc(text) == text

"""The table's shape, defined once: CDK, local mode and the tests all build the table from this module."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

PARTITION_KEY = "PK"
SORT_KEY = "SK"
TTL_ATTRIBUTE = "expires_at"

# Every item's partition key starts with one of these. IAM limits each function's role to the
# partitions it uses (dynamodb:LeadingKeys; infra/cronpilot_infra/access.py), so a key outside them
# is a permission error in AWS.
JOB_PARTITION = "job#"  # a job: its definition, its runs, its daily token usage
RUN_PARTITION = "run#"  # a run's step results
ENDPOINT_PARTITION = "endpoint#"  # an endpoint's health (circuit breaker), shared by every job
IDEMPOTENCY_PARTITION = "idempotency#"  # Powertools idempotency records, one partition per function

DUE_INDEX = "due"
DUE_INDEX_PK = "due_shard"
DUE_INDEX_SK = "due_at"
# Jobs spread over due-index partitions so one hot partition never holds every job; discovery reads
# the shards concurrently. Sized for 10,000 jobs due in one minute: ~625 per shard, each claim and
# finish rewriting one small index entry (~40 writes/s per shard at the peak, far below a partition's
# 1,000), and 16 queries a tick when nothing is due. Growing it needs no migration: every job write
# re-hashes due_shard, and the old shard names are a prefix of the new range, so jobs not yet
# rewritten are still read. Shrinking it would strand jobs in the dropped shards: never shrink it.
DUE_SHARDS = 16
# The index carries keys only: discovery reads the due jobs themselves (one consistent BatchGetItem a
# page), so no write ever copies the job document into the index.
DUE_INDEX_PROJECTION = "KEYS_ONLY"


class TableSchema(NamedTuple):
    """The table's key and index names, as CDK and the store both read them."""

    partition_key: str = PARTITION_KEY
    sort_key: str = SORT_KEY
    due_index: str = DUE_INDEX
    due_index_pk: str = DUE_INDEX_PK
    due_index_sk: str = DUE_INDEX_SK
    due_index_projection: str = DUE_INDEX_PROJECTION
    ttl_attribute: str = TTL_ATTRIBUTE


SCHEMA = TableSchema()


def create_table_request(table_name: str) -> dict[str, Any]:
    """The boto3 CreateTable request for local mode and tests (CDK mirrors it from SCHEMA)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
            {"AttributeName": DUE_INDEX_PK, "AttributeType": "S"},
            {"AttributeName": DUE_INDEX_SK, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": DUE_INDEX,
                "KeySchema": [
                    {"AttributeName": DUE_INDEX_PK, "KeyType": "HASH"},
                    {"AttributeName": DUE_INDEX_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": DUE_INDEX_PROJECTION},
            }
        ],
    }


def due_shard(job_id: str) -> str:
    digest = hashlib.sha256(job_id.encode()).digest()
    return f"due#{digest[0] % DUE_SHARDS}"


def all_due_shards() -> list[str]:
    return [f"due#{n}" for n in range(DUE_SHARDS)]


def job_partition(job_id: str) -> str:
    return f"{JOB_PARTITION}{job_id}"


def run_partition(run_id: str) -> str:
    return f"{RUN_PARTITION}{run_id}"


def job_key(job_id: str) -> dict[str, str]:
    return {PARTITION_KEY: job_partition(job_id), SORT_KEY: "job"}


def run_key(job_id: str, run_stamp: str) -> dict[str, str]:
    return {PARTITION_KEY: job_partition(job_id), SORT_KEY: f"run#{run_stamp}"}


def step_key(run_id: str, step_id: str) -> dict[str, str]:
    return {PARTITION_KEY: run_partition(run_id), SORT_KEY: f"step#{step_id}"}


def decision_key(job_id: str, phase: str) -> dict[str, str]:
    """The job's standing AI decision of one phase (plan | summarize)."""
    return {PARTITION_KEY: job_partition(job_id), SORT_KEY: f"decision#{phase}"}


def usage_key(job_id: str, day: str) -> dict[str, str]:
    return {PARTITION_KEY: job_partition(job_id), SORT_KEY: f"usage#{day}"}


def endpoint_health_key(origin: str) -> dict[str, str]:
    return {PARTITION_KEY: f"{ENDPOINT_PARTITION}{origin}", SORT_KEY: "health"}

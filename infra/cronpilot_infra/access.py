"""Which table partitions each function may read, write and delete: the one place IAM's
`dynamodb:LeadingKeys` conditions come from (table.py), and what the local-mode test holds every real
call to (tests/infra/test_table_access_local.py). No CDK here, so that test can import it cheaply.

The patterns are built from the schema module's partition prefixes, never typed again here.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from cronpilot.dal import idempotency, schema

# Item operations, by what they do. TransactWriteItems has no IAM action of its own: each item in a
# transaction is authorised as its PutItem / UpdateItem / ConditionCheckItem / DeleteItem.
READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem")
DELETE_ACTIONS = ("dynamodb:DeleteItem",)

JOBS = f"{schema.JOB_PARTITION}*"  # job definitions, runs, token usage
STEPS = f"{schema.RUN_PARTITION}*"  # step results
HEALTH = f"{schema.ENDPOINT_PARTITION}*"  # endpoint health (circuit breaker)
EXECUTOR_IDEMPOTENCY = idempotency.EXECUTOR_PARTITION


@dataclass(frozen=True)
class TableAccess:
    """LeadingKeys patterns (IAM StringLike: `*` matches any characters) per kind of action."""

    read: tuple[str, ...]
    write: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()

    def patterns(self, action: str) -> tuple[str, ...]:
        if action in READ_ACTIONS:
            return self.read
        if action in WRITE_ACTIONS:
            return self.write
        if action in DELETE_ACTIONS:
            return self.delete
        return ()

    def allows(self, action: str, partition_key: str) -> bool:
        return any(fnmatchcase(partition_key, pattern) for pattern in self.patterns(action))


ACCESS = {
    # claims: the job (lease, epoch, next slot) and its run or skip record, both under the job.
    "discovery": TableAccess(read=(JOBS,), write=(JOBS,)),
    # the run's plan and token usage (under the job); reads history and the endpoints' health.
    "planner": TableAccess(read=(JOBS, HEALTH), write=(JOBS,)),
    # the one function that calls external URLs: writes step results, endpoint health and its
    # idempotency records, never a job, a run or its lease (it only checks the epoch fence).
    "executor": TableAccess(
        read=(JOBS, STEPS, HEALTH, EXECUTOR_IDEMPOTENCY),
        write=(STEPS, HEALTH, EXECUTOR_IDEMPOTENCY),
        # Powertools deletes its in-progress record when the handler raises, so a retry runs again
        delete=(EXECUTOR_IDEMPOTENCY,),
    ),
    # the outcome, the next run and the lease (under the job); reads the step results.
    "summarizer": TableAccess(read=(JOBS, STEPS), write=(JOBS,)),
    "finalize_failure": TableAccess(read=(JOBS, STEPS), write=(JOBS,)),
    # reads the job and its recent runs, appends deliveries to the run (all under the job).
    "notify": TableAccess(read=(JOBS,), write=(JOBS,)),
    # the HTTP API's operations: jobs, runs and step results; writes job items only (apply, pause,
    # resume, trigger, retry, the delete tombstone). Listing jobs is a Scan (granted in api.py).
    "api": TableAccess(read=(JOBS, STEPS), write=(JOBS,)),
}

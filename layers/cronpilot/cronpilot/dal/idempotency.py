"""Powertools idempotency for the executor: a re-invoked step returns its stored outcome.

Lambda and Step Functions both retry; without this a retry of a step whose first invocation already
called the endpoint would call it again. Records live in the application's single table: the key is
composite (PK = a fixed `idempotency#executor` partition, SK = Powertools' hashed key of run id and
step id), the expiry doubles as the table's TTL attribute so DynamoDB removes old records.

The first invocation writes an INPROGRESS record with a conditional put; a concurrent duplicate fails
with IdempotencyAlreadyInProgressError instead of calling the endpoint (Step Functions retries it),
and once the first one finishes every repeat gets the stored outcome. A handler that raises deletes
its record, so a genuine retry still runs. Only the small outcome (step id, status) is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)

from cronpilot.dal import schema

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

# Longer than any execution (the state machine times out after 25 minutes) with room for a redrive.
EXPIRES_AFTER = timedelta(hours=24)
EXECUTOR_PARTITION = f"{schema.IDEMPOTENCY_PARTITION}executor"
EVENT_KEY = "[run_id, step.step_id]"
KEY_PREFIX = "executor"

Handler = Callable[[dict[str, Any], "LambdaContext"], Any]


def persistence_layer(table_name: str, client: DynamoDBClient) -> DynamoDBPersistenceLayer:
    """Powertools' DynamoDB layer mapped onto the application table's PK/SK and TTL attribute."""
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr=schema.PARTITION_KEY,
        sort_key_attr=schema.SORT_KEY,
        static_pk_value=EXECUTOR_PARTITION,
        expiry_attr=schema.TTL_ATTRIBUTE,
        status_attr="idempotency_status",
        data_attr="idempotency_data",
        boto3_client=client,
    )


def executor_config(on_replay: Callable[[Any], None] | None = None) -> IdempotencyConfig:
    def hook(response: Any, idempotent_data: DataRecord) -> Any:
        if on_replay is not None:
            on_replay(response)
        return response

    return IdempotencyConfig(
        event_key_jmespath=EVENT_KEY,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=int(EXPIRES_AFTER.total_seconds()),
        response_hook=hook,
    )


def idempotent_executor(
    handler: Handler,
    *,
    table_name: str,
    client: DynamoDBClient,
    on_replay: Callable[[Any], None] | None = None,
) -> Handler:
    """Wrap the executor's handler body: built lazily (at first invocation), never at import."""
    decorate = idempotent(
        persistence_store=persistence_layer(table_name, client),
        config=executor_config(on_replay),
        key_prefix=KEY_PREFIX,
    )
    wrapped: Handler = decorate(handler)
    return wrapped

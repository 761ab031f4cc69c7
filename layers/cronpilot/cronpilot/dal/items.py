"""DynamoDB item plumbing shared by every module that talks to the table: attribute-value maps in and
out, TTL timestamps, and recognising a failed condition."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def serialize(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in value.items()}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def epoch_seconds(value: datetime) -> int:
    """TTL attributes and leases are whole epoch seconds."""
    return int(value.timestamp())


def is_condition_failure(exc: ClientError) -> bool:
    """A condition did not hold: on a single write, or on any item of a cancelled transaction."""
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons
    return False

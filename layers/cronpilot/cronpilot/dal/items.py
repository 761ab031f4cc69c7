"""DynamoDB item plumbing shared by every module that talks to the table: attribute-value maps in and
out, documents packed the way they are billed, TTL timestamps, and recognising a failed condition."""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def serialize(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in value.items()}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


# DynamoDB bills a write per started KB of the item, and a transaction's ConditionCheck per KB of the
# item it checks: the JSON documents (a job's definition, a run's record) are most of their items and
# compress about 3:1 (AWS's advice for large attributes). Level 9, fixed: the same document always
# packs to the same bytes, which the store's conditions on an unchanged job document rely on.
PACK_LEVEL = 9


def pack_doc(text: str) -> str | bytes:
    """A JSON document as stored: zlib-compressed Binary, or the JSON string itself when compressing
    saves nothing (tiny documents), so the stored value is never larger than the JSON."""
    raw = text.encode()
    packed = zlib.compress(raw, PACK_LEVEL)
    return packed if len(packed) < len(raw) else text


def unpack_doc(value: str | bytes | Binary) -> str:
    """The JSON of a stored document: Binary is a packed one, a string is plain JSON (what every item
    held before documents were packed, and a tiny document still is)."""
    if isinstance(value, str):
        return value
    return zlib.decompress(bytes(value)).decode()  # type: ignore[arg-type]  # Binary has __bytes__


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

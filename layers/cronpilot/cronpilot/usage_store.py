"""Token usage per job per day: one item per (job, UTC day), counters added atomically with UpdateItem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from cronpilot import schema
from cronpilot.models.run import TokenUsage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

USAGE_RETENTION = timedelta(days=90)
_FIELDS = ("input", "output", "cache_read", "cache_write")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def usage_day(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


class UsageStore:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def add(self, job_id: str, now: datetime, usage: TokenUsage, calls: int = 1) -> None:
        """ADD is atomic: concurrent planners and summarizers of one job never lose a count."""
        day = usage_day(now)
        values: dict[str, Any] = {f":{name}": getattr(usage, name) for name in _FIELDS}
        values[":calls"] = calls
        values[":kind"] = "usage"
        values[":job_id"] = job_id
        values[":expires"] = int((now + USAGE_RETENTION).timestamp())
        counters = (*_FIELDS, "calls")
        names = {f"#{name}": name for name in counters}
        names["#kind"] = "kind"
        names["#ttl"] = schema.TTL_ATTRIBUTE
        adds = ", ".join(f"#{name} :{name}" for name in counters)
        self.client.update_item(
            TableName=self.table_name,
            Key={k: _serializer.serialize(v) for k, v in schema.usage_key(job_id, day).items()},
            UpdateExpression=f"SET #kind = :kind, job_id = :job_id, #ttl = :expires ADD {adds}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={k: _serializer.serialize(v) for k, v in values.items()},
        )

    def get(self, job_id: str, day: str) -> TokenUsage:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={k: _serializer.serialize(v) for k, v in schema.usage_key(job_id, day).items()},
            ConsistentRead=True,
        )
        item = {k: _deserializer.deserialize(v) for k, v in response.get("Item", {}).items()}
        return TokenUsage(**{name: int(item.get(name, 0)) for name in _FIELDS})

    def today(self, job_id: str, now: datetime) -> TokenUsage:
        return self.get(job_id, usage_day(now))

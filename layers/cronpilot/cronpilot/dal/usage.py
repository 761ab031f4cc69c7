"""Token usage per job per day: one item per (job, UTC day), counters added atomically with UpdateItem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cronpilot.dal import schema
from cronpilot.dal.items import deserialize, epoch_seconds, is_condition_failure, serialize
from cronpilot.domain.ports import Reservation
from cronpilot.models.run import TokenUsage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

USAGE_RETENTION = timedelta(days=90)
_FIELDS = ("input", "output", "cache_read", "cache_write")


def usage_day(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


class UsageStore:
    """Counters of tokens used, plus `committed`: used + reserved by calls in flight. Reserving is one
    conditional ADD, so concurrent runs of a job (overlap `allow`) cannot overrun the daily budget
    together: each call reserves its estimate first and settles to what it really used."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def reserve(self, job_id: str, now: datetime, tokens: int, limit: int) -> Reservation | None:
        """Hold `tokens` of today's budget; None if used + in flight + tokens would pass `limit`."""
        reservation = Reservation(job_id, usage_day(now), tokens)
        if tokens > limit:
            return None
        try:
            self._update(
                reservation.job_id,
                reservation.day,
                now,
                {"committed": tokens},
                # DynamoDB conditions cannot add: compare against the room left for this call instead.
                condition="attribute_not_exists(#committed) OR #committed <= :room",
                condition_values={":room": limit - tokens},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return reservation

    def settle(self, reservation: Reservation, now: datetime, usage: TokenUsage, calls: int = 1) -> None:
        """The call ended: count what it used and give back the rest of what it held (ADD is atomic:
        concurrent calls never lose a count)."""
        counters = {name: getattr(usage, name) for name in _FIELDS}
        counters.update(calls=calls, committed=usage.total - reservation.tokens)
        self._update(reservation.job_id, reservation.day, now, counters)

    def release(self, reservation: Reservation, now: datetime) -> None:
        """The call failed before using tokens."""
        self._update(reservation.job_id, reservation.day, now, {"committed": -reservation.tokens})

    def committed(self, job_id: str, now: datetime) -> int:
        item = self._item(job_id, usage_day(now))
        return int(item.get("committed", 0))

    def get(self, job_id: str, day: str) -> TokenUsage:
        item = self._item(job_id, day)
        return TokenUsage(**{name: int(item.get(name, 0)) for name in _FIELDS})

    def today(self, job_id: str, now: datetime) -> TokenUsage:
        return self.get(job_id, usage_day(now))

    def _item(self, job_id: str, day: str) -> dict[str, Any]:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=serialize(schema.usage_key(job_id, day)),
            ConsistentRead=True,
        )
        return deserialize(response.get("Item", {}))

    def _update(
        self,
        job_id: str,
        day: str,
        now: datetime,
        counters: dict[str, int],
        *,
        condition: str | None = None,
        condition_values: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {f":{name}": value for name, value in counters.items()}
        values.update({":kind": "usage", ":job_id": job_id, ":expires": epoch_seconds(now + USAGE_RETENTION)})
        values.update(condition_values or {})
        names = {f"#{name}": name for name in counters}
        names.update({"#kind": "kind", "#ttl": schema.TTL_ATTRIBUTE})
        if condition and "#committed" in condition:
            names["#committed"] = "committed"
        adds = ", ".join(f"#{name} :{name}" for name in counters)
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": serialize(schema.usage_key(job_id, day)),
            "UpdateExpression": f"SET #kind = :kind, job_id = :job_id, #ttl = :expires ADD {adds}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
        }
        if condition:
            request["ConditionExpression"] = condition
        self.client.update_item(**request)

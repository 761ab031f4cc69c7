"""Endpoint health in DynamoDB: one item per origin, every write conditional.

State changes (closed -> open -> half-open probe -> closed/open) are decided by the circuit breaker
(domain/circuit.py); this module only turns them into conditional updates. A write conditioned on the
item's `version` returns False when another executor changed it first; a probe's end is conditioned
on the caller still holding the probe, so a stale probe's late report is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cronpilot.clock import from_iso, to_iso
from cronpilot.dal import schema
from cronpilot.dal.items import deserialize, epoch_seconds, is_condition_failure, serialize
from cronpilot.domain.ports import HealthUnavailable
from cronpilot.models.health import CircuitState, Health

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HEALTH_RETENTION = timedelta(days=30)


class DynamoHealthStore:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def read(self, origin: str, *, consistent: bool = True) -> Health:
        try:
            response = self.client.get_item(
                TableName=self.table_name,
                Key=serialize(schema.endpoint_health_key(origin)),
                ConsistentRead=consistent,
            )
        except (ClientError, BotoCoreError) as exc:
            raise HealthUnavailable(f"reading {origin}: {type(exc).__name__}") from exc
        item = response.get("Item")
        return _health_from_item(origin, item) if item else Health(origin=origin)

    def start_probe(self, seen: Health, now: datetime, probe_id: str) -> bool:
        return self._write(
            seen,
            now,
            "SET #state = :half, probe_id = :probe, probe_started_at = :now",
            {":half": CircuitState.HALF_OPEN.value, ":probe": probe_id, ":now": to_iso(now)},
        )

    def record_failures(
        self, seen: Health, now: datetime, failures: list[datetime], *, open_circuit: bool
    ) -> bool:
        values: dict[str, Any] = {":failures": [to_iso(t) for t in failures]}
        expression = "SET failures = :failures"
        if open_circuit:
            expression += ", #state = :open, opened_at = :now"
            values[":open"] = CircuitState.OPEN.value
            values[":now"] = to_iso(now)
        return self._write(seen, now, expression, values)

    def end_probe(self, origin: str, probe_id: str, now: datetime, *, closed: bool) -> None:
        if closed:
            self._update_probe(
                origin,
                probe_id,
                now,
                "SET #state = :closed, failures = :none REMOVE opened_at, probe_id, probe_started_at",
                {":closed": CircuitState.CLOSED.value, ":none": []},
            )
        else:
            self._update_probe(
                origin,
                probe_id,
                now,
                "SET #state = :open, opened_at = :now REMOVE probe_id, probe_started_at",
                {":open": CircuitState.OPEN.value, ":now": to_iso(now)},
            )

    def release_probe(self, origin: str, probe_id: str, now: datetime) -> None:
        self._update_probe(
            origin,
            probe_id,
            now,
            "SET #state = :open REMOVE probe_id, probe_started_at",
            {":open": CircuitState.OPEN.value},
        )

    # -------------------------------------------------------------- writes

    def _update_probe(
        self, origin: str, probe_id: str, now: datetime, expression: str, values: dict[str, Any]
    ) -> None:
        """Change the circuit only while this caller still holds the probe."""
        values = {
            **values,
            ":probe": probe_id,
            ":one": 1,
            ":expires": epoch_seconds(now + HEALTH_RETENTION),
            ":half": CircuitState.HALF_OPEN.value,
        }
        expression = _add_to_set(expression, "version = version + :one, #ttl = :expires")
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=serialize(schema.endpoint_health_key(origin)),
                UpdateExpression=expression,
                ConditionExpression="#state = :half AND probe_id = :probe",
                ExpressionAttributeNames={"#state": "state", "#ttl": schema.TTL_ATTRIBUTE},
                ExpressionAttributeValues=serialize(values),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise HealthUnavailable(f"updating {origin}: {type(exc).__name__}") from exc
            # Our probe was declared stale and replaced: the newer probe decides.
        except BotoCoreError as exc:
            raise HealthUnavailable(f"updating {origin}: {type(exc).__name__}") from exc

    def _write(self, seen: Health, now: datetime, expression: str, values: dict[str, Any]) -> bool:
        """Apply an update only if the item is still the version we read; False if it moved."""
        values = {
            **values,
            ":version": seen.version + 1,
            ":origin": seen.origin,
            ":expires": epoch_seconds(now + HEALTH_RETENTION),
        }
        expression = _add_to_set(expression, "version = :version, origin = :origin, #ttl = :expires")
        names = {"#ttl": schema.TTL_ATTRIBUTE}
        if "#state" in expression:
            names["#state"] = "state"
        else:  # a first write must still create the item closed
            expression = _add_to_set(expression, "#state = if_not_exists(#state, :closed)")
            names["#state"] = "state"
            values[":closed"] = CircuitState.CLOSED.value
        if seen.version == 0:
            condition = "attribute_not_exists(version)"
        else:
            condition = "version = :seen"
            values[":seen"] = seen.version
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=serialize(schema.endpoint_health_key(seen.origin)),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(values),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise HealthUnavailable(f"updating {seen.origin}: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise HealthUnavailable(f"updating {seen.origin}: {type(exc).__name__}") from exc
        return True


def _add_to_set(expression: str, assignments: str) -> str:
    """Add assignments to an update expression's SET clause (creating it if there is none)."""
    if expression.startswith("SET "):
        head, sep, tail = expression.partition(" REMOVE ")
        return f"{head}, {assignments}{sep}{tail}"
    return f"SET {assignments} {expression}".rstrip()


def _health_from_item(origin: str, item: dict[str, Any]) -> Health:
    data = deserialize(item)
    started = data.get("probe_started_at")
    return Health(
        origin=origin,
        state=CircuitState(data.get("state", CircuitState.CLOSED.value)),
        failures=tuple(from_iso(t) for t in data.get("failures") or []),
        opened_at=from_iso(data["opened_at"]) if data.get("opened_at") else None,
        probe_id=data.get("probe_id"),
        probe_started_at=from_iso(started) if started else None,
        version=int(data.get("version", 0)),
    )

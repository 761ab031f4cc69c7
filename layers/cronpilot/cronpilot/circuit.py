"""Circuit breaker per endpoint origin (scheme, host, port), shared by every job that calls it.

The state lives in one DynamoDB item per origin (`schema.endpoint_health_key`). Every write is
conditional on the item's `version`, so concurrent executors never lose each other's updates:

- closed: calls go through; each failure is appended to a list of recent failure times. When
  `failure_threshold` failures fall within `window`, the circuit opens.
- open: calls are refused until `cool_down` has passed since it opened.
- half-open: after the cool-down exactly one caller wins the conditional write that makes it the
  probe; everyone else is still refused. The probe's success closes the circuit, its failure opens
  it again for another cool-down. A probe that never reports (its Lambda died) is replaced after
  `probe_timeout`.

Only outcomes that say something about the endpoint count: connect errors, timeouts, TLS and
protocol errors, 5xx and 429 are failures; any other HTTP answer is a success; calls the egress
policy refused before sending count as neither. Health bookkeeping is best effort: if the item keeps
changing under us, the update is dropped rather than failing the step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from cronpilot import schema
from cronpilot.clock import Clock, SystemClock, from_iso, to_iso
from cronpilot.dynamo import deserialize, epoch_seconds, is_condition_failure, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from cronpilot.models.job import Job
    from cronpilot.safehttp import HttpOutcome
    from cronpilot.store import Store

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Outcomes that mean nothing about the endpoint's health: the request never left (or was malformed).
_NEUTRAL_KINDS = frozenset({"egress-denied", "invalid-request"})
_WRITE_ATTEMPTS = 5
HEALTH_RETENTION = timedelta(days=30)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class CircuitPolicy:
    failure_threshold: int = 5
    window: timedelta = timedelta(minutes=10)
    cool_down: timedelta = timedelta(minutes=2)
    # Longer than one executor invocation (Lambda timeout 300 s), so a live probe is never replaced.
    probe_timeout: timedelta = timedelta(minutes=6)


@dataclass
class Health:
    """One origin's circuit as stored."""

    origin: str
    state: CircuitState = CircuitState.CLOSED
    failures: list[datetime] = field(default_factory=list)
    opened_at: datetime | None = None
    probe_id: str | None = None
    probe_started_at: datetime | None = None
    version: int = 0  # 0: no item yet

    def effective_state(self, now: datetime, policy: CircuitPolicy) -> CircuitState:
        """What a caller would see now: an open circuit whose cool-down passed is half-open."""
        if self.state == CircuitState.OPEN and self._cooled_down(now, policy):
            return CircuitState.HALF_OPEN
        return self.state

    def _cooled_down(self, now: datetime, policy: CircuitPolicy) -> bool:
        return self.opened_at is None or now >= self.opened_at + policy.cool_down

    def _probe_stale(self, now: datetime, policy: CircuitPolicy) -> bool:
        return self.probe_started_at is None or now >= self.probe_started_at + policy.probe_timeout


@dataclass(frozen=True)
class Permit:
    """The answer to "may I call this origin?"; hand it back with the outcome."""

    origin: str
    allowed: bool
    probe_id: str | None = None  # set when this caller is the half-open probe

    @property
    def is_probe(self) -> bool:
        return self.probe_id is not None


def origin_of(url: str) -> str:
    """`scheme://host:port` with the host lower-cased and the port explicit (no userinfo, no path)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}"


def counts_as_failure(outcome: HttpOutcome) -> bool | None:
    """True: the endpoint is unhealthy; False: it answered; None: the outcome says nothing about it."""
    if outcome.error_kind in _NEUTRAL_KINDS:
        return None
    status = outcome.http_status
    if outcome.error_kind == "http-status" or (outcome.ok and status is not None):
        return status is not None and (status >= 500 or status == 429)
    # The server answered when the body was too large or undecodable, or it redirected too often: that
    # is the job's problem, not the endpoint's health. Connect, timeout, TLS and protocol errors are.
    return outcome.error_kind not in ("too-large", "decoding", "too-many-redirects")


class CircuitBreaker:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        clock: Clock,
        policy: CircuitPolicy | None = None,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.clock = clock
        self.policy = policy or CircuitPolicy()

    @classmethod
    def for_store(cls, store: Store, clock: Clock, policy: CircuitPolicy | None = None) -> CircuitBreaker:
        return cls(store.table_name, store.client, clock, policy)

    # --------------------------------------------------------------- reads

    def health(self, origin: str) -> Health:
        response = self.client.get_item(
            TableName=self.table_name, Key=serialize(schema.endpoint_health_key(origin)), ConsistentRead=True
        )
        item = response.get("Item")
        return _health_from_item(origin, item) if item else Health(origin=origin)

    def state(self, origin: str) -> CircuitState:
        return self.health(origin).effective_state(self.clock.now(), self.policy)

    # ------------------------------------------------------------- the flow

    def acquire(self, url: str) -> Permit:
        """May this caller call `url` now? Becomes the probe when the cool-down has passed."""
        origin = origin_of(url)
        for _ in range(_WRITE_ATTEMPTS):
            now = self.clock.now()
            health = self.health(origin)
            if health.state == CircuitState.CLOSED:
                return Permit(origin, allowed=True)
            waiting = health.state == CircuitState.OPEN and not health._cooled_down(now, self.policy)
            probing = health.state == CircuitState.HALF_OPEN and not health._probe_stale(now, self.policy)
            if waiting or probing:
                return Permit(origin, allowed=False)
            probe_id = os.urandom(16).hex()
            changed = self._write(
                health,
                now,
                "SET #state = :half, probe_id = :probe, probe_started_at = :now",
                {":half": CircuitState.HALF_OPEN.value, ":probe": probe_id, ":now": to_iso(now)},
            )
            if changed:
                return Permit(origin, allowed=True, probe_id=probe_id)
        return Permit(origin, allowed=False)  # others keep winning the race to probe

    def record(self, permit: Permit, outcome: HttpOutcome) -> None:
        """Report a call's outcome. Never raises for DynamoDB trouble: the call already happened, and
        failing the step now would make a retry call the endpoint a second time."""
        verdict = counts_as_failure(outcome)
        try:
            if verdict is None:
                self.release(permit)
            elif verdict:
                self.record_failure(permit)
            else:
                self.record_success(permit)
        except (ClientError, BotoCoreError) as exc:
            from cronpilot.observability import logger

            logger.warning("endpoint health not updated", origin=permit.origin, error=type(exc).__name__)

    def record_success(self, permit: Permit) -> None:
        """Only the probe closes a circuit; a success while closed costs no write."""
        if not permit.is_probe:
            return
        self._update_probe(
            permit,
            "SET #state = :closed, failures = :none REMOVE opened_at, probe_id, probe_started_at",
            {":closed": CircuitState.CLOSED.value, ":none": []},
        )

    def record_failure(self, permit: Permit) -> None:
        if permit.is_probe:
            now = self.clock.now()
            self._update_probe(
                permit,
                "SET #state = :open, opened_at = :now REMOVE probe_id, probe_started_at",
                {":open": CircuitState.OPEN.value, ":now": to_iso(now)},
            )
            return
        for _ in range(_WRITE_ATTEMPTS):
            now = self.clock.now()
            health = self.health(permit.origin)
            if health.state != CircuitState.CLOSED:
                return  # already open: a late failure from before it opened adds nothing
            recent = [t for t in health.failures if t > now - self.policy.window] + [now]
            recent = recent[-self.policy.failure_threshold :]
            values: dict[str, Any] = {":failures": [to_iso(t) for t in recent]}
            expression = "SET failures = :failures"
            if len(recent) >= self.policy.failure_threshold:
                expression += ", #state = :open, opened_at = :now"
                values[":open"] = CircuitState.OPEN.value
                values[":now"] = to_iso(now)
            if self._write(health, now, expression, values):
                return

    def release(self, permit: Permit) -> None:
        """The probe learned nothing (e.g. the call never left): let the next caller probe at once."""
        if permit.is_probe:
            self._update_probe(
                permit,
                "SET #state = :open REMOVE probe_id, probe_started_at",
                {":open": CircuitState.OPEN.value},
            )

    # -------------------------------------------------------------- writes

    def _update_probe(self, permit: Permit, expression: str, values: dict[str, Any]) -> None:
        """Change the circuit only while this caller still holds the probe."""
        now = self.clock.now()
        values = {
            **values,
            ":probe": permit.probe_id,
            ":one": 1,
            ":expires": epoch_seconds(now + HEALTH_RETENTION),
            ":half": CircuitState.HALF_OPEN.value,
        }
        expression = _add_to_set(expression, "version = version + :one, #ttl = :expires")
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=serialize(schema.endpoint_health_key(permit.origin)),
                UpdateExpression=expression,
                ConditionExpression="#state = :half AND probe_id = :probe",
                ExpressionAttributeNames={"#state": "state", "#ttl": schema.TTL_ATTRIBUTE},
                ExpressionAttributeValues=serialize(values),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            # Our probe was declared stale and replaced: the newer probe decides.

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
            raise
        return True


def endpoint_health(
    store: Store, job: Job, clock: Clock | None = None, policy: CircuitPolicy | None = None
) -> dict[str, str]:
    """Each endpoint id of the job with its circuit's state ("closed", "open", "half-open"), for the
    planner's input. Endpoints sharing an origin share a circuit; each origin is read once."""
    breaker = CircuitBreaker.for_store(store, clock or SystemClock(), policy)
    states: dict[str, str] = {}
    by_origin: dict[str, CircuitState] = {}
    for endpoint in job.endpoints:
        origin = origin_of(endpoint.url)
        if origin not in by_origin:
            by_origin[origin] = breaker.state(origin)
        states[endpoint.id] = by_origin[origin].value
    return states


# ------------------------------------------------------------------ helpers


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
        failures=[from_iso(t) for t in data.get("failures") or []],
        opened_at=from_iso(data["opened_at"]) if data.get("opened_at") else None,
        probe_id=data.get("probe_id"),
        probe_started_at=from_iso(started) if started else None,
        version=int(data.get("version", 0)),
    )

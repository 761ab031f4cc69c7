"""An endpoint origin's circuit breaker state as stored, and the policy that reads it."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitPolicy(NamedTuple):
    """When a circuit opens (failures within a window) and how long it stays open."""

    failure_threshold: int = 5
    window: timedelta = timedelta(minutes=10)
    cool_down: timedelta = timedelta(minutes=2)
    # Longer than one executor invocation (Lambda timeout 300 s), so a live probe is never replaced.
    probe_timeout: timedelta = timedelta(minutes=6)


class Health(NamedTuple):
    """One origin's circuit as stored."""

    origin: str
    state: CircuitState = CircuitState.CLOSED
    failures: tuple[datetime, ...] = ()
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

"""Time is injected: domain code asks a clock, never the wall, so tests and local mode control it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to: for unit and integration tests."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, value: datetime) -> None:
        with self._lock:
            self._now = value.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class AcceleratedClock:
    """Wall time plus an offset that jumps forward: local mode skips idle time between runs
    while runs themselves take real time (so latencies and timeouts stay real)."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._offset = start.astimezone(UTC).timestamp() - time.time()

    def now(self) -> datetime:
        with self._lock:
            return datetime.fromtimestamp(time.time() + self._offset, UTC)

    def jump_to(self, target: datetime) -> None:
        with self._lock:
            wanted = target.astimezone(UTC).timestamp() - time.time()
            self._offset = max(self._offset, wanted)


def to_iso(value: datetime) -> str:
    """The one string form of instants stored in DynamoDB: UTC, seconds, sortable."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

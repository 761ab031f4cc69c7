"""Which circuit reads may be eventually consistent: the one every step makes before its call, and the
planner's, where a state a second old decides nothing differently; never a read a write depends on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronpilot.clock import FixedClock
from cronpilot.domain.circuit import CircuitBreaker, CircuitPolicy, Permit, endpoint_health, origin_of
from cronpilot.models.health import CircuitState, Health

from tests.support.factories import make_job
from tests.support.memory import InMemoryHealthStore

NOW = datetime(2026, 11, 22, 9, tzinfo=UTC)
URL = "https://api.example.com"
ORIGIN = origin_of(URL)
POLICY = CircuitPolicy(failure_threshold=3, window=timedelta(minutes=1), cool_down=timedelta(seconds=30))


class LosesTheFirstProbeRace(InMemoryHealthStore):
    """Another executor starts the probe between this one's read and its write, once."""

    def start_probe(self, seen: Health, now: datetime, probe_id: str) -> bool:
        if not getattr(self, "raced", False):
            self.raced = True
            self.items[seen.origin] = seen._replace(
                state=CircuitState.HALF_OPEN,
                version=seen.version + 1,
                probe_id="other",
                probe_started_at=now,
            )
            return False
        return super().start_probe(seen, now, probe_id)


def test_a_step_reads_a_closed_circuit_once_eventually_consistent() -> None:
    health = InMemoryHealthStore()
    permit = CircuitBreaker(health, FixedClock(NOW), POLICY).acquire(f"{URL}/orders")
    assert permit.allowed
    assert health.reads == [False]


def test_a_lost_probe_race_reads_again_consistently() -> None:
    # Given an open circuit past its cool-down, whose probe another executor takes first
    health = LosesTheFirstProbeRace()
    opened = NOW - timedelta(minutes=1)
    health.items[ORIGIN] = Health(origin=ORIGIN, state=CircuitState.OPEN, opened_at=opened, version=3)
    permit = CircuitBreaker(health, FixedClock(NOW), POLICY).acquire(f"{URL}/orders")
    # Then the second read, which sees the other probe, is a consistent one
    assert not permit.allowed
    assert health.reads == [False, True]


def test_recording_a_failure_reads_consistently() -> None:
    health = InMemoryHealthStore()
    CircuitBreaker(health, FixedClock(NOW), POLICY).record_failure(Permit(ORIGIN, allowed=True))
    assert health.reads == [True]
    assert len(health.items[ORIGIN].failures) == 1


def test_the_planners_view_of_endpoint_health_is_eventually_consistent() -> None:
    health = InMemoryHealthStore()
    job = make_job("job", endpoints=[{"id": "a", "url": f"{URL}/a"}, {"id": "b", "url": f"{URL}/b"}])
    assert endpoint_health(health, job, FixedClock(NOW), POLICY) == {"a": "closed", "b": "closed"}
    assert health.reads == [False]  # one read per origin

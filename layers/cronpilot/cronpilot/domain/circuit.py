"""Circuit breaker per endpoint origin (scheme, host, port), shared by every job that calls it.

The state lives in one item per origin (`dal/health.py`). Every write is
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
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from cronpilot.clock import Clock, SystemClock
from cronpilot.domain.ports import HealthStore, HealthUnavailable
from cronpilot.models.health import CircuitPolicy, CircuitState, Health

if TYPE_CHECKING:
    from cronpilot.models.job import Job
    from cronpilot.safehttp import HttpOutcome

__all__ = [
    "CircuitBreaker",
    "CircuitPolicy",
    "CircuitState",
    "Health",
    "Permit",
    "endpoint_health",
    "origin_of",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Outcomes that mean nothing about the endpoint's health: the request never left (or was malformed).
_NEUTRAL_KINDS = frozenset({"egress-denied", "invalid-request"})
_WRITE_ATTEMPTS = 5


class Permit(NamedTuple):
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
    def __init__(self, health_store: HealthStore, clock: Clock, policy: CircuitPolicy | None = None) -> None:
        self.health_store = health_store
        self.clock = clock
        self.policy = policy or CircuitPolicy()

    # --------------------------------------------------------------- reads

    def health(self, origin: str, *, consistent: bool = True) -> Health:
        return self.health_store.read(origin, consistent=consistent)

    def state(self, origin: str) -> CircuitState:
        """For the planner's input, which a state a second old cannot mislead: an eventually
        consistent read."""
        return self.health(origin, consistent=False).effective_state(self.clock.now(), self.policy)

    # ------------------------------------------------------------- the flow

    def acquire(self, url: str) -> Permit:
        """May this caller call `url` now? Becomes the probe when the cool-down has passed."""
        origin = origin_of(url)
        for attempt in range(_WRITE_ATTEMPTS):
            now = self.clock.now()
            # Every step reads its origin's circuit first: eventually consistent, as a state a second
            # old decides no differently from a call begun a second earlier; a probe's write is
            # conditional on the version read, and a lost race reads again, consistently.
            health = self.health(origin, consistent=attempt > 0)
            if health.state == CircuitState.CLOSED:
                return Permit(origin, allowed=True)
            waiting = health.state == CircuitState.OPEN and not health._cooled_down(now, self.policy)
            probing = health.state == CircuitState.HALF_OPEN and not health._probe_stale(now, self.policy)
            if waiting or probing:
                return Permit(origin, allowed=False)
            probe_id = os.urandom(16).hex()
            if self.health_store.start_probe(health, now, probe_id):
                return Permit(origin, allowed=True, probe_id=probe_id)
        return Permit(origin, allowed=False)  # others keep winning the race to probe

    def record(self, permit: Permit, outcome: HttpOutcome) -> None:
        """Report a call's outcome. Never raises for storage trouble: the call already happened, and
        failing the step now would make a retry call the endpoint a second time."""
        verdict = counts_as_failure(outcome)
        try:
            if verdict is None:
                self.release(permit)
            elif verdict:
                self.record_failure(permit)
            else:
                self.record_success(permit)
        except HealthUnavailable as exc:
            from cronpilot.observability import logger

            logger.warning("endpoint health not updated", origin=permit.origin, error=str(exc))

    def record_success(self, permit: Permit) -> None:
        """Only the probe closes a circuit; a success while closed costs no write."""
        if permit.is_probe:
            self.health_store.end_probe(permit.origin, permit.probe_id or "", self.clock.now(), closed=True)

    def record_failure(self, permit: Permit) -> None:
        if permit.is_probe:
            self.health_store.end_probe(permit.origin, permit.probe_id or "", self.clock.now(), closed=False)
            return
        for _ in range(_WRITE_ATTEMPTS):
            now = self.clock.now()
            health = self.health(permit.origin)
            if health.state != CircuitState.CLOSED:
                return  # already open: a late failure from before it opened adds nothing
            recent = [t for t in health.failures if t > now - self.policy.window] + [now]
            recent = recent[-self.policy.failure_threshold :]
            opens = len(recent) >= self.policy.failure_threshold
            if self.health_store.record_failures(health, now, recent, open_circuit=opens):
                return

    def release(self, permit: Permit) -> None:
        """The probe learned nothing (e.g. the call never left): let the next caller probe at once."""
        if permit.is_probe:
            self.health_store.release_probe(permit.origin, permit.probe_id or "", self.clock.now())


def endpoint_health(
    health_store: HealthStore, job: Job, clock: Clock | None = None, policy: CircuitPolicy | None = None
) -> dict[str, str]:
    """Each endpoint id of the job with its circuit's state ("closed", "open", "half-open"), for the
    planner's input. Endpoints sharing an origin share a circuit; each origin is read once."""
    breaker = CircuitBreaker(health_store, clock or SystemClock(), policy)
    states: dict[str, str] = {}
    by_origin: dict[str, CircuitState] = {}
    for endpoint in job.endpoints:
        origin = origin_of(endpoint.url)
        if origin not in by_origin:
            by_origin[origin] = breaker.state(origin)
        states[endpoint.id] = by_origin[origin].value
    return states

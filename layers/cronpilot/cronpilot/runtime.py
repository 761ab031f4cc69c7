"""What a handler needs, built once per cold start: settings, clients, the store and the clock.

Local mode and the tests replace parts with `override(...)`; nothing else mutates it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from cronpilot.clock import Clock, SystemClock
from cronpilot.config import Settings, get_settings
from cronpilot.store import Store

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from cronpilot.safehttp import SafeHttpClient

_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.table_name, boto3.client("dynamodb", config=_BOTO_CONFIG))

    @cached_property
    def sfn(self) -> SFNClient:
        return boto3.client("stepfunctions", config=_BOTO_CONFIG)

    @cached_property
    def http_client(self) -> SafeHttpClient:
        """The executor's SSRF-safe client, kept for its connection pool. The private networks it may
        reach are a deployment choice worth a line in the logs, once per container."""
        from cronpilot.observability import logger
        from cronpilot.safehttp import EgressPolicy, SafeHttpClient  # only the executor calls out

        policy = EgressPolicy.from_settings(
            allowed_ports=self.settings.egress_allowed_ports, allowed_cidrs=self.settings.egress_allowed_cidrs
        )
        if policy.allowed_cidrs:
            logger.warning(
                "private networks reachable by the executor", cidrs=[str(c) for c in policy.allowed_cidrs]
            )
        return SafeHttpClient(policy)


_current: Runtime | None = None


def get_runtime() -> Runtime:
    global _current  # the one cached composition root of a Lambda process
    if _current is None:
        _current = Runtime(settings=get_settings(), clock=SystemClock())
    return _current


def override(**changes: Any) -> Runtime:
    """Replace parts of the runtime (local mode's accelerated clock, a test's settings)."""
    global _current
    base = _current or Runtime(settings=get_settings(), clock=SystemClock())
    _current = replace(base, **changes)
    return _current


def reset() -> None:
    global _current
    _current = None
    get_settings.cache_clear()

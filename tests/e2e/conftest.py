"""End to end in local mode: moto + the real ASL interpreter + the real handlers, one demo target."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cronpilot.clock import AcceleratedClock
from cronpilot.dal.store import Store
from cronpilot.local.cloud import LocalCloud
from cronpilot.local.demo_server import DemoServer
from cronpilot.runtime import get_runtime

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def target() -> Iterator[DemoServer]:
    with DemoServer() as demo:
        yield demo


@pytest.fixture
def clock() -> AcceleratedClock:
    return AcceleratedClock(START)


@pytest.fixture
def cloud(target: DemoServer, clock: AcceleratedClock) -> Iterator[LocalCloud]:
    with LocalCloud(
        clock, egress_allowed_cidrs="127.0.0.0/8", egress_allowed_ports=f"80,443,{target.port}"
    ) as local:
        yield local


@pytest.fixture
def store(cloud: LocalCloud) -> Store:
    return get_runtime().store

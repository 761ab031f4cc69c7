"""End to end in local mode: moto + the real ASL interpreter + the real handlers, and one HTTP target the
executor may call on loopback: the demo server, or (where a module overrides `egress_port` with
`server.port`) a loopback server whose routes the test sets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cronpilot.clock import AcceleratedClock
from cronpilot.dal.store import Store
from cronpilot.local.cloud import LocalCloud
from cronpilot.local.demo_server import DemoServer
from cronpilot.runtime import get_runtime

from tests.integration.http_servers import LoopbackHTTPServer

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def target() -> Iterator[DemoServer]:
    with DemoServer() as demo:
        yield demo


@pytest.fixture
def clock() -> AcceleratedClock:
    return AcceleratedClock(START)


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as srv:
        yield srv


@pytest.fixture
def egress_port(target: DemoServer) -> int:
    """The loopback port the executor may call (besides 80 and 443)."""
    return target.port


@pytest.fixture
def cloud(egress_port: int, clock: AcceleratedClock) -> Iterator[LocalCloud]:
    # 127.0.0.0/8 is allowed (the test servers); 10.0.0.0/8 stays private, as in a real deployment.
    with LocalCloud(
        clock, egress_allowed_cidrs="127.0.0.0/8", egress_allowed_ports=f"80,443,{egress_port}"
    ) as local:
        yield local


@pytest.fixture
def store(cloud: LocalCloud) -> Store:
    return get_runtime().store

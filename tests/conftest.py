"""Shared fixtures: every test runs with fake AWS credentials so nothing can reach a real account."""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "cronpilot-test",
        "POWERTOOLS_SERVICE_NAME": "cronpilot",
    }
)
os.environ.pop("AWS_PROFILE", None)

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = REPO_ROOT / "events"


def load_event(name: str) -> dict:
    """Load a sample event from events/ (the same files the README points operators to)."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def fake() -> Iterator[Any]:
    """A fake Messages API on 127.0.0.1 for the real anthropic SDK (a FakeAnthropic)."""
    from cronpilot.ai.client import clear_clients

    from tests.support.fake_anthropic import FakeAnthropic

    with FakeAnthropic() as server:
        yield server
    clear_clients()

"""Integration tests: moto in-process, the table built from the shared schema, writes serialised."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import boto3
import pytest
from cronpilot.clock import FixedClock
from cronpilot.dal import schema
from cronpilot.dal.store import Store
from cronpilot.domain.budget import RunBudget
from cronpilot.local.cloud import serialize_dynamodb_writes
from cronpilot.models.run import RunRecord
from moto import mock_aws

TABLE = "cronpilot-test"
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        undo = serialize_dynamodb_writes()
        try:
            yield
        finally:
            undo()


@pytest.fixture
def store(aws: None) -> Store:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**schema.create_table_request(TABLE))
    return Store(TABLE, client)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


class RecordingStarter:
    """A fake ExecutionStarter: remembers which runs were started, like Step Functions' name check."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.budgets: dict[str, RunBudget] = {}

    def start(self, run: RunRecord, budget: RunBudget) -> Literal["started", "already-started"]:
        if run.run_id in self.started:
            return "already-started"
        self.started.append(run.run_id)
        self.budgets[run.run_id] = budget
        return "started"


@pytest.fixture
def starter() -> RecordingStarter:
    return RecordingStarter()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

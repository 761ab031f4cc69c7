"""Schemathesis against `cronpilot local api`'s server, from the committed OpenAPI document: no server
error, and no status, content type or body the document does not describe. Bounded in examples and
time so it fits the suite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from cronpilot.cli.local import local_api_server
from cronpilot.cli.targets import local_state_target
from cronpilot.domain.operations import apply_job
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.factories import make_job

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
schema = schemathesis.openapi.from_path(str(DOCUMENT))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("contract") / "state.json"
    with local_state_target(state) as target:  # a job to find, so reads also reach their 200 paths
        apply_job(target.store, make_job("job-1", schedule={"rate": "5m"}), target.clock.now())
    with local_api_server(state, 0) as server:
        server.quiet = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server.base_url
        server.shutdown()


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_openapi_document(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

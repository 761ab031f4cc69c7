"""Each function's real DynamoDB calls in local mode stay inside the partitions its role allows
(cronpilot_infra.access.ACCESS, the source of the dynamodb:LeadingKeys conditions): a call outside
them would be AccessDenied in AWS.

Every call the shared client makes is attributed to the function whose handler is running (local mode
runs each invocation through LocalCloud._run_handler, which sets it); calls made by the test itself
(applying jobs, reading runs) run outside any handler and are the operator's, not a function's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cronpilot.local.cloud import function_name
from cronpilot.local.moto_patches import running_function
from cronpilot.local.runner import apply_jobs, tick_until
from cronpilot.models.run import RunStatus
from cronpilot.runtime import get_runtime
from cronpilot_infra.access import ACCESS

from tests.e2e.conftest import clock, cloud, egress_port, store, target  # noqa: F401  (fixtures)
from tests.support.factories import make_job

pytestmark = pytest.mark.xdist_group("infra-local")

_TRANSACT = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Delete": "dynamodb:DeleteItem",
}
_FUNCTIONS = {function_name(name): name for name in ACCESS}


@dataclass(frozen=True)
class Call:
    function: str | None
    action: str
    partition_key: str  # "index:<name>" for an index query (granted on the index ARN, not LeadingKeys)


def _current_function() -> str | None:
    """The function whose handler is running (local mode's invoke seam sets it; the threads a handler
    fans out to, such as discovery's workers, run in a copy of its context)."""
    name = running_function.get()
    return _FUNCTIONS.get(name, name) if name else None


def _calls_of(operation: str, params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(IAM action, partition key) for each item a request touches."""
    action = f"dynamodb:{operation}"
    if operation == "PutItem":
        yield action, params["Item"]["PK"]["S"]
    elif operation in ("GetItem", "UpdateItem", "DeleteItem"):
        yield action, params["Key"]["PK"]["S"]
    elif operation == "Query":
        if "IndexName" in params:
            yield action, f"index:{params['IndexName']}"
        else:
            yield action, params["ExpressionAttributeValues"][":pk"]["S"]
    elif operation == "TransactWriteItems":
        for entry in params["TransactItems"]:
            ((kind, body),) = entry.items()
            yield _TRANSACT[kind], (body.get("Item") or body["Key"])["PK"]["S"]
    elif operation == "BatchGetItem":
        for table in params["RequestItems"].values():
            for key in table["Keys"]:
                yield action, key["PK"]["S"]
    else:
        yield action, "?"


@pytest.fixture
def calls(cloud: Any) -> list[Call]:  # noqa: F811
    recorded: list[Call] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        function = _current_function()
        if function is None and threading.current_thread() is not threading.main_thread():
            function = "<unattributed handler thread>"
        recorded.extend(Call(function, action, key) for action, key in _calls_of(model.name, params))

    get_runtime().store.client.meta.events.register("provide-client-params.dynamodb", record)
    return recorded


def _outside_allowed(calls: list[Call]) -> list[Call]:
    bad = []
    for call in calls:
        if call.function is None:
            continue  # the test's own (operator) calls
        if call.partition_key == "index:due" and call.function == "discovery":
            continue  # the due-index query, granted on the index ARN alone
        access = ACCESS.get(call.function)
        if access is None or not access.allows(call.action, call.partition_key):
            bad.append(call)
    return bad


def test_every_call_of_a_run_stays_inside_its_functions_partitions(cloud, store, clock, target, calls):  # noqa: F811
    # Given a job with a dependency, an endpoint that fails (circuit breaker, skipped dependent)
    job = make_job(
        "access",
        schedule={"rate": "10m"},
        endpoints=[
            {"id": "fetch", "url": f"{target.base_url}/inventory"},
            {"id": "flaky", "url": f"{target.base_url}/fail"},
            {"id": "after", "url": f"{target.base_url}/ok", "depends_on": ["flaky"]},
        ],
    )
    apply_jobs(store, [job], clock.now())
    # When discovery, planner, executor and summarizer run it, twice (the second reads history)
    tick_until(cloud, clock, store, ticks=2)
    # Then every function made calls, each inside the partitions its role allows
    assert {"discovery", "planner", "executor", "summarizer"} <= {c.function for c in calls}
    assert _outside_allowed(calls) == []
    # and the executor wrote nothing under a job (it only read there, and checked the epoch fence)
    writes = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
    executor = [c for c in calls if c.function == "executor"]
    assert any(
        c.action == "dynamodb:ConditionCheckItem" and c.partition_key.startswith("job#") for c in executor
    )
    assert not [c for c in executor if c.action in writes and c.partition_key.startswith("job#")]


def test_finalize_failure_stays_inside_its_partitions(cloud, store, clock, target, calls):  # noqa: F811
    # Given an executor that crashes, so the Catch sends the run to finalize-failure
    def crashing_executor(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("executor crashed")

    cloud.replace_handler("executor", crashing_executor)
    job = make_job(
        "crashy", schedule={"rate": "10m"}, endpoints=[{"id": "a", "url": f"{target.base_url}/ok"}]
    )
    apply_jobs(store, [job], clock.now())
    tick_until(cloud, clock, store, ticks=1)
    [run] = store.list_runs("crashy")[0]
    assert run.status == RunStatus.FAILED
    # Then finalize-failure recorded it, inside its partitions
    assert "finalize_failure" in {c.function for c in calls}
    assert _outside_allowed(calls) == []


def test_the_check_catches_a_call_outside_the_partitions() -> None:
    # A write under a job by the executor, or any call by an unattributed thread, is reported
    bad = [
        Call("executor", "dynamodb:PutItem", "job#orders-sync"),
        Call("discovery", "dynamodb:GetItem", "run#x"),
        Call("<unattributed handler thread>", "dynamodb:GetItem", "job#x"),
    ]
    fine = [Call("executor", "dynamodb:PutItem", "run#orders-sync#1"), Call(None, "dynamodb:Scan", "?")]
    assert _outside_allowed(bad + fine) == bad

"""The HTTP API: the api handler's cold-start import beside its re-based floor (boto3 + Powertools with
its event handler + pydantic), and the local API's requests per second beside calling the operations
in-process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.cold_start import FIRST, RUNS, handler_rows, measure

SECONDS_PER_MEASURE = 2.0
RUNS_SEEDED = 30


def _import_rows() -> list[tuple[str, str, str]]:
    """The api's floor is the common one plus Powertools' validating event handler: the issue has the
    api built on it (as the executor's floor adds the HTTP client it must import). The handler's ratio
    to the common floor is printed too, so the event handler's share stays visible."""
    medians = measure()  # the same samples and floor as bench.cold_start (built layers, CPU time)
    (floor, _, floor_count), (resolver, _, resolver_count) = medians["floor"], medians["floor + resolver"]
    counted = f" (instructions {resolver_count / floor_count:.3f}x)" if resolver_count and floor_count else ""
    total, _, total_count = medians["api" + FIRST]
    total_counted = f" (instructions {total_count / floor_count:.3f}x)" if total_count and floor_count else ""
    return [
        ("re-based floor: boto3 + Powertools + pydantic model (built layers)", f"{floor * 1000:.0f} ms", "-"),
        (
            f"api's floor: + APIGatewayHttpResolver(enable_validation=True), one route ({RUNS} runs)",
            f"{resolver * 1000:.0f} ms = {resolver / floor:.2f}x floor{counted}",
            "-",
        ),
        *handler_rows("api", medians, "floor + resolver"),
        (
            "api: import + first invocation / the floor without the event handler",
            f"{total * 1000:.0f} ms / {floor * 1000:.0f} ms = {total / floor:.2f}x{total_counted}",
            "-",
        ),
    ]


def _rate(call: Callable[[], Any]) -> float:
    call()  # warm: first-use costs are not throughput
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < SECONDS_PER_MEASURE:
        call()
        count += 1
    return count / elapsed


def _throughput_rows() -> list[tuple[str, str, str]]:
    import boto3
    import httpx
    from cronpilot.api.app import handle
    from cronpilot.api.local_server import LocalApiServer
    from cronpilot.clock import FixedClock
    from cronpilot.dal import schema
    from cronpilot.dal.store import Store
    from cronpilot.domain import operations as ops
    from cronpilot.domain.budget import RunBudget
    from cronpilot.domain.discovery import Discovery
    from cronpilot.local.moto_patches import serialize_dynamodb_writes
    from cronpilot.models.job import Job
    from cronpilot.models.run import RunRecord
    from moto import mock_aws

    class Starter:
        def start(self, run: RunRecord, budget: RunBudget) -> str:
            return "started"

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "bench")
    start = datetime(2026, 11, 22, 9, tzinfo=UTC)
    with mock_aws():
        undo = serialize_dynamodb_writes()
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(**schema.create_table_request("bench-api"))
            store = Store("bench-api", client)
            clock = FixedClock(start)
            job = Job.model_validate(
                {
                    "id": "bench-job",
                    "schedule": {"rate": "1m"},
                    "endpoints": [{"id": "a", "url": "https://x.test"}],
                }
            )
            ops.apply_job(store, job, clock.now())
            for minute in range(1, RUNS_SEEDED + 1):  # one claimed run, then skipped slots (overlap)
                clock.set(start + timedelta(minutes=minute))
                Discovery(store, Starter(), clock, owner=f"bench-{minute}").tick()  # type: ignore[arg-type]
            server = LocalApiServer(0, lambda event: handle(event, None, store=store, clock=clock))
            server.quiet = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                with httpx.Client(base_url=server.base_url) as http:
                    pairs = {
                        "GET /jobs/{id}": (
                            lambda: http.get("/jobs/bench-job").raise_for_status(),
                            lambda: ops.show_job(store, "bench-job").model_dump_json(),
                        ),
                        "GET /jobs/{id}/runs (20 runs)": (
                            lambda: http.get("/jobs/bench-job/runs").raise_for_status(),
                            lambda: ops.list_runs(store, "bench-job").model_dump_json(),
                        ),
                    }
                    rows = []
                    for label, (over_http, in_process) in pairs.items():
                        api_rate, direct_rate = _rate(over_http), _rate(in_process)
                        rows.append(
                            (
                                f"local API {label}: requests/s vs operations in-process",
                                f"{api_rate:.0f}/s vs {direct_rate:.0f}/s = "
                                f"{direct_rate / api_rate:.2f}x overhead",
                                "<= 2x",
                            )
                        )
                    return rows
            finally:
                server.shutdown()
                server.server_close()
        finally:
            undo()


def run() -> list[tuple[str, str, str]]:
    return _import_rows() + _throughput_rows()

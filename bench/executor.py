"""Executor: the SSRF-safe client's per-call cost beside plain httpx, and a 50-endpoint run's makespan.

1. Per-call overhead: SafeHttpClient.send against httpx.Client.get to the same loopback server,
   interleaved call by call so both see the same machine load. The demo target closes every
   connection (HTTP/1.0), so both sides connect per call, as the executor does in Lambda (one call
   per invocation: nothing to pool).
2. Makespan: one job with 50 independent endpoints of 200 ms each, max_parallel 10, run in local mode
   through the real ASL interpreter and handlers. Ideal: 50 / 10 x 200 ms = 1 s. Measured from the
   first step's start to the last step's end (the step results' own timestamps).
"""

from __future__ import annotations

import logging
import statistics
import time
from datetime import UTC, datetime
from ipaddress import ip_network

import httpx
from cronpilot.clock import AcceleratedClock
from cronpilot.local.cloud import LocalCloud
from cronpilot.local.demo_server import DemoServer
from cronpilot.local.runner import apply_jobs, tick_until
from cronpilot.models.job import Job
from cronpilot.runtime import get_runtime
from cronpilot.safehttp import EgressPolicy, RequestSpec, SafeHttpClient

CALLS = 300
WARMUP = 20
ENDPOINTS = 50
ENDPOINT_MS = 200
MAX_PARALLEL = 10
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _overhead(target: DemoServer) -> tuple[float, float]:
    """Median seconds per call: (safe client, plain httpx)."""
    url = f"{target.base_url}/ok"
    policy = EgressPolicy(allowed_cidrs=(ip_network("127.0.0.0/8"),), allowed_ports=frozenset({target.port}))
    safe = SafeHttpClient(policy)
    spec = RequestSpec("GET", url, max_attempts=1)
    safe_times: list[float] = []
    plain_times: list[float] = []
    with httpx.Client(trust_env=False, timeout=10) as plain:
        for n in range(WARMUP + CALLS):
            for client_is_safe in (n % 2 == 0, n % 2 == 1):  # alternate which goes first
                started = time.perf_counter()
                ok = safe.send(spec).ok if client_is_safe else plain.get(url).status_code == 200
                elapsed = time.perf_counter() - started
                if not ok:
                    raise RuntimeError("the loopback target did not answer 200")
                if n >= WARMUP:
                    (safe_times if client_is_safe else plain_times).append(elapsed)
    return statistics.median(safe_times), statistics.median(plain_times)


def _job(target: DemoServer) -> Job:
    return Job.model_validate(
        {
            "id": "bench-fanout",
            "schedule": {"rate": "1h"},
            "guardrails": {"max_steps": ENDPOINTS, "max_parallel": MAX_PARALLEL},
            "endpoints": [
                {"id": f"e{n:02d}", "url": f"{target.base_url}/slow?ms={ENDPOINT_MS}"}
                for n in range(ENDPOINTS)
            ],
        }
    )


def _makespan(target: DemoServer) -> tuple[float, float, int]:
    """(steps makespan, whole run from tick to idle, succeeded steps)."""
    clock = AcceleratedClock(START)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    with LocalCloud(
        clock, egress_allowed_cidrs="127.0.0.0/8", egress_allowed_ports=f"80,443,{target.port}"
    ) as cloud:
        store = get_runtime().store
        apply_jobs(store, [_job(target)], clock.now())
        started = time.perf_counter()
        tick_until(cloud, clock, store, ticks=1)
        whole = time.perf_counter() - started
        [run] = store.list_runs("bench-fanout")[0]
        results = list(store.get_step_results(run.run_id).values())
    starts = [r.started_at for r in results if r.started_at]
    ends = [r.finished_at for r in results if r.finished_at]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan")
    return span, whole, sum(r.status == "succeeded" for r in results)


def run() -> list[tuple[str, str, str]]:
    with DemoServer() as target:
        safe, plain = _overhead(target)
        span, whole, succeeded = _makespan(target)
    ideal = ENDPOINTS / MAX_PARALLEL * ENDPOINT_MS / 1000
    return [
        (
            f"per call, SafeHttpClient / plain httpx (median of {CALLS})",
            f"{safe * 1000:.2f} / {plain * 1000:.2f} ms = {safe / plain:.2f}x",
            "<= 1.25x",
        ),
        (
            f"{ENDPOINTS} endpoints x {ENDPOINT_MS} ms, max_parallel {MAX_PARALLEL}: steps makespan",
            f"{span:.2f}s = {span / ideal:.2f}x ideal {ideal:.0f}s ({succeeded}/{ENDPOINTS} ok)",
            "<= 2x",
        ),
        ("same run, tick to idle (plan, waves, summarize)", f"{whole:.2f}s", "-"),
    ]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))

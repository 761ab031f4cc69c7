"""Step outputs and assertions: what templating, extraction and `expect:` add to one step's call.

Two endpoints hit the same loopback route: a plain one, and one whose URL, header and JSON body take
values from an earlier step, that extracts two values and checks status, a JMESPath, a substring and a
latency. Each measured step builds its request, sends it and judges the response (what the executor
does around the HTTP call). The ratio is (plain + the median paired difference) / plain: the machine
is shared, and a paired difference cancels the load that hits both calls of a pair.
"""

from __future__ import annotations

import statistics
import time
from ipaddress import ip_network

from cronpilot.domain.step_calls import build_request, judge
from cronpilot.local.demo_server import DemoServer
from cronpilot.models.job import Job, SecretRef
from cronpilot.models.run import StepResult, StepStatus
from cronpilot.safehttp import EgressPolicy, SafeHttpClient

CALLS = 300
WARMUP = 20


def _job(base_url: str) -> Job:
    return Job.model_validate(
        {
            "id": "bench-templates",
            "schedule": {"rate": "1h"},
            "endpoints": [
                {
                    "id": "login",
                    "url": f"{base_url}/inventory",
                    "extract": {"count": "items", "token": "token"},
                },
                {"id": "plain", "method": "POST", "url": f"{base_url}/ok?page=1", "body": {"page": 1}},
                {
                    "id": "templated",
                    "method": "POST",
                    "url": f"{base_url}/ok?page={{{{ steps.login.count }}}}",
                    "headers": {"Authorization": "Bearer {{ steps.login.token }}"},
                    "body": {"page": "{{ steps.login.count }}", "note": "after {{ steps.login.token }}"},
                    "depends_on": ["login"],
                    "extract": {"ok": "ok", "calls": {"path": "calls", "show": True}},
                    "expect": {
                        "status": [200, "2xx"],
                        "json": {"ok": True},
                        "contains": '"ok"',
                        "max_latency": "5s",
                    },
                },
            ],
        }
    )


def _no_secrets(ref: SecretRef) -> str:
    raise AssertionError("the benchmark job has no secret references")


def _per_step(target: DemoServer) -> tuple[float, float, float]:
    """(median seconds per plain step, median of the paired differences templated - plain, and the
    median in-process cost of building and judging alone). Pairs run back to back, in alternating
    order, so load from other processes on a shared machine hits both sides of a pair alike."""
    job = _job(target.base_url)
    policy = EgressPolicy(allowed_cidrs=(ip_network("127.0.0.0/8"),), allowed_ports=frozenset({target.port}))
    client = SafeHttpClient(policy)
    login = StepResult(
        step_id="login",
        endpoint_id="login",
        status=StepStatus.SUCCEEDED,
        outputs={"count": 42, "token": "tok-0123456789"},
    )
    results = {"login": login}
    plain_times: list[float] = []
    differences: list[float] = []
    local_costs: list[float] = []
    for n in range(WARMUP + CALLS):
        pair: dict[bool, float] = {}
        for templated in (n % 2 == 0, n % 2 == 1):  # alternate which goes first
            endpoint = job.endpoint("templated" if templated else "plain")
            started = time.perf_counter()
            spec = build_request(job, endpoint, f"bench-{n}", _no_secrets, results)
            built = time.perf_counter()
            outcome = client.send(spec)
            sent = time.perf_counter()
            verdict = judge(endpoint, outcome)
            finished = time.perf_counter()
            if verdict.status != StepStatus.SUCCEEDED:
                raise RuntimeError(f"the benchmark step failed: {verdict.error}")
            pair[templated] = finished - started
            if templated:
                local_costs.append((built - started) + (finished - sent))
        if n >= WARMUP:
            plain_times.append(pair[False])
            differences.append(pair[True] - pair[False])
    return statistics.median(plain_times), statistics.median(differences), statistics.median(local_costs)


def run() -> list[tuple[str, str, str]]:
    with DemoServer() as target:
        plain, extra, local = _per_step(target)
    return [
        (
            f"per step, templates + extract + expect vs plain, same loopback route ({CALLS} pairs)",
            f"{(plain + extra) * 1000:.2f} / {plain * 1000:.2f} ms = {(plain + extra) / plain:.2f}x",
            "<= 1.1x",
        ),
        ("  of which building the request and judging the response", f"{local * 1e6:.0f} us", "-"),
    ]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))

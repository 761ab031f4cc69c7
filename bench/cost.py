"""Cost per million runs of docs/deploy.md's worked example (2 waves, 4 steps, no LLM), on the
Standard and on the Express state machine. Every line is computed: state transitions and Lambda
invocations from the ASL file, memory, architecture and log levels from the synthesized template,
DynamoDB units from the worked example run once in local mode with every request metered.

The example then runs once more, warm, to measure what the model assumes per invocation: each
handler's CPU time outside the AWS calls (its thread's CPU time less the time moto spends answering),
and the bytes it logs (its INFO line and the EMF metrics document)."""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from cronpilot_infra.cost import (  # noqa: E402 - infra/ is not a package
    DynamoUsage,
    WorkedExample,
    cost_per_million_runs,
    dynamo_usage_per_run,
    total,
)

GOAL_EXPRESS_USD = 50.0


def synthesized_template() -> dict[str, Any]:
    """The default stack (cdk.json's context) as `cdk synth` writes it; the layers' contents do not
    change the template, so empty layer folders stand in for `make build`."""
    from app import build_app
    from aws_cdk import App

    with tempfile.TemporaryDirectory(prefix="cronpilot-cost-") as name:
        tmp = Path(name)
        for layer in ("deps", "cronpilot"):
            (tmp / "layers" / layer / "python").mkdir(parents=True)
        context = json.loads((ROOT / "cdk.json").read_text())["context"]
        app = build_app(
            App(outdir=str(tmp / "cdk.out"), context={**context, "layers_dir": str(tmp / "layers")})
        )
        assembly = app.synth()
        (stack,) = assembly.stacks
        template: dict[str, Any] = stack.template
        return template


@dataclass
class PerInvocation:
    """What local mode measured per handler over one warm run of the worked example."""

    invocations: collections.Counter[str] = field(default_factory=collections.Counter)
    cpu_seconds: collections.Counter[str] = field(default_factory=collections.Counter)
    log_bytes: collections.Counter[str] = field(default_factory=collections.Counter)

    def mean_cpu(self, name: str) -> float:
        return self.cpu_seconds[name] / max(1, self.invocations[name])

    def mean_log_bytes(self, name: str) -> float:
        return self.log_bytes[name] / max(1, self.invocations[name])


# Local mode lets the executor reach its loopback target, and says so on every call; a deployment of
# the worked example has no private networks to allow, so that line is not the example's.
_LOCAL_ONLY_LINES = ("private networks reachable by the executor",)


class _CountingStream:
    """stdout for the handlers: each complete line is counted for the function writing it."""

    def __init__(self, target: Any, counts: collections.Counter[str]) -> None:
        self.target, self.counts = target, counts
        self.pending: dict[str, str] = collections.defaultdict(str)
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        from cronpilot.local.moto_patches import running_function

        name = running_function.get().removeprefix("cronpilot-local-").replace("-", "_")
        with self.lock:
            buffered = self.pending[name] + text
            *lines, self.pending[name] = buffered.split("\n")
            for line in lines:
                if line and not any(marker in line for marker in _LOCAL_ONLY_LINES):
                    self.counts[name] += len(line.encode()) + 1
        return len(text)

    def flush(self) -> None:
        pass


@contextmanager
def measuring(cloud: Any) -> Iterator[PerInvocation]:
    """Measure every handler invocation of the cloud while the block runs."""
    from cronpilot.observability import logger, metrics
    from moto.core.botocore_stubber import BotocoreStubber

    measured = PerInvocation()
    local = threading.local()  # per thread: moto's CPU seconds, and whether a moto call is running
    answer = BotocoreStubber.__call__

    def timed_answer(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(local, "in_moto", False):
            return answer(self, *args, **kwargs)
        local.in_moto, started = True, time.thread_time()
        try:
            return answer(self, *args, **kwargs)
        finally:
            local.in_moto = False
            local.moto_seconds = getattr(local, "moto_seconds", 0.0) + time.thread_time() - started

    run_handler = cloud._run_handler

    def timed_handler(name: str, body: Any, headers: dict[str, str]) -> bytes:
        # A handler is invoked from inside moto (Step Functions calls Lambda): its own AWS calls are
        # moto's answers within it.
        outer = getattr(local, "in_moto", False)
        local.in_moto = False
        moto_before, started = getattr(local, "moto_seconds", 0.0), time.thread_time()
        try:
            return run_handler(name, body, headers)  # type: ignore[no-any-return]
        finally:
            spent = time.thread_time() - started - (getattr(local, "moto_seconds", 0.0) - moto_before)
            local.in_moto = outer
            key = name.removeprefix("cronpilot-local-").replace("-", "_")
            measured.invocations[key] += 1
            measured.cpu_seconds[key] += spent

    stream = _CountingStream(sys.stdout, measured.log_bytes)
    handler = logger.registered_handler
    previous_stream, previous_stdout, previous_level = handler.stream, sys.stdout, logger.log_level  # type: ignore[attr-defined]
    BotocoreStubber.__call__ = timed_answer  # type: ignore[method-assign]
    cloud._run_handler = timed_handler
    handler.setStream(stream)  # type: ignore[attr-defined]
    sys.stdout = stream  # type: ignore[assignment]  # Powertools prints the EMF document
    # As deployed: INFO lines (local mode logs errors only) and the EMF documents (local mode prints none)
    logger.setLevel("INFO")
    previous_namespace, metrics.namespace = metrics.namespace, "cronpilot"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
    try:
        yield measured
    finally:
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        metrics.namespace = previous_namespace
        logger.setLevel(previous_level)
        sys.stdout = previous_stdout
        handler.setStream(previous_stream)  # type: ignore[attr-defined]
        cloud._run_handler = run_handler
        BotocoreStubber.__call__ = answer  # type: ignore[method-assign]


def counted_dynamo_usage(example: WorkedExample) -> tuple[DynamoUsage, PerInvocation]:
    """The worked example run once in local mode; the tick's per-shard due queries are left out
    (paid per tick, not per run). Then once more, warm, measured per invocation."""
    from datetime import UTC, datetime

    from cronpilot.clock import AcceleratedClock
    from cronpilot.local.cloud import LocalCloud
    from cronpilot.local.demo_server import DemoServer
    from cronpilot.local.runner import apply_jobs, next_tick_time
    from cronpilot.models.job import Job
    from cronpilot.runtime import get_runtime

    with DemoServer() as target:
        clock = AcceleratedClock(datetime(2026, 11, 22, 9, tzinfo=UTC))
        with LocalCloud(
            clock,
            egress_allowed_cidrs="127.0.0.0/8",
            egress_allowed_ports=f"80,443,{target.port}",
            meter=True,
        ) as cloud:
            url = f"{target.base_url}/inventory"
            job = Job.model_validate(
                {
                    "id": "worked",
                    "schedule": {"rate": "10m"},
                    "endpoints": [
                        {"id": "orders", "url": url},
                        {"id": "stock", "url": url},
                        {"id": "invoice", "url": url, "depends_on": ["orders"]},
                        {"id": "reorder", "url": url, "depends_on": ["stock"]},
                    ],
                }
            )
            store = get_runtime().store
            apply_jobs(store, [job], clock.now())
            clock.jump_to(next_tick_time(store, clock.now()))
            meter = cloud.dynamo_meter
            assert meter is not None
            meter.clear()
            cloud.tick()
            cloud.wait_idle()
            calls = [
                c
                for c in meter.calls
                if c.function and not (c.function.endswith("discovery") and c.operation == "query")
            ]
            clock.jump_to(next_tick_time(store, clock.now()))
            with measuring(cloud) as measured:
                cloud.tick()
                cloud.wait_idle()
    usage = DynamoUsage(
        write_units=sum(c.write_units + c.index_write_units for c in calls),
        read_units=sum(c.read_units for c in calls),
    )
    return usage, measured


def run() -> list[tuple[str, str, str]]:
    example = WorkedExample()
    template = synthesized_template()
    counted, measured = counted_dynamo_usage(example)
    modelled = dynamo_usage_per_run(example.waves, example.steps)
    tasks = ("planner", "executor", "summarizer")
    rows = [
        (
            "DynamoDB per run: counted in local mode / cost model",
            f"{counted.write_units:g} WRU, {counted.read_units:g} RRU / "
            f"{modelled.write_units:g} WRU, {modelled.read_units:g} RRU",
            "equal",
        ),
        (
            "CPU per warm invocation outside AWS calls, 1 vCPU: measured / assumed (planner, executor, "
            "summarizer)",
            ", ".join(
                f"{measured.mean_cpu(n) * 1000:.0f} / {example.cpu_seconds[n] * 1000:.0f} ms" for n in tasks
            ),
            "measured <= assumed",
        ),
        (
            "log bytes per invocation, handler line + EMF: measured / modelled (planner, executor, "
            "summarizer)",
            ", ".join(
                f"{measured.mean_log_bytes(n):.0f} / "
                f"{example.application_log_bytes[n] + example.metrics_log_bytes[n]}"
                for n in tasks
            ),
            "modelled >= measured",
        ),
    ]
    for kind in ("standard", "express"):
        lines = cost_per_million_runs(kind, template, counted, example)
        for line in lines:
            rows.append((f"{kind}: {line.item}", f"{line.quantity}: ${line.usd_per_million_runs:.2f}", "-"))
        goal = f"<= ${GOAL_EXPRESS_USD:.0f}" if kind == "express" else "-"
        rows.append((f"{kind}: cost per million runs (2 waves, 4 steps)", f"${total(lines):.2f}", goal))
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))

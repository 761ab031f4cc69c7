"""Cold-start import of each handler from the built artifact layout, against the re-based floor.

The floor is what the chosen stack must import on any cold start: boto3, Powertools (Logger, Tracer and
Metrics created, as every handler does) and pydantic with one contract-like model; the executor's floor
adds httpx/httpcore (it calls out). Both sides are measured the same way: a fresh `python -I -S -B`
whose sys.path is exactly Lambda's (function asset, cronpilot layer python/, dependency layer python/,
then the standard library), from layers built by infra/build_layers.py for this machine with the
bytecode they ship (`-B`: /opt is read-only on Lambda, nothing else gets cached). The figure is CPU
time, which keeps the other tenants of a shared machine out of it; each sample times the floor and then
what the handler adds in the same interpreter (see `measure`), and samples are taken in rounds over
every handler so a drifting load weighs on them alike.

Each handler is measured twice: its import, and its import plus what its normal first invocation adds
lazily (FIRST_INVOCATION: the package modules it imports and the deferred models it builds, both kept
true by a test), so no cost is hidden by deferring it to the first request. The floor is loaded the
way the handlers load their modules (collection paused, cronpilot.coldstart), so the ratio compares
like with like. Where valgrind is installed, every script's instruction count is printed beside its
CPU ratio: CPU time still moves a little with a shared machine's load, instructions do not. Those
counts stop where the CPU figure stops, before the interpreter's teardown (a Lambda never pays it on
a cold start, and its final collection would bill every object loaded a second time).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))

import build_layers  # noqa: E402 - infra/ is not a package

HANDLERS = ("discovery", "executor", "planner", "summarizer", "finalize_failure")
# bench.api prints the api handler's row and its reference; they are sampled in the same rounds as the
# other handlers (one layer build, one floor), so the two suites never disagree on the floor.
API_HANDLERS = ("api",)
CALLS_OUT = {"executor"}  # handlers whose floor includes the HTTP client
# What each handler's normal invocation imports beyond `import handler` (the composition root builds
# its parts lazily: the executor's HTTP client and step executor, discovery's starter, ...), as the
# sample events drive them (events/, deterministic pilot). An import time that left these out would
# only move their cost into the first request, so every handler is also measured importing them:
# tests/integration/test_cold_start_paths.py keeps these lists equal to what the invocations import.
FIRST_INVOCATION: dict[str, tuple[str, ...]] = {
    "discovery": ("cronpilot.dal.executions", "cronpilot.dal.notifications"),
    "executor": (
        "cronpilot.dag",
        "cronpilot.dal.health",
        "cronpilot.domain.assertions",
        "cronpilot.domain.budget",
        "cronpilot.domain.circuit",
        "cronpilot.domain.execution",
        "cronpilot.domain.step_calls",
        "cronpilot.domain.templating",
        "cronpilot.models.health",
        "cronpilot.safehttp",
        "cronpilot.safehttp.body",
        "cronpilot.safehttp.client",
        "cronpilot.safehttp.policy",
        "cronpilot.safehttp.signing",
        "cronpilot.safehttp.transport",
    ),
    "planner": (
        "cronpilot.ai",
        "cronpilot.ai.client",
        "cronpilot.ai.pilot",
        "cronpilot.ai.pricing",
        "cronpilot.dal.health",
    ),
    "summarizer": (
        "cronpilot.ai",
        "cronpilot.ai.client",
        "cronpilot.ai.pilot",
        "cronpilot.ai.pricing",
        "cronpilot.dal.notifications",
    ),
    "finalize_failure": ("cronpilot.dal.notifications",),
    "api": ("cronpilot.dag",),
}
# The models each handler's first invocation builds: every package model defers building its
# validator until first used (defer_build), so a handler pays only for the models its invocation
# validates, and pays for them there. The same test keeps these lists true.
FIRST_INVOCATION_MODELS: dict[str, tuple[str, ...]] = {
    "discovery": (
        "cronpilot.models.job.Job",
        "cronpilot.models.run.RunRecord",
        "cronpilot.models.run.ScheduledEvent",
        "cronpilot.models.run.TokenUsage",
    ),
    "executor": (
        "cronpilot.models.job.Job",
        "cronpilot.models.run.StepOutcome",
        "cronpilot.models.run.StepResult",
        "cronpilot.models.run.StepTask",
    ),
    "planner": (
        "cronpilot.ai.pricing.Price",
        "cronpilot.models.job.Job",
        "cronpilot.models.run.DecisionInputs",
        "cronpilot.models.run.PlanOutput",
        "cronpilot.models.run.PlanRecord",
        "cronpilot.models.run.PlanStep",
        "cronpilot.models.run.RunRecord",
        "cronpilot.models.run.RunRef",
        "cronpilot.models.run.TokenUsage",
    ),
    "summarizer": (
        "cronpilot.ai.pricing.Price",
        "cronpilot.models.job.Job",
        "cronpilot.models.run.DecisionInputs",
        "cronpilot.models.run.NextRunDecision",
        "cronpilot.models.run.RunRecord",
        "cronpilot.models.run.RunRef",
        "cronpilot.models.run.StepObservation",
        "cronpilot.models.run.StepResult",
        "cronpilot.models.run.TokenUsage",
    ),
    "finalize_failure": (
        "cronpilot.models.job.Job",
        "cronpilot.models.run.FailureEvent",
        "cronpilot.models.run.NextRunDecision",
        "cronpilot.models.run.RunRecord",
    ),
    "api": (
        "cronpilot.models.job.Job",
        "cronpilot.models.operations.JobDetail",
        "cronpilot.models.operations.Lease",
        "cronpilot.models.operations.NextRun",
    ),
}
FIRST = " + first invocation"
RUNS = 9
GOAL = 1.15
# As the deployed functions run (infra/cronpilot_infra/functions.py), inside Lambda (the Tracer is on).
ENV = {
    "PATH": "/usr/bin:/bin",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "cronpilot-bench",
    "TABLE_NAME": "bench",
    "POWERTOOLS_SERVICE_NAME": "cronpilot-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "cronpilot",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "PYDANTIC_DISABLE_PLUGINS": "1",
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",  # Lambda's: cronpilot.coldstart freezes what init built
}
_PREAMBLE = "import sys, time\nsys.path[:] = {path!r} + sys.path\n_t = time.process_time()\n"
# A sample loads the floor, then the handler: the handler's CPU is the increment in the same process.
_SPLIT = "\n_floor = time.process_time() - _t\n_t = time.process_time()\n"
_REPORT = "\nprint('anthropic' in sys.modules)\nprint(_floor, time.process_time() - _t)\n"
# The field types the handlers' contracts use: pydantic builds some validators on first use of a type.
FLOOR = """
import gc
gc.disable()
import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
Logger(); Tracer(); Metrics()
from datetime import datetime
from enum import StrEnum
from pydantic import BaseModel, Field
class S(StrEnum):
    A = 'a'
class Inner(BaseModel):
    ids: list[str] = Field(default_factory=list)
class M(BaseModel):
    a: int = Field(default=0, ge=0)
    at: datetime | None = None
    s: S = S.A
    inner: Inner | None = None
    tags: dict[str, int] = Field(default_factory=dict)
"""
LOADED = "gc.freeze()\ngc.enable()\n"  # as cronpilot.coldstart.loaded() on Lambda
FLOOR_HTTP = FLOOR + "import httpcore, httpx\n"
# The api's floor (bench.api): issue 15 has the api built on Powertools' event handler with validation
# (it imports every resolver and its OpenAPI parameter machinery), so that is part of what it must
# import, as the HTTP client is for the executor; one route.
RESOLVER = FLOOR + (
    "from typing import Annotated\n"
    "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
    "from aws_lambda_powertools.event_handler.openapi.params import Query\n"
    "app = APIGatewayHttpResolver(enable_validation=True)\n"
    "@app.get('/x')\n"
    "def x(limit: Annotated[int, Query(ge=1)] = 1) -> M:\n    return M()\n"
)


def _instructions(script: str, path: list[str]) -> int:
    """Instructions the script executes (valgrind's cachegrind, no cache simulation): unlike CPU time,
    the same on a loaded machine as on an idle one, so a change's effect shows through the noise."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            _PREAMBLE.format(path=path) + script + "import os\nos._exit(0)\n",  # no teardown
        ],
        env={**ENV, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def _sample(floor: str, script: str, path: list[str]) -> tuple[float, float, bool]:
    """CPU seconds of the floor, then of the handler's script on top of it (what the handler adds),
    and whether anthropic got imported, from one fresh interpreter."""
    source = _PREAMBLE.format(path=path) + floor + _SPLIT + script + _REPORT
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", source],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    anthropic, seconds = done.stdout.strip().splitlines()[-2:]
    floor_seconds, added = seconds.split()
    return float(floor_seconds), float(added), anthropic == "True"


def floor_of(name: str) -> str:
    return "floor + httpx" if name in CALLS_OUT else "floor + resolver" if name in API_HANDLERS else "floor"


def _layout(tmp: Path, layers: dict[str, Path]) -> dict[str, list[str]]:
    """Each function's sys.path on Lambda: its asset (handler.py alone), then the layers."""
    layer_paths = [str(layers["cronpilot"] / "python"), str(layers["deps"] / "python")]
    paths = {"floor": layer_paths, "floor + httpx": layer_paths, "floor + resolver": layer_paths}
    for name in HANDLERS + API_HANDLERS:
        asset = tmp / "functions" / name
        asset.mkdir(parents=True)
        (asset / "handler.py").write_bytes((ROOT / "functions" / name / "handler.py").read_bytes())
        paths[name] = [str(asset), *layer_paths]
    return paths


def first_invocation_script(name: str) -> str:
    imports = "".join(f"import {module}\n" for module in FIRST_INVOCATION[name])
    builds = "".join(
        f"from {module} import {model}\n{model}.model_rebuild()\n"
        for module, model in (path.rsplit(".", 1) for path in FIRST_INVOCATION_MODELS[name])
    )
    return "import handler\n" + imports + builds


def counting_instructions() -> bool:
    """Instruction counts when valgrind is installed (~2 min more); COLD_START_INSTRUCTIONS=0 skips them."""
    return shutil.which("valgrind") is not None and os.environ.get("COLD_START_INSTRUCTIONS") != "0"


@functools.cache
def measure(runs: int = RUNS) -> dict[str, tuple[float, bool, int | None]]:
    """CPU seconds, whether anthropic got imported and the instruction count (None without valgrind)
    of each floor and each handler script, from the built layers. A floor's seconds are the median of
    every sample that loaded it; a handler's are its floor's median plus the median of what it added.

    Why paired: the floor's own CPU moves by up to ±20% between identical fresh interpreters on a shared
    machine (430-670 ms measured here), while what a handler adds on top of it moves by a few ms. Timing
    the two in separate interpreters put that spread in every ratio (±0.06 with 9 samples); timing them
    in one leaves it only in the denominator. Instruction counts need no pairing: each script is counted
    alone.
    Cached: `make bench` runs this suite and bench.api in one process, and both read these samples."""
    with tempfile.TemporaryDirectory(prefix="cronpilot-cold-") as name:
        tmp = Path(name)
        paths = _layout(tmp, build_layers.build(tmp / "layers", host=True))
        floors = {"floor": FLOOR, "floor + httpx": FLOOR_HTTP, "floor + resolver": RESOLVER}
        floors = {key: script + LOADED for key, script in floors.items()}
        scripts = {
            **dict.fromkeys(HANDLERS + API_HANDLERS, "import handler\n"),
            **{name + FIRST: first_invocation_script(name) for name in HANDLERS + API_HANDLERS},
        }
        floor_samples: dict[str, list[float]] = {key: [] for key in floors}
        added: dict[str, list[float]] = {key: [] for key in scripts}
        anthropic: dict[str, bool] = dict.fromkeys(floors, False)

        def sample(key: str) -> None:
            name = key.removesuffix(FIRST)
            base, extra, anthropic[key] = _sample(floors[floor_of(name)], scripts[key], paths[name])
            floor_samples[floor_of(name)].append(base)
            added[key].append(extra)

        for key in scripts:
            sample(key)  # warm the page cache (the layers ship bytecode); not kept
        for values in (*floor_samples.values(), *added.values()):
            values.clear()
        for _ in range(runs):
            for key in scripts:
                sample(key)
        counts: dict[str, int | None] = dict.fromkeys((*floors, *scripts))
        if counting_instructions():
            every = {**floors, **scripts}
            with ThreadPoolExecutor(max_workers=2) as pool:
                found = pool.map(lambda key: _instructions(every[key], paths[key.removesuffix(FIRST)]), every)
                counts.update(zip(every, found, strict=True))
    medians = {key: statistics.median(values) for key, values in floor_samples.items()}
    result = {key: (medians[key], False, counts[key]) for key in floors}
    for key, values in added.items():
        total = medians[floor_of(key.removesuffix(FIRST))] + statistics.median(values)
        result[key] = (total, anthropic[key], counts[key])
    return result


def run() -> list[tuple[str, str, str]]:
    medians = measure()
    floor, floor_http = medians["floor"][0], medians["floor + httpx"][0]
    rows = [
        ("re-based floor: boto3 + Powertools + pydantic (built layers)", f"{floor * 1000:.0f} ms", "-"),
        ("re-based floor + httpx/httpcore (the executor's)", f"{floor_http * 1000:.0f} ms", "-"),
    ]
    for name in HANDLERS:
        rows += handler_rows(name, medians, floor_of(name))
    return rows


def handler_rows(
    name: str, medians: dict[str, tuple[float, bool, int | None]], floor_key: str
) -> list[tuple[str, str, str]]:
    """The handler's import, and its import with what its first invocation imports (the honest total),
    each as CPU time and, when counted, instructions against the floor's."""
    base, _, base_count = medians[floor_key]
    rows = []
    for key, what in (
        (name, "handler import"),
        (name + FIRST, "import + first invocation's imports and model builds"),
    ):
        seconds, imported_anthropic, count = medians[key]
        instructions = f" (instructions {count / base_count:.3f}x)" if count and base_count else ""
        rows.append(
            (
                f"{name}: {what} / re-based floor (medians of {RUNS}, paired)",
                f"{seconds * 1000:.0f} ms / {base * 1000:.0f} ms = {seconds / base:.2f}x{instructions}"
                f"{', anthropic imported' if imported_anthropic else ''}",
                f"<= {GOAL}x",
            )
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))

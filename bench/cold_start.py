"""Cold-start import time of each handler module in a fresh process, beside the stack's floor."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 9
FLOOR = (
    "import boto3\nfrom aws_lambda_powertools import Logger, Metrics, Tracer\nLogger(); Tracer(); Metrics()\n"
)
# Informative references (no goal): the third-party cost a handler cannot avoid, measured the same way.
# Every handler validates with pydantic models (BaseModel, Field constraints); the executor also calls
# out through httpx on httpcore (safehttp pins connections at httpcore's network-backend level).
# httpx's CLI module is blocked as in the handler rows (the Lambda layer has no click/rich).
# The reference model uses the field types the handlers' contracts use: several pydantic schema builders
# load on first use of a type (list, datetime, enum, nested model), not at `import pydantic`.
_PYDANTIC = (
    "from datetime import datetime\nfrom enum import StrEnum\n"
    "from pydantic import BaseModel, Field\n"
    "class S(StrEnum):\n    A = 'a'\n"
    "class Inner(BaseModel):\n    ids: list[str] = Field(default_factory=list)\n"
    "class M(BaseModel):\n    a: int = Field(default=0, ge=0)\n    at: datetime | None = None\n"
    "    s: S = S.A\n    inner: Inner | None = None\n    tags: dict[str, int] = Field(default_factory=dict)\n"
)
REFERENCES = (
    ("reference: floor + pydantic (import + one contract-like model)", FLOOR + _PYDANTIC),
    (
        "reference: floor + pydantic + httpx/httpcore",
        FLOOR + "import sys\nsys.modules['httpx._main'] = None\n" + _PYDANTIC + "import httpcore, httpx\n",
    ),
)


def _handler_path(name: str) -> Path:
    return ROOT / "functions" / name / "handler.py"


def _handler_script(name: str) -> str:
    return (
        "import importlib.util, sys\n"
        # The Lambda layer has no click/rich: make httpx's optional CLI import fail as it does there.
        "sys.modules['httpx._main'] = None\n"
        f"spec = importlib.util.spec_from_file_location('handler', r'{_handler_path(name)}')\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print('anthropic' in sys.modules)\n"
    )


def _environment(bytecode_dir: str) -> dict[str, str]:
    env = {
        **os.environ,
        "TABLE_NAME": "bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        # As the deployed functions run (infra/cronpilot_infra/functions.py).
        "PYDANTIC_DISABLE_PLUGINS": "1",
        # The layers ship compiled bytecode; a shell with PYTHONDONTWRITEBYTECODE would otherwise make
        # every sample compile every module from source, which no Lambda cold start does.
        "PYTHONPYCACHEPREFIX": bytecode_dir,
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _sample(script: str, env: dict[str, str]) -> tuple[float, str]:
    """CPU seconds from the first import to the end of the script, in a fresh interpreter. Imports are
    CPU-bound; CPU time keeps other tenants of a shared machine out of the figure, wall time does not."""
    timer = "import time; _t = time.process_time()\n"
    report = "\nprint(time.process_time() - _t)\n"
    done = subprocess.run(
        [sys.executable, "-c", timer + script + report], env=env, capture_output=True, text=True, check=True
    )
    lines = done.stdout.strip().splitlines()
    return float(lines[-1]), (lines[0] if len(lines) > 1 else "")


def _medians(scripts: dict[str, str]) -> dict[str, tuple[float, str]]:
    """Median per script. Samples are taken in rounds over every script, so the load of a shared
    machine drifting during the run weighs on the floor and the handlers alike."""
    with tempfile.TemporaryDirectory(prefix="cronpilot-pyc-") as bytecode_dir:
        env = _environment(bytecode_dir)
        for script in scripts.values():
            _sample(script, env)  # the warm-up writes the bytecode
        samples: dict[str, list[float]] = {name: [] for name in scripts}
        outputs: dict[str, str] = {}
        for _ in range(RUNS):
            for name, script in scripts.items():
                seconds, outputs[name] = _sample(script, env)
                samples[name].append(seconds)
    return {name: (statistics.median(values), outputs[name]) for name, values in samples.items()}


def run() -> list[tuple[str, str, str]]:
    handlers = ("discovery", "executor", "planner", "summarizer", "finalize_failure")
    scripts = {"floor": FLOOR, **dict(REFERENCES), **{name: _handler_script(name) for name in handlers}}
    medians = _medians(scripts)
    floor = medians["floor"][0]
    rows = [("floor: boto3 + Powertools Logger/Tracer/Metrics", f"{floor * 1000:.0f} ms", "-")]
    for label, _ in REFERENCES:
        seconds = medians[label][0]
        rows.append(
            (f"{label} (median of {RUNS})", f"{seconds * 1000:.0f} ms = {seconds / floor:.2f}x floor", "-")
        )
    for name in handlers:
        seconds, imported_anthropic = medians[name]
        goal = "<= 1.3x floor, no anthropic" if name in ("discovery", "executor") else "-"
        rows.append(
            (
                f"{name} import (median of {RUNS})",
                f"{seconds * 1000:.0f} ms = {seconds / floor:.2f}x floor, "
                f"anthropic imported: {imported_anthropic}",
                goal,
            )
        )
    return rows

"""Cold-start import time of each handler module in a fresh process, beside the stack's floor."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5
FLOOR = (
    "import boto3\nfrom aws_lambda_powertools import Logger, Metrics, Tracer\nLogger(); Tracer(); Metrics()\n"
)
# Informative references (no goal): the third-party cost a handler cannot avoid, measured the same way.
# Every handler validates with pydantic models (BaseModel, Field constraints); the executor also calls
# out through httpx on httpcore (safehttp pins connections at httpcore's network-backend level).
# httpx's CLI module is blocked as in the handler rows (the Lambda layer has no click/rich).
_PYDANTIC = (
    "from pydantic import BaseModel, Field\nclass M(BaseModel):\n    a: int = Field(default=0, ge=0)\n"
)
REFERENCES = (
    ("reference: floor + pydantic (import + first model)", FLOOR + _PYDANTIC),
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


def _time(script: str, bytecode_dir: str) -> tuple[float, str]:
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
    samples, output = [], ""
    timer = "import time; _t = time.perf_counter()\n"
    report = "\nprint(time.perf_counter() - _t)\n"
    for attempt in range(RUNS + 1):
        done = subprocess.run(
            [sys.executable, "-c", timer + script + report],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = done.stdout.strip().splitlines()
        if attempt == 0:
            continue  # the warm-up writes the bytecode
        samples.append(float(lines[-1]))
        output = lines[0] if len(lines) > 1 else ""
    return statistics.median(samples), output


def run() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="cronpilot-pyc-") as bytecode_dir:
        return _rows(bytecode_dir)


def _rows(bytecode_dir: str) -> list[tuple[str, str, str]]:
    floor, _ = _time(FLOOR, bytecode_dir)
    rows = [("floor: boto3 + Powertools Logger/Tracer/Metrics", f"{floor * 1000:.0f} ms", "-")]
    for label, script in REFERENCES:
        seconds, _ = _time(script, bytecode_dir)
        figure = f"{seconds * 1000:.0f} ms = {seconds / floor:.2f}x floor"
        rows.append((f"{label} (median of {RUNS})", figure, "-"))
    for name in ("discovery", "executor", "planner", "summarizer", "finalize_failure"):
        seconds, imported_anthropic = _time(_handler_script(name), bytecode_dir)
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

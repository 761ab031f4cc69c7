"""Cold-start import time of each handler module in a fresh process, beside the stack's floor."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5
FLOOR = (
    "import boto3\nfrom aws_lambda_powertools import Logger, Metrics, Tracer\nLogger(); Tracer(); Metrics()\n"
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


def _time(script: str) -> tuple[float, str]:
    env = {
        **os.environ,
        "TABLE_NAME": "bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    samples, output = [], ""
    timer = "import time; _t = time.perf_counter()\n"
    report = "\nprint(time.perf_counter() - _t)\n"
    for _ in range(RUNS):
        done = subprocess.run(
            [sys.executable, "-c", timer + script + report],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = done.stdout.strip().splitlines()
        samples.append(float(lines[-1]))
        output = lines[0] if len(lines) > 1 else ""
    return statistics.median(samples), output


def run() -> list[tuple[str, str, str]]:
    floor, _ = _time(FLOOR)
    rows = [("floor: boto3 + Powertools Logger/Tracer/Metrics", f"{floor * 1000:.0f} ms", "-")]
    for name in ("discovery", "executor", "planner", "summarizer", "finalize_failure"):
        seconds, imported_anthropic = _time(_handler_script(name))
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

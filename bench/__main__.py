"""`make bench`: every benchmark measured side by side in one run, printed as one table.

Goals are checked by reading the table, never by timed assertions in tests (machines are shared).
"""

from __future__ import annotations

import importlib
import sys
import time

from rich.console import Console
from rich.table import Table

SUITES = [
    "bench.discovery",
    "bench.scale",
    "bench.cold_start",
    "bench.executor",
    "bench.ai",
    "bench.ai_month",
    "bench.infra",
    "bench.cost",
    "bench.workflows",
    "bench.jobfiles",
    "bench.api",
]


def main() -> int:
    table = Table(title="cronpilot benchmarks")
    for column in ("suite", "measure", "figure", "goal"):
        table.add_column(column)
    for name in SUITES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        started = time.perf_counter()
        try:
            rows = module.run()
        except Exception as exc:  # one broken suite must not hide the others' figures
            rows = [("error", f"{type(exc).__name__}: {exc}", "-")]
        for measure, figure, goal in rows:
            table.add_row(name.removeprefix("bench."), measure, figure, goal)
        print(f"{name}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

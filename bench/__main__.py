"""`make bench`: every benchmark measured side by side in one run, printed as one table.

Goals are checked by reading the table, never by timed assertions in tests (machines are shared).
"""

from __future__ import annotations

import importlib
import resource
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


def _cpu_seconds() -> float:
    """This process's CPU time plus its finished children's (several suites time subprocesses): on a
    shared machine the wall time says more about the other tenants than about the suite."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> int:
    table = Table(title="cronpilot benchmarks")
    for column in ("suite", "measure", "figure", "goal"):
        table.add_column(column)
    for name in SUITES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        try:
            rows = module.run()
        except Exception as exc:  # one broken suite must not hide the others' figures
            rows = [("error", f"{type(exc).__name__}: {exc}", "-")]
        for measure, figure, goal in rows:
            table.add_row(name.removeprefix("bench."), measure, figure, goal)
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        print(f"{name}: {wall:.1f}s wall, {cpu:.1f}s CPU", file=sys.stderr, flush=True)
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

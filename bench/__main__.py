"""`make bench`: every benchmark measured side by side in one run, printed as one table.

Goals are checked by reading the table, never by timed assertions in tests (machines are shared).
"""

from __future__ import annotations

import importlib
import resource
import signal
import sys
import time

from rich.console import Console
from rich.table import Table

# The benchmarks the issues ask for first (10 validate, 11 scale model, 12 AI month, 13 cost and cold
# start, 14 templating, 15 API), so an interrupted run still prints those; the older suites after.
SUITES = [
    "bench.jobfiles",
    "bench.scale",
    "bench.ai_month",
    "bench.cost",
    "bench.cold_start",
    "bench.workflows",
    "bench.api",
    "bench.executor",
    "bench.ai",
    "bench.infra",
    "bench.discovery",
]


def _cpu_seconds() -> float:
    """This process's CPU time plus its finished children's (several suites time subprocesses): on a
    shared machine the wall time says more about the other tenants than about the suite."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main() -> int:
    # Stopped by Ctrl-C or SIGTERM (a CI timeout), the table still shows every figure measured so far.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    table = Table(title="cronpilot benchmarks")
    for column in ("suite", "measure", "figure", "goal"):
        table.add_column(column)
    interrupted: str | None = None
    for name in SUITES:
        suite = name.removeprefix("bench.")
        if interrupted:
            table.add_row(suite, "not run", f"the run was interrupted ({interrupted})", "-")
            continue
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        try:
            rows = importlib.import_module(name).run()
        except Interrupted as stop:
            interrupted = str(stop)
            rows = [("interrupted", f"stopped by {interrupted} before this suite finished", "-")]
        except Exception as exc:  # one broken suite must not hide the others' figures
            rows = [("error", f"{type(exc).__name__}: {exc}", "-")]
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        for measure, figure, goal in rows:
            table.add_row(suite, measure, figure, goal)
        table.add_row(suite, "suite time", f"{wall:.1f} s wall, {cpu:.1f} s CPU (incl. child processes)", "-")
        print(f"{name}: {wall:.1f}s wall, {cpu:.1f}s CPU", file=sys.stderr, flush=True)
    Console(width=160).print(table)
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())

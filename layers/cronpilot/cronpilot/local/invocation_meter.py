"""Local mode, measured per Lambda invocation: each handler's CPU time outside the AWS calls (its
thread's CPU time less the time moto spends answering it, which is AWS's work, not the function's)
and the bytes it logs (its Powertools lines and EMF metrics documents, as deployed: at INFO, with
metrics on). The cost model's assumptions are checked against these (bench/cost.py,
tests/infra/test_cost_model.py)."""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cronpilot.local.moto_patches import running_function

if TYPE_CHECKING:
    from cronpilot.local.cloud import LocalCloud

# Local mode lets the executor reach its loopback target, and says so on every call; a deployment
# without private networks to allow has no such line.
LOCAL_ONLY_LINES = ("private networks reachable by the executor",)


def _function(name: str) -> str:
    """cronpilot-local-finalize-failure -> finalize_failure (the functions/ folder)."""
    return name.removeprefix("cronpilot-local-").replace("-", "_")


@dataclass
class PerInvocation:
    invocations: collections.Counter[str] = field(default_factory=collections.Counter)
    cpu_seconds: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    log_bytes: collections.Counter[str] = field(default_factory=collections.Counter)
    # EMF documents apart: local mode's handlers share one process and so Powertools' one metrics
    # buffer, and a document may carry a metric another handler's thread added meanwhile.
    metrics_bytes: collections.Counter[str] = field(default_factory=collections.Counter)

    def mean_cpu(self, name: str) -> float:
        return self.cpu_seconds[name] / max(1, self.invocations[name])

    def mean_log_bytes(self, name: str) -> float:
        return self.log_bytes[name] / max(1, self.invocations[name])

    def mean_metrics_bytes(self, name: str) -> float:
        return self.metrics_bytes[name] / max(1, self.invocations[name])


class _CountingStream:
    """stdout for the handlers: each complete line is counted for the function writing it."""

    def __init__(self, measured: PerInvocation) -> None:
        self.measured = measured
        self.pending: dict[str, str] = collections.defaultdict(str)
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        name = _function(running_function.get())
        with self.lock:
            *lines, self.pending[name] = (self.pending[name] + text).split("\n")
            for line in lines:
                if not line or any(marker in line for marker in LOCAL_ONLY_LINES):
                    continue
                counts = (
                    self.measured.metrics_bytes if line.startswith('{"_aws"') else self.measured.log_bytes
                )
                counts[name] += len(line.encode()) + 1
        return len(text)

    def flush(self) -> None:
        pass


@contextmanager
def measure_invocations(cloud: LocalCloud) -> Iterator[PerInvocation]:
    """Measure every handler invocation of the cloud while the block runs (its output is counted,
    not printed)."""
    from moto.core.botocore_stubber import BotocoreStubber

    from cronpilot.observability import logger, metrics

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
        # Step Functions invokes the handler from inside moto: the handler's own AWS calls are moto's
        # answers within it, counted afresh.
        outer = getattr(local, "in_moto", False)
        local.in_moto = False
        moto_before, started = getattr(local, "moto_seconds", 0.0), time.thread_time()
        try:
            return run_handler(name, body, headers)
        finally:
            spent = time.thread_time() - started - (getattr(local, "moto_seconds", 0.0) - moto_before)
            local.in_moto = outer
            measured.invocations[_function(name)] += 1
            measured.cpu_seconds[_function(name)] += spent

    stream = _CountingStream(measured)
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = (handler.stream, sys.stdout, logger.log_level, metrics.namespace)
    BotocoreStubber.__call__ = timed_answer  # type: ignore[method-assign]
    cloud._run_handler = timed_handler  # type: ignore[method-assign,assignment]
    handler.setStream(stream)
    sys.stdout = stream  # Powertools prints the EMF document
    logger.setLevel("INFO")  # as deployed (local mode logs errors only)
    metrics.namespace = metrics.namespace or "cronpilot"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"  # local mode prints no EMF documents
    try:
        yield measured
    finally:
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        handler.setStream(previous[0])
        sys.stdout = previous[1]
        logger.setLevel(previous[2])
        metrics.namespace = previous[3]
        cloud._run_handler = run_handler  # type: ignore[method-assign]
        BotocoreStubber.__call__ = answer  # type: ignore[method-assign]

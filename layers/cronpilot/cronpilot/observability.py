"""Logger, Tracer and Metrics: created once, here. The metric names are the ones the CDK dashboard
and alarms read (infra/cronpilot_infra/monitoring.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from cronpilot.domain.discovery import DiscoveryResult
    from cronpilot.models.run import StepResult

logger = Logger()
tracer = Tracer()
metrics = Metrics()

_RUN_OUTCOMES = {"succeeded": "RunsSucceeded", "partial": "RunsPartial", "failed": "RunsFailed"}


def record_discovery(result: DiscoveryResult) -> None:
    counts = {
        "JobsDue": result.due,
        "RunsClaimed": len(result.claimed),
        "RunsSkipped": len(result.skipped),
        "ClaimConflicts": result.conflicts,
        "StartFailures": result.start_failures,
        "StartRetries": result.start_retries,
        "LateStarts": len(result.late_starts),
        "JobsLeftForNextTick": result.left,
        "LeasesStuck": result.leases_stuck,
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.add_metric(name="DiscoveryLagSeconds", unit=MetricUnit.Seconds, value=result.max_lag_seconds)


def record_run_outcome(status: str) -> None:
    """One count per run that reached a final outcome (succeeded, partial or failed)."""
    if name := _RUN_OUTCOMES.get(status):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def record_step(result: StepResult, *, circuit_open: bool) -> None:
    """Endpoint latency and failures for a call made now; a count when an open circuit skipped it."""
    if result.attempts:
        metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=result.latency_ms)
        metrics.add_metric(
            name="EndpointFailures", unit=MetricUnit.Count, value=int(result.status == "failed")
        )
    if circuit_open:
        metrics.add_metric(name="CircuitsOpen", unit=MetricUnit.Count, value=1)

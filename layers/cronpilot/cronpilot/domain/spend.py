"""What the AI pilot cost a job, per UTC day: model calls, calls avoided by reuse, tokens and USD.

Summed from the job's run records (each run records its own usage and cost), so it is the same on every
target (a deployment, local mode) and needs no second ledger. Runs are read newest first and only as far
back as the window asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronpilot.domain.ports import JobStore
from cronpilot.models.operations import AiSpend, DaySpend
from cronpilot.models.run import TokenUsage

DEFAULT_WINDOW_DAYS = 7
PAGE = 100


@dataclass
class DayTotals:
    day: str  # YYYY-MM-DD, UTC, of the runs' scheduled times
    runs: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)

    def as_dict(self) -> dict[str, Any]:
        return self.view().model_dump(mode="json")

    def view(self) -> DaySpend:
        spend = self.usage.spend()
        del spend["cache_ttl"], spend["cache_reason"]  # per-call choices; a day mixes them
        return DaySpend(day=self.day, runs=self.runs, tokens=self.usage.counts(), **spend)


def spend_of(usage: TokenUsage) -> AiSpend:
    return AiSpend(**usage.spend())


def spend_by_day(
    store: JobStore, job_id: str, now: datetime, days: int = DEFAULT_WINDOW_DAYS
) -> list[DayTotals]:
    """The last `days` UTC days (today included), newest first; days without runs are left out."""
    since = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    totals: dict[str, DayTotals] = {}
    token: str | None = None
    while True:
        page, token = store.list_runs(job_id, limit=PAGE, after=token)
        for run in page:
            day = run.scheduled_at.astimezone(UTC).date()
            if day < since:
                continue
            entry = totals.setdefault(day.isoformat(), DayTotals(day.isoformat()))
            entry.runs += 1
            entry.usage = entry.usage + run.tokens
        oldest = min((r.scheduled_at.astimezone(UTC).date() for r in page), default=since)
        if token is None or oldest < since:
            break
    return [totals[day] for day in sorted(totals, reverse=True)]

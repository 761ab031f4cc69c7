"""Factories for jobs and endpoints: tests say only what matters to them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cronpilot.models.job import Job
from cronpilot.models.run import RunRecord, RunRef


def endpoint(endpoint_id: str, url: str = "https://api.example.com/x", **fields: Any) -> dict[str, Any]:
    return {"id": endpoint_id, "url": url, **fields}


def job_doc(job_id: str = "job-1", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": job_id,
        "name": f"job {job_id}",
        "goal": "keep things fresh",
        "schedule": {"cron": "*/5 * * * *", "timezone": "UTC"},
        "endpoints": [endpoint("a"), endpoint("b", depends_on=["a"])],
    }
    doc.update(fields)
    return doc


def make_job(job_id: str = "job-1", **fields: Any) -> Job:
    return Job.model_validate(job_doc(job_id, **fields))


def claim_slot(
    store: Any,
    job: Job,
    at: datetime,
    *,
    trigger: str = "schedule",
    owner: str = "test",
    lease: timedelta = timedelta(minutes=1),
    next_run_at: datetime | None = None,
) -> RunRecord:
    """Claim the registered job's slot at `at`, as discovery would; returns the claimed run."""
    seen = store.get_job(job.id)
    run = RunRecord.claimed(job.id, at, epoch=seen.state.epoch + 1, trigger=trigger, now=at)
    store.claim(
        seen,
        run,
        owner=owner,
        lease_until=at + lease,
        now=at,
        next_run_at=next_run_at,
        next_run_source="baseline",
        next_run_reason=owner,
    )
    return run


def claim_run(store: Any, job: Job, at: datetime, *, trigger: str = "schedule") -> RunRef:
    """Register `job` due at `at` and claim that slot; returns the RunRef."""
    store.put_job(job, next_run_at=at, source="baseline", reason="test", now=at)
    run = claim_slot(store, job, at, trigger=trigger)
    return RunRef(run_id=run.run_id, job_id=job.id, epoch=run.epoch)

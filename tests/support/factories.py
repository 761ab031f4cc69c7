"""Factories for jobs and endpoints: tests say only what matters to them."""

from __future__ import annotations

from typing import Any

from cronpilot.models.job import Job


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

"""`make demo`: example jobs against the demo target, run end to end in local mode."""

from __future__ import annotations

from typing import Any

from cronpilot.models.job import Job


def demo_jobs(base_url: str) -> list[Job]:
    documents: list[dict[str, Any]] = [
        {
            "id": "inventory-sync",
            "name": "Inventory sync",
            "goal": "Read inventory, reorder what runs low, and check the slow warehouse API.",
            "schedule": {"rate": "15m"},
            "guardrails": {"min_interval": "5m", "max_interval": "1h", "max_parallel": 3},
            "endpoints": [
                {"id": "inventory", "url": f"{base_url}/inventory", "description": "current stock levels"},
                {
                    "id": "reorder",
                    "method": "POST",
                    "url": f"{base_url}/reorder",
                    "body": {"policy": "low-stock"},
                    "depends_on": ["inventory"],
                    "description": "reorder items that run low",
                },
                {"id": "warehouse", "url": f"{base_url}/slow?ms=300", "description": "slow warehouse API"},
            ],
        },
        {
            "id": "partner-feed",
            "name": "Partner feed",
            "goal": "Pull the partner feed and publish it when it is healthy.",
            "schedule": {"cron": "*/20 * * * *", "timezone": "Europe/Berlin"},
            "guardrails": {"min_interval": "10m", "max_interval": "2h", "jitter": "30s"},
            "endpoints": [
                {"id": "feed", "url": f"{base_url}/flaky", "description": "partner feed, sometimes 503"},
                {"id": "publish", "url": f"{base_url}/ok", "depends_on": ["feed"], "description": "publish"},
            ],
        },
        {
            "id": "nightly-report",
            "name": "Broken report",
            "goal": "Build the report; its source is down, so the scheduler backs off.",
            "schedule": {"cron": "0 * * * *", "timezone": "America/New_York"},
            "guardrails": {"min_interval": "10m", "max_interval": "4h"},
            "endpoints": [
                {"id": "source", "url": f"{base_url}/fail", "description": "report source (down)"},
                {"id": "render", "url": f"{base_url}/ok", "depends_on": ["source"], "description": "render"},
            ],
        },
    ]
    return [Job.model_validate(doc) for doc in documents]

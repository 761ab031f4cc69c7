"""AI pilot: planner prompt size against history length, and cached vs uncached input tokens for a
demo-like run against the fake Messages API (the real anthropic SDK, on 127.0.0.1)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from cronpilot.ai.plan_model import AiPlanner
from cronpilot.ai.prompts import plan_request
from cronpilot.ai.summary_model import AiSummarizer
from cronpilot.clock import FixedClock
from cronpilot.domain.strategies import PlanContext, SummaryContext
from cronpilot.local.demo import demo_jobs
from cronpilot.models.job import Job
from cronpilot.models.run import NextRunDecision, PlanRecord, RunRecord, StepResult, TokenUsage

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _ten_endpoint_job() -> Job:
    endpoints = [
        {
            "id": f"endpoint-{n}",
            "url": f"https://api.example.com/v1/{n}",
            "description": f"resource {n} of the catalogue",
            "depends_on": [f"endpoint-{n - 1}"] if n % 2 else [],
        }
        for n in range(10)
    ]
    return Job.model_validate({"id": "bench-ten", "schedule": {"rate": "5m"}, "endpoints": endpoints})


def _history(count: int) -> list[RunRecord]:
    runs = []
    for n in range(count):
        at = NOW - timedelta(minutes=5 * (n + 1))
        run = RunRecord.claimed("bench-ten", at, n + 1, "schedule", at)
        run.status = "partial" if n % 7 == 0 else "succeeded"
        run.step_counts = {
            "succeeded": 9 if n % 7 == 0 else 10,
            "failed": 1 if n % 7 == 0 else 0,
            "skipped": 0,
        }
        run.plan = PlanRecord(source="ai", rationale="all stale", steps=[], waves=[])
        run.next_run = NextRunDecision(at=at + timedelta(minutes=5), source="ai", reason="steady")
        runs.append(run)
    return runs


def _prompt_bytes(history: int) -> int:
    job = _ten_endpoint_job()
    run = RunRecord.claimed(job.id, NOW, 1, "schedule", NOW)
    request = plan_request(
        job, model="claude-haiku-4-5", max_tokens=1024, run=run, history=_history(history), endpoint_health={}
    )
    return len(json.dumps(request).encode())


def _demo_tokens() -> tuple[TokenUsage, TokenUsage]:
    """Two consecutive runs of every demo job (plan + summary each): cold cache, then warm."""
    import anthropic

    from tests.support.fake_anthropic import FakeAnthropic, next_run_reply, plan_reply

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    jobs = demo_jobs("http://127.0.0.1:9")
    totals = []
    with FakeAnthropic() as fake:
        client = anthropic.Anthropic(api_key="bench", base_url=fake.base_url, max_retries=0, timeout=10)
        plans = {job.id: plan_reply([(e.id, list(e.depends_on)) for e in job.endpoints]) for job in jobs}

        def respond(request: dict) -> object:
            if request["tool_choice"]["name"] == "submit_plan":
                catalogue = request["system"][-1]["text"]
                return next(reply for job_id, reply in plans.items() if f"Job id: {job_id}\n" in catalogue)
            return next_run_reply(interval_seconds=900)

        fake.responder = respond
        for number in range(2):
            fake.advance(15 * 60 * number)  # the fake's cache clock follows the runs
            total = TokenUsage()
            clock = FixedClock(NOW + timedelta(minutes=15 * number))
            for job in jobs:
                run = RunRecord.claimed(job.id, clock.now(), number + 1, "schedule", clock.now())
                common = {"model": "claude-haiku-4-5", "client_factory": lambda: client, "usage_store": None}
                decision = AiPlanner(clock=clock, **common).plan(job, PlanContext(run=run, history=[]))
                results = [
                    StepResult(
                        step_id=e.id, endpoint_id=e.id, status="succeeded", http_status=200, body='{"ok":1}'
                    )
                    for e in job.endpoints
                ]
                proposal = AiSummarizer(clock=clock, **common).propose(
                    job, SummaryContext(run=run, results=results, now=clock.now())
                )
                total = total + decision.tokens + proposal.tokens
            totals.append(total)
    return totals[0], totals[1]


def run() -> list[tuple[str, str, str]]:
    small, large = _prompt_bytes(10), _prompt_bytes(1000)
    cold, warm = _demo_tokens()

    def split(usage: TokenUsage) -> str:
        return (
            f"uncached {usage.input}, cache write {usage.cache_write}, cache read {usage.cache_read}, "
            f"${usage.cost_usd:.6f} (cache {usage.cache_ttl})"
        )

    return [
        ("planner prompt, 10 endpoints, 10 past runs", f"{small} B", "-"),
        ("planner prompt, 10 endpoints, 1,000 past runs", f"{large} B", "-"),
        ("prompt size ratio 1,000 / 10 runs", f"{large / small:.3f}", "<= 1.1"),
        # The demo jobs' prefixes are far below Haiku 4.5's 4,096-token minimum: the real API caches none
        ("demo run 1: input tokens, USD", split(cold), "no cache claimed below the minimum"),
        ("demo run 2, 15 min later: input tokens, USD", split(warm), "no cache claimed below the minimum"),
    ]

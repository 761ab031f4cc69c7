"""A simulated month of the AI pilot: three job archetypes, 1,000 runs each, driven through the real
planner and summarizer domain code (in-memory store) and the real anthropic SDK against the fake
Messages API, whose prompt cache keeps the real rules on its own clock (advanced run by run).

For each archetype: model calls, tokens and USD per 1,000 runs when the model is asked on every run
(`llm.consult: every-run`, the old behaviour) and with standing decisions (`on-news`), the ratio of
their costs, and the share of runs with news that reached the model (ground truth from the
simulation: a run whose responses differ from the previous run's must reach the summarizer, and the
next run's planner).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronpilot.ai.pilot import PilotPlanner, PilotSummarizer
from cronpilot.clock import FixedClock
from cronpilot.domain.planning import plan_run
from cronpilot.domain.summarizing import summarize_run
from cronpilot.models.job import Job
from cronpilot.models.run import RunRecord, RunRef, StepResult, TokenUsage
from cronpilot.observability import metrics
from cronpilot.runtime import Runtime
from pydantic import BaseModel

RUNS = int(os.environ.get("BENCH_AI_MONTH_RUNS", "1000"))
# Calling on every run costs the same every run (a 2,000-call month takes minutes on a shared
# machine): it is measured over its first BASELINE_RUNS runs and scaled to RUNS, and says so.
BASELINE_RUNS = int(os.environ.get("BENCH_AI_MONTH_BASELINE_RUNS", "250"))
CADENCE = timedelta(minutes=15)
STEP_TIME = timedelta(seconds=20)
START = datetime(2026, 11, 1, tzinfo=UTC)
GOALS = {"steady": 0.15, "flaky": 0.30, "drifting": 0.30}


def _job(consult: str) -> Job:
    endpoints = [
        {
            "id": "orders",
            "url": "https://orders.example.com/v1/orders",
            "description": "open orders; data.version changes when the catalogue is republished",
            "watch": ["data.version"],
        },
        {"id": "inventory", "url": "https://inventory.example.com/v1", "description": "stock levels"},
        {
            "id": "report",
            "url": "https://reports.example.com/build",
            "method": "POST",
            "description": "rebuilds the daily report from orders and inventory",
            "depends_on": ["orders", "inventory"],
        },
        {"id": "ping", "url": "https://status.example.com/ping", "description": "health ping"},
    ]
    return Job.model_validate(
        {
            "id": f"bench-{consult}",
            "goal": "keep the order report fresh; run more often while orders change, less when calm",
            "schedule": {"rate": "15m"},
            # Budgets high enough that neither policy is cut short by them: this measures the policy.
            "guardrails": {"max_tokens_per_day": 100_000_000, "max_tokens_per_run": 1_000_000},
            "endpoints": endpoints,
            "llm": {"consult": consult},
        }
    )


def _ok(endpoint_id: str, body: dict[str, Any]) -> StepResult:
    text = json.dumps(body)
    return StepResult(
        step_id=endpoint_id,
        endpoint_id=endpoint_id,
        status="succeeded",
        http_status=200,
        content_type="application/json",
        body=text,
        body_bytes=len(text),
        attempts=1,
        latency_ms=40,
    )


def _world(archetype: str, n: int) -> dict[str, StepResult]:
    """What the endpoints answer on run n."""
    version = n // 50 if archetype == "drifting" else 1
    orders = _ok("orders", {"data": {"version": version, "open": 12}, "status": "ok"})
    if archetype == "flaky" and n % 20 == 7:
        orders = StepResult(
            step_id="orders",
            endpoint_id="orders",
            status="failed",
            http_status=503,
            error="HTTP 503",
            attempts=3,
        )
    results = {
        "orders": orders,
        "inventory": _ok("inventory", {"items": 40, "low": []}),
        "report": _ok("report", {"built": True}),
        "ping": _ok("ping", {"pong": True}),
    }
    if orders.status != "succeeded":
        results["report"] = StepResult(
            step_id="report", endpoint_id="report", status="skipped", skip_reason="dependency orders failed"
        )
    return results


def _signature(results: dict[str, StepResult]) -> str:
    return json.dumps({k: (str(r.status), r.http_status, r.body) for k, r in sorted(results.items())})


@dataclass
class Month:
    calls: int = 0
    tokens: TokenUsage = field(default_factory=TokenUsage)
    news_runs: int = 0
    news_reached: int = 0


class _JsonCopies:
    """The in-memory store copies records in and out with deepcopy; here pydantic records round-trip
    through JSON instead, as the DynamoDB store's do: the same copy, several times faster."""

    @staticmethod
    def deepcopy(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return type(value).model_validate_json(value.model_dump_json())
        return copy.deepcopy(value)


def simulate(archetype: str, consult: str, fake: Any, count: int = RUNS) -> Month:
    from tests.support import memory
    from tests.support.fake_anthropic import ai_settings
    from tests.support.memory import InMemoryHealthStore, InMemoryStore, InMemoryUsageLedger

    memory.copy = _JsonCopies  # type: ignore[assignment]

    job = _job(consult)
    clock = FixedClock(START)
    runtime = Runtime(settings=ai_settings(fake, "bench", llm_max_retries=0), clock=clock)
    store, health = InMemoryStore(), InMemoryHealthStore()
    runtime.__dict__.update(store=store, health_store=health, usage_ledger=InMemoryUsageLedger())
    planner, summarizer = PilotPlanner(runtime), PilotSummarizer(runtime)
    store.put_job(job, next_run_at=START, source="baseline", reason="bench", now=START)
    month = Month()
    first_call = len(fake.message_requests)
    runs: list[RunRecord] = []
    changed: list[bool] = []
    previous = ""
    for n in range(count):
        at = START + n * CADENCE
        fake.advance(CADENCE.total_seconds())
        clock.set(at)
        ref = _claim(store, job, at)
        plan_run(store, health, clock, ref, planner)
        results = _world(archetype, n)
        planned = {s.endpoint_id for s in store.get_run(ref.run_id).plan.steps}
        for endpoint_id in planned:
            store.put_step_result(job.id, ref.run_id, ref.epoch, results[endpoint_id], at + STEP_TIME)
        clock.set(at + STEP_TIME)
        summarize_run(store, clock, ref, summarizer)
        run = store.get_run(ref.run_id)
        runs.append(run)
        signature = _signature(results)
        changed.append(n > 0 and signature != previous)
        previous = signature
        month.tokens = month.tokens + run.tokens
        metrics.clear_metrics()  # a Lambda flushes per invocation; a month in one process never does
    month.calls = len(fake.message_requests) - first_call
    for n, news in enumerate(changed):
        if not news:
            continue
        month.news_runs += 1
        summarized = _called(runs[n], "summarize")
        planned_next = n + 1 >= len(runs) or _called(runs[n + 1], "plan")
        month.news_reached += summarized and planned_next
    return month


def scaled(month: Month, factor: float) -> Month:
    if factor == 1:
        return month
    t = month.tokens
    tokens = TokenUsage(
        input=round(t.input * factor),
        output=round(t.output * factor),
        cache_read=round(t.cache_read * factor),
        cache_write=round(t.cache_write * factor),
        cache_write_1h=round(t.cache_write_1h * factor),
        calls=round(t.calls * factor),
        cost_usd=t.cost_usd * factor,
    )
    return Month(
        calls=round(month.calls * factor),
        tokens=tokens,
        news_runs=month.news_runs,
        news_reached=month.news_reached,
    )


def _called(run: RunRecord, phase: str) -> bool:
    return any(c.phase == phase and c.called for c in run.consults)


def _claim(store: Any, job: Job, at: datetime) -> RunRef:
    from tests.support.factories import claim_slot

    run = claim_slot(store, job, at, owner="bench", lease=timedelta(minutes=5))
    return RunRef(run_id=run.run_id, job_id=job.id, epoch=run.epoch)


def _responder(job_endpoints: list[tuple[str, list[str]]]) -> Callable[[dict[str, Any]], Any]:
    from tests.support.fake_anthropic import tool_reply

    def respond(request: dict[str, Any]) -> Any:
        if request["tool_choice"]["name"] == "submit_plan":
            steps = [{"endpoint_id": e, "depends_on": d} for e, d in job_endpoints]
            return tool_reply(
                "submit_plan", {"rationale": "every endpoint", "steps": steps, "valid_for_seconds": None}
            )
        value = {
            "summary": "orders and inventory fresh; report rebuilt",
            "next_run": {"kind": "interval", "interval_seconds": 900, "at": None, "reason": "steady"},
            "rationale": "keep the 15-minute cadence",
            "valid_for_seconds": None,
            "consult_again_at": None,
        }
        return tool_reply("submit_next_run", value, output_tokens=120)

    return respond


def run() -> list[tuple[str, str, str]]:
    from tests.support.fake_anthropic import FakeAnthropic

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "cronpilot-bench")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("ANTHROPIC_API_KEY", "bench")
    rows: list[tuple[str, str, str]] = []
    for archetype in ("steady", "flaky", "drifting"):
        months = {}
        for consult in ("every-run", "on-news"):
            with FakeAnthropic() as fake:
                job = _job(consult)
                fake.responder = _responder([(e.id, list(e.depends_on)) for e in job.endpoints])
                runs = min(BASELINE_RUNS, RUNS) if consult == "every-run" else RUNS
                months[consult] = scaled(simulate(archetype, consult, fake, runs), RUNS / runs)
        for consult, month in months.items():
            t = month.tokens
            measured = f" (measured on {min(BASELINE_RUNS, RUNS)}, scaled)" if consult == "every-run" else ""
            rows.append(
                (
                    f"{archetype}, {consult}: per {RUNS:,} runs{measured}",
                    f"{month.calls} calls; uncached {t.input:,}, cache write {t.cache_write:,}, "
                    f"cache read {t.cache_read:,}, output {t.output:,}; ${t.cost_usd:.4f}",
                    "-",
                )
            )
        old, new = months["every-run"], months["on-news"]
        ratio = new.tokens.cost_usd / old.tokens.cost_usd if old.tokens.cost_usd else 0.0
        rows.append((f"{archetype}: USD on-news / every-run", f"{ratio:.3f}", f"<= {GOALS[archetype]:.2f}"))
        share = new.news_reached / new.news_runs if new.news_runs else 1.0
        rows.append(
            (
                f"{archetype}: runs with news that reached the model",
                f"{share:.0%} ({new.news_reached}/{new.news_runs})",
                "100%",
            )
        )
    return rows

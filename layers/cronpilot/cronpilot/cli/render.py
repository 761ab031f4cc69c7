"""How the CLI shows jobs and runs as tables and text (JSON output is built by the commands)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from rich.table import Table

from cronpilot.cli.common import console, iso
from cronpilot.models.operations import AiSpend, DaySpend, JobDetail, JobSummary, RunDetail, RunSummary


def status_cell(status: str, skip_reason: str | None) -> str:
    return status + (f" ({skip_reason})" if skip_reason else "")


def counts_cell(counts: Mapping[str, int]) -> str:
    """Steps ok/failed/skipped."""
    return f"{counts.get('succeeded', 0)}/{counts.get('failed', 0)}/{counts.get('skipped', 0)}"


def print_report_runs(runs: list[dict[str, Any]]) -> None:
    """The runs of a local-mode report, one row each."""
    table = Table(title="runs", show_lines=False)
    for column in (
        "job",
        "run id",
        "status",
        "ok/failed/skipped",
        "duration",
        "next run",
        "source",
        "AI USD",
    ):
        table.add_column(column)
    for run in runs:
        counts = Counter(str(step["status"]) for step in run["steps"])
        duration = f"{run['duration_ms'] / 1000:.2f}s" if run["duration_ms"] is not None else "-"
        next_run = run["next_run"] or {}
        spend = run.get("ai_spend") or {}
        table.add_row(
            run["job_id"],
            run["run_id"],
            status_cell(run["status"], run.get("skip_reason")),
            counts_cell(counts),
            duration,
            next_run.get("at") or "-",
            next_run.get("source") or "-",
            usd(spend["cost_usd"]) if spend.get("model_calls") else "-",
        )
    console.print(table)


def print_job_rows(jobs: list[JobSummary]) -> None:
    table = Table(title="jobs")
    for column in ("job", "status", "schedule", "next run", "source", "running"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            job.job_id,
            job.status,
            job.schedule,
            iso(job.next_run_at),
            job.next_run_source,
            job.running or "-",
        )
    console.print(table)


def usd(amount: float) -> str:
    return f"${amount:.4f}" if amount >= 0.01 else f"${amount:.6f}"


def ratio_cell(ratio: float | None) -> str:
    return f"{ratio:.0%}" if ratio is not None else "-"


def spend_line(spend: AiSpend) -> str:
    """One line of what a run's AI calls cost and saved."""
    unpriced = f" (+{spend.unpriced_calls} calls at no configured price)" if spend.unpriced_calls else ""
    cache = f"; cache {spend.cache_ttl}: {spend.cache_reason}" if spend.cache_ttl else ""
    return (
        f"AI: {spend.model_calls} model calls, {spend.calls_avoided_by_reuse} avoided by reuse, "
        f"{usd(spend.cost_usd)}{unpriced}; cache hit ratio {ratio_cell(spend.cache_hit_ratio)}{cache}"
    )


def print_spend(days: list[DaySpend]) -> None:
    table = Table(title="AI spend per day (UTC)")
    for column in ("day", "runs", "model calls", "avoided by reuse", "cache hit ratio", "USD"):
        table.add_column(column)
    for day in days:
        table.add_row(
            day.day,
            str(day.runs),
            str(day.model_calls),
            str(day.calls_avoided_by_reuse),
            ratio_cell(day.cache_hit_ratio),
            usd(day.cost_usd) + (f" (+{day.unpriced_calls} unpriced)" if day.unpriced_calls else ""),
        )
    console.print(table if days else "AI spend: no runs in the last days")


def print_job(detail: JobDetail) -> None:
    job, next_run = detail.job, detail.next_run
    console.print(f"[bold]{job.id}[/bold] {job.name} ({job.status})")
    console.print(f"goal: {job.goal or '-'}")
    console.print(f"schedule: {job.schedule.describe()}")
    console.print(f"guardrails: {job.guardrails.model_dump(mode='json')}")
    console.print(f"next run: {iso(next_run.at)} ({next_run.source}: {next_run.reason})")
    if detail.paused_until:
        console.print(f"paused until: {iso(detail.paused_until)}")
    running = ", ".join(sorted(detail.runs_in_flight)) if detail.runs_in_flight else detail.current_run_id
    console.print(f"failing runs in a row: {detail.consecutive_failures}; running: {running or '-'}")
    table = Table(title="endpoints")
    for column in ("id", "method", "url", "depends on"):
        table.add_column(column)
    for endpoint in job.endpoints:
        table.add_row(endpoint.id, endpoint.method, endpoint.url, ", ".join(endpoint.depends_on) or "-")
    console.print(table)
    print_spend(detail.ai_spend_per_day)


def _calls_cell(spend: AiSpend | None) -> str:
    if spend is None:
        return "-"
    reused = f" (+{spend.calls_avoided_by_reuse} reused)" if spend.calls_avoided_by_reuse else ""
    return f"{spend.model_calls}{reused}"


def print_runs(job_id: str, runs: list[RunSummary]) -> None:
    table = Table(title=f"runs of {job_id}")
    for column in (
        "run id",
        "status",
        "why then",
        "ok/failed/skipped",
        "next run",
        "source",
        "AI calls",
        "USD",
    ):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.run_id,
            status_cell(run.status, run.skip_reason),
            run.trigger,
            counts_cell(run.steps),
            iso(run.next_run.at) if run.next_run else "-",
            run.next_run.source if run.next_run else "-",
            _calls_cell(run.ai_spend),
            usd(run.ai_spend.cost_usd) if run.ai_spend else "-",
        )
    console.print(table)


def print_run(run: RunDetail) -> None:
    console.print(f"[bold]{run.run_id}[/bold] {run.status} (why then: {run.trigger})")
    if run.skip_reason:
        console.print(f"skipped: {run.skip_reason}: {run.error}")
    elif run.error:
        console.print(f"error: {run.error}")
    if run.plan:
        console.print(f"plan by {run.plan.source}: {run.plan.rationale}")
        for number, wave in enumerate(run.plan.waves, 1):
            console.print(f"  wave {number}: {', '.join(wave)}")
    for consult in run.consults:  # why each AI phase asked the model, or reused a standing decision
        if consult.called:
            console.print(f"AI {consult.phase}: asked the model ({'; '.join(consult.news) or 'news'})")
        else:
            console.print(
                f"AI {consult.phase}: reused run {consult.reused_from}'s decision ({consult.reason})"
            )
    table = Table(title="steps")
    for column in ("step", "status", "http", "attempts", "latency", "error / reason"):
        table.add_column(column)
    for step in run.steps:
        kind = f"({step.error_kind}) " if step.error and step.error_kind else ""
        reused = f" (reused from {step.reused_from})" if step.reused_from else ""
        table.add_row(
            step.step_id,
            f"{step.status}{reused}",
            str(step.http_status or "-"),
            str(step.attempts),
            f"{step.latency_ms} ms",
            f"{kind}{step.error or ''}" if step.error else step.skip_reason or "",
        )
    console.print(table)
    for step in run.steps:  # already as people see them: hidden values are "[hidden]"
        for name, value in step.outputs.items():
            console.print(f"  {step.step_id}.{name} = {json.dumps(value)}", markup=False)
        for name, problem in step.output_problems.items():
            console.print(f"  {step.step_id}.{name}: no value ({problem})", markup=False)
    console.print(f"summary: {run.summary or '-'}")
    if run.next_run:
        console.print(f"next run: {iso(run.next_run.at)} ({run.next_run.source}: {run.next_run.reason})")
    tokens = run.tokens
    console.print(
        f"tokens: in {tokens.input}, out {tokens.output}, cache read {tokens.cache_read}, "
        f"cache write {tokens.cache_write}"
    )
    if run.ai_spend is not None:
        console.print(spend_line(run.ai_spend))
    for failure in run.llm_failures:
        console.print(f"LLM {failure.phase} fell back: {failure.failure_class}: {failure.detail}")
    for delivery in run.notifications:
        console.print(
            f"notified {delivery.event} to {delivery.target}: {delivery.status} "
            f"after {delivery.attempts} attempt(s)" + (f" ({delivery.error})" if delivery.error else "")
        )

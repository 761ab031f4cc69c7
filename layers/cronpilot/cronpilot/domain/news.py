"""What counts as news for the AI pilot, decided by code.

A standing AI decision (a plan or a next-run proposal) records the inputs it was based on
(`DecisionInputs`). A later run compares its own inputs with them: any difference, an expiry, the
model's own "consult me again at", or an operator's `--ask-ai` is news and the model is asked again;
no news means the standing decision is reused without a model call.

Inputs, and what changes in them count:
- the job definition (a digest of everything but its status: pausing is not news);
- each endpoint's circuit, closed or open (half-open counts as open: a cool-down ending is not news);
- each endpoint's outcome class: success/2xx, failure/4xx, failure/5xx, failure/<network kind>,
  timeout, skipped (an endpoint seen for the first time is news; one not called this run, or refused
  by its open circuit, is not: the planner compares each endpoint's newest observation);
- each endpoint's response fingerprint: status, content type, body size class, the set of top-level
  JSON keys, and the value of every JMESPath expression the endpoint lists under `watch:`.
Values are kept as short digests: a decision never stores response bodies.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from cronpilot.models.job import Endpoint, Job
from cronpilot.models.run import (
    DecisionInputs,
    RunRecord,
    StandingDecision,
    StepObservation,
    StepResult,
    StepStatus,
)

CIRCUIT_OPEN = "circuit-open"  # the executor's skip reason for a step its circuit refused
ASK_AI_TRIGGER = "ask-ai"  # the run trigger of `cronpilot jobs trigger --ask-ai`
# Body size classes by order of magnitude: a body growing past one is news, jitter inside one is not.
SIZE_CLASSES = (
    (0, "empty"),
    (1_000, "<1KB"),
    (10_000, "1-10KB"),
    (100_000, "10-100KB"),
    (1_000_000, "100KB-1MB"),
)
UNREADABLE = "unreadable"  # a truncated or non-JSON body: keys and watched values cannot be read


class NewsKind(StrEnum):
    FIRST = "first"  # no standing decision yet
    JOB_CHANGED = "job-changed"
    CIRCUIT = "circuit"
    OUTCOME = "outcome"
    RESPONSE = "response"
    EXPIRED = "expired"
    CONSULT_AGAIN = "consult-again"
    ASK_AI = "ask-ai"
    EVERY_RUN = "every-run"  # the job asks on every run (llm.consult: every-run)


class News(NamedTuple):
    """One change since a standing decision was made (a reason to ask the model again)."""

    kind: NewsKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def job_fingerprint(job: Job) -> str:
    return digest(job.model_dump(mode="json", exclude={"status"}))


def circuit_classes(health: dict[str, str]) -> dict[str, str]:
    return {endpoint_id: "closed" if state == "closed" else "open" for endpoint_id, state in health.items()}


def outcome_class(result: StepResult) -> str:
    if result.status == StepStatus.SKIPPED:
        return "skipped"
    if result.error_kind == "timeout":
        return "timeout"
    http = f"{result.http_status // 100}xx" if result.http_status else None
    if result.status == StepStatus.SUCCEEDED:
        return f"success/{http or 'no-status'}"
    return f"failure/{http or result.error_kind or 'error'}"


def size_class(size: int) -> str:
    for limit, name in SIZE_CLASSES:
        if size <= limit if limit == 0 else size < limit:
            return name
    return ">=1MB"


def _media_type(content_type: str | None) -> str | None:
    return content_type.split(";", 1)[0].strip().lower() or None if content_type else None


def _parse_json(result: StepResult) -> tuple[bool, Any]:
    if result.body_truncated or not result.body:
        return False, None
    try:
        return True, json.loads(result.body)
    except ValueError:
        return False, None


def observe_step(endpoint: Endpoint | None, result: StepResult) -> StepObservation:
    """The outcome class, and the response fingerprint when the endpoint answered."""
    outcome = outcome_class(result)
    if result.http_status is None:
        return StepObservation(outcome=outcome)
    parsed, value = _parse_json(result)
    keys = digest(sorted(value)) if parsed and isinstance(value, dict) else None
    watch: dict[str, str] = {}
    if endpoint is not None and endpoint.watch:
        import jmespath

        for expression in endpoint.watch:
            watch[expression] = digest(jmespath.search(expression, value)) if parsed else UNREADABLE
    size = result.body_bytes if result.body_bytes is not None else len(result.body.encode())
    return StepObservation(
        outcome=outcome,
        status=result.http_status,
        content_type=_media_type(result.content_type),
        size_class=size_class(size),
        keys=keys if parsed else UNREADABLE,
        watch=watch,
    )


def observe(job: Job, results: list[StepResult]) -> dict[str, StepObservation]:
    """Every step's observation, except steps their circuit refused: those say nothing about the
    endpoint (the circuit's own state is an input of its own)."""
    endpoints = {e.id: e for e in job.endpoints}
    return {
        r.endpoint_id: observe_step(endpoints.get(r.endpoint_id), r)
        for r in results
        if r.skip_reason != CIRCUIT_OPEN
    }


def latest_observations(history: list[RunRecord]) -> dict[str, StepObservation]:
    """Each endpoint's newest observation in the history (newest first; runs in flight have none):
    an endpoint left out of a run, or refused by its circuit, keeps what was last seen of it."""
    latest: dict[str, StepObservation] = {}
    for run in history:
        for endpoint_id, observation in run.observations.items():
            latest.setdefault(endpoint_id, observation)
    return latest


def experienced_circuits(results: list[StepResult]) -> dict[str, str]:
    """The circuits as this run met them: open where a step was refused by its circuit, closed where
    a call went out (the summarizer reads no health items: its steps already met every circuit)."""
    return {
        r.endpoint_id: "open" if r.skip_reason == CIRCUIT_OPEN else "closed"
        for r in results
        if r.skip_reason == CIRCUIT_OPEN or r.status != StepStatus.SKIPPED
    }


def inputs_of(job: Job, circuits: dict[str, str], steps: dict[str, StepObservation]) -> DecisionInputs:
    return DecisionInputs(job=job_fingerprint(job), circuits=circuit_classes(circuits), steps=steps)


def find_news(
    decision: StandingDecision | None,
    inputs: DecisionInputs,
    *,
    now: datetime,
    trigger: str,
    every_run: bool = False,
) -> list[News]:
    """Every reason to consult the model now; empty when the standing decision can be reused."""
    news: list[News] = []
    if every_run:
        news.append(News(NewsKind.EVERY_RUN, "the job asks the model on every run (llm.consult every-run)"))
    if trigger == ASK_AI_TRIGGER:
        news.append(News(NewsKind.ASK_AI, "the operator triggered this run with --ask-ai"))
    if decision is None:
        return [*news, News(NewsKind.FIRST, "no standing AI decision yet")]
    if decision.valid_until <= now:
        news.append(
            News(
                NewsKind.EXPIRED,
                f"the decision of run {decision.run_id} expired at {_iso(decision.valid_until)}",
            )
        )
    if decision.consult_again_at is not None and decision.consult_again_at <= now:
        news.append(
            News(
                NewsKind.CONSULT_AGAIN,
                f"the model asked to be consulted again at {_iso(decision.consult_again_at)}",
            )
        )
    before = decision.inputs
    if before.job != inputs.job:
        news.append(News(NewsKind.JOB_CHANGED, f"the job definition changed since run {decision.run_id}"))
    for endpoint_id, state in sorted(inputs.circuits.items()):
        previous = before.circuits.get(endpoint_id, "closed")
        if previous != state:
            news.append(News(NewsKind.CIRCUIT, f"endpoint {endpoint_id!r} circuit {previous} -> {state}"))
    for endpoint_id, now_seen in sorted(inputs.steps.items()):
        news += _step_news(endpoint_id, before.steps.get(endpoint_id), now_seen)
    return news


def _step_news(endpoint_id: str, before: StepObservation | None, now: StepObservation) -> list[News]:
    if before is None:
        return [News(NewsKind.OUTCOME, f"endpoint {endpoint_id!r} first seen: {now.outcome}")]
    if before.outcome != now.outcome:
        return [News(NewsKind.OUTCOME, f"endpoint {endpoint_id!r} {before.outcome} -> {now.outcome}")]
    changes = []
    if before.status != now.status:
        changes.append(f"status {before.status} -> {now.status}")
    if before.content_type != now.content_type:
        changes.append(f"content type {before.content_type} -> {now.content_type}")
    if before.size_class != now.size_class:
        changes.append(f"body size {before.size_class} -> {now.size_class}")
    if before.keys != now.keys:
        changes.append("top-level JSON keys changed")
    for expression in sorted(set(before.watch) | set(now.watch)):
        if before.watch.get(expression) != now.watch.get(expression):
            changes.append(f"watched {expression!r} changed")
    if not changes:
        return []
    return [News(NewsKind.RESPONSE, f"endpoint {endpoint_id!r} response: {', '.join(changes)}")]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")

"""The AI planner: Claude picks which endpoints to call and in what order; code validates everything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cronpilot.ai.caching import CachePlan
from cronpilot.ai.conversation import ModelStrategy, StrictAnswer
from cronpilot.ai.failures import FailureClass, LlmCallError
from cronpilot.ai.prompts import PLAN_TOOL, plan_request
from cronpilot.dag import find_cycle, topological_waves
from cronpilot.domain.strategies import PlanContext, PlanDecision, deterministic_plan
from cronpilot.domain.templating import referenced_endpoints
from cronpilot.models.job import Job
from cronpilot.models.run import PlanRecord, PlanStep

MAX_REPAIRS = 2
PLAN_MAX_TOKENS = 1024
MAX_RATIONALE_CHARS = 1000


class PlanStepAnswer(StrictAnswer):
    endpoint_id: str
    depends_on: list[str]


class PlanAnswer(StrictAnswer):
    rationale: str
    steps: list[PlanStepAnswer]
    valid_for_seconds: int | None = None


def validate_plan(job: Job, answer: PlanAnswer) -> list[PlanStep]:
    """The plan as steps, or LlmCallError naming every problem precisely (fed back on repair).

    Declared dependencies are hard: a called endpoint's declared dependencies (and the endpoints whose
    extracted values it uses) must be in the plan; their edges are added by code, so the model cannot
    drop them.
    """
    known = {e.id: e for e in job.endpoints}
    semantic: list[str] = []
    structural: list[str] = []
    ids = [s.endpoint_id for s in answer.steps]
    if not ids:
        semantic.append("the plan calls no endpoint: call at least one")
    for n, step in enumerate(answer.steps):
        if step.endpoint_id not in known:
            semantic.append(
                f"steps[{n}].endpoint_id {step.endpoint_id!r} is not in the catalogue; "
                f"use one of {sorted(known)}"
            )
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        structural.append(f"endpoint ids listed more than once: {duplicates}; list each endpoint once")
    if len(ids) > job.guardrails.max_steps:
        semantic.append(f"{len(ids)} steps exceed max_steps {job.guardrails.max_steps}; call fewer endpoints")
    planned = set(ids)
    graph: dict[str, list[str]] = {}
    for n, step in enumerate(answer.steps):
        deps = list(dict.fromkeys(step.depends_on))
        for dep in deps:
            if dep == step.endpoint_id:
                structural.append(f"steps[{n}] ({step.endpoint_id}) depends on itself; remove it")
            elif dep not in known:
                semantic.append(f"steps[{n}].depends_on names unknown endpoint {dep!r}; use catalogue ids")
            elif dep not in planned:
                structural.append(
                    f"steps[{n}] ({step.endpoint_id}) depends on {dep!r}, which the plan does not call; "
                    "call it or drop the dependency"
                )
        endpoint = known.get(step.endpoint_id)
        declared = list(endpoint.depends_on) if endpoint else []
        for dep in declared:
            if dep not in planned:
                semantic.append(
                    f"{step.endpoint_id!r} declares a dependency on {dep!r}: call {dep!r} too, or drop "
                    f"{step.endpoint_id!r}"
                )
        # A step that uses another's extracted values runs after it, whatever the model proposed.
        producers = referenced_endpoints(endpoint) if endpoint else []
        for producer in producers:
            if producer not in planned:
                semantic.append(
                    f"{step.endpoint_id!r} uses values extracted by {producer!r}: call {producer!r} too, "
                    f"or drop {step.endpoint_id!r}"
                )
        graph[step.endpoint_id] = [d for d in dict.fromkeys([*declared, *producers, *deps]) if d in planned]
    if not semantic and not structural and (cycle := find_cycle(graph)):
        structural.append(f"dependency cycle {' -> '.join(cycle)}; remove one of these depends_on entries")
    if semantic:
        raise LlmCallError(FailureClass.SEMANTIC_VIOLATION, "; ".join(semantic + structural))
    if structural:
        raise LlmCallError(FailureClass.STRUCTURAL_INCONSISTENCY, "; ".join(structural))
    return [PlanStep(step_id=i, endpoint_id=i, depends_on=graph[i]) for i in ids]


@dataclass(kw_only=True)
class AiPlanner(ModelStrategy):
    """A PlanStrategy. On any failure (or over budget) the deterministic plan, source `fallback`."""

    max_repairs: int = MAX_REPAIRS
    decided_by: str = "ai"

    def request(self, job: Job, context: PlanContext) -> dict[str, Any]:
        return self.prepared(job, context)[0]

    def prepared(self, job: Job, context: PlanContext) -> tuple[dict[str, Any], CachePlan]:
        request = plan_request(
            job,
            model=self.model,
            max_tokens=PLAN_MAX_TOKENS,
            run=context.run,
            history=context.history,
            endpoint_health=context.endpoint_health,
        )
        return request, self.place_cache(request, job, context.run.scheduled_at)

    def plan(self, job: Job, context: PlanContext) -> PlanDecision:
        conversation = self.conversation(
            phase="plan", job=job, tool_name=PLAN_TOOL, run_tokens=context.run.tokens
        )

        def parse(value: Any) -> tuple[PlanAnswer, list[PlanStep]]:
            answer = PlanAnswer.model_validate(value)
            return answer, validate_plan(job, answer)

        request, cache = self.prepared(job, context)
        outcome = conversation.run(request, parse, cache)
        if outcome.answer is not None:
            answer, steps = outcome.answer
            record = PlanRecord(
                source="ai-repaired" if outcome.repaired else "ai",
                rationale=answer.rationale[:MAX_RATIONALE_CHARS] or "(no rationale given)",
                steps=steps,
                waves=topological_waves({s.step_id: s.depends_on for s in steps}),
                decided_by=self.decided_by,
                failure_class=str(outcome.failure_class) if outcome.failure_class else None,
            )
        else:
            failure = str(outcome.failure_class or FailureClass.API_ERROR)
            record = deterministic_plan(
                job,
                source="fallback",
                rationale=f"every endpoint in declared order: the AI plan failed ({failure})",
            ).model_copy(update={"failure_class": failure})
        valid_for = None
        if outcome.answer is not None and outcome.answer[0].valid_for_seconds is not None:
            valid_for = timedelta(seconds=max(outcome.answer[0].valid_for_seconds, 0))
        return PlanDecision(
            plan=record, tokens=outcome.tokens, failures=outcome.failures, valid_for=valid_for
        )

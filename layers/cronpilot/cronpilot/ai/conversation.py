"""One schema-bound exchange with the model: budget check, call, classify, repair, account tokens.

Shared by the planner and the summarizer. Never raises for an LLM problem: the outcome carries the
answer or the failures, and the caller takes the deterministic path.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from cronpilot.ai.caching import CachePlan, job_cadence, place_breakpoints
from cronpilot.ai.failures import REPAIRABLE, FailureClass, LlmCallError, record_failure, record_tokens
from cronpilot.ai.pricing import LIST_PRICES, PriceTable
from cronpilot.ai.prompts import estimate_tokens
from cronpilot.clock import Clock
from cronpilot.domain.ports import Reservation, UsageLedger
from cronpilot.models.job import Job
from cronpilot.models.run import LlmFailure, TokenUsage
from cronpilot.observability import logger

ENUM_ERRORS = frozenset({"literal_error", "enum"})
MAX_ERRORS_FED_BACK = 10
# No repair starts after this long: the Lambda must finish, and a slow model is better skipped.
DEADLINE_SECONDS = 60.0


def conversation_worst_seconds(
    call_seconds: float, max_repairs: int, deadline: float = DEADLINE_SECONDS
) -> float:
    """The longest a conversation can last: no repair starts after `deadline`, and the last call started
    before it may take a full call (timeouts and retries included)."""
    return min(max_repairs * call_seconds, deadline) + call_seconds


@dataclass
class Outcome[T]:
    answer: T | None = None
    repaired: bool = False
    tokens: TokenUsage = field(default_factory=TokenUsage)
    failures: list[LlmFailure] = field(default_factory=list)
    failure_class: FailureClass | None = None  # the first failure: what went wrong in the first place
    calls: int = 0


def describe_validation_error(exc: ValidationError) -> tuple[FailureClass, str]:
    errors = exc.errors()
    kind = (
        FailureClass.INVALID_ENUM_VALUE
        if any(e["type"] in ENUM_ERRORS for e in errors)
        else FailureClass.SCHEMA_PARSE_ERROR
    )
    lines = [
        f"{'.'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}" for e in errors[:MAX_ERRORS_FED_BACK]
    ]
    return kind, "; ".join(lines)


def usage_of(response: Any) -> TokenUsage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return TokenUsage(calls=1)
    creation = getattr(usage, "cache_creation", None)
    return TokenUsage(
        input=int(getattr(usage, "input_tokens", 0) or 0),
        output=int(getattr(usage, "output_tokens", 0) or 0),
        cache_read=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
        cache_write=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
        cache_write_1h=int(getattr(creation, "ephemeral_1h_input_tokens", 0) or 0),
        calls=1,
    )


def tool_input(response: Any, tool_name: str) -> Any:
    """The tool call's input, or a classified failure."""
    content = list(getattr(response, "content", None) or [])
    if not content:
        raise LlmCallError(FailureClass.EMPTY_RESPONSE, "the response had no content")
    for block in content:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == tool_name:
            return block.input
    texts = [getattr(b, "text", "") for b in content if getattr(b, "type", None) == "text"]
    if not any(t.strip() for t in texts) and not any(getattr(b, "type", None) == "tool_use" for b in content):
        raise LlmCallError(FailureClass.EMPTY_RESPONSE, "the response had only empty blocks")
    raise LlmCallError(
        FailureClass.TOOL_NOT_CALLED,
        f"the answer did not call {tool_name} (stop_reason {getattr(response, 'stop_reason', None)})",
    )


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class StrictAnswer(BaseModel):
    """Base of the tool answers: unknown fields and loose types are schema errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


@dataclass(kw_only=True)
class ModelStrategy:
    """What the AI planner and summarizer share: the model, its client, usage accounting, the clock."""

    model: str
    client_factory: Callable[[], Any]
    usage_store: UsageLedger | None
    clock: Clock
    max_repairs: int
    prices: PriceTable = field(default_factory=lambda: PriceTable(LIST_PRICES))
    # The share of runs that consult the model (1.0 when every run does): how likely the next run finds
    # this run's cache entry alive. Standing decisions lower it.
    next_use_share: float = 1.0

    def conversation(self, *, phase: str, job: Job, tool_name: str, run_tokens: TokenUsage) -> Conversation:
        return Conversation(
            phase=phase,
            job=job,
            tool_name=tool_name,
            client_factory=self.client_factory,
            usage_store=self.usage_store,
            clock=self.clock,
            run_tokens=run_tokens,
            max_repairs=self.max_repairs,
            prices=self.prices,
        )

    def place_cache(self, request: dict[str, Any], job: Job, at: datetime) -> CachePlan:
        """Breakpoints where the prefix reaches the model's minimum, with the TTL the cadence pays for."""
        return place_breakpoints(
            request,
            gap=job_cadence(job, at),
            price=self.prices.price(self.model),
            next_use_share=self.next_use_share,
        )


class Conversation:
    """Ask, validate with `parse`, feed precise errors back up to `max_repairs` times."""

    def __init__(
        self,
        *,
        phase: str,
        job: Job,
        tool_name: str,
        client_factory: Callable[[], Any],
        usage_store: UsageLedger | None,
        clock: Clock,
        run_tokens: TokenUsage,
        max_repairs: int,
        deadline_seconds: float = DEADLINE_SECONDS,
        prices: PriceTable | None = None,
    ) -> None:
        self.phase = phase
        self.job = job
        self.tool_name = tool_name
        self.client_factory = client_factory
        self.usage_store = usage_store
        self.clock = clock
        self.run_tokens = run_tokens
        self.max_repairs = max_repairs
        self.deadline_seconds = deadline_seconds
        self.prices = prices or PriceTable(LIST_PRICES)

    def run[T](
        self, request: dict[str, Any], parse: Callable[[Any], T], cache: CachePlan | None = None
    ) -> Outcome[T]:
        outcome: Outcome[T] = Outcome()
        started = time.monotonic()
        for attempt in range(self.max_repairs + 1):
            response: Any = None
            try:
                if attempt and time.monotonic() - started > self.deadline_seconds:
                    raise LlmCallError(
                        FailureClass.TIMEOUT,
                        f"no repair started after {self.deadline_seconds:.0f}s of this conversation",
                    )
                reservation = self._reserve_budget(request, outcome.tokens)
                try:
                    response = self._call(request)
                except LlmCallError:
                    self._release(reservation)
                    raise
                outcome.calls += 1
                usage = self._priced(usage_of(response), request, cache)
                outcome.tokens = outcome.tokens + usage
                self._account(usage, reservation)
                value = tool_input(response, self.tool_name)
                outcome.answer = self._parse(value, parse)
                outcome.repaired = attempt > 0
                return outcome
            except LlmCallError as exc:
                self._fail(outcome, exc.failure_class, exc.detail)
                if exc.failure_class not in REPAIRABLE:
                    return outcome
                if attempt == self.max_repairs:
                    if attempt > 0:
                        self._fail(
                            outcome,
                            FailureClass.REPAIR_FAILED,
                            f"still invalid after {attempt} repair attempt(s): {exc.detail}",
                        )
                    return outcome
                request = repair_request(request, response, exc)
        return outcome

    # ----------------------------------------------------------- pieces

    def _fail(self, outcome: Outcome[Any], failure_class: FailureClass, detail: str) -> None:
        outcome.failures.append(record_failure(self.phase, failure_class, detail))
        if outcome.failure_class is None:
            outcome.failure_class = failure_class

    def _reserve_budget(self, request: dict[str, Any], spent: TokenUsage) -> Reservation | None:
        """Check the run's budget, then hold this call's estimate against the job's daily budget."""
        guardrails = self.job.guardrails
        estimate = estimate_tokens(request)
        run_total = self.run_tokens.total + spent.total
        if run_total + estimate > guardrails.max_tokens_per_run:
            raise LlmCallError(
                FailureClass.OVER_BUDGET,
                f"run budget: {run_total} used + ~{estimate} for this call > max_tokens_per_run "
                f"{guardrails.max_tokens_per_run}",
            )
        if self.usage_store is None:
            return None
        now = self.clock.now()
        try:
            reservation = self.usage_store.reserve(self.job.id, now, estimate, guardrails.max_tokens_per_day)
            committed = self.usage_store.committed(self.job.id, now) if reservation is None else 0
        except Exception as exc:  # an unknown spend is not a licence to spend: no call
            raise LlmCallError(FailureClass.API_ERROR, f"daily usage unreadable: {exc}") from exc
        if reservation is None:
            raise LlmCallError(
                FailureClass.OVER_BUDGET,
                f"daily budget: {committed} used or held by calls in flight today + ~{estimate} for this "
                f"call > max_tokens_per_day {guardrails.max_tokens_per_day}",
            )
        return reservation

    def _release(self, reservation: Reservation | None) -> None:
        if self.usage_store is None or reservation is None:
            return
        try:
            self.usage_store.release(reservation, self.clock.now())
        except Exception:  # the hold then lapses with the day; never fail the run over it
            logger.exception("token reservation not released", job_id=self.job.id, phase=self.phase)

    def _call(self, request: dict[str, Any]) -> Any:
        try:
            import anthropic
        except ImportError as exc:  # pragma: no cover - the layer always ships it
            raise LlmCallError(FailureClass.API_ERROR, f"anthropic SDK unavailable: {exc}") from exc
        try:
            client = self.client_factory()
            return client.messages.create(**request)
        except anthropic.APITimeoutError as exc:
            raise LlmCallError(FailureClass.TIMEOUT, f"no answer within the timeout: {exc}") from exc
        except anthropic.APIStatusError as exc:
            raise LlmCallError(
                FailureClass.API_ERROR, f"HTTP {exc.status_code} after the SDK's retries: {exc.message}"
            ) from exc
        except anthropic.APIError as exc:
            raise LlmCallError(FailureClass.API_ERROR, f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # configuration, credentials: the run still goes on without the LLM
            raise LlmCallError(FailureClass.API_ERROR, f"{type(exc).__name__}: {exc}") from exc

    def _priced(self, usage: TokenUsage, request: dict[str, Any], cache: CachePlan | None) -> TokenUsage:
        """The call's usage with its cost at the model's price and the cache choice it was made with."""
        cost = self.prices.cost(str(request.get("model", "")), usage)
        update: dict[str, Any] = {"cost_usd": cost or 0.0, "unpriced_calls": int(cost is None)}
        if cache is not None:
            update |= {"cache_ttl": cache.label, "cache_reason": cache.reason}
        return usage.model_copy(update=update)

    def _account(self, usage: TokenUsage, reservation: Reservation | None) -> None:
        record_tokens(self.phase, usage)
        if self.usage_store is None or reservation is None:
            return
        try:
            self.usage_store.settle(reservation, self.clock.now(), usage)
        except Exception:  # accounting must never fail the run; the run record keeps the usage too
            logger.exception("token usage not recorded", job_id=self.job.id, phase=self.phase)

    def _parse[T](self, value: Any, parse: Callable[[Any], T]) -> T:
        if not isinstance(value, dict):
            raise LlmCallError(
                FailureClass.SCHEMA_PARSE_ERROR,
                f"the tool input is not a JSON object: {str(value)[:200]!r}",
            )
        try:
            return parse(value)
        except ValidationError as exc:
            kind, detail = describe_validation_error(exc)
            raise LlmCallError(kind, detail) from exc
        except (TypeError, ValueError, KeyError) as exc:  # a shape the schema let through
            raise LlmCallError(FailureClass.SCHEMA_PARSE_ERROR, f"{type(exc).__name__}: {exc}") from exc


def repair_request(request: dict[str, Any], response: Any, error: LlmCallError) -> dict[str, Any]:
    """The same request (same cached prefix) plus the invalid answer and the precise errors."""
    repaired = copy.deepcopy(request)
    messages: list[dict[str, Any]] = repaired["messages"]
    feedback = (
        f"Your answer was invalid ({error.failure_class}): {error.detail}\n"
        f"Fix these errors and call {request['tool_choice']['name']} again."
    )
    blocks = _assistant_blocks(response)
    tool_use = next((b for b in blocks if b["type"] == "tool_use"), None)
    if tool_use is not None:
        messages.append({"role": "assistant", "content": blocks})
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use["id"],
                        "is_error": True,
                        "content": feedback,
                    }
                ],
            }
        )
    elif blocks:
        messages.append({"role": "assistant", "content": blocks})
        messages.append({"role": "user", "content": [{"type": "text", "text": feedback}]})
    else:
        messages[-1]["content"].append({"type": "text", "text": feedback})
    return repaired


def _assistant_blocks(response: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in list(getattr(response, "content", None) or []):
        kind = getattr(block, "type", None)
        if kind == "text" and getattr(block, "text", "").strip():
            blocks.append({"type": "text", "text": block.text})
        elif kind == "tool_use":
            blocks.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": _as_object(block.input)}
            )
    return blocks

"""The failure taxonomy: every LLM call that does not yield a valid answer gets exactly one class."""

from __future__ import annotations

import os
from enum import StrEnum

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from cronpilot.models.run import LlmFailure, TokenUsage
from cronpilot.observability import logger

MAX_DETAIL_CHARS = 500


class FailureClass(StrEnum):
    SCHEMA_PARSE_ERROR = "schema_parse_error"  # the tool input does not match the schema
    SEMANTIC_VIOLATION = "semantic_violation"  # well-formed, but breaks a rule (unknown id, too many steps)
    EMPTY_RESPONSE = "empty_response"  # no content at all
    TOOL_NOT_CALLED = "tool_not_called"  # text without the tool
    INVALID_ENUM_VALUE = "invalid_enum_value"  # a field outside its allowed values
    STRUCTURAL_INCONSISTENCY = "structural_inconsistency"  # cycles, duplicates, dangling dependencies
    REPAIR_FAILED = "repair_failed"  # every repair attempt was invalid too
    TIMEOUT = "timeout"
    API_ERROR = "api_error"  # HTTP errors after the SDK's own retries, connection errors
    OVER_BUDGET = "over_budget"  # the call was never made


class LlmCallError(Exception):
    """An LLM call that did not yield a valid answer."""

    def __init__(self, failure_class: FailureClass, detail: str) -> None:
        super().__init__(f"{failure_class}: {detail}")
        self.failure_class = failure_class
        self.detail = detail


# Answer failures a repair prompt can fix; timeouts, API errors and budgets cannot.
REPAIRABLE = frozenset(
    {
        FailureClass.SCHEMA_PARSE_ERROR,
        FailureClass.SEMANTIC_VIOLATION,
        FailureClass.EMPTY_RESPONSE,
        FailureClass.TOOL_NOT_CALLED,
        FailureClass.INVALID_ENUM_VALUE,
        FailureClass.STRUCTURAL_INCONSISTENCY,
    }
)


def record_failure(phase: str, failure_class: FailureClass, detail: str) -> LlmFailure:
    """The run-record entry, plus one metric with the phase and the class as dimensions."""
    _emit("LlmFallbacks", 1, phase=phase, FailureClass=str(failure_class))
    logger.warning("llm call failed", phase=phase, failure_class=str(failure_class))
    return LlmFailure(phase=phase, failure_class=str(failure_class), detail=detail[:MAX_DETAIL_CHARS])


def record_tokens(phase: str, usage: TokenUsage) -> None:
    # Token metrics carry only the service dimension: the dashboard and the daily spend alarm sum
    # them per deployment (the phase is on the run record). The spend is each call's cost at its own
    # model's price (LLM_PRICES included), so the alarm needs no price table of its own.
    for name, value in (
        ("TokensInput", usage.input),
        ("TokensOutput", usage.output),
        ("TokensCacheRead", usage.cache_read),
        ("TokensCacheWrite", usage.cache_write),
        ("ModelCalls", usage.calls),
        ("ModelCallsUnpriced", usage.unpriced_calls),
    ):
        _emit(name, value)
    _emit("TokenSpendUsd", usage.cost_usd, unit=MetricUnit.NoUnit)


def record_reuses(phase: str, count: int = 1) -> None:
    """Model calls a standing decision made unnecessary (the dashboard sets them beside ModelCalls)."""
    _emit("ModelCallsReused", count)
    logger.info("standing decision reused", phase=phase, calls_avoided=count)


def _emit(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """One EMF line per metric, so each carries its own dimensions (the dashboard's names)."""
    if is_metrics_disabled():  # single_metric itself ignores POWERTOOLS_METRICS_DISABLED
        return
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "cronpilot")
    with single_metric(name=name, unit=unit, value=value, namespace=namespace) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)

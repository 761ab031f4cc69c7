"""Chooses the decision strategies for a run. With no LLM configured, the deterministic ones."""

from __future__ import annotations

from cronpilot.runtime import Runtime
from cronpilot.strategies import DeterministicPlanner, DeterministicSummarizer, PlanStrategy, SummaryStrategy


def plan_strategy(runtime: Runtime) -> PlanStrategy:
    return DeterministicPlanner()


def summary_strategy(runtime: Runtime) -> SummaryStrategy:
    return DeterministicSummarizer()

"""The cost model of docs/deploy.md, counted from the ASL file rather than written down by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .paths import ASL_PATH


def _happy_path(states: dict[str, Any], start: str) -> list[str]:
    """The states a successful execution enters, in order: follow Next until End or a Succeed state."""
    path, name = [], start
    while True:
        path.append(name)
        state = states[name]
        if state.get("End") or state["Type"] == "Succeed":
            return path
        name = state["Next"]


def _transitions(machine: dict[str, Any], runs: int, items: dict[str, int]) -> int:
    total = 0
    for name in _happy_path(machine["States"], machine["StartAt"]):
        total += runs
        state = machine["States"][name]
        if state["Type"] == "Map":
            total += _transitions(state["ItemProcessor"], items[name], items)
    return total


def transitions_per_run(waves: int, steps: int, asl_path: Path = ASL_PATH) -> int:
    """Step Functions state transitions of one successful run whose plan has `waves` waves holding
    `steps` steps in total (each state entered is one transition; each Map iteration enters its
    processor's states). Retries add one transition each and are not counted."""
    machine = json.loads(asl_path.read_text())
    return _transitions(machine, 1, {"Waves": waves, "Steps": steps})

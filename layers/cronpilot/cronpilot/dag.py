"""Dependency plans: cycle detection and topological waves.

A plan is a list of waves; every step in a wave depends only on steps of earlier waves, so a wave's
steps run in parallel and waves run one after another (the state machine's outer Map has
MaxConcurrency 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class PlanError(ValueError):
    """A plan that cannot run: unknown ids, duplicates, cycles or too many steps."""


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Return one dependency cycle as a path that ends where it starts (a -> b -> a), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for dep in graph.get(node, ()):
            if dep not in colour:
                continue
            if colour[dep] == grey:
                return [*stack[stack.index(dep) :], dep]
            if colour[dep] == white and (found := visit(dep)):
                return found
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white and (found := visit(node)):
            return found
    return None


def topological_waves(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Kahn's algorithm by levels; ids inside a wave keep a stable sorted order."""
    missing = sorted({d for deps in graph.values() for d in deps if d not in graph})
    if missing:
        raise PlanError(f"dependencies on steps that are not in the plan: {missing}")
    if cycle := find_cycle(graph):
        raise PlanError(f"dependency cycle {' -> '.join(cycle)}")
    remaining = {node: set(deps) for node, deps in graph.items()}
    waves: list[list[str]] = []
    while remaining:
        ready = sorted(node for node, deps in remaining.items() if not deps)
        waves.append(ready)
        for node in ready:
            del remaining[node]
        for deps in remaining.values():
            deps.difference_update(ready)
    return waves

"""The dashboard shows what the AI pilot does for its money: calls, calls avoided, cache hit ratio."""

from __future__ import annotations

from typing import Any

from tests.infra.test_monitoring import _metric_names, _widgets


def test_ai_widgets_graph_calls_reuses_and_the_cache_hit_ratio(template_json: dict[str, Any]) -> None:
    widgets = _widgets(template_json)
    assert _metric_names(widgets["LLM model calls"]) == {"ModelCalls"}
    assert _metric_names(widgets["LLM calls avoided by reuse"]) == {"ModelCallsReused"}
    ratio = widgets["LLM prompt cache hit ratio"]["metrics"]
    expression = next(m[0]["expression"] for m in ratio if isinstance(m[0], dict) and "expression" in m[0])
    assert expression == "100 * tcr / (tin + tcr + tcw)"
    assert {"TokensInput", "TokensCacheRead", "TokensCacheWrite"} <= {m[1] for m in ratio if len(m) > 1}

"""docs/deploy.md's cost model matches the ASL file it claims to be counted from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cronpilot_infra.cost import transitions_per_run


@pytest.mark.parametrize(("waves", "steps"), [(1, 1), (2, 4), (3, 10), (5, 40)])
def test_transitions_per_run_is_n_plus_w_plus_4(waves: int, steps: int) -> None:
    assert transitions_per_run(waves, steps) == steps + waves + 4


def test_deploy_guide_states_the_counted_formula_and_example(repo_root: Path) -> None:
    guide = (repo_root / "docs" / "deploy.md").read_text()
    assert "`n + w + 4`" in guide
    example = re.search(r"\| Step Functions \| (\d+) transitions \| \$([\d.]+) \|", guide)
    assert example is not None
    assert int(example.group(1)) == transitions_per_run(2, 4)
    assert float(example.group(2)) == pytest.approx(transitions_per_run(2, 4) * 25.0)

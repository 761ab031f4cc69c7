"""`runs show` says, per AI phase, why the model was asked or which run's decision was reused."""

from __future__ import annotations

from datetime import UTC, datetime

from cronpilot.cli import render
from cronpilot.models.operations import RunDetail
from cronpilot.models.run import AiConsult, RunRecord

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_runs_show_explains_each_phases_call_or_reuse(capsys):
    run = RunRecord.claimed("job", NOW, 2, "schedule", NOW)
    run.consults = [
        AiConsult(phase="plan", called=True, news=["outcome: endpoint 'a' success/2xx -> failure/5xx"]),
        AiConsult(
            phase="summarize", called=False, reused_from="job.20261122T084500Z", reason="no news since"
        ),
    ]
    render.print_run(RunDetail(**run.model_dump(), steps=[]))
    out = capsys.readouterr().out
    assert "AI plan: asked the model (outcome: endpoint 'a' success/2xx -> failure/5xx)" in out
    assert "AI summarize: reused run job.20261122T084500Z's decision (no news since)" in out

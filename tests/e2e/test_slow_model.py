"""A model slower than the SDK's timeout never breaks a run or local mode: `cronpilot local run` finishes,
writes its report and records `timeout`; a wait that runs out is one line, a non-zero exit, and a report.

The SDK timeout is short here to keep the test fast; tests/unit/test_local_waits.py proves the same wait
arithmetic at the default settings (30 s x 3 attempts per call)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cronpilot.cli import app
from cronpilot.local.demo_server import DemoServer
from typer.testing import CliRunner

from tests.support.fake_anthropic import FakeAnthropic, plan_reply

SDK_TIMEOUT = 0.3
MODEL_DELAY = 1.0  # every attempt times out


@pytest.fixture
def slow_model(fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    fake.responder = lambda request: plan_reply([("only", [])], delay=MODEL_DELAY)
    for name, value in {
        "LLM_PROVIDER": "anthropic",
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "slow-test-key",
        "LLM_TIMEOUT_SECONDS": str(SDK_TIMEOUT),
        "LLM_MAX_RETRIES": "2",  # the default
    }.items():
        monkeypatch.setenv(name, value)
    return fake


def _job_file(tmp_path: Path, target: DemoServer) -> Path:
    path = tmp_path / "slow.json"
    doc = {
        "id": "slow-ai",
        "goal": "keep going when the model is slow",
        "schedule": {"rate": "10m"},
        "endpoints": [{"id": "only", "url": f"{target.base_url}/ok"}],
    }
    path.write_text(json.dumps(doc))
    return path


def _local_run(tmp_path: Path, target: DemoServer, *options: str):
    report = tmp_path / "report.json"
    args = ["local", "run", str(_job_file(tmp_path, target)), "--ticks", "1", "--report", str(report)]
    args += ["--allow-private", "127.0.0.0/8", "--allow-port", str(target.port), *options]
    return CliRunner().invoke(app, args), report


def test_a_slow_model_times_out_into_the_deterministic_path_and_the_run_finishes(
    tmp_path, target, slow_model
):
    result, report_path = _local_run(tmp_path, target)
    assert result.exit_code == 0, result.output
    [run] = json.loads(report_path.read_text())["runs"]
    assert run["status"] == "succeeded"
    assert run["plan"]["source"] == "fallback"
    assert [(f["phase"], f["failure_class"]) for f in run["llm_failures"]] == [
        ("plan", "timeout"),
        ("summarize", "timeout"),
    ]
    assert run["next_run"]["source"] == "fallback"
    # Each phase made 3 attempts (2 retries) of >= 0.3 s: the run's duration includes summarizing
    assert len(slow_model.message_requests) == 6
    assert run["duration_ms"] >= 2 * 3 * SDK_TIMEOUT * 1000


def test_a_wait_that_runs_out_is_one_line_a_non_zero_exit_and_a_written_report(tmp_path, target, slow_model):
    result, report_path = _local_run(tmp_path, target, "--max-wait", "1")
    assert result.exit_code == 6, result.output
    [line] = [text for text in result.output.splitlines() if text.startswith("error:")]
    assert line.startswith("error: timed out: run slow-ai.")
    assert "still running after 1 s" in line
    assert "Traceback" not in result.output
    [run] = json.loads(report_path.read_text())["runs"]
    assert run["status"] in ("claimed", "running")
    assert json.loads(report_path.read_text())["error"] == line.removeprefix("error: ")


def test_local_tick_over_the_state_file_says_which_wait_ran_out(tmp_path, target, slow_model):
    state = tmp_path / "state.json"
    runner = CliRunner()
    base = ["--local", "--state", str(state)]
    applied = runner.invoke(app, [*base, "jobs", "apply", str(_job_file(tmp_path, target))])
    assert applied.exit_code == 0, applied.output
    network = ["--allow-private", "127.0.0.0/8", "--allow-port", str(target.port)]
    result = runner.invoke(app, [*base, "local", "tick", "--max-wait", "1", *network])
    assert result.exit_code == 6, result.output
    assert "timed out: run slow-ai." in result.output
    assert "Traceback" not in result.output
    # And the state file kept the claimed run
    listed = runner.invoke(app, [*base, "runs", "list", "slow-ai", "-o", "json"])
    assert [r["run_id"].startswith("slow-ai.") for r in json.loads(listed.output)] == [True]

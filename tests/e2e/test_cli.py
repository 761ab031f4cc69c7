"""The operator CLI against local mode's persistent state file, as a script would use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cronpilot.cli import app
from cronpilot.cli.common import EXIT_INVALID, EXIT_NOT_FOUND
from cronpilot.local.demo_server import DemoServer
from typer.testing import CliRunner


@pytest.fixture
def target():
    with DemoServer() as demo:
        yield demo


@pytest.fixture
def cli(tmp_path):
    runner = CliRunner()
    state = tmp_path / "state.json"

    def run(*args: str, expect: int = 0):
        result = runner.invoke(app, ["--local", "--state", str(state), *args])
        assert result.exit_code == expect, result.output
        return result

    return run


def job_file(tmp_path: Path, target: DemoServer, **overrides) -> Path:
    doc = {
        "id": "cli-job",
        "goal": "exercise the CLI",
        "schedule": {"rate": "30m"},
        "endpoints": [
            {"id": "first", "url": f"{target.base_url}/ok"},
            {"id": "second", "url": f"{target.base_url}/ok", "depends_on": ["first"]},
        ],
        **overrides,
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(doc))
    return path


def test_apply_list_show_pause_resume_trigger_and_runs(cli, tmp_path, target):
    path = job_file(tmp_path, target)
    # apply shows what changes, then re-applying the same file changes nothing
    assert "created cli-job" in cli("jobs", "apply", str(path)).output
    assert "unchanged cli-job" in cli("jobs", "apply", str(path)).output
    listed = json.loads(cli("jobs", "list", "--output", "json").output)
    assert [(j["job_id"], j["status"]) for j in listed] == [("cli-job", "active")]
    shown = json.loads(cli("jobs", "show", "cli-job", "-o", "json").output)
    assert shown["next_run"]["source"] == "baseline"
    assert shown["job"]["schedule"]["rate"] == "30m"

    # pause until a time, then resume
    cli("jobs", "pause", "cli-job", "--until", "2030-01-01T00:00:00")
    shown = json.loads(cli("jobs", "show", "cli-job", "-o", "json").output)
    assert shown["job"]["status"] == "paused"
    assert shown["paused_until"] == "2030-01-01T00:00:00Z"
    assert "paused" in cli("jobs", "trigger", "cli-job", expect=EXIT_INVALID).output
    # re-applying the file (goal changed) keeps the operator's pause and its end date
    changed = job_file(tmp_path, target, goal="exercise the CLI again")
    assert "updated cli-job" in cli("jobs", "apply", str(changed)).output
    shown = json.loads(cli("jobs", "show", "cli-job", "-o", "json").output)
    assert shown["job"]["status"] == "paused"
    assert shown["paused_until"] == "2030-01-01T00:00:00Z"
    cli("jobs", "resume", "cli-job")

    # trigger runs it on the next tick, recorded as manual
    cli("jobs", "trigger", "cli-job")
    ticked = cli("local", "tick", "--allow-private", "127.0.0.0/8", "--allow-port", str(target.port))
    assert "1 run(s)" in ticked.output
    runs = json.loads(cli("runs", "list", "cli-job", "-o", "json").output)
    assert len(runs) == 1
    assert runs[0]["trigger"] == "manual"
    assert runs[0]["status"] == "succeeded"
    detail = json.loads(cli("runs", "show", runs[0]["run_id"], "-o", "json").output)
    assert detail["plan"]["waves"] == [["first"], ["second"]]
    assert {s["step_id"]: s["status"] for s in detail["steps"]} == {
        "first": "succeeded",
        "second": "succeeded",
    }
    assert detail["next_run"]["source"] == "baseline"
    human = cli("runs", "show", runs[0]["run_id"]).output
    assert "wave 1: first" in human
    assert "next run:" in human
    assert json.loads(cli("runs", "list", "cli-job", "--status", "failed", "-o", "json").output) == []
    assert len(json.loads(cli("runs", "list", "cli-job", "--status", "succeeded", "-o", "json").output)) == 1
    # a status that does not exist is a usage error that lists the ones that do
    typo = cli("runs", "list", "cli-job", "--status", "sucess", expect=2).output
    assert "abandoned" in typo

    # delete, then every command says "not found" with its exit code
    cli("jobs", "delete", "cli-job")
    assert "no job with id 'cli-job'" in cli("jobs", "show", "cli-job", expect=EXIT_NOT_FOUND).output
    cli("runs", "show", "cli-job.20200101T000000Z", expect=EXIT_NOT_FOUND)


def test_apply_of_a_changed_file_shows_the_diff(cli, tmp_path, target):
    cli("jobs", "apply", str(job_file(tmp_path, target)))
    changed = cli("jobs", "apply", str(job_file(tmp_path, target, goal="a new goal"))).output
    assert "updated cli-job" in changed
    assert '-  "goal": "exercise the CLI"' in changed
    assert '+  "goal": "a new goal"' in changed


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"endpoints": [{"id": "a", "url": "https://x.example", "depends_on": ["b"]}]},
            "unknown endpoint 'b'",
        ),
        (
            {
                "endpoints": [
                    {"id": "a", "url": "https://x.example", "depends_on": ["b"]},
                    {"id": "b", "url": "https://x.example", "depends_on": ["a"]},
                ]
            },
            "dependency cycle a -> b -> a",
        ),
        ({"endpoints": [{"id": "a", "url": "https://x.example"}] * 2}, "duplicate endpoint ids"),
        ({"guardrails": {"min_interval": "1h", "max_interval": "5m"}}, "make min_interval <= max_interval"),
        ({"schedule": {"cron": "61 * * * *"}}, "schedule.cron"),
        ({"schedule": {"cron": "0 * * * *", "timezone": "Nowhere/City"}}, "unknown time zone"),
        ({"endpoints": [{"id": "a", "url": "ftp://x.example"}]}, "use an http:// or https:// URL"),
    ],
)
def test_validate_reports_each_error_class_with_exit_code_1(tmp_path, target, change, expected):
    path = job_file(tmp_path, target, **change)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == EXIT_INVALID
    assert str(path) in result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_validate_accepts_the_example(repo_root):
    result = CliRunner().invoke(app, ["validate", str(repo_root / "examples" / "orders-sync.yaml")])
    assert result.exit_code == 0, result.output


def test_schema_is_json_schema_of_a_job():
    schema = json.loads(CliRunner().invoke(app, ["schema"]).output)
    assert {"id", "schedule", "endpoints"} <= set(schema["required"])


def test_trigger_with_ask_ai_records_the_operators_request(cli, tmp_path, target):
    cli("jobs", "apply", str(job_file(tmp_path, target)))
    output = cli("jobs", "trigger", "cli-job", "--ask-ai").output
    assert "triggered cli-job: it runs on the next scheduler tick and consults the AI pilot" in output
    shown = json.loads(cli("jobs", "show", "cli-job", "-o", "json").output)
    # the next claim's trigger is `ask-ai`: news for both AI phases (see cronpilot.domain.news)
    assert shown["next_run"]["source"] == "ask-ai"


def test_validate_refuses_topics_the_deployment_may_not_publish_to(tmp_path, target, monkeypatch):
    # Given a job that notifies a topic, and the deployment's allowed topics known to the CLI
    topic = "arn:aws:sns:eu-west-1:123456789012:ops-alerts"
    path = job_file(tmp_path, target, notify=[{"events": ["failure"], "sns": topic}])
    runner = CliRunner()
    monkeypatch.setenv("CRONPILOT_NOTIFY_TOPICS", "arn:aws:sns:eu-west-1:123456789012:cronpilot-alerts")
    # When the file is validated
    refused = runner.invoke(app, ["validate", str(path)])
    # Then it is refused with the file, the topic and the fix
    assert refused.exit_code == EXIT_INVALID
    assert f"{path}: notify: topic {topic} is not one this deployment may publish to" in refused.output
    assert "notify_topic_arns" in refused.output
    # And once the topic is allowed it passes
    monkeypatch.setenv("CRONPILOT_NOTIFY_TOPICS", topic)
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0

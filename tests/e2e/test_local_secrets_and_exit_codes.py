"""Secrets in local mode through the CLI, and `cronpilot local run`'s exit codes for CI.

A secret given with `--secret NAME=env:VAR` (or stored with `cronpilot --local secrets set`) reaches the
endpoint and nowhere else; a missing one fails only the steps that need it, named in their error."""

from __future__ import annotations

import json
import logging
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cronpilot.cli import app
from cronpilot.cli.common import EXIT_INVALID, EXIT_RUNS_FAILED
from typer.testing import CliRunner

from tests.integration.http_servers import LoopbackHTTPServer, Reply

SECRET_VALUE = f"canary-secret-{uuid.uuid4().hex}"
PARAMETER_VALUE = f"canary-param-{uuid.uuid4().hex}"


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as srv:
        srv.route("GET", "/secure", Reply(200, body=b'{"ok": true}'))
        srv.route("GET", "/open", Reply(200, body=b'{"ok": true}'))
        srv.route("GET", "/down", Reply(500, body=b'{"error": "down"}'))
        yield srv


@pytest.fixture
def verbose_logs(monkeypatch, caplog) -> None:
    # The handlers log at DEBUG in this test, so a leak into the logs would show
    monkeypatch.setenv("CRONPILOT_LOCAL_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG, logger="cronpilot")
    caplog.set_level(logging.DEBUG, logger="aws_lambda_powertools")


def write_job(tmp_path: Path, server: LoopbackHTTPServer, endpoints: str, job_id: str = "secret-job") -> Path:
    path = tmp_path / f"{job_id}.yaml"
    path.write_text(
        f"id: {job_id}\nschedule: {{rate: 5m}}\nendpoints:\n{endpoints.format(base=server.base_url)}"
    )
    return path


def invoke(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    return CliRunner(env=env).invoke(app, list(args), input=stdin)


def local_run(job: Path, server: LoopbackHTTPServer, *options: str, env: dict[str, str] | None = None):
    report = job.parent / "report.json"
    result = invoke(
        "local", "run", str(job), "--ticks", "1", "--report", str(report),
        "--allow-private", "127.0.0.0/8", "--allow-port", str(server.port), *options, env=env,
    )  # fmt: skip
    return result, (json.loads(report.read_text()) if report.exists() else None)


def steps_by_id(report: dict) -> dict[str, dict]:
    [run] = report["runs"]
    return {step["step_id"]: step for step in run["steps"]}


def test_secret_and_parameter_from_the_environment_reach_the_endpoint_and_nothing_else(
    tmp_path, server, verbose_logs, capfd, caplog
):
    # Given a job whose headers reference a secret and an SSM parameter, given through the environment
    job = write_job(
        tmp_path,
        server,
        "  - id: keyed\n    url: '{base}/secure'\n"
        "    headers: {{Authorization: {{secret: api-key}}, X-Token: {{parameter: /svc/token}}}}\n",
    )
    env = {"CP_TEST_API_KEY": SECRET_VALUE, "CP_TEST_TOKEN": PARAMETER_VALUE}
    # When it runs locally
    result, report = local_run(
        job, server, "--secret", "api-key=env:CP_TEST_API_KEY", "--parameter", "/svc/token=env:CP_TEST_TOKEN",
        env=env,
    )  # fmt: skip
    # Then the step succeeded with both values sent to the loopback server
    assert result.exit_code == 0, result.output
    assert steps_by_id(report)["keyed"]["status"] == "succeeded"
    [request] = server.requests
    assert request.headers["authorization"] == SECRET_VALUE
    assert request.headers["x-token"] == PARAMETER_VALUE
    # And the values appear nowhere else: not the report, the CLI's output, the logs, or any file written
    captured = capfd.readouterr()
    places = {
        "report": (job.parent / "report.json").read_text(),
        "cli output": result.output,
        "stdout/stderr": captured.out + captured.err,
        "logs": caplog.text,
        **{f"file {p.name}": p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()},
    }
    assert "DEBUG" in caplog.text or caplog.records, "the handlers logged at DEBUG"
    for where, text in places.items():
        assert SECRET_VALUE not in text, f"the secret leaked into {where}"
        assert PARAMETER_VALUE not in text, f"the parameter leaked into {where}"


def test_a_missing_secret_fails_only_its_step_and_names_the_secret_and_endpoint(tmp_path, server):
    # Given a job with an open endpoint, one that needs a secret nobody gave, and one that depends on it
    job = write_job(
        tmp_path,
        server,
        "  - id: open\n    url: '{base}/open'\n"
        "  - id: keyed\n    url: '{base}/secure'\n    headers: {{Authorization: {{secret: missing-key}}}}\n"
        "  - id: after\n    url: '{base}/open'\n    depends_on: [keyed]\n",
    )
    # When it runs, failing CI on partial runs
    result, report = local_run(job, server, "--fail-on", "partial")
    # Then the run is partial: the open endpoint was called, the keyed step failed naming what is missing,
    # its dependent was skipped, and every step is in the report
    [run] = report["runs"]
    assert run["status"] == "partial", run
    steps = steps_by_id(report)
    assert steps["open"]["status"] == "succeeded"
    assert steps["keyed"]["status"] == "failed"
    assert "secret 'missing-key' for endpoint 'keyed'" in steps["keyed"]["error"]
    assert "ResourceNotFoundException" in steps["keyed"]["error"]
    assert steps["after"]["status"] == "skipped"
    assert [r.path for r in server.requests] == ["/open"], "the keyed endpoint was never called"
    # And CI sees it: exit 5, the report written all the same
    assert result.exit_code == EXIT_RUNS_FAILED, result.output
    assert "1 run(s) did not succeed (--fail-on partial)" in result.stderr


def test_a_failed_run_exits_non_zero_unless_told_never(tmp_path, server):
    job = write_job(tmp_path, server, "  - id: down\n    url: '{base}/down'\n")
    result, report = local_run(job, server)
    assert result.exit_code == EXIT_RUNS_FAILED, result.output
    assert [run["status"] for run in report["runs"]] == ["failed"]
    assert "(--fail-on failed)" in result.stderr
    result, report = local_run(job, server, "--fail-on", "never")
    assert result.exit_code == 0, result.output
    assert [run["status"] for run in report["runs"]] == ["failed"]


def test_secrets_set_keeps_the_value_out_of_the_state_file(tmp_path, server):
    # Given a secret stored for local mode from standard input
    state = tmp_path / "state" / "local-state.json"
    stored = invoke("--local", "--state", str(state), "secrets", "set", "api-key", stdin=SECRET_VALUE + "\n")
    assert stored.exit_code == 0, stored.output
    secrets_file = state.parent / "local-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    listed = invoke("--local", "--state", str(state), "secrets", "list")
    assert listed.output.split() == ["secret", "api-key"]
    # When a job that needs it is applied and ticked in local mode
    job = write_job(
        tmp_path,
        server,
        "  - id: keyed\n    url: '{base}/secure'\n    headers: {{X-Key: {{secret: api-key}}}}\n",
    )
    applied = invoke("--local", "--state", str(state), "jobs", "apply", str(job))
    assert applied.exit_code == 0, applied.output
    ticked = invoke(
        "--local", "--state", str(state), "local", "tick", "--ticks", "1",
        "--allow-private", "127.0.0.0/8", "--allow-port", str(server.port),
    )  # fmt: skip
    assert ticked.exit_code == 0, ticked.output
    # Then the endpoint got the value, and the state file does not hold it
    assert [r.headers["x-key"] for r in server.requests] == [SECRET_VALUE]
    assert SECRET_VALUE not in state.read_text()
    assert SECRET_VALUE not in listed.output + stored.output + applied.output + ticked.output


def test_values_are_never_taken_from_the_command_line(tmp_path, server):
    job = write_job(tmp_path, server, "  - id: open\n    url: '{base}/open'\n")
    result, report = local_run(job, server, "--secret", f"api-key={SECRET_VALUE}")
    assert result.exit_code == EXIT_INVALID
    assert report is None
    assert result.stderr.splitlines() == [
        "error: --secret api-key=...: give the value through an environment variable, as "
        "--secret api-key=env:VAR (a value on the command line would be kept in shell history)"
    ]
    result, _ = local_run(job, server, "--parameter", "/p=env:CP_TEST_UNSET")
    assert (
        result.stderr.strip()
        == "error: --parameter /p=env:CP_TEST_UNSET: CP_TEST_UNSET is not set: export it first"
    )


def test_secrets_set_is_for_local_mode(tmp_path):
    result = invoke("secrets", "set", "api-key", stdin="x")
    assert result.exit_code == EXIT_INVALID
    assert "add --local" in result.stderr

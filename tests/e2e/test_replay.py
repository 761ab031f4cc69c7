"""Replay (`cronpilot runs retry`) end to end in local mode: a new run linked to the original, trigger
`retry`, following the original's plan; with --failed-only it re-executes only what did not succeed and
reuses the original's results and extracted values; its idempotency keys differ from the original's."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cronpilot.cli import app
from cronpilot.cli.common import EXIT_INVALID, EXIT_NOT_FOUND
from cronpilot.dal.store import Store
from cronpilot.domain.operations import OperationError, retry_run
from cronpilot.local.runner import apply_jobs, tick_until
from cronpilot.models.run import RunRecord, RunStatus, StepStatus
from typer.testing import CliRunner

from tests.integration.http_servers import LoopbackHTTPServer, RecordedRequest, json_reply
from tests.support.factories import make_job


@pytest.fixture
def server(server: LoopbackHTTPServer) -> LoopbackHTTPServer:
    logins = iter(range(1, 100))
    charges = iter(range(1, 100))
    server.route("POST", "/login", lambda request: json_reply({"token": f"tok-{next(logins)}"}))
    server.route(
        "POST", "/charge", lambda request: json_reply({"ok": True}, 500 if next(charges) == 1 else 200)
    )
    server.route("GET", "/receipt", json_reply({"sent": True}))
    server.route("GET", "/audit", json_reply({"ok": True}))
    return server


@pytest.fixture
def egress_port(server: LoopbackHTTPServer) -> int:
    return server.port


def calls(server: LoopbackHTTPServer, path: str) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.split("?", 1)[0] == path]


def payment_job(url: Any) -> Any:
    return make_job(
        "pay",
        schedule={"rate": "1h"},
        endpoints=[
            {"id": "login", "method": "POST", "url": url("/login"), "extract": {"token": "token"}},
            {
                "id": "charge",
                "method": "POST",
                "url": url("/charge"),
                "headers": {"Authorization": "Bearer {{ steps.login.token }}"},
                "depends_on": ["login"],
            },
            {"id": "receipt", "url": url("/receipt?t={{ steps.login.token }}"), "depends_on": ["charge"]},
            {"id": "audit", "url": url("/audit")},
        ],
    )


def newest_run(store: Store) -> Any:
    return store.list_runs("pay")[0][0]


def test_failed_only_replay_reexecutes_only_what_failed_with_the_originals_values(
    cloud, store, clock, server
):
    # Given a run where the charge failed (so the receipt was skipped) after login and audit succeeded
    apply_jobs(store, [payment_job(server.url)], clock.now())
    tick_until(cloud, clock, store, ticks=1)
    original = newest_run(store)
    assert original.status == RunStatus.PARTIAL
    first = store.get_step_results(original.run_id)
    assert (first["charge"].status, first["receipt"].status) == (StepStatus.FAILED, StepStatus.SKIPPED)

    # When an operator retries its failed steps and the scheduler ticks
    request = retry_run(store, original.run_id, clock.now(), failed_only=True)
    assert request.reexecute == ["charge", "receipt"]
    tick_until(cloud, clock, store, ticks=1)

    # Then a new run, linked to the original and recorded as a retry, succeeded
    replay = newest_run(store)
    assert replay.run_id != original.run_id
    assert (replay.trigger, replay.retry_of, replay.status) == ("retry", original.run_id, RunStatus.SUCCEEDED)
    assert replay.plan.source == "retry"
    assert replay.plan.waves == original.plan.waves
    # And only the failed and skipped steps were called again; login and audit were reused
    assert len(calls(server, "/login")) == 1
    assert len(calls(server, "/audit")) == 1
    assert len(calls(server, "/charge")) == 2
    assert len(calls(server, "/receipt")) == 1
    results = store.get_step_results(replay.run_id)
    assert results["login"].reused_from == original.run_id
    assert results["audit"].reused_from == original.run_id
    assert results["charge"].reused_from is None
    # And the re-executed steps used the original's extracted value, not a fresh login
    retried_charge = calls(server, "/charge")[1]
    assert retried_charge.headers["authorization"] == "Bearer tok-1"
    assert calls(server, "/receipt")[0].path == "/receipt?t=tok-1"
    # And its idempotency keys differ from the original's
    keys = [r.headers["idempotency-key"] for r in calls(server, "/charge")]
    assert keys[0] != keys[1]
    assert original.run_id in keys[0]
    assert replay.run_id in keys[1]
    # And the request was consumed: the job is back on its schedule
    assert store.get_job("pay").state.retry_of is None


def test_a_full_replay_reexecutes_every_step(cloud, store, clock, server):
    apply_jobs(store, [payment_job(server.url)], clock.now())
    tick_until(cloud, clock, store, ticks=1)
    original = newest_run(store)

    request = retry_run(store, original.run_id, clock.now())
    tick_until(cloud, clock, store, ticks=1)

    assert request.reexecute == ["login", "charge", "receipt", "audit"]
    replay = newest_run(store)
    assert (replay.trigger, replay.retry_of, replay.status) == ("retry", original.run_id, RunStatus.SUCCEEDED)
    assert len(calls(server, "/login")) == 2
    assert calls(server, "/charge")[1].headers["authorization"] == "Bearer tok-2"
    assert all(r.reused_from is None for r in store.get_step_results(replay.run_id).values())


def test_replays_that_cannot_run_say_why(cloud, store, clock, server):
    apply_jobs(store, [payment_job(server.url)], clock.now())
    tick_until(cloud, clock, store, ticks=1)
    original = newest_run(store)
    retry_run(store, original.run_id, clock.now(), failed_only=True)

    with pytest.raises(OperationError, match=f"a retry of run {original.run_id} is already waiting"):
        retry_run(store, original.run_id, clock.now())
    tick_until(cloud, clock, store, ticks=1)
    replay = newest_run(store)
    with pytest.raises(
        OperationError, match=r"every step of run .* succeeded: nothing to retry with --failed-only"
    ):
        retry_run(store, replay.run_id, clock.now(), failed_only=True)


def test_the_overlap_policy_applies_to_a_replay(cloud, store, clock, server):
    apply_jobs(store, [payment_job(server.url)], clock.now())
    tick_until(cloud, clock, store, ticks=1)
    original = newest_run(store)
    # Given another run of the job in flight, holding its lease (overlap: skip)
    record = store.get_job("pay")
    slot = record.state.next_run_at
    in_flight = RunRecord.claimed("pay", slot, record.state.epoch + 1, "schedule", clock.now())
    store.claim(
        record,
        in_flight,
        owner="another-execution",
        lease_until=clock.now() + timedelta(hours=1),
        now=clock.now(),
        next_run_at=slot + timedelta(hours=1),
        next_run_source="baseline",
        next_run_reason="next slot while a run is in flight",
    )

    # When a replay is requested and the scheduler ticks
    retry_run(store, original.run_id, clock.now(), failed_only=True)
    tick_until(cloud, clock, store, ticks=1)

    # Then the replay was recorded as skipped for the overlap, linked to the original, and dropped
    [retried] = [r for r in store.list_runs("pay")[0] if r.trigger == "retry"]
    assert (retried.status, retried.skip_reason, retried.retry_of) == (
        RunStatus.SKIPPED,
        "overlap",
        original.run_id,
    )
    assert store.get_job("pay").state.retry_of is None
    assert len(calls(server, "/charge")) == 1


def test_the_cli_requests_a_replay_and_reports_unknown_runs(tmp_path: Path, server):
    runner = CliRunner()
    state = tmp_path / "state.json"

    def cli(*args: str, expect: int = 0) -> str:
        result = runner.invoke(app, ["--local", "--state", str(state), *args])
        assert result.exit_code == expect, result.output
        return result.output

    path = tmp_path / "pay.json"
    path.write_text(payment_job(server.url).model_dump_json())
    cli("jobs", "apply", str(path))
    cli("jobs", "trigger", "pay")
    tick = ("local", "tick", "--allow-private", "127.0.0.0/8", "--allow-port", str(server.port))
    cli(*tick)
    [original] = json.loads(cli("runs", "list", "pay", "-o", "json"))
    assert original["status"] == "partial"

    requested = json.loads(cli("runs", "retry", original["run_id"], "--failed-only", "-o", "json"))
    assert requested == {
        "job_id": "pay",
        "retry_of": original["run_id"],
        "failed_only": True,
        "reexecute": ["charge", "receipt"],
    }
    cli(*tick)
    newest = json.loads(cli("runs", "list", "pay", "-o", "json"))[0]
    assert (newest["trigger"], newest["status"]) == ("retry", "succeeded")
    shown = cli("runs", "show", newest["run_id"])
    assert f"reused from {original['run_id']}" in shown
    assert 'login.token = "[hidden]"' in shown

    assert "no run with id" in cli("runs", "retry", "pay.20200101T000000Z", expect=EXIT_NOT_FOUND)
    assert "is not a run id" in cli("runs", "retry", "nonsense", expect=EXIT_INVALID)

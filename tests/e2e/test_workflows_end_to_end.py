"""Step outputs, assertions and signed requests end to end in local mode (moto, the real ASL
interpreter and handlers) against real servers on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from cronpilot.cli import app
from cronpilot.clock import AcceleratedClock
from cronpilot.dal.store import Store
from cronpilot.local.cloud import REGION, LocalCloud
from cronpilot.local.runner import apply_jobs, tick_until
from cronpilot.models.run import RunStatus, StepStatus
from cronpilot.safehttp.signing import generate_key
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner

from tests.integration.http_servers import LoopbackHTTPServer, RecordedRequest, Reply, json_reply
from tests.support.factories import endpoint, job_doc, make_job

TOKEN = "tok-2f7c1e9a5b"


@pytest.fixture
def egress_port(server: LoopbackHTTPServer) -> int:
    return server.port


def requests_to(server: LoopbackHTTPServer, path: str) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.split("?", 1)[0] == path]


def run_once(cloud: LocalCloud, clock: AcceleratedClock, store: Store, job_id: str) -> Any:
    tick_until(cloud, clock, store, ticks=1)
    [run] = store.list_runs(job_id)[0]
    return run, store.get_step_results(run.run_id)


def test_values_flow_from_step_to_step_and_a_missing_one_fails_only_its_consumer(cloud, store, clock, server):
    # Given a login that returns a token and a base URL, a listing that returns a cursor, a page that
    # uses both, a step whose base URL value points at a private address, and one whose value is missing
    server.route(
        "POST", "/login", json_reply({"access_token": TOKEN, "api": f"http://10.0.0.7:{server.port}"})
    )
    server.route("GET", "/items", json_reply({"items": [1, 2], "next": "c/2 &x"}))
    server.route("GET", "/page", json_reply({"items": [3]}))
    server.route("GET", "/other", json_reply({"fine": True}))
    url = server.url
    job = make_job(
        "flow",
        schedule={"rate": "1h"},
        endpoints=[
            {
                "id": "login",
                "method": "POST",
                "url": url("/login"),
                "extract": {"token": "access_token", "api_base": "api"},
            },
            {
                "id": "list",
                "url": url("/items"),
                "headers": {"Authorization": "Bearer {{ steps.login.token }}"},
                "depends_on": ["login"],
                "extract": {"cursor": {"path": "next", "show": True}, "missing": "does.not.exist"},
            },
            {
                "id": "page",
                "url": url("/page?cursor={{ steps.list.cursor }}&size=2"),
                "headers": {"Authorization": "Bearer {{ steps.login.token }}"},
                "depends_on": ["list"],
            },
            {"id": "internal", "url": "{{ steps.login.api_base }}/admin", "depends_on": ["login"]},
            {"id": "needs-missing", "url": url("/other?v={{ steps.list.missing }}"), "depends_on": ["list"]},
            {"id": "after-missing", "url": url("/other"), "depends_on": ["needs-missing"]},
            {"id": "independent", "url": url("/other")},
        ],
    )
    apply_jobs(store, [job], clock.now())

    # When it runs
    run, results = run_once(cloud, clock, store, "flow")

    # Then the token went into step 2's header and the cursor, URL-encoded, into step 3's query
    [listing] = requests_to(server, "/items")
    assert listing.headers["authorization"] == f"Bearer {TOKEN}"
    [page] = requests_to(server, "/page")
    assert page.path == "/page?cursor=c%2F2%20%26x&size=2"
    assert page.headers["authorization"] == f"Bearer {TOKEN}"
    assert results["page"].status == StepStatus.SUCCEEDED
    # And the value pointing at a private address was refused by the egress policy, not called
    assert results["internal"].status == StepStatus.FAILED
    assert results["internal"].error_kind == "egress-denied"
    assert "10.0.0.7" in (results["internal"].error or "")
    assert requests_to(server, "/admin") == []
    # And the missing value failed only its consumer, naming the expression; its dependent was skipped
    missing = results["needs-missing"]
    assert missing.status == StepStatus.FAILED
    assert missing.error_kind == "template"
    assert missing.error == (
        "{{ steps.list.missing }} has no value: 'does.not.exist' matched nothing in the response"
    )
    assert results["after-missing"].status == StepStatus.SKIPPED
    assert results["independent"].status == StepStatus.SUCCEEDED
    assert run.status == RunStatus.PARTIAL
    # And the values are stored with the producing step, the hidden token masked in its kept body
    assert results["login"].outputs["token"] == TOKEN
    assert TOKEN not in results["login"].body
    assert results["list"].shown_outputs() == {"cursor": "c/2 &x"}
    assert TOKEN not in (run.summary or "")


def test_assertions_fail_steps_by_kind_and_are_not_retried_unless_asked(cloud, store, clock, server):
    calls = {"n": 0}

    def degraded(request: RecordedRequest) -> Reply:
        calls["n"] += 1
        return json_reply({"status": "ok" if calls["n"] >= 3 else "degraded"})

    server.route("GET", "/health", json_reply({"status": "degraded", "items": []}))
    server.route("GET", "/gone", Reply(404, body=b"not here"))
    server.route("GET", "/text", Reply(200, body=b"all systems nominal"))
    server.route("GET", "/eventually", degraded)
    url = server.url
    job = make_job(
        "checks",
        schedule={"rate": "1h"},
        guardrails={"max_parallel": 6},
        endpoints=[
            {"id": "json-check", "url": url("/health"), "expect": {"json": {"status": "ok"}}},
            {"id": "status-check", "url": url("/health"), "expect": {"status": [201, "3xx"]}},
            {"id": "accepts-404", "url": url("/gone"), "expect": {"status": [404]}},
            {"id": "substring", "url": url("/text"), "expect": {"contains": "all systems go"}},
            {"id": "latency", "url": url("/text"), "expect": {"max_latency": "1ms", "contains": "nominal"}},
            {
                "id": "retried",
                "url": url("/eventually"),
                "expect": {"json": {"status": "ok"}, "retry_on_failure": True},
            },
        ],
    )
    apply_jobs(store, [job], clock.now())

    run, results = run_once(cloud, clock, store, "checks")

    def check(step_id: str) -> tuple[str, str | None]:
        return results[step_id].status, results[step_id].error_kind

    assert check("json-check") == (StepStatus.FAILED, "assertion")
    assert results["json-check"].error == 'assertion failed: json \'status\' is "degraded", expected "ok"'
    assert check("status-check") == (StepStatus.FAILED, "assertion")
    assert results["status-check"].error == "assertion failed: status 200 is not one of 201, 3xx"
    assert check("accepts-404") == (StepStatus.SUCCEEDED, None)
    assert check("substring") == (StepStatus.FAILED, "assertion")
    assert 'body does not contain "all systems go"' in (results["substring"].error or "")
    assert check("latency") == (StepStatus.FAILED, "assertion")
    assert "is over max_latency 1 ms" in (results["latency"].error or "")
    # None of the failed assertions was sent twice; the one that asked was re-sent until it held
    assert len(requests_to(server, "/health")) == 2
    assert len(requests_to(server, "/text")) == 2
    assert check("retried") == (StepStatus.SUCCEEDED, None)
    assert results["retried"].attempts == 3
    # And the run's summary says what did not hold
    assert 'expected "ok"' in (run.summary or "")


def test_signed_requests_verify_with_the_standard_webhooks_package_including_a_rotation(
    cloud, store, clock, server
):
    current, upcoming, job_key = generate_key(), generate_key(), generate_key()
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.create_secret(
        Name="cronpilot/dev/rotating", SecretString=json.dumps({"current": current, "next": upcoming})
    )
    secrets.create_secret(Name="cronpilot/dev/job-key", SecretString=job_key)
    verified: list[str] = []

    def receiver(key: str):
        def handle(request: RecordedRequest) -> Reply:
            try:
                Webhook(key).verify(request.body, request.headers, json_parse=False)
            except WebhookVerificationError as exc:
                return Reply(401, body=str(exc).encode())
            verified.append(request.path)
            return json_reply({"verified": True})

        return handle

    server.route("POST", "/current", receiver(current))
    server.route("POST", "/next", receiver(upcoming))
    server.route("GET", "/job-signed", receiver(job_key))
    url = server.url
    rotating = {"secret": "cronpilot/dev/rotating"}
    job = make_job(
        "signed",
        schedule={"rate": "1h"},
        signing={"secret": "cronpilot/dev/job-key"},
        endpoints=[
            {
                "id": "old-key",
                "method": "POST",
                "url": url("/current"),
                "body": {"n": 1, "é": "ü"},
                "signing": rotating,
            },
            {
                "id": "new-key",
                "method": "POST",
                "url": url("/next"),
                "body": "raw text body",
                "signing": rotating,
            },
            {"id": "job-wide", "url": url("/job-signed")},
        ],
    )
    apply_jobs(store, [job], clock.now())

    _, results = run_once(cloud, clock, store, "signed")

    assert {r.status for r in results.values()} == {StepStatus.SUCCEEDED}, {
        k: r.error for k, r in results.items()
    }
    assert sorted(verified) == ["/current", "/job-signed", "/next"]
    [signed] = requests_to(server, "/current")
    assert len(signed.headers["webhook-signature"].split(" ")) == 2
    assert signed.headers["webhook-id"] == signed.headers["idempotency-key"]
    # A tampered body no longer verifies with either key
    with pytest.raises(WebhookVerificationError):
        Webhook(current).verify(signed.body + b" ", signed.headers, json_parse=False)


def test_cronpilot_validate_reports_a_reference_error_in_one_line_with_exit_code_1(tmp_path):
    login = endpoint("login", extract={"token": "access_token"})
    path = tmp_path / "job.json"
    path.write_text(
        json.dumps(
            job_doc(
                endpoints=[
                    login,
                    endpoint("use", headers={"X": "{{ steps.login.tokn }}"}, depends_on=["login"]),
                ]
            )
        )
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert str(path) in result.output
    assert "{{ steps.login.tokn }}: endpoint 'login' extracts no 'tokn'" in result.output

"""The HTTP API through `cronpilot local api`'s server (the Lambda's resolver on 127.0.0.1), with httpx:
every route, pagination, ETag/If-Match, problem+json errors and the body size limit."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cronpilot.api.app import MAX_BODY_BYTES, openapi_document
from cronpilot.cli.local import local_api_server
from cronpilot.cli.targets import local_state_target
from cronpilot.clock import FixedClock
from cronpilot.domain.discovery import Discovery
from cronpilot.domain.operations import apply_job
from cronpilot.models.job import Job

from tests.integration.conftest import RecordingStarter
from tests.support.factories import job_doc, make_job

REPO_ROOT = Path(__file__).resolve().parents[2]
# Local mode's time never goes back: seed runs minutes ago, so the first run still holds its lease.
START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)


def seed(state: Path) -> list[str]:
    """A job with six runs: one claimed, then five slots skipped (overlap) while it holds its lease."""
    with local_state_target(state) as target:
        clock = FixedClock(START)
        apply_job(target.store, make_job("ticker", schedule={"rate": "1m"}), clock.now())
        for job_id in ("alpha", "bravo", "charlie", "delta"):
            apply_job(target.store, make_job(job_id), clock.now())
        run_ids: list[str] = []
        for minute in range(1, 7):
            clock.set(START + timedelta(minutes=minute))
            result = Discovery(target.store, RecordingStarter(), clock, owner=f"tick-{minute}").tick()
            ran = result.claimed + [run_id for run_id, _ in result.skipped]
            run_ids += [run_id for run_id in ran if run_id.startswith("ticker.")]
    return run_ids


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path, list[str]]]:
    state = tmp_path_factory.mktemp("api") / "state.json"
    run_ids = seed(state)
    with local_api_server(state, 0) as server:
        server.quiet = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            yield client, state, run_ids
        server.shutdown()


@pytest.fixture
def client(api: tuple[httpx.Client, Path, list[str]]) -> httpx.Client:
    return api[0]


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def test_health_schema_and_openapi(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/schemas/job").json() == Job.model_json_schema()
    served = client.get("/openapi.json").json()
    assert served == openapi_document()
    # the document is Powertools' own, from the routes: every route is in it, errors are problem+json
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/runs", "/runs/{run_id}", "/health"} <= set(
        served["paths"]
    )
    put = served["paths"]["/jobs/{job_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Job-Input")
    assert "application/problem+json" in put["responses"]["400"]["content"]
    assert "422" not in put["responses"]
    assert served["security"] == [{"sigv4": []}]


def test_committed_openapi_document_is_current() -> None:
    committed = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    assert committed == openapi_document(), "regenerate: cronpilot openapi > docs/openapi.json"


def test_list_jobs_pages_with_opaque_cursors(client: httpx.Client) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/jobs", params=params).json()
        pages += 1
        seen += [job["job_id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert not any(job_id in cursor for job_id in seen)  # opaque, not a raw key
    assert seen == sorted(seen)
    assert {"alpha", "bravo", "charlie", "delta", "ticker"} <= set(seen)
    assert len(seen) == len(set(seen))
    assert pages >= 3
    bad = problem(client.get("/jobs", params={"cursor": "not-a-cursor"}), 400)
    assert bad["errors"] == [{"field": "cursor", "message": bad["errors"][0]["message"]}]
    assert "next_cursor" in bad["errors"][0]["message"]
    assert problem(client.get("/jobs", params={"limit": 0}), 400)["errors"][0]["field"] == "limit"


def test_put_get_and_if_match(client: httpx.Client) -> None:
    doc = job_doc("etag-job", schedule={"rate": "15m"})
    # Given a job created by PUT
    created = client.put("/jobs/etag-job", json=doc)
    assert created.status_code == 201
    assert created.json()["action"] == "created"
    assert '+  "id": "etag-job"' in created.json()["diff"]
    etag = created.headers["etag"]
    got = client.get("/jobs/etag-job")
    assert got.headers["etag"] == etag == got.json()["etag"]
    # the same document again changes nothing
    again = client.put("/jobs/etag-job", json=doc, headers={"If-Match": etag})
    assert (again.status_code, again.json()["action"]) == (200, "unchanged")
    # When one writer updates with the current ETag
    first = client.put("/jobs/etag-job", json={**doc, "goal": "first writer"}, headers={"If-Match": etag})
    assert (first.status_code, first.json()["action"]) == (200, "updated")
    assert '+  "goal": "first writer"' in first.json()["diff"]
    assert first.headers["etag"] != etag
    # Then a second writer holding the old ETag gets 412 and the job keeps the first writer's change
    stale = client.put("/jobs/etag-job", json={**doc, "goal": "second writer"}, headers={"If-Match": etag})
    assert "changed since you read it" in problem(stale, 412)["detail"]
    assert client.get("/jobs/etag-job").json()["job"]["goal"] == "first writer"
    # create-only refuses an existing job; If-Match on a job that does not exist fails too
    problem(client.put("/jobs/etag-job", json=doc, headers={"If-None-Match": "*"}), 412)
    problem(client.put("/jobs/nobody", json=job_doc("nobody"), headers={"If-Match": etag}), 412)
    # a dry run shows the diff and writes nothing
    dry = client.put("/jobs/etag-job", json={**doc, "goal": "maybe"}, params={"dry_run": "true"})
    assert '+  "goal": "maybe"' in dry.json()["diff"]
    assert client.get("/jobs/etag-job").json()["job"]["goal"] == "first writer"


def test_invalid_job_document_is_a_400_naming_each_field(client: httpx.Client) -> None:
    doc = job_doc("broken", schedule={"cron": "61 * * * *"}, colour="blue")
    body = problem(client.put("/jobs/broken", json=doc), 400)
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert set(fields) == {"schedule.cron", "colour"}
    assert "unknown field: remove it" in fields["colour"]
    assert "minute" in fields["schedule.cron"]
    mismatch = problem(client.put("/jobs/other-id", json=job_doc("broken")), 400)
    assert mismatch["errors"][0]["field"] == "id"
    not_json = problem(
        client.put("/jobs/broken", content=b"{not json", headers={"content-type": "application/json"}), 400
    )
    assert not_json["errors"][0]["field"] == "body"
    binary = client.put("/jobs/broken", content=b"\xff\xfe{}", headers={"content-type": "application/json"})
    assert "UTF-8" in problem(binary, 400)["detail"]
    form = client.put("/jobs/broken", data={"id": "broken"})
    assert "application/json" in problem(form, 415)["detail"]
    problem(client.get("/jobs/Not_A_Valid_Id"), 400)


def test_request_over_the_size_limit_is_refused(client: httpx.Client) -> None:
    doc = job_doc("huge", goal="x" * (MAX_BODY_BYTES + 1))
    body = problem(client.put("/jobs/huge", json=doc), 413)
    assert str(MAX_BODY_BYTES) in body["detail"]
    assert client.get("/jobs/huge").status_code == 404


def test_not_found(client: httpx.Client) -> None:
    assert problem(client.get("/jobs/ghost"), 404)["detail"] == "no job with id 'ghost'"
    problem(client.get("/jobs/ghost/runs"), 404)
    problem(client.post("/jobs/ghost/pause"), 404)
    problem(client.delete("/jobs/ghost"), 404)
    problem(client.get("/runs/ghost.20200101T000000Z"), 404)
    assert problem(client.get("/runs/no-stamp"), 400)["errors"][0]["field"] == "run_id"
    problem(client.post("/runs/ghost.20200101T000000Z/retry"), 404)
    assert problem(client.post("/runs/no-stamp/retry"), 400)["errors"][0]["field"] == "run_id"
    problem(client.get("/nowhere"), 404)


def test_pause_resume_trigger_delete(api: tuple[httpx.Client, Path, list[str]]) -> None:
    client, state, _ = api
    assert client.put("/jobs/operated", json=job_doc("operated", schedule={"rate": "30m"})).status_code == 201
    paused = client.post("/jobs/operated/pause", json={"until": "2031-01-01T00:00:00"}).json()
    assert (paused["action"], paused["status"], paused["next_run_at"]) == (
        "paused",
        "paused",
        "2031-01-01T00:00:00Z",
    )
    assert client.get("/jobs/operated").json()["paused_until"] == "2031-01-01T00:00:00Z"
    assert "resume it first" in problem(client.post("/jobs/operated/trigger"), 409)["detail"]
    resumed = client.post("/jobs/operated/resume").json()
    assert (resumed["status"], resumed["action"]) == ("active", "resumed")
    triggered = client.post("/jobs/operated/trigger", json={"ask_ai": True}).json()
    assert triggered["action"] == "triggered"
    assert client.get("/jobs/operated").json()["next_run"]["source"] == "ask-ai"
    assert client.post("/jobs/operated/trigger").json()["action"] == "triggered"
    detail = client.get("/jobs/operated").json()
    assert detail["next_run"]["source"] == "manual"
    # the API saved local mode's state: the CLI sees the trigger
    shown = subprocess.run(
        [
            str(Path(sys.executable).parent / "cronpilot"),
            "--local",
            "--state",
            str(state),
            "jobs",
            "show",
            "operated",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(shown.stdout)["next_run"]["source"] == "manual"
    assert client.delete("/jobs/operated").json()["action"] == "deleted"
    problem(client.get("/jobs/operated"), 404)


def test_delete_refuses_a_job_with_a_run_in_flight(client: httpx.Client) -> None:
    # ticker's first run holds its lease (claimed, never finished)
    assert client.get("/jobs/ticker").json()["current_run_id"]
    assert "--force" in problem(client.delete("/jobs/ticker"), 409)["detail"]


def test_runs_pages_filters_get_and_explain(api: tuple[httpx.Client, Path, list[str]]) -> None:
    client, _, run_ids = api
    assert len(run_ids) == 6
    # pages of two, newest first, every run once
    listed: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/jobs/ticker/runs", params=params).json()
        listed += page["runs"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [r["run_id"] for r in listed] == sorted(run_ids, reverse=True)
    # a cursor of another job's listing is refused
    first = client.get("/jobs/ticker/runs", params={"limit": 1}).json()["next_cursor"]
    problem(client.get("/jobs/alpha/runs", params={"cursor": first}), 400)
    # filters: status and trigger, with pagination over the filtered set
    skipped = client.get("/jobs/ticker/runs", params={"status": "skipped", "limit": 3}).json()
    assert [r["status"] for r in skipped["runs"]] == ["skipped"] * 3
    rest = client.get(
        "/jobs/ticker/runs", params={"status": "skipped", "cursor": skipped["next_cursor"]}
    ).json()
    assert len(skipped["runs"]) + len(rest["runs"]) == 5
    assert {r["skip_reason"] for r in skipped["runs"] + rest["runs"]} == {"overlap"}
    claimed = client.get("/jobs/ticker/runs", params={"status": "claimed"}).json()["runs"]
    assert [r["run_id"] for r in claimed] == [run_ids[0]]
    assert client.get("/jobs/ticker/runs", params={"trigger": "manual"}).json() == {
        "runs": [],
        "next_cursor": None,
    }
    problem(client.get("/jobs/ticker/runs", params={"status": "sucess"}), 400)
    # one run in full
    run = client.get(f"/runs/{run_ids[0]}").json()
    assert (run["run_id"], run["status"], run["trigger"], run["steps"]) == (
        run_ids[0],
        "claimed",
        "schedule",
        [],
    )
    # a skipped slot never planned: replaying it is refused with the reason
    assert problem(client.post(f"/runs/{run_ids[-1]}/retry", json={"failed_only": True}), 409)["detail"]
    # explain: why the last run happened when it did and why the next one is when it is
    explained = client.get("/jobs/ticker/explain").json()
    assert explained["run_id"] == max(run_ids)
    assert explained["skip_reason"] == "overlap"
    assert "skipped" in explained["text"]
    assert "The next run is at" in explained["text"]

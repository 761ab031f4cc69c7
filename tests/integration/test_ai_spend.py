"""AI spend is visible per run and per job-day: `runs show`, `runs list`, `jobs show`, --output json."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cronpilot.cli import app
from cronpilot.dal.store import Store
from cronpilot.domain.spend import spend_by_day
from cronpilot.models.run import RunRecord, TokenUsage
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT
from tests.integration.conftest import START, TABLE
from tests.support.factories import claim_run, make_job

CALL = TokenUsage(
    input=1000, output=100, cache_read=3000, calls=2, cost_usd=0.0018, cache_ttl="1h", cache_reason="r"
)
REUSED = TokenUsage(reuses=2)


def _run(store: Store, job, at, tokens: TokenUsage) -> RunRecord:
    ref = claim_run(store, job, at)
    run = store.get_run(ref.run_id)
    run.tokens = tokens
    store.save_run(run)
    return run


@pytest.fixture
def history(store):
    """Two runs on day one (one consulting the model, one reusing), one on day two, one 10 days back."""
    job = make_job("spender", schedule={"rate": "1h"})
    _run(store, job, START - timedelta(days=10), CALL)
    _run(store, job, START, CALL)
    _run(store, job, START + timedelta(hours=1), REUSED)
    _run(store, job, START + timedelta(days=1), CALL)
    return job


def test_spend_is_summed_per_utc_day_inside_the_window(store, history):
    days = spend_by_day(store, history.id, START + timedelta(days=1, hours=2))
    assert [d.day for d in days] == ["2026-11-23", "2026-11-22"]
    today, yesterday = days
    assert (yesterday.runs, yesterday.usage.calls, yesterday.usage.reuses) == (2, 2, 2)
    assert yesterday.usage.cost_usd == pytest.approx(0.0018)
    assert yesterday.usage.cache_hit_ratio == pytest.approx(3000 / 4000)
    assert today.as_dict()["tokens"] == {"input": 1000, "output": 100, "cache_read": 3000, "cache_write": 0}


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, ["--table", TABLE, "--region", "us-east-1", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_runs_show_and_list_show_each_runs_spend(store, history):
    run_id = store.list_runs(history.id, limit=1)[0][0].run_id
    shown = json.loads(_cli("runs", "show", run_id, "-o", "json"))
    assert shown["ai_spend"]["model_calls"] == 2
    assert shown["ai_spend"]["cost_usd"] == 0.0018
    assert shown["ai_spend"]["cache_ttl"] == "1h"
    listed = json.loads(_cli("runs", "list", history.id, "-o", "json"))
    assert [r["ai_spend"]["calls_avoided_by_reuse"] for r in listed] == [0, 2, 0, 0]
    human = _cli("runs", "show", run_id)
    assert "AI: 2 model calls, 0 avoided by reuse, $0.001800; cache hit ratio 75%; cache 1h: r" in human


def test_jobs_show_has_spend_per_day(store):
    # Given runs today (the CLI on a deployment reads the system clock)
    job = make_job("spender-now", schedule={"rate": "1h"})
    now = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0)
    _run(store, job, now - timedelta(days=1), CALL)
    _run(store, job, now, CALL)
    _run(store, job, now + timedelta(hours=1), REUSED)
    # Then jobs show lists each day's spend, newest first
    days = json.loads(_cli("jobs", "show", job.id, "-o", "json"))["ai_spend_per_day"]
    assert [d["day"] for d in days] == [now.date().isoformat(), (now - timedelta(days=1)).date().isoformat()]
    assert (days[0]["runs"], days[0]["model_calls"], days[0]["calls_avoided_by_reuse"]) == (2, 2, 2)
    assert days[0]["cost_usd"] == 0.0018
    human = _cli("jobs", "show", job.id)
    assert "AI spend per day (UTC)" in human
    assert "$0.001800" in human


@pytest.fixture
def spent_job(store):
    """A job with runs yesterday and today (the API and MCP read the system clock on a deployment)."""
    job = make_job("spender-api", schedule={"rate": "1h"})
    now = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0)
    _run(store, job, now - timedelta(days=1), CALL)
    _run(store, job, now, CALL)
    return job, now


def _api_get(store, path: str, query: str) -> dict:
    from cronpilot.api.app import handle
    from cronpilot.clock import SystemClock

    event = json.loads((REPO_ROOT / "events" / "api.json").read_text())
    event |= {"rawPath": path, "rawQueryString": query}
    event["requestContext"]["http"]["path"] = path
    event["queryStringParameters"] = dict(part.split("=") for part in query.split("&")) if query else None
    event["pathParameters"] = {"job_id": path.rsplit("/", 1)[1]}
    response = handle(event, None, store=store, clock=SystemClock())
    return {"status": response["statusCode"], "body": json.loads(response["body"])}


def test_the_api_includes_spend_per_day_when_asked(store, spent_job):
    job, now = spent_job
    # Without spend_days a GET reads the job alone
    plain = _api_get(store, f"/jobs/{job.id}", "")
    assert plain["status"] == 200
    assert plain["body"]["ai_spend_per_day"] == []
    # With it, the same per-day figures as `jobs show`, over the days asked for
    one_day = _api_get(store, f"/jobs/{job.id}", "spend_days=1")
    assert [d["day"] for d in one_day["body"]["ai_spend_per_day"]] == [now.date().isoformat()]
    week = _api_get(store, f"/jobs/{job.id}", "spend_days=7")["body"]["ai_spend_per_day"]
    assert [d["model_calls"] for d in week] == [2, 2]
    assert week[0]["cost_usd"] == 0.0018
    # A window beyond a month is refused, naming the parameter
    refused = _api_get(store, f"/jobs/{job.id}", "spend_days=400")
    assert refused["status"] == 400
    assert "spend_days" in json.dumps(refused["body"])


def test_the_mcp_show_job_tool_includes_spend_per_day_when_asked(store, spent_job):
    import asyncio

    from cronpilot.cli.mcp_server import build_server
    from cronpilot.cli.targets import deployed_target
    from mcp.client import Client

    job, now = spent_job
    server = build_server(
        lambda: deployed_target(stack=None, table=store.table_name, region="us-east-1"), allow_writes=False
    )

    async def session() -> None:
        async with Client(server) as client:
            shown = await client.call_tool("show_job", {"job_id": job.id, "spend_days": 7})
            assert not shown.is_error, shown.content
            days = shown.structured_content["ai_spend_per_day"]
            assert [d["day"] for d in days] == [
                now.date().isoformat(),
                (now - timedelta(days=1)).date().isoformat(),
            ]
            assert f"AI spend {now.date().isoformat()}: $0.0018, 2 model call(s)" in shown.content[0].text
            plain = await client.call_tool("show_job", {"job_id": job.id})
            assert plain.structured_content["ai_spend_per_day"] == []

    asyncio.run(session())

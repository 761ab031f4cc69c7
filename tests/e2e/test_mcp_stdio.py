"""`cronpilot mcp` as an AI agent's client sees it: a real MCP session over stdio with the official SDK's
client, against local mode's state file; read tools, write tools with and without --allow-writes,
tool errors for bad input, and the server alive after each of them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cronpilot.cli.mcp_server import JOB_FILE_DOCS_URI, JOB_SCHEMA_URI
from cronpilot.cli.targets import local_state_target
from cronpilot.clock import FixedClock
from cronpilot.domain.discovery import Discovery
from cronpilot.domain.operations import apply_job
from cronpilot.models.job import Job
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult

from tests.integration.conftest import RecordingStarter
from tests.support.factories import job_doc, make_job

CRONPILOT = str(Path(sys.executable).parent / "cronpilot")
READ_TOOLS = {"list_jobs", "show_job", "list_runs", "show_run", "explain_job", "validate_job"}
WRITE_TOOLS = {"apply_job", "pause_job", "resume_job", "trigger_job", "delete_job", "retry_run"}
START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """Local mode's state: a job that ran once and then skipped a slot (overlap)."""
    path = tmp_path / "state.json"
    with local_state_target(path) as target:
        clock = FixedClock(START)
        apply_job(target.store, make_job("ticker", schedule={"rate": "1m"}), clock.now())
        for minute in (1, 2):
            clock.set(START + timedelta(minutes=minute))
            Discovery(target.store, RecordingStarter(), clock, owner=f"tick-{minute}").tick()
    return path


def server(state: Path, *flags: str) -> Client:
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "POWERTOOLS_"))}
    params = StdioServerParameters(
        command=CRONPILOT, args=["--local", "--state", str(state), "mcp", *flags], env=env
    )
    return Client(params, read_timeout_seconds=60)


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.content[0].text  # a short text for the model beside the structured content
    assert result.structured_content is not None
    return result.structured_content


def tool_error(result: CallToolResult) -> str:
    assert result.is_error
    return result.content[0].text


@pytest.mark.slow  # each tool call re-opens local mode's state file in the server process
def test_read_only_server(state: Path) -> None:
    async def session() -> None:
        async with server(state) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == READ_TOOLS | WRITE_TOOLS
            # input schemas come from the domain's models: the job document is the Job schema
            apply_schema = tools["apply_job"].input_schema
            job_ref = apply_schema["properties"]["job"]["$ref"].split("/")[-1]
            assert set(apply_schema["$defs"][job_ref]["properties"]) == set(
                Job.model_json_schema()["properties"]
            )
            runs_schema = tools["list_runs"].input_schema
            assert "#/$defs/RunStatus" in json.dumps(runs_schema["properties"]["status"])
            assert "skipped" in runs_schema["$defs"]["RunStatus"]["enum"]
            assert tools["show_job"].annotations.read_only_hint is True
            assert tools["delete_job"].annotations.destructive_hint is True
            assert tools["list_jobs"].output_schema is not None

            # every read tool answers with structured content and a short text
            jobs = ok(await client.call_tool("list_jobs", {}))
            assert [j["job_id"] for j in jobs["jobs"]] == ["ticker"]
            job = ok(await client.call_tool("show_job", {"job_id": "ticker"}))
            assert job["job"]["schedule"]["rate"] == "1m"
            assert job["etag"].startswith('"')
            runs = ok(await client.call_tool("list_runs", {"job_id": "ticker", "limit": 1}))
            assert runs["runs"][0]["status"] == "skipped"
            assert runs["next_cursor"]
            older = ok(
                await client.call_tool("list_runs", {"job_id": "ticker", "cursor": runs["next_cursor"]})
            )
            assert [r["status"] for r in older["runs"]] == ["claimed"]
            run = ok(await client.call_tool("show_run", {"run_id": older["runs"][0]["run_id"]}))
            assert (run["status"], run["trigger"]) == ("claimed", "schedule")
            explained = await client.call_tool("explain_job", {"job_id": "ticker"})
            assert "skipped" in ok(explained)["text"]
            assert ok(explained)["text"] in explained.content[0].text
            valid = ok(await client.call_tool("validate_job", {"job": job_doc("fresh")}))
            assert valid["job_id"] == "fresh"

            # bad input is a tool error naming the field and the fix, never a dead server
            invalid = tool_error(
                await client.call_tool(
                    "validate_job", {"job": job_doc("bad", schedule={"cron": "x"}, colour=1)}
                )
            )
            assert "schedule.cron" in invalid
            assert "colour: unknown field: remove it" in invalid
            assert "no job with id 'ghost'" in tool_error(
                await client.call_tool("show_job", {"job_id": "ghost"})
            )
            assert "run_id" in tool_error(await client.call_tool("show_run", {"run_id": "nope"}))

            # writes are refused without --allow-writes, with the way to enable them
            writes = {
                "apply_job": {"job": job_doc("fresh")},
                "pause_job": {"job_id": "ticker"},
                "resume_job": {"job_id": "ticker"},
                "trigger_job": {"job_id": "ticker"},
                "delete_job": {"job_id": "ticker", "force": True},
                "retry_run": {"run_id": older["runs"][0]["run_id"]},
            }
            for name, arguments in writes.items():
                assert "--allow-writes" in tool_error(await client.call_tool(name, arguments)), name
            # a dry run of apply writes nothing, so it is allowed and shows the diff
            dry = await client.call_tool("apply_job", {"job": job_doc("fresh"), "dry_run": True})
            assert ok(dry)["action"] == "created"
            assert '+  "id": "fresh"' in dry.content[0].text

            # resources: the job schema and the README's job-file reference
            schema = await client.read_resource(JOB_SCHEMA_URI)
            assert json.loads(schema.contents[0].text) == Job.model_json_schema()
            docs = await client.read_resource(JOB_FILE_DOCS_URI)
            assert docs.contents[0].text.startswith("## A job file")
            assert "| `schedule` |" in docs.contents[0].text

            # still alive after every error; nothing was written
            jobs = ok(await client.call_tool("list_jobs", {}))
            assert [(j["job_id"], j["status"]) for j in jobs["jobs"]] == [("ticker", "active")]

    asyncio.run(session())


@pytest.mark.slow
def test_write_tools_with_allow_writes(state: Path) -> None:
    async def session() -> None:
        async with server(state, "--allow-writes") as client:
            created = await client.call_tool("apply_job", {"job": job_doc("fresh", schedule={"rate": "10m"})})
            assert ok(created)["action"] == "created"
            assert '+  "id": "fresh"' in created.content[0].text  # apply always shows the diff
            etag = ok(await client.call_tool("show_job", {"job_id": "fresh"}))["etag"]
            changed = await client.call_tool(
                "apply_job",
                {"job": job_doc("fresh", schedule={"rate": "10m"}, goal="new goal"), "if_match": etag},
            )
            assert ok(changed)["action"] == "updated"
            assert '+  "goal": "new goal"' in changed.content[0].text
            stale = await client.call_tool(
                "apply_job", {"job": job_doc("fresh", goal="late"), "if_match": etag}
            )
            assert "changed since you read it" in tool_error(stale)
            bad = await client.call_tool(
                "apply_job", {"job": job_doc("fresh", schedule={"cron": "99 * * * *"})}
            )
            assert "schedule.cron" in tool_error(bad)

            paused = ok(
                await client.call_tool("pause_job", {"job_id": "fresh", "until": "2031-01-01T00:00:00Z"})
            )
            assert (paused["action"], paused["status"]) == ("paused", "paused")
            assert "resume it first" in tool_error(await client.call_tool("trigger_job", {"job_id": "fresh"}))
            assert ok(await client.call_tool("resume_job", {"job_id": "fresh"}))["status"] == "active"
            assert ok(await client.call_tool("trigger_job", {"job_id": "fresh"}))["action"] == "triggered"
            shown = ok(await client.call_tool("show_job", {"job_id": "fresh"}))
            assert shown["next_run"]["source"] == "manual"
            assert ok(await client.call_tool("delete_job", {"job_id": "fresh"}))["action"] == "deleted"
            assert "no job" in tool_error(await client.call_tool("delete_job", {"job_id": "fresh"}))
            # a run that never planned cannot be replayed: the reason comes back as a tool error
            runs = ok(await client.call_tool("list_runs", {"job_id": "ticker"}))
            skipped = next(r["run_id"] for r in runs["runs"] if r["status"] == "skipped")
            assert tool_error(await client.call_tool("retry_run", {"run_id": skipped}))

            # still alive; the changes are in local mode's state file, where the CLI reads them
            jobs = ok(await client.call_tool("list_jobs", {}))
            assert [j["job_id"] for j in jobs["jobs"]] == ["ticker"]

    asyncio.run(session())

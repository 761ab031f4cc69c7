"""The MCP server against a deployed stack's table (on moto), through the SDK's client in-process: the
same tools over the DynamoDB store the CLI's --table/--stack targets use."""

from __future__ import annotations

import asyncio

from cronpilot.cli.mcp_server import build_server
from cronpilot.cli.targets import deployed_target
from mcp.client import Client

from tests.support.factories import job_doc


def test_tools_operate_a_deployed_table(store):
    server = build_server(
        lambda: deployed_target(stack=None, table=store.table_name, region="us-east-1"), allow_writes=True
    )

    async def session() -> None:
        async with Client(server) as client:
            created = await client.call_tool(
                "apply_job", {"job": job_doc("deployed", schedule={"rate": "5m"})}
            )
            assert not created.is_error, created.content
            assert created.structured_content["action"] == "created"
            listed = await client.call_tool("list_jobs", {})
            assert [j["job_id"] for j in listed.structured_content["jobs"]] == ["deployed"]
            missing = await client.call_tool("show_job", {"job_id": "ghost"})
            assert missing.is_error
            assert "no job with id 'ghost'" in missing.content[0].text

    asyncio.run(session())
    # Then the job is in the table, as the CLI and the API read it
    assert store.get_job("deployed").job.schedule.rate is not None


def test_an_unusable_target_is_a_tool_error_not_a_crash():
    server = build_server(lambda: deployed_target(stack=None, table=None, region=None), allow_writes=False)

    async def session() -> None:
        async with Client(server) as client:
            result = await client.call_tool("list_jobs", {})
            assert result.is_error
            assert "--local, --stack NAME or --table NAME" in result.content[0].text
            assert (await client.call_tool("validate_job", {"job": job_doc("offline")})).is_error is False

    asyncio.run(session())

"""The fake Messages API keeps the real prompt-caching rules, one test per rule, through the real SDK.

A fake kinder than the service would let tests and `make bench` show savings production never sees.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.support.fake_anthropic import (
    MIN_CACHEABLE_TOKENS,
    FakeAnthropic,
    count_tokens,
    prompt_tokens,
    text_reply,
)

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-5"


def _text(tokens: int, seed: str = "a") -> str:
    """Text the fake counts as exactly `tokens` tokens."""
    return (seed * 4) * tokens


def _request(
    *,
    model: str = HAIKU,
    system_tokens: int = 5000,
    ttl: str | None = None,
    system_seed: str = "a",
    question: str = "what now?",
    tool_choice: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    marker: bool = True,
) -> dict[str, Any]:
    cache_control: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        cache_control["ttl"] = ttl
    block: dict[str, Any] = {"type": "text", "text": _text(system_tokens, system_seed)}
    if marker:
        block["cache_control"] = cache_control
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": 100,
        "system": [{"type": "text", "text": "You are terse."}, block],
        "messages": [{"role": "user", "content": [{"type": "text", "text": question}]}],
    }
    if tools is not None:
        request["tools"] = tools
    if tool_choice is not None:
        request["tool_choice"] = tool_choice
    return request


def _tool(name: str = "answer") -> dict[str, Any]:
    return {"name": name, "description": "answer", "input_schema": {"type": "object", "properties": {}}}


@pytest.fixture
def client(fake: FakeAnthropic) -> anthropic.Anthropic:
    fake.responder = lambda request: text_reply("ok")
    return anthropic.Anthropic(api_key="test", base_url=fake.base_url, max_retries=0, timeout=5)


def _usage(client: anthropic.Anthropic, request: dict[str, Any]) -> Any:
    return client.messages.create(**request).usage


def test_below_the_models_minimum_nothing_is_cached_and_everything_is_input(fake, client):
    # Given a marked prefix one token short of Haiku 4.5's minimum
    request = _request(system_tokens=MIN_CACHEABLE_TOKENS[HAIKU] - count_tokens("You are terse.") - 1)
    # When it is sent twice
    first, second = _usage(client, request), _usage(client, request)
    # Then cache_control was silently ignored both times
    for usage in (first, second):
        assert usage.cache_creation_input_tokens == 0
        assert usage.cache_read_input_tokens == 0
        assert usage.input_tokens == prompt_tokens(request)
    assert fake.cache.live_entries() == 0


def test_the_minimum_is_per_model(fake, client):
    # Given a 2,000-token prefix: above Sonnet 4.5's 1,024, below Haiku 4.5's 4,096
    sonnet = _request(model=SONNET, system_tokens=2000)
    haiku = _request(model=HAIKU, system_tokens=2000)
    # Then Sonnet writes it and Haiku does not
    assert _usage(client, sonnet).cache_creation_input_tokens > 0
    assert _usage(client, haiku).cache_creation_input_tokens == 0


def test_at_the_minimum_the_first_call_writes_and_the_second_reads(fake, client):
    # Given a marked prefix exactly at the minimum
    request = _request(system_tokens=MIN_CACHEABLE_TOKENS[HAIKU] - count_tokens("You are terse."))
    prefix = MIN_CACHEABLE_TOKENS[HAIKU]
    # When it is sent twice
    first, second = _usage(client, request), _usage(client, request)
    # Then the first writes the prefix, the second reads it; input_tokens is only what follows it
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (prefix, 0)
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, prefix)
    rest = prompt_tokens(request) - prefix
    assert first.input_tokens == second.input_tokens == rest == count_tokens("what now?")


def test_usage_fields_add_up_and_split_writes_by_ttl(fake, client):
    request = _request(ttl="1h")
    usage = _usage(client, request)
    assert usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens == (
        prompt_tokens(request)
    )
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_1h_input_tokens == usage.cache_creation_input_tokens
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_a_5m_entry_expires_after_five_minutes_on_the_fakes_clock(fake, client):
    request = _request()
    _usage(client, request)
    fake.advance(299)
    assert _usage(client, request).cache_read_input_tokens > 0
    # The read at 299 s refreshed it: it now lives until 299 + 300
    fake.advance(301)
    again = _usage(client, request)
    assert again.cache_read_input_tokens == 0
    assert again.cache_creation_input_tokens > 0


def test_a_1h_entry_outlives_five_minutes_and_expires_after_an_hour(fake, client):
    request = _request(ttl="1h")
    _usage(client, request)
    fake.advance(3000)
    assert _usage(client, request).cache_read_input_tokens > 0
    fake.advance(3601)
    assert _usage(client, request).cache_read_input_tokens == 0


def test_a_read_refreshes_the_ttl(fake, client):
    # Given an entry read every 4 minutes
    request = _request()
    _usage(client, request)
    for _ in range(5):
        fake.advance(240)
        # Then it is still there 20 minutes after it was written
        assert _usage(client, request).cache_read_input_tokens > 0


def test_a_hit_needs_a_byte_identical_prefix(fake, client):
    _usage(client, _request(system_seed="a"))
    # One different character in the cached prefix is a miss
    changed = _usage(client, _request(system_seed="b"))
    assert changed.cache_read_input_tokens == 0
    # A different message after the breakpoint is still a hit
    assert _usage(client, _request(system_seed="a", question="and later?")).cache_read_input_tokens > 0


def test_tools_come_before_system_in_the_prefix(fake, client):
    _usage(client, _request(tools=[_tool("first")]))
    # A different tool changes the prefix the system breakpoint covers
    assert _usage(client, _request(tools=[_tool("second")])).cache_read_input_tokens == 0
    assert _usage(client, _request(tools=[_tool("first")])).cache_read_input_tokens > 0


def test_tool_choice_changes_only_invalidate_cached_messages(fake, client):
    # Given a system breakpoint, tool_choice is outside its prefix: both choices hit
    tools = [_tool("a"), _tool("b")]
    _usage(client, _request(tools=tools, tool_choice={"type": "tool", "name": "a"}))
    hit = _usage(client, _request(tools=tools, tool_choice={"type": "tool", "name": "b"}))
    assert hit.cache_read_input_tokens > 0
    # But a breakpoint inside the messages: a new tool_choice misses there (the system part still hits)
    long_question = _text(3000, "q")

    def with_message_breakpoint(choice: str) -> dict[str, Any]:
        request = _request(tools=tools, tool_choice={"type": "tool", "name": choice}, question=long_question)
        request["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
        return request

    _usage(client, with_message_breakpoint("a"))
    assert _usage(client, with_message_breakpoint("a")).cache_read_input_tokens == prompt_tokens(
        with_message_breakpoint("a")
    )
    other = _usage(client, with_message_breakpoint("b"))
    assert 0 < other.cache_read_input_tokens < prompt_tokens(with_message_breakpoint("b"))
    assert other.cache_creation_input_tokens == count_tokens(long_question)


def test_an_earlier_cached_prefix_is_found_behind_a_later_breakpoint(fake, client):
    # Given the system prefix cached, then the breakpoint moves to the end of a longer conversation
    _usage(client, _request())
    later = _request(marker=False, question=_text(100, "q"))
    later["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
    usage = _usage(client, later)
    # Then the system prefix is read and only the new part is written
    assert usage.cache_read_input_tokens == prompt_tokens(_request()) - count_tokens("what now?")
    assert usage.cache_creation_input_tokens == count_tokens(_text(100, "q"))
    assert usage.input_tokens == 0


def test_entries_are_per_model(fake, client):
    _usage(client, _request(model="claude-opus-4-5"))
    assert _usage(client, _request(model="claude-opus-4-6")).cache_read_input_tokens == 0


def test_more_than_four_breakpoints_is_a_400(fake, client):
    request = _request()
    request["system"] = [
        {"type": "text", "text": f"block {n}", "cache_control": {"type": "ephemeral"}} for n in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks with cache_control"):
        client.messages.create(**request)


def test_a_1h_breakpoint_after_a_5m_one_is_a_400(fake, client):
    request = _request(ttl="1h")
    request["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "5m"}
    with pytest.raises(anthropic.BadRequestError, match="ttl='1h'"):
        client.messages.create(**request)


def test_an_unknown_model_is_a_404(fake, client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(**_request(model="claude-nonexistent-9"))


def test_bedrock_ids_map_to_the_same_rules(fake):
    fake.responder = lambda request: text_reply("ok")
    bedrock = anthropic.AnthropicBedrock(
        aws_region="us-east-1",
        aws_access_key="test",
        aws_secret_key="test",
        base_url=fake.base_url,
        max_retries=0,
        timeout=5,
    )
    request = _request(model="us.anthropic.claude-haiku-4-5-20251001-v1:0")
    bedrock.messages.create(**request)
    assert bedrock.messages.create(**request).usage.cache_read_input_tokens > 0


def test_the_token_count_is_deterministic_and_on_the_low_side():
    prose = "The planner decides which endpoints to call and in what order, for the job's goal. " * 20
    assert count_tokens(prose) == count_tokens(prose)
    # Claude's tokenizer needs ~1 token per 3.5 characters of English: the fake never counts more
    assert count_tokens(prose) <= len(prose) / 3.5
    assert count_tokens("") == 0
    assert count_tokens("é") == 1

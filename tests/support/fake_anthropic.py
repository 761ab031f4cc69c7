"""A fake Anthropic Messages API on 127.0.0.1, for the real SDK pointed at it with `base_url`.

Scripted per test: a queue of replies (tool answers, text, empty content, HTTP errors, delays); when
the queue is empty a `responder` callable answers, if one is set. Every request is recorded with its
raw body. It also serves Bedrock's `/model/{model}/invoke` path, so AnthropicBedrock can use it too.

Usage follows the real prompt-caching rules, so tests and `make bench` see only savings the real API
would give (https://platform.claude.com/docs/en/build-with-claude/prompt-caching):
- the prompt is the blocks tools -> system -> messages, in that order; a block with `cache_control`
  is a breakpoint, at most 4 per request (more is a 400), `ttl` "5m" (default) or "1h", and a 1h
  breakpoint may not follow a 5m one;
- an entry is written for a breakpoint only when the prefix up to it reaches the model's minimum
  cacheable length (MIN_CACHEABLE_TOKENS); below it cache_control is silently ignored;
- a hit needs a byte-identical prefix (same model) up to a block boundary that was a breakpoint,
  looked up at each breakpoint and up to 20 blocks before it; it expires `ttl` after its last use on
  the fake's clock (`fake.advance(seconds)`), and a read refreshes it;
- usage: `cache_read_input_tokens` is the longest prefix found, `cache_creation_input_tokens` what is
  written beyond it up to the last eligible breakpoint (split by TTL in `cache_creation`), and
  `input_tokens` only the rest.
Tokens are counted by `count_tokens` (deterministic, on the low side of the real tokenizer).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any
from urllib.parse import unquote

# claim_run lives with the other test factories; kept importable from here for older callers.
from tests.support.factories import claim_run as claim_run

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    status: int = 200
    content: list[dict[str, Any]] | None = None  # the assistant's content blocks
    raw: bytes | None = None  # a body sent as-is
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    stop_reason: str = "tool_use"
    output_tokens: int = 50


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


def tool_reply(name: str, tool_input: Any, **kwargs: Any) -> Reply:
    block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": tool_input}
    return Reply(content=[block], **kwargs)


def plan_reply(
    steps: list[tuple[str, list[str]]], rationale: str = "the goal needs these", **kw: Any
) -> Reply:
    value = {"rationale": rationale, "steps": [{"endpoint_id": e, "depends_on": d} for e, d in steps]}
    return tool_reply("submit_plan", value, **kw)


def next_run_reply(
    *,
    kind: str = "interval",
    interval_seconds: int | None = 600,
    at: str | None = None,
    summary: str = "all good",
    reason: str = "steady state",
    **kw: Any,
) -> Reply:
    value = {
        "summary": summary,
        "next_run": {"kind": kind, "interval_seconds": interval_seconds, "at": at, "reason": reason},
        "rationale": "nothing changed",
    }
    return tool_reply("submit_next_run", value, **kw)


def text_reply(text: str) -> Reply:
    return Reply(content=[{"type": "text", "text": text}], stop_reason="end_turn")


def error_reply(status: int, **kw: Any) -> Reply:
    body = {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": f"fake {status}"},
    }
    # A tiny retry-after keeps the SDK's retries fast; they still happen.
    return Reply(status=status, raw=json.dumps(body).encode(), headers={"retry-after-ms": "5"}, **kw)


# Minimum cacheable prompt length per model, in tokens: the prefix up to a breakpoint must reach it,
# or cache_control is ignored without an error. From "Cache limitations" in
# https://platform.claude.com/docs/en/build-with-claude/prompt-caching (checked 2026-11). Sonnet 4.6 is
# listed at 1,024 in older copies of that page but caches only from 2,048 in practice
# (anthropics/anthropic-sdk-python#1194); the fake keeps the stricter figure.
MIN_CACHEABLE_TOKENS = {
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4": 1024,
    "claude-sonnet-4": 1024,
    "claude-3-7-sonnet": 1024,
}
TTL_SECONDS = {"5m": 300, "1h": 3600}
MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20  # how far before a breakpoint the API looks for an earlier cached prefix
BYTES_PER_TOKEN = 4  # Claude's tokenizer averages ~3.5 characters a token on English, fewer on JSON


def model_family(model: str) -> str | None:
    """The table's name for a model id: dated ids and Bedrock ids ("us.anthropic....-v1:0") included."""
    name = model.lower()
    for family in sorted(MIN_CACHEABLE_TOKENS, key=len, reverse=True):
        if family in name:
            return family
    return None


def count_tokens(text: str) -> int:
    """Deterministic, and on the low side of the real count: a prefix the fake caches, the API caches."""
    size = len(text.encode())
    return -(-size // BYTES_PER_TOKEN)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _without_marker(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def prompt_blocks(request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The request as the API caches it: (segment, block) for every tool, system block, message block."""
    blocks: list[tuple[str, dict[str, Any]]] = [("tools", tool) for tool in request.get("tools") or []]
    system = request.get("system") or []
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    blocks += [("system", block) for block in system]
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        blocks += [(f"messages:{message.get('role')}", block) for block in content or []]
    return blocks


def block_tokens(block: dict[str, Any]) -> int:
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return count_tokens(block["text"])
    return count_tokens(_canonical(_without_marker(block)))


def prompt_tokens(request: dict[str, Any]) -> int:
    """Every input token of the request as the fake counts it (cached or not)."""
    return sum(block_tokens(block) for _, block in prompt_blocks(request))


class CacheRuleError(ValueError):
    """A request the real API rejects with 400 invalid_request_error."""


@dataclass
class CacheEntry:
    expires_at: float
    ttl: float
    tokens: int


@dataclass
class CacheUsage:
    input_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int

    def as_usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
        }


class PromptCache:
    """The API's prompt cache for one organisation: entries keyed by model and prefix bytes."""

    def __init__(self) -> None:
        self.now = 0.0  # seconds on the fake's clock; only `advance` moves it
        self.entries: dict[str, CacheEntry] = {}

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def live_entries(self) -> int:
        return sum(1 for e in self.entries.values() if e.expires_at > self.now)

    def apply(self, model: str, request: dict[str, Any]) -> CacheUsage:
        """Look up, write and account one request's prompt (the caller holds the lock)."""
        family = model_family(model)
        if family is None:
            raise LookupError(model)
        blocks = prompt_blocks(request)
        breakpoints = _breakpoints(blocks)
        # Cumulative tokens and prefix keys at every block boundary. tool_choice is part of the messages
        # part of the key: changing it invalidates cached messages, never cached tools or system.
        digest = hashlib.sha256(family.encode())
        cumulative: list[int] = []
        keys: list[str] = []
        total = 0
        entered_messages = False
        for segment, block in blocks:
            if segment.startswith("messages") and not entered_messages:
                entered_messages = True
                digest.update(b"\x00tool_choice" + _canonical(request.get("tool_choice")).encode())
            digest.update(b"\x00" + segment.encode() + b"\x00" + _canonical(_without_marker(block)).encode())
            total += block_tokens(block)
            cumulative.append(total)
            keys.append(digest.hexdigest())
        read_at = -1
        for position, _ in breakpoints:
            for earlier in range(position, max(-1, position - LOOKBACK_BLOCKS), -1):
                entry = self.entries.get(keys[earlier])
                if entry is not None and entry.expires_at > self.now:
                    read_at = max(read_at, earlier)
                    break
        read = cumulative[read_at] if read_at >= 0 else 0
        if read_at >= 0:  # a read refreshes the entry's lifetime
            entry = self.entries[keys[read_at]]
            entry.expires_at = self.now + entry.ttl
        minimum = MIN_CACHEABLE_TOKENS[family]
        written = {300.0: 0, 3600.0: 0}
        previous = read
        for position, ttl in breakpoints:
            if position <= read_at or cumulative[position] < minimum:
                continue  # already cached, or below the minimum: silently not cached
            self.entries[keys[position]] = CacheEntry(self.now + ttl, ttl, cumulative[position])
            written[ttl] += cumulative[position] - previous
            previous = cumulative[position]
        creation = written[300.0] + written[3600.0]
        return CacheUsage(
            input_tokens=total - read - creation,
            cache_read_input_tokens=read,
            cache_creation_input_tokens=creation,
            ephemeral_5m_input_tokens=written[300.0],
            ephemeral_1h_input_tokens=written[3600.0],
        )


def _breakpoints(blocks: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, float]]:
    """(block index, ttl seconds) of every cache_control, validated as the API validates them."""
    found: list[tuple[int, float]] = []
    for index, (_, block) in enumerate(blocks):
        marker = block.get("cache_control")
        if marker is None:
            continue
        if not isinstance(marker, dict) or marker.get("type") != "ephemeral":
            raise CacheRuleError(f"cache_control.type: Input should be 'ephemeral' (block {index})")
        ttl = marker.get("ttl", "5m")
        if ttl not in TTL_SECONDS:
            raise CacheRuleError(f"cache_control.ttl: Input should be '5m' or '1h' (got {ttl!r})")
        found.append((index, float(TTL_SECONDS[ttl])))
    if len(found) > MAX_BREAKPOINTS:
        raise CacheRuleError(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(found)}."
        )
    for (_, first), (_, later) in pairwise(found):
        if later > first:
            raise CacheRuleError("a cache_control block with ttl='1h' must not come after one with ttl='5m'")
    return found


def cached_prefix_of(body: dict[str, Any]) -> bytes:
    """The bytes of tools then system, canonical JSON (what a job-level breakpoint covers)."""
    return json.dumps(
        {"tools": body.get("tools", []), "system": body.get("system", [])},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class FakeAnthropic:
    def __init__(self) -> None:
        self.queue: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.cache = PromptCache()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                fake._handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def push(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    def advance(self, seconds: float) -> None:
        """Move the fake's clock: cache entries older than their TTL expire."""
        with self._lock:
            self.cache.advance(seconds)

    @property
    def message_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/messages") or r.path.endswith("/invoke")]

    # -------------------------------------------------------------- serving

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        recorded = Recorded("POST", handler.path, {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            self.requests.append(recorded)
            reply = self.queue.popleft() if self.queue else None
        try:
            request = json.loads(body)
        except ValueError:
            request = {}
        if reply is None:
            reply = self.responder(request) if self.responder else error_reply(400)
        if reply.delay:
            time.sleep(reply.delay)
        status, payload = reply.status, reply.raw
        if payload is None:
            try:
                payload = self._message(self._model(handler.path, request), request, reply)
            except CacheRuleError as exc:
                status, payload = 400, _error_body(400, str(exc))
            except LookupError as exc:
                status, payload = 404, _error_body(404, f"model: {exc.args[0]}")
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            handler.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    @staticmethod
    def _model(path: str, request: dict[str, Any]) -> str:
        if "model" in request:
            return str(request["model"])
        # Bedrock puts the model in the path: /model/{model id}/invoke
        parts = path.split("/")
        return unquote(parts[parts.index("model") + 1]) if "model" in parts else ""

    def _message(self, model: str, request: dict[str, Any], reply: Reply) -> bytes:
        with self._lock:
            usage = self.cache.apply(model, request)
        message = {
            "id": f"msg_{uuid.uuid4().hex[:20]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": reply.content if reply.content is not None else [],
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage.as_usage(reply.output_tokens),
        }
        return json.dumps(message).encode()


def _error_body(status: int, message: str) -> bytes:
    body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
    return json.dumps(body).encode()


# --------------------------------------------------------------- helpers for the AI pilot's tests


def ai_settings(fake: FakeAnthropic, table_name: str, **overrides: Any) -> Any:
    """Deployment settings pointing provider `anthropic` at the fake."""
    from cronpilot.config import Settings

    values: dict[str, Any] = {
        "table_name": table_name,
        "llm_provider": "anthropic",
        "anthropic_base_url": fake.base_url,
        "llm_timeout_seconds": 5.0,
        "llm_max_retries": 2,
    }
    values.update(overrides)
    return Settings(**values)

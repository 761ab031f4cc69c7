"""A fake Anthropic Messages API on 127.0.0.1, for the real SDK pointed at it with `base_url`.

Scripted per test: a queue of replies (tool answers, text, empty content, HTTP errors, delays); when
the queue is empty a `responder` callable answers, if one is set. Every request is recorded with its
raw body. It also serves Bedrock's `/model/{model}/invoke` path, so AnthropicBedrock can use it too.

Usage is simulated so caching shows: the cached prefix (tools + system, up to the block marked with
cache_control) is counted as cache_write the first time the fake sees it and as cache_read afterwards;
the rest of the request counts as plain input. Tokens are bytes / 4.
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
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
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


def cached_prefix_of(body: dict[str, Any]) -> bytes:
    """The bytes of the request the API caches: tools, then system, canonical JSON."""
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
        self._seen_prefixes: set[str] = set()
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
        payload = reply.raw if reply.raw is not None else self._message(request, reply)
        try:
            handler.send_response(reply.status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            handler.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def _message(self, request: dict[str, Any], reply: Reply) -> bytes:
        prefix = cached_prefix_of(request)
        rest = len(json.dumps(request.get("messages", [])).encode())
        key = hashlib.sha256(prefix).hexdigest()
        cached = any(
            "cache_control" in block for block in request.get("system", []) if isinstance(block, dict)
        )
        with self._lock:
            hit = key in self._seen_prefixes
            self._seen_prefixes.add(key)
        prefix_tokens = len(prefix) // 4
        usage = {
            "input_tokens": rest // 4 + (0 if cached else prefix_tokens),
            "output_tokens": reply.output_tokens,
            "cache_read_input_tokens": prefix_tokens if cached and hit else 0,
            "cache_creation_input_tokens": prefix_tokens if cached and not hit else 0,
        }
        message = {
            "id": f"msg_{uuid.uuid4().hex[:20]}",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "bedrock-model"),
            "content": reply.content if reply.content is not None else [],
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        return json.dumps(message).encode()


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


def claim_run(store: Any, job: Any, at: Any) -> Any:
    """Register `job` due at `at` and claim that slot, as discovery would; returns the RunRef."""
    from datetime import timedelta

    from cronpilot.models.run import RunRecord, RunRef

    store.put_job(job, next_run_at=at, source="baseline", reason="test", now=at)
    seen = store.get_job(job.id)
    run = RunRecord.claimed(job.id, at, epoch=seen.state.epoch + 1, trigger="schedule", now=at)
    store.claim(
        seen,
        run,
        owner="test",
        lease_until=at + timedelta(minutes=1),
        now=at,
        next_run_at=None,
        next_run_source="baseline",
        next_run_reason="test",
    )
    return RunRef(run_id=run.run_id, job_id=job.id, epoch=run.epoch)

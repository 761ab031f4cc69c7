"""`cronpilot local api`: the Lambda's resolver behind a plain HTTP server on 127.0.0.1.

Each request becomes the API Gateway HTTP API (payload 2.0) event the Lambda would receive, so the
routes, validation, limits and error shapes are exactly the deployed ones; only SigV4 is not checked.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# API Gateway refuses payloads over 10 MB before they reach the function; so does this server.
GATEWAY_MAX_BODY = 10 * 1024 * 1024
_WRITES = {"PUT", "POST", "DELETE", "PATCH"}

EventHandler = Callable[[dict[str, Any]], dict[str, Any]]


def http_api_event(
    method: str, target: str, headers: dict[str, str], body: bytes, *, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """The payload-2.0 event API Gateway builds for a request (duplicate query keys joined by commas)."""
    parts = urlsplit(target)
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "queryStringParameters": {k: ",".join(v) for k, v in query.items()} or None,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text or None,
        "isBase64Encoded": encoded,
    }


class LocalApiServer(ThreadingHTTPServer):
    """Serves `handle(event)`; one request at a time (the resolver keeps per-request state), and
    `after_write()` runs after every successful write (local mode persists its state file there)."""

    daemon_threads = True

    def __init__(
        self,
        port: int,
        handle: EventHandler,
        *,
        after_write: Callable[[], None] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.handle_event = handle
        self.after_write = after_write
        self.quiet = False
        self.lock = threading.Lock()
        super().__init__((host, port), _RequestHandler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        event = http_api_event(method, target, headers, body)
        with self.lock:
            response = self.handle_event(event)
            if method in _WRITES and int(response["statusCode"]) < 300 and self.after_write:
                self.after_write()
        return response


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalApiServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, a keep-alive client waits for
    # the delayed ACK (~40 ms) before it sees the body.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        if length > GATEWAY_MAX_BODY:
            self._write({"statusCode": 413, "headers": {"Content-Type": "text/plain"}, "body": "too large"})
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():  # API Gateway lower-cases names, joins repeats with ","
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        response = self.server.respond(self.command, self.path, headers, body)
        self._write(response)
        self.log_message(
            '"%s %s" %s %.1fms',
            self.command,
            self.path,
            response["statusCode"],
            (time.monotonic() - started) * 1000,
        )

    def _write(self, response: dict[str, Any]) -> None:
        raw = response.get("body") or ""
        payload = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
        self.send_response(int(response["statusCode"]))
        for name, value in (response.get("headers") or {}).items():
            self.send_header(name, value)
        for cookie in response.get("cookies") or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def __getattr__(self, name: str) -> Any:
        # Every method (do_GET, do_TRACE, do_QUERY, ...) reaches the resolver, which answers 404 for
        # what it does not route, as API Gateway does; http.server would answer 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.quiet:
            return
        super().log_message(format, *args)

"""The demo's HTTP target on 127.0.0.1: endpoints that succeed, are slow, fail, and depend on each other."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    server: DemoServer.Server

    def log_message(self, format: str, *args: Any) -> None:  # keep the demo's output readable
        pass

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._route()

    def _route(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        counts = self.server.counts
        with self.server.lock:
            counts[parts.path] = counts.get(parts.path, 0) + 1
            count = counts[parts.path]
        if parts.path == "/ok":
            self._reply(200, {"ok": True, "calls": count})
        elif parts.path == "/slow":
            time.sleep(int(query.get("ms", ["300"])[0]) / 1000)
            self._reply(200, {"ok": True, "slow": True})
        elif parts.path == "/fail":
            self._reply(500, {"error": "the demo's failing endpoint always fails"})
        elif parts.path == "/flaky":
            # Fails on every third call: the demo shows backoff and recovery.
            status = 503 if count % 3 == 0 else 200
            self._reply(status, {"ok": status == 200, "calls": count})
        elif parts.path == "/inventory":
            self._reply(200, {"items": 42, "low_stock": ["widget"]})
        elif parts.path == "/reorder":
            self._reply(200, {"reordered": ["widget"]})
        else:
            self._reply(404, {"error": f"no route {parts.path}"})


class DemoServer:
    class Server(ThreadingHTTPServer):
        daemon_threads = True
        counts: dict[str, int]
        lock: threading.Lock

    def __init__(self) -> None:
        self.server = DemoServer.Server(("127.0.0.1", 0), _Handler)
        self.server.counts = {}
        self.server.lock = threading.Lock()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def __enter__(self) -> DemoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

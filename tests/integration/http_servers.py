"""A small threaded HTTP(S) server on 127.0.0.1 for tests that need real sockets.

Usage, as a fixture:

    @pytest.fixture
    def server() -> Iterator[LoopbackHTTPServer]:
        with LoopbackHTTPServer() as srv:
            yield srv

    server.route("GET", "/ok", Reply(200, body=b"fine"))
    server.route("POST", "/echo", lambda req: Reply(201, body=req.body))
    outcome = client.send(RequestSpec("GET", server.url("/ok")))
    assert server.requests[0].headers["user-agent"] == "cronpilot"

A reply body may be bytes or any iterable of bytes; iterables are streamed lazily (chunked unless
the reply sets Content-Length), so tests can serve huge or slow bodies without building them.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    server_port: int


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""


def json_reply(document: Any, status: int = 200) -> Reply:
    return Reply(status, headers=[("Content-Type", "application/json")], body=json.dumps(document).encode())


type Handler = Callable[[RecordedRequest], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: LoopbackHTTPServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-body is what several tests do on purpose


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            server_port=owner.port,
        )
        with owner._lock:
            owner.requests.append(request)
        reply = owner._dispatch(request)
        self._write(reply, owner)

    def _write(self, reply: Reply, owner: LoopbackHTTPServer) -> None:
        self.send_response(reply.status)
        names = {name.lower() for name, _ in reply.headers}
        for name, value in reply.headers:
            self.send_header(name, value)
        chunked = not isinstance(reply.body, bytes) and "content-length" not in names
        if isinstance(reply.body, bytes) and "content-length" not in names:
            self.send_header("Content-Length", str(len(reply.body)))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        parts = [reply.body] if isinstance(reply.body, bytes) else reply.body
        try:
            for part in parts if self.command != "HEAD" else ():
                if not part:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                self.wfile.flush()
                with owner._lock:
                    owner.bytes_sent += len(part)
            if chunked and self.command != "HEAD":
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client went away (often on purpose)
        finally:
            with owner._lock:
                owner.responses_finished += 1

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle


class LoopbackHTTPServer:
    """Threaded HTTP server bound to 127.0.0.1 on a free port; HTTPS when given an SSL context."""

    def __init__(self, handler: Handler | None = None, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._ssl_context = ssl_context
        self._routes: dict[tuple[str, str], Reply | Handler] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.bytes_sent = 0  # body bytes written to sockets
        self.responses_finished = 0  # replies fully written or abandoned because the client left
        self.stopping = threading.Event()  # slow body generators should stop when this is set

    def route(self, method: str, path: str, reply: Reply | Handler) -> None:
        """Answer `method path` (path without query) with a fixed Reply or a handler callback."""
        self._routes[(method.upper(), path)] = reply

    def start(self) -> str:
        self._server = _Server(self)
        if self._ssl_context is not None:
            self._server.socket = self._ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        sock: socket = self._server.socket
        return int(sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def wait_responses_finished(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` replies are done writing (streaming tests check bytes_sent after)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.responses_finished >= count:
                    return True
            time.sleep(0.01)
        return False

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]

    def _dispatch(self, request: RecordedRequest) -> Reply:
        route = self._routes.get((request.method, request.path.split("?", 1)[0]))
        if route is None and self._handler is not None:
            route = self._handler
        if route is None:
            return Reply(404, body=b"no route")
        return route if isinstance(route, Reply) else route(request)

    def __enter__(self) -> LoopbackHTTPServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running(
    handler: Handler | None = None, *, ssl_context: ssl.SSLContext | None = None
) -> Iterator[LoopbackHTTPServer]:
    """`with running() as server:` — a started server, stopped on exit."""
    with LoopbackHTTPServer(handler, ssl_context=ssl_context) as server:
        yield server

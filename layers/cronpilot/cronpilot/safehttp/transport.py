"""Address pinning below httpx: connections go only to addresses the policy validated.

How pinning works, and why this approach: httpx turns the request URL into an httpcore origin
(scheme, host, port) and httpcore asks its *network backend* to `connect_tcp(host, port)`. We plug in
`PinnedBackend`, which ignores DNS entirely: it looks the origin up in a per-send table of addresses
that were resolved once by our Resolver and validated by the policy, and connects to those IPs only.
Everything above the socket still sees the original hostname, so httpx sends the right `Host` header
and httpcore calls `start_tls(server_hostname=<original host>)`: SNI and certificate hostname
verification (`check_hostname`) are against the name the user registered, never against the IP.
Rewriting the URL to the IP instead would need a hand-set Host header and SNI extension and would
make certificate checks depend on both being right.
A DNS answer cannot change after the check (rebinding), because nothing resolves again.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import httpcore
import httpx

type SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
type Pins = dict[tuple[str, int], tuple[str, ...]]


class Resolver(Protocol):
    def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    """getaddrinfo, TCP only. AI_ADDRCONFIG skips IPv6 answers on hosts without IPv6 (Lambda)."""

    def resolve(self, host: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _clamp(timeout: float | None, remaining: Callable[[], float], exc: type[Exception]) -> float:
    left = remaining()
    if left <= 0:
        raise exc("total time budget exhausted")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """Clamps every socket operation to the send's total budget, so a server dripping one byte per
    read timeout cannot stretch the call past its deadline."""

    def __init__(self, inner: httpcore.NetworkStream, remaining: Callable[[], float]) -> None:
        self._inner = inner
        self._remaining = remaining

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, self._remaining, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, self._remaining, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        limit = _clamp(timeout, self._remaining, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, limit), self._remaining)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Connects only to the validated addresses pinned for (host, port); never resolves names."""

    def __init__(self, pins: Pins, remaining: Callable[[], float]) -> None:
        self._pins = pins
        self._remaining = remaining
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._pins.get((host, port))
        if not addresses:
            # Defence in depth: every origin is pinned before its request is sent.
            raise httpcore.ConnectError("refusing to connect: no validated address for this origin")
        last_error: Exception | None = None
        # Several validated addresses (dual stack): try them in order, like socket.create_connection.
        for address in addresses:
            limit = _clamp(timeout, self._remaining, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(address, port, limit, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return DeadlineStream(stream, self._remaining)
        assert last_error is not None
        raise last_error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:  # pragma: no cover - only used by httpcore retries, disabled
        raise RuntimeError("httpcore retries are disabled")


class PinnedTransport(httpx.HTTPTransport):
    """httpx's HTTP transport (exception mapping, stream handling) on a pool that uses PinnedBackend.

    HTTPTransport does not take a network backend, so the pool it builds is replaced; one pool per send
    keeps the pin table private to that send (thread-safe, no stale pins across invocations).
    """

    def __init__(self, ssl_context: ssl.SSLContext, backend: PinnedBackend) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=10,
            max_keepalive_connections=10,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )

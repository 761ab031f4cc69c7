"""The outbound HTTP client: egress policy, pinned connections, manual redirects, bounded retries.

Behaviour worth knowing when reading an outcome:
- Every hop (the first URL and each redirect) is parsed, checked and resolved once; the connection
  goes only to the validated addresses (see `transport`). URLs with userinfo are refused outright.
- Redirects are followed by hand, at most MAX_REDIRECTS. 303 becomes GET without a body (HEAD stays
  HEAD); 301/302 turn POST into GET without a body, as browsers do; 307/308 keep method and body.
  Authorization, Cookie, Proxy-Authorization and `secret_header_names` are dropped as soon as a hop
  leaves the first origin (scheme, host, port) and are not restored if a later hop comes back.
- Retries (connect failures, 429, 502, 503, 504) only for GET, HEAD, OPTIONS, PUT, DELETE unless
  `retry_non_idempotent`: not even a POST whose connect failed is retried by default. Retry-After is
  honoured when it fits the remaining budget; otherwise the last outcome is returned at once.
- `total_timeout` bounds everything: each socket operation is clamped to what is left of it.
- No cookie jar, no proxies from the environment, Accept-Encoding is always "gzip, deflate".
- Error texts are built from fixed phrases, header *names* and errno text, never header values;
  `final_url` and denial messages carry no userinfo, query or fragment.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import random as _random
import re
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple

import httpx

from cronpilot.safehttp.body import SUPPORTED_ENCODINGS, BodyReader, BodyTooLarge, UnsupportedEncoding
from cronpilot.safehttp.policy import Destination, EgressDenied, EgressPolicy, parse_destination, redact_url
from cronpilot.safehttp.transport import PinnedBackend, PinnedTransport, Pins, Resolver, SystemResolver

MAX_REDIRECTS: Final = 3
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
ALWAYS_SECRET: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
USER_AGENT: Final = "cronpilot"
# Set by the client only: framing and hop-by-hop headers (request smuggling), Host (the pinned origin
# decides it) and Accept-Encoding (only encodings the bounded decoder understands).
_RESERVED_HEADERS: Final = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "accept-encoding",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


class RequestSpec(NamedTuple):
    """One outbound request and its limits."""

    method: str
    url: str
    headers: Mapping[str, str] = MappingProxyType({})  # read-only: a default is shared
    body: str | bytes | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0  # wall-clock budget for all attempts, redirects and backoff sleeps
    max_body_bytes: int = 1 << 20  # cap on decoded bytes read
    stored_body_bytes: int = 8 << 10  # prefix kept in the outcome
    max_attempts: int = 3
    retry_non_idempotent: bool = False  # POST/PATCH retried only if True
    secret_header_names: frozenset[str] = frozenset()  # lower-case; never forwarded cross-origin
    idempotency_key: str | None = None  # sent as Idempotency-Key
    backoff_base: float = 0.5
    backoff_cap: float = 8.0


class HttpOutcome(NamedTuple):
    """What a request came to: status, attempts, latency and the bounded body."""

    ok: bool  # 2xx after redirects, and nothing went wrong reading it
    http_status: int | None
    attempts: int  # real sends, redirect hops included
    latency_ms: int
    body: str
    body_truncated: bool
    body_bytes: int  # decoded bytes read, capped at max_body_bytes
    error: str | None  # short, never contains header values
    error_kind: str | None
    final_url: str | None  # redacted: no userinfo, query or fragment
    redirects: int
    content_type: str | None = None  # the final response's Content-Type header


@dataclass
class _Result:
    """One send: what came back, or why nothing usable did."""

    status: int | None = None
    headers: httpx.Headers | None = None
    reader: BodyReader | None = None
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = False


class _InvalidRequest(Exception):
    pass


class SafeHttpClient:
    """Sends one RequestSpec at a time; `send` reports network and HTTP problems in the outcome."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        now: Callable[[], float] = time.time,  # wall clock, for Retry-After HTTP-dates
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._resolver: Resolver = resolver if resolver is not None else SystemResolver()
        self._sleep = sleep
        self._monotonic = monotonic
        self._random = random
        self._now = now
        self._ssl_context = ssl_context
        self._closed = False

    def __enter__(self) -> SafeHttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        # Connections live only for one send; nothing is pooled between sends.
        self._closed = True

    def check_url(self, url: str) -> list[str]:
        """Validate a URL as `send` would (resolving it once) and return the allowed addresses.

        Raises EgressDenied. Never connects. Useful when an endpoint is registered.
        """
        return list(self._pin(parse_destination(url, self._policy), {}))

    def send(self, spec: RequestSpec) -> HttpOutcome:
        if self._closed:
            raise RuntimeError("SafeHttpClient is closed")
        start = self._monotonic()
        deadline = start + spec.total_timeout
        pins: Pins = {}
        transport = PinnedTransport(self._get_ssl_context(), PinnedBackend(pins, self._remaining(deadline)))
        try:
            return _Send(self, spec, pins, transport, start, deadline).run()
        finally:
            transport.close()

    def _remaining(self, deadline: float) -> Callable[[], float]:
        return lambda: deadline - self._monotonic()

    def _get_ssl_context(self) -> ssl.SSLContext:
        return self._ssl_context if self._ssl_context is not None else _default_ssl_context()

    def _pin(self, destination: Destination, pins: Pins) -> tuple[str, ...]:
        """Resolve once per (host, port) per send; every address must pass, or none is used."""
        key = (destination.host, destination.port)
        if key in pins:
            return pins[key]
        try:
            if destination.literal is not None:
                answers = [str(destination.literal)]
            else:
                try:
                    answers = self._resolver.resolve(destination.host, destination.port)
                except (OSError, UnicodeError, ValueError) as exc:
                    raise EgressDenied("unresolvable", f"{destination.host} did not resolve") from exc
                if not answers:
                    raise EgressDenied("unresolvable", f"{destination.host} has no addresses")
            addresses: list[str] = []
            for answer in answers:
                self._policy.check_address(answer)
                address = str(ipaddress.ip_address(answer))
                if address not in addresses:
                    addresses.append(address)
        except EgressDenied as exc:
            raise exc.for_url(destination.url) from None
        pins[key] = tuple(addresses)
        return pins[key]


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Built on first use and shared: loading the CA bundle costs ~20 ms, paid once per process.
    return httpx.create_ssl_context(trust_env=False)


class _Send:
    """State of one `send`: the hop being requested, counters, and the deadline."""

    def __init__(
        self,
        client: SafeHttpClient,
        spec: RequestSpec,
        pins: Pins,
        transport: PinnedTransport,
        start: float,
        deadline: float,
    ) -> None:
        self.c = client
        self.spec = spec
        self.pins = pins
        self.transport = transport
        self.start = start
        self.deadline = deadline
        self.attempts = 0
        self.redirects = 0
        self.secrets = ALWAYS_SECRET | {name.lower() for name in spec.secret_header_names}
        self.final_url: str | None = None
        self.last = _Result()

    def run(self) -> HttpOutcome:
        spec = self.spec
        method = spec.method.upper()
        body = spec.body.encode() if isinstance(spec.body, str) else spec.body
        try:
            headers = self._initial_headers(method)
        except _InvalidRequest as exc:
            return self._outcome(_Result(error=str(exc), error_kind="invalid-request"))
        url: str | httpx.URL = spec.url
        first_origin: tuple[str, str, int] | None = None
        retries = 0
        redirected = False
        while True:
            try:
                destination = parse_destination(url, self.c._policy)
                self.c._pin(destination, self.pins)
            except EgressDenied as exc:
                return self._outcome(_Result(error=str(exc), error_kind="egress-denied"), keep_last=True)
            if redirected:
                self.redirects += 1  # counted once the hop passed the policy and is about to be sent
                redirected = False
            if first_origin is None:
                first_origin = destination.origin
            elif destination.origin != first_origin:
                # Credentials were meant for the first origin: once we leave it they are gone for good.
                headers = [(k, v) for k, v in headers if k.lower() not in self.secrets]
            if self.deadline - self.c._monotonic() <= 0:
                return self._outcome(_Result(error="total time budget exhausted", error_kind="timeout"))
            self.attempts += 1
            self.final_url = redact_url(destination.url)
            result = self._attempt(method, destination, headers, body)
            self.last = result
            location = result.headers.get("location") if result.headers is not None else None
            if result.status in REDIRECT_STATUSES and location:
                if self.redirects >= MAX_REDIRECTS:
                    denied = EgressDenied("redirect-limit", f"more than {MAX_REDIRECTS} redirects")
                    return self._outcome(
                        _Result(result.status, error=str(denied), error_kind="too-many-redirects")
                    )
                try:
                    url = destination.url.join(location)
                except httpx.InvalidURL:
                    denied = EgressDenied("invalid-url", "the redirect location cannot be parsed")
                    return self._outcome(
                        _Result(result.status, error=str(denied), error_kind="egress-denied")
                    )
                method, body, headers = _redirected_request(result.status, method, body, headers)
                redirected = True
                continue
            if not self._should_retry(result, method, retries):
                return self._outcome(result)
            delay = self._retry_delay(result, retries)
            if delay >= self.deadline - self.c._monotonic():
                return self._outcome(result)  # waiting would blow the budget: report what we have
            self.c._sleep(delay)
            retries += 1

    def _initial_headers(self, method: str) -> list[tuple[str, str]]:
        if not _TOKEN.match(method):
            raise _InvalidRequest("the HTTP method is not a valid token")
        headers: list[tuple[str, str]] = []
        for name, value in self.spec.headers.items():
            if not _TOKEN.match(name):
                raise _InvalidRequest("a header name is not a valid token")
            if _BAD_VALUE.search(value) or not value.isascii():
                raise _InvalidRequest(f"header {name!r} has an invalid value")
            lower = name.lower()
            if lower in _RESERVED_HEADERS or (
                lower == "idempotency-key" and self.spec.idempotency_key is not None
            ):
                continue
            headers.append((name, value))
        if self.spec.idempotency_key is not None:
            if _BAD_VALUE.search(self.spec.idempotency_key) or not self.spec.idempotency_key.isascii():
                raise _InvalidRequest("the idempotency key has an invalid value")
            headers.append(("Idempotency-Key", self.spec.idempotency_key))
        if not any(name.lower() == "user-agent" for name, _ in headers):
            headers.append(("User-Agent", USER_AGENT))
        headers.append(("Accept-Encoding", SUPPORTED_ENCODINGS))
        return headers

    def _attempt(
        self, method: str, destination: Destination, headers: list[tuple[str, str]], body: bytes | None
    ) -> _Result:
        spec = self.spec
        timeouts = {
            "connect": spec.connect_timeout,
            "read": spec.read_timeout,
            "write": spec.read_timeout,
            "pool": spec.connect_timeout,
        }
        request = httpx.Request(
            method, destination.url, headers=headers, content=body, extensions={"timeout": timeouts}
        )
        result = _Result()
        try:
            response = self.transport.handle_request(request)
        except httpx.HTTPError as exc:
            return _network_error(exc, phase="sending the request")
        try:
            result.status = response.status_code
            result.headers = response.headers
            if method == "HEAD" or (
                response.status_code in REDIRECT_STATUSES and "location" in response.headers
            ):
                return result  # redirect bodies are not kept; closing drops the connection
            result.reader = BodyReader(
                limit=spec.max_body_bytes,
                keep=spec.stored_body_bytes,
                remaining=self.c._remaining(self.deadline),
            )
            result.reader.read(response)
        except BodyTooLarge:
            result.error = f"response body exceeds {spec.max_body_bytes} bytes"
            result.error_kind = "too-large"
        except UnsupportedEncoding as exc:
            result.error, result.error_kind = str(exc), "decoding"
        except zlib.error:
            result.error, result.error_kind = "response body is not valid compressed data", "decoding"
        except httpx.HTTPError as exc:
            failed = _network_error(exc, phase="reading the response")
            result.error, result.error_kind = failed.error, failed.error_kind
        finally:
            response.close()
        if result.error is None and result.status in RETRY_STATUSES:
            result.retryable = True
        return result

    def _should_retry(self, result: _Result, method: str, retries: int) -> bool:
        if not result.retryable or retries + 1 >= self.spec.max_attempts:
            return False
        return method in IDEMPOTENT_METHODS or self.spec.retry_non_idempotent

    def _retry_delay(self, result: _Result, retries: int) -> float:
        header = result.headers.get("retry-after") if result.headers is not None else None
        if header is not None:
            delay = _parse_retry_after(header, self.c._now())
            if delay is not None:
                return delay
        # Full jitter: spreads retries from many runs hitting the same endpoint.
        return self.c._random() * min(self.spec.backoff_cap, self.spec.backoff_base * 2**retries)

    def _outcome(self, result: _Result, *, keep_last: bool = False) -> HttpOutcome:
        if keep_last and result.status is None:
            result.status = self.last.status
        status = result.status
        error, kind = result.error, result.error_kind
        if error is None and status is not None and not 200 <= status < 300:
            error, kind = f"HTTP {status}", "http-status"
        reader = result.reader
        return HttpOutcome(
            ok=error is None and status is not None,
            http_status=status,
            attempts=self.attempts,
            latency_ms=int((self.c._monotonic() - self.start) * 1000),
            body=reader.text() if reader else "",
            body_truncated=reader.truncated if reader else False,
            body_bytes=min(reader.total, self.spec.max_body_bytes) if reader else 0,
            error=error,
            error_kind=kind,
            final_url=self.final_url,
            redirects=self.redirects,
            content_type=result.headers.get("content-type") if result.headers is not None else None,
        )


def _redirected_request(
    status: int | None, method: str, body: bytes | None, headers: list[tuple[str, str]]
) -> tuple[str, bytes | None, list[tuple[str, str]]]:
    """303 becomes GET (HEAD stays HEAD); 301/302 turn POST into GET, as browsers do; 307/308 keep
    method and body. A dropped body takes its content headers with it."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        dropped = {"content-type", "content-encoding", "content-language", "content-location"}
        return "GET", None, [(k, v) for k, v in headers if k.lower() not in dropped]
    return method, body, headers


def _network_error(exc: httpx.HTTPError, *, phase: str) -> _Result:
    """Map an httpx error to a short message. Built from types and errno text only: exception messages
    can quote request data (h11 echoes bad header values)."""
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return _Result(error="connect timed out", error_kind="timeout", retryable=True)
    if isinstance(exc, httpx.TimeoutException):
        return _Result(error=f"timed out {phase}", error_kind="timeout")
    if isinstance(exc, httpx.ConnectError):
        cause = _root_cause(exc)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _Result(error=f"TLS certificate rejected: {cause.verify_message}", error_kind="tls")
        if isinstance(cause, ssl.SSLError):
            return _Result(error=f"TLS handshake failed: {cause.reason}", error_kind="tls")
        detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else name
        return _Result(error=f"connect failed: {detail}", error_kind="connect", retryable=True)
    if isinstance(exc, httpx.LocalProtocolError):
        return _Result(error="the request was rejected before sending", error_kind="invalid-request")
    if isinstance(exc, httpx.ProtocolError):
        return _Result(error=f"protocol error {phase}", error_kind="protocol")
    return _Result(error=f"{name} {phase}", error_kind="network")


def _root_cause(exc: BaseException) -> BaseException:
    """The original error under httpx's and httpcore's re-raises (bounded: chains can loop)."""
    for _ in range(10):
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from Retry-After (delta-seconds or HTTP-date); None if unparseable."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)

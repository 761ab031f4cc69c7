"""SafeHttpClient against real HTTP(S) servers on 127.0.0.1, reachable only through allowed_cidrs."""

from __future__ import annotations

import email.utils
import functools
import gzip
import itertools
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest
from cronpilot.safehttp import EgressPolicy, HttpOutcome, RequestSpec, SafeHttpClient

from tests.integration.http_servers import LoopbackHTTPServer, RecordedRequest, Reply

LOOPBACK = ip_network("127.0.0.0/8")
MIB = 1 << 20


class SleepRecorder:
    """Injected instead of time.sleep: records the delays, waits for none of them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class MapResolver:
    """Answers from a table; each host's answers are consumed in order (to model DNS rebinding)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self._answers = {host: iter(seq) for host, seq in answers.items()}
        self.calls: list[tuple[str, int]] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return next(self._answers[host])


def loopback_policy(*servers: LoopbackHTTPServer) -> EgressPolicy:
    return EgressPolicy(allowed_cidrs=(LOOPBACK,), allowed_ports=frozenset(s.port for s in servers))


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as srv:
        yield srv


@pytest.fixture
def other_server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as srv:
        yield srv


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def sequence(*replies: Reply) -> Callable[[RecordedRequest], Reply]:
    """A handler answering with each reply in turn, then repeating the last one."""
    remaining = iter(replies)

    def next_reply(_request: RecordedRequest) -> Reply:
        return next(remaining, replies[-1])

    return next_reply


# --- retries -------------------------------------------------------------------------------------


def test_503_with_retry_after_seconds_is_retried_after_that_delay(
    server: LoopbackHTTPServer, sleeps: SleepRecorder
) -> None:
    # Given an endpoint that is unavailable once and asks to come back in 2 s
    server.route("GET", "/flaky", sequence(Reply(503, [("Retry-After", "2")]), Reply(200, body=b"done")))
    client = SafeHttpClient(loopback_policy(server), sleep=sleeps)

    # When
    outcome = client.send(RequestSpec("GET", server.url("/flaky"), total_timeout=10))

    # Then the second send succeeded after sleeping exactly the Retry-After value
    assert outcome.ok, outcome.error
    assert (outcome.http_status, outcome.body, outcome.attempts) == (200, "done", 2)
    assert sleeps.calls == [2.0]
    assert server.paths() == ["/flaky", "/flaky"]


def test_retry_after_http_date_is_honoured(server: LoopbackHTTPServer, sleeps: SleepRecorder) -> None:
    # Given a 429 whose Retry-After is an HTTP-date 3 s after the (injected) wall clock
    now = 1_750_000_000.0
    retry_at = email.utils.formatdate(now + 3, usegmt=True)
    server.route("GET", "/limited", sequence(Reply(429, [("Retry-After", retry_at)]), Reply(200)))
    client = SafeHttpClient(loopback_policy(server), sleep=sleeps, now=lambda: now)

    # When
    outcome = client.send(RequestSpec("GET", server.url("/limited")))

    # Then
    assert outcome.ok
    assert outcome.attempts == 2
    assert sleeps.calls == [3.0]


def test_retry_after_beyond_the_budget_returns_the_last_outcome(
    server: LoopbackHTTPServer, sleeps: SleepRecorder
) -> None:
    # Given a server asking for a 120 s pause, and a 5 s budget
    server.route("GET", "/later", Reply(503, [("Retry-After", "120")], b"maintenance"))
    client = SafeHttpClient(loopback_policy(server), sleep=sleeps)

    # When
    outcome = client.send(RequestSpec("GET", server.url("/later"), total_timeout=5))

    # Then no waiting and no second send: the 503 is reported as is
    assert sleeps.calls == []
    assert (outcome.attempts, outcome.http_status, outcome.error_kind) == (1, 503, "http-status")
    assert outcome.body == "maintenance"
    assert not outcome.ok


def test_backoff_uses_full_jitter_when_no_retry_after(
    server: LoopbackHTTPServer, sleeps: SleepRecorder
) -> None:
    # Given 502 then 504 then 200, and random() fixed at 0.5
    server.route("GET", "/gw", sequence(Reply(502), Reply(504), Reply(200)))
    client = SafeHttpClient(loopback_policy(server), sleep=sleeps, random=lambda: 0.5)

    # When
    outcome = client.send(RequestSpec("GET", server.url("/gw"), backoff_base=0.5, backoff_cap=8))

    # Then sleeps are random() * base * 2**retry
    assert outcome.ok
    assert outcome.attempts == 3
    assert sleeps.calls == [0.25, 0.5]


def test_gives_up_after_max_attempts(server: LoopbackHTTPServer, sleeps: SleepRecorder) -> None:
    # Given an endpoint that is always unavailable
    server.route("GET", "/down", Reply(503))
    client = SafeHttpClient(loopback_policy(server), sleep=sleeps, random=lambda: 0.0)

    # When
    outcome = client.send(RequestSpec("GET", server.url("/down"), max_attempts=3))

    # Then
    assert (outcome.attempts, outcome.http_status, outcome.error_kind) == (3, 503, "http-status")
    assert len(server.requests) == 3
    assert len(sleeps.calls) == 2


def test_connection_refused_is_retried_as_a_connect_error(sleeps: SleepRecorder) -> None:
    # Given a loopback port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = EgressPolicy(allowed_cidrs=(LOOPBACK,), allowed_ports=frozenset({port}))
    client = SafeHttpClient(policy, sleep=sleeps, random=lambda: 0.0)

    # When
    outcome = client.send(RequestSpec("GET", f"http://127.0.0.1:{port}/", max_attempts=3))

    # Then
    assert (outcome.attempts, outcome.error_kind, outcome.http_status) == (3, "connect", None)
    assert len(sleeps.calls) == 2


def test_post_is_not_retried_by_default(server: LoopbackHTTPServer, sleeps: SleepRecorder) -> None:
    # Given
    server.route("POST", "/charge", sequence(Reply(503), Reply(200)))
    client = SafeHttpClient(loopback_policy(server), sleep=sleeps)

    # When
    outcome = client.send(RequestSpec("POST", server.url("/charge"), body='{"amount": 1}'))

    # Then one send only: a second POST could charge twice
    assert (outcome.attempts, outcome.http_status) == (1, 503)
    assert [r.method for r in server.requests] == ["POST"]
    assert sleeps.calls == []


def test_post_is_retried_when_opted_in(server: LoopbackHTTPServer, sleeps: SleepRecorder) -> None:
    # Given
    server.route("POST", "/charge", sequence(Reply(503), Reply(200)))
    client = SafeHttpClient(loopback_policy(server), sleep=sleeps, random=lambda: 0.0)

    # When
    spec = RequestSpec("POST", server.url("/charge"), body=b"payload", retry_non_idempotent=True)
    outcome = client.send(spec)

    # Then both sends carried the body
    assert outcome.ok
    assert outcome.attempts == 2
    assert [r.body for r in server.requests] == [b"payload", b"payload"]


def test_idempotency_key_is_sent_on_every_attempt(server: LoopbackHTTPServer, sleeps: SleepRecorder) -> None:
    # Given
    server.route("POST", "/orders", sequence(Reply(503), Reply(201)))
    client = SafeHttpClient(loopback_policy(server), sleep=sleeps, random=lambda: 0.0)

    # When
    spec = RequestSpec("POST", server.url("/orders"), idempotency_key="run-42", retry_non_idempotent=True)
    outcome = client.send(spec)

    # Then
    assert outcome.ok
    assert outcome.http_status == 201
    assert [r.headers.get("idempotency-key") for r in server.requests] == ["run-42", "run-42"]


# --- time and size bounds ------------------------------------------------------------------------


def test_dripping_server_is_cut_off_by_the_total_budget(server: LoopbackHTTPServer) -> None:
    # Given a body announced as 1000 bytes that arrives one byte per second
    def drip() -> Iterator[bytes]:
        for _ in range(1000):
            yield b"x"
            if server.stopping.wait(1.0):
                return

    server.route("GET", "/drip", lambda _req: Reply(200, [("Content-Length", "1000")], drip()))
    client = SafeHttpClient(loopback_policy(server))
    started = time.monotonic()

    # When: each byte arrives well within the read timeout, only the total budget can stop it
    outcome = client.send(RequestSpec("GET", server.url("/drip"), read_timeout=5, total_timeout=2))

    # Then
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 3.0
    assert (outcome.error_kind, outcome.http_status, outcome.attempts) == ("timeout", 200, 1)
    assert 1 <= outcome.body_bytes <= 3
    assert not outcome.ok


def test_read_timeout_while_waiting_for_headers(server: LoopbackHTTPServer) -> None:
    # Given a server that stalls before answering
    def stall(_request: RecordedRequest) -> Reply:
        server.stopping.wait(3)
        return Reply(200)

    server.route("GET", "/stall", stall)
    client = SafeHttpClient(loopback_policy(server))
    started = time.monotonic()

    # When
    outcome = client.send(RequestSpec("GET", server.url("/stall"), read_timeout=0.3, total_timeout=10))

    # Then a read timeout is not retried (the request may have been processed)
    assert time.monotonic() - started < 1.5
    assert (outcome.error_kind, outcome.http_status, outcome.attempts) == ("timeout", None, 1)


def test_100_mib_body_stops_at_the_cap(server: LoopbackHTTPServer) -> None:
    # Given a 100 MiB body streamed lazily
    size = 100 * MIB
    chunk = b"a" * (64 << 10)
    body = itertools.repeat(chunk, size // len(chunk))
    server.route("GET", "/huge", lambda _req: Reply(200, [("Content-Length", str(size))], body))
    client = SafeHttpClient(loopback_policy(server))

    # When
    outcome = client.send(RequestSpec("GET", server.url("/huge"), max_body_bytes=MIB, stored_body_bytes=8192))

    # Then reading stopped at the cap and only the stored prefix is kept
    assert (outcome.error_kind, outcome.http_status, outcome.ok) == ("too-large", 200, False)
    assert outcome.body_bytes == MIB
    assert outcome.body == "a" * 8192
    assert outcome.body_truncated
    # ... and the connection was dropped: the server could not push the rest
    assert server.wait_responses_finished(1)
    assert server.bytes_sent < 32 * MIB


@functools.cache
def gzip_bomb(decompressed: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    parts = [compressor.compress(zeros) for _ in range(decompressed // MIB)]
    return b"".join([*parts, compressor.flush()])


def test_gzip_bomb_stops_at_the_cap_without_inflating_it(server: LoopbackHTTPServer) -> None:
    # Given ~100 KiB of gzip that inflates to 100 MiB
    bomb = gzip_bomb(100 * MIB)
    assert len(bomb) < 200 << 10
    server.route("GET", "/bomb", Reply(200, [("Content-Encoding", "gzip")], bomb))
    client = SafeHttpClient(loopback_policy(server))

    # When
    tracemalloc.start()
    try:
        outcome = client.send(RequestSpec("GET", server.url("/bomb"), max_body_bytes=MIB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then decoded bytes are capped, and memory never held more than a few chunks
    assert (outcome.error_kind, outcome.body_bytes, outcome.ok) == ("too-large", MIB, False)
    assert outcome.body_truncated
    assert peak < 8 * MIB


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw deflate, as some servers send
        ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data))),
        ("identity", lambda data: data),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "gzip-twice", "identity"],
)
def test_compressed_bodies_are_decoded(
    server: LoopbackHTTPServer, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    # Given
    text = "héllo wörld " * 500
    server.route("GET", "/z", Reply(200, [("Content-Encoding", encoding)], encode(text.encode())))
    client = SafeHttpClient(loopback_policy(server))

    # When
    outcome = client.send(RequestSpec("GET", server.url("/z"), stored_body_bytes=1 << 20))

    # Then
    assert outcome.ok, outcome.error
    assert outcome.body == text
    assert outcome.body_bytes == len(text.encode())
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_stored_body_is_a_truncated_prefix(server: LoopbackHTTPServer) -> None:
    # Given a 20 000 byte body and an 8 KiB stored prefix
    server.route("GET", "/big", Reply(200, body=b"b" * 20_000))
    client = SafeHttpClient(loopback_policy(server))

    # When
    outcome = client.send(RequestSpec("GET", server.url("/big"), stored_body_bytes=8192))

    # Then the call is fine, only the stored copy is cut
    assert outcome.ok
    assert outcome.body_truncated
    assert (len(outcome.body), outcome.body_bytes) == (8192, 20_000)


# --- redirects -----------------------------------------------------------------------------------


def chain(server: LoopbackHTTPServer, hops: int) -> None:
    """/hop1 -> /hop2 -> ... -> /hop{hops} -> /final"""
    for i in range(1, hops + 1):
        target = f"/hop{i + 1}" if i < hops else "/final"
        server.route("GET", f"/hop{i}", Reply(302, [("Location", target)]))
    server.route("GET", "/final", Reply(200, body=b"arrived"))


def test_four_chained_redirects_are_refused_at_the_fourth(server: LoopbackHTTPServer) -> None:
    # Given
    chain(server, hops=4)
    client = SafeHttpClient(loopback_policy(server))

    # When
    outcome = client.send(RequestSpec("GET", server.url("/hop1")))

    # Then three redirects were followed, the fourth was not
    assert (outcome.error_kind, outcome.redirects, outcome.attempts) == ("too-many-redirects", 3, 4)
    assert outcome.http_status == 302
    assert not outcome.ok
    assert "/final" not in server.paths()
    assert outcome.final_url == server.url("/hop4")


def test_three_chained_redirects_are_followed(server: LoopbackHTTPServer) -> None:
    # Given
    chain(server, hops=3)
    client = SafeHttpClient(loopback_policy(server))

    # When
    outcome = client.send(RequestSpec("GET", server.url("/hop1?token=s3cret")))

    # Then
    assert outcome.ok
    assert outcome.body == "arrived"
    assert (outcome.redirects, outcome.attempts) == (3, 4)
    assert outcome.final_url == server.url("/final")


SECRET_HEADERS = {
    "Authorization": "Bearer top-secret",
    "Cookie": "session=abc",
    "X-Api-Key": "k-123",
    "X-Trace": "trace-1",
}


def test_cross_origin_redirect_drops_secret_headers(
    server: LoopbackHTTPServer, other_server: LoopbackHTTPServer
) -> None:
    # Given a redirect to the same host on another port: another origin
    server.route("GET", "/go", Reply(302, [("Location", other_server.url("/land"))]))
    other_server.route("GET", "/land", Reply(200, body=b"landed"))
    client = SafeHttpClient(loopback_policy(server, other_server))

    # When
    spec = RequestSpec(
        "GET", server.url("/go"), headers=SECRET_HEADERS, secret_header_names=frozenset({"x-api-key"})
    )
    outcome = client.send(spec)

    # Then the first origin got everything, the second only the non-secret header
    assert outcome.ok
    assert outcome.final_url == other_server.url("/land")
    first, landed = server.requests[0].headers, other_server.requests[0].headers
    assert first["authorization"] == "Bearer top-secret"
    assert first["x-api-key"] == "k-123"
    assert not {"authorization", "cookie", "x-api-key"} & landed.keys()
    assert landed["x-trace"] == "trace-1"


def test_same_origin_redirect_keeps_authorization(server: LoopbackHTTPServer) -> None:
    # Given a relative redirect on the same origin
    server.route("GET", "/go", Reply(302, [("Location", "/land")]))
    server.route("GET", "/land", Reply(200))
    client = SafeHttpClient(loopback_policy(server))

    # When
    outcome = client.send(RequestSpec("GET", server.url("/go"), headers=SECRET_HEADERS))

    # Then
    assert outcome.ok
    assert outcome.redirects == 1
    assert server.requests[1].path == "/land"
    assert server.requests[1].headers["authorization"] == "Bearer top-secret"
    assert server.requests[1].headers["cookie"] == "session=abc"


def test_secrets_stay_dropped_after_returning_to_the_first_origin(
    server: LoopbackHTTPServer, other_server: LoopbackHTTPServer
) -> None:
    # Given a -> b -> a
    server.route("GET", "/go", Reply(302, [("Location", other_server.url("/bounce"))]))
    other_server.route("GET", "/bounce", Reply(302, [("Location", server.url("/back"))]))
    server.route("GET", "/back", Reply(200))
    client = SafeHttpClient(loopback_policy(server, other_server))

    # When
    outcome = client.send(RequestSpec("GET", server.url("/go"), headers=SECRET_HEADERS))

    # Then the origin that chose the last hop was untrusted: no credentials on it
    assert outcome.ok
    assert outcome.redirects == 2
    assert "authorization" not in server.requests[1].headers


@pytest.mark.parametrize(
    ("status", "method", "expected_method", "expected_body"),
    [
        (303, "POST", "GET", b""),
        (303, "PUT", "GET", b""),
        (302, "POST", "GET", b""),
        (301, "POST", "GET", b""),
        (302, "PUT", "PUT", b"data"),
        (307, "POST", "POST", b"data"),
        (308, "PATCH", "PATCH", b"data"),
    ],
)
def test_redirect_method_rewriting(
    server: LoopbackHTTPServer, status: int, method: str, expected_method: str, expected_body: bytes
) -> None:
    # Given
    server.route(method, "/submit", Reply(status, [("Location", "/result")]))
    server.route(expected_method, "/result", Reply(200))
    client = SafeHttpClient(loopback_policy(server))

    # When
    headers = {"Content-Type": "text/plain"}
    outcome = client.send(RequestSpec(method, server.url("/submit"), headers=headers, body=b"data"))

    # Then
    assert outcome.ok, outcome.error
    followed = server.requests[1]
    assert (followed.method, followed.body) == (expected_method, expected_body)
    assert ("content-type" in followed.headers) == bool(expected_body)


# --- egress policy on real sockets ---------------------------------------------------------------


def test_loopback_not_in_allowed_cidrs_is_refused_without_connecting(server: LoopbackHTTPServer) -> None:
    # Given the port is allowed but 127.0.0.0/8 is not
    server.route("GET", "/", Reply(200))
    policy = EgressPolicy(allowed_cidrs=(ip_network("10.0.0.0/8"),), allowed_ports=frozenset({server.port}))
    client = SafeHttpClient(policy)

    # When
    outcome = client.send(RequestSpec("GET", server.url("/")))

    # Then the server never saw a connection
    assert (outcome.error_kind, outcome.attempts, outcome.ok) == ("egress-denied", 0, False)
    assert server.connections == 0
    assert server.requests == []


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.7/",
        "http://127.0.0.1:1/",  # loopback is allowed, that port is not
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_forbidden_target_is_not_followed(server: LoopbackHTTPServer, location: str) -> None:
    # Given
    server.route("GET", "/go", Reply(302, [("Location", location)]))
    client = SafeHttpClient(loopback_policy(server))

    # When
    outcome = client.send(RequestSpec("GET", server.url("/go")))

    # Then only the first hop was sent
    assert (outcome.error_kind, outcome.attempts, outcome.redirects) == ("egress-denied", 1, 0)
    assert server.connections == 1


def test_hostname_is_resolved_once_and_pinned_with_its_host_header(
    server: LoopbackHTTPServer, sleeps: SleepRecorder
) -> None:
    # Given a resolver that would rebind svc.test to a forbidden address on a second lookup
    server.route("GET", "/a", Reply(302, [("Location", "/b")]))
    server.route("GET", "/b", sequence(Reply(503), Reply(200, body=b"pinned")))
    resolver = MapResolver({"svc.test": [["127.0.0.1"], ["10.9.9.9"]]})
    client = SafeHttpClient(loopback_policy(server), resolver=resolver, sleep=sleeps, random=lambda: 0.0)

    # When a redirect and a retry both go back to the same host
    outcome = client.send(RequestSpec("GET", f"http://svc.test:{server.port}/a"))

    # Then one lookup served every connection, and the Host header is the name, not the IP
    assert outcome.ok
    assert outcome.body == "pinned"
    assert outcome.attempts == 3
    assert resolver.calls == [("svc.test", server.port)]
    assert {r.headers["host"] for r in server.requests} == {f"svc.test:{server.port}"}


# --- TLS: SNI and certificate verification use the hostname, the socket uses the pinned IP -------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for pinned.test, made in-process (no openssl CLI needed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pinned.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("pinned.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[LoopbackHTTPServer, list[str | None]]]:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    with LoopbackHTTPServer(ssl_context=context) as srv:
        srv.route("GET", "/", Reply(200, body=b"secure"))
        yield srv, server_names


def tls_client(server: LoopbackHTTPServer, certificate: tuple[Path, Path]) -> SafeHttpClient:
    resolver = MapResolver({name: [["127.0.0.1"]] for name in ("pinned.test", "wrong.test")})
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    return SafeHttpClient(
        loopback_policy(server), resolver=resolver, ssl_context=trust, sleep=SleepRecorder()
    )


def test_tls_uses_the_hostname_for_sni_and_verification(
    tls_server: tuple[LoopbackHTTPServer, list[str | None]], certificate: tuple[Path, Path]
) -> None:
    # Given a certificate for pinned.test, served on the IP pinned.test resolves to
    server, server_names = tls_server
    client = tls_client(server, certificate)

    # When
    outcome = client.send(RequestSpec("GET", f"https://pinned.test:{server.port}/"))

    # Then
    assert outcome.ok, outcome.error
    assert outcome.body == "secure"
    assert server_names == ["pinned.test"]
    assert server.requests[0].headers["host"] == f"pinned.test:{server.port}"


@pytest.mark.parametrize("host", ["wrong.test", "127.0.0.1"])
def test_tls_certificate_for_another_name_is_rejected_and_not_retried(
    tls_server: tuple[LoopbackHTTPServer, list[str | None]], certificate: tuple[Path, Path], host: str
) -> None:
    # Given the same server reached under a name its certificate does not cover
    server, _ = tls_server
    client = tls_client(server, certificate)

    # When
    outcome: HttpOutcome = client.send(RequestSpec("GET", f"https://{host}:{server.port}/"))

    # Then
    assert (outcome.error_kind, outcome.attempts) == ("tls", 1)
    assert server.requests == []


def test_concurrent_sends_do_not_share_pins(
    server: LoopbackHTTPServer, other_server: LoopbackHTTPServer
) -> None:
    # Given one client used from several threads, each send to its own origin
    server.route("GET", "/", Reply(200, body=b"one"))
    other_server.route("GET", "/", Reply(200, body=b"two"))
    client = SafeHttpClient(loopback_policy(server, other_server))
    results: dict[str, str] = {}

    def call(name: str, url: str) -> None:
        results[name] = client.send(RequestSpec("GET", url)).body

    # When
    threads = [
        threading.Thread(target=call, args=(f"{name}{i}", srv.url("/")))
        for i in range(4)
        for name, srv in (("one", server), ("two", other_server))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # Then
    assert results == {f"{name}{i}": name for i in range(4) for name in ("one", "two")}

"""SSRF corpus: every case must be refused before any socket connects.

The assertions are on the socket layer (socket.create_connection / socket.connect are replaced by
recorders) and on the resolver, never on error wording alone. No real DNS: hostnames go to a fake.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import pytest
import pytest_socket
from cronpilot.safehttp import (
    EgressDenied,
    EgressPolicy,
    RequestSpec,
    SafeHttpClient,
    parse_loose_ipv4,
    redact_url,
)
from cronpilot.safehttp.transport import DeadlineStream, PinnedBackend, PinnedTransport

PUBLIC_V4 = "93.184.216.34"


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32): server IPv4 as is, client IPv4 and port bit-inverted."""
    server_bits = int(ipaddress.IPv4Address(server))
    client_bits = int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    port_bits = 0x1234 ^ 0xFFFF
    value = (0x20010000 << 96) | (server_bits << 64) | (0x8000 << 48) | (port_bits << 32) | client_bits
    return f"[{ipaddress.IPv6Address(value)}]"


DNS: dict[str, list[str]] = {
    "public.test": [PUBLIC_V4],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.google.internal": ["169.254.169.254"],
    "instance-data.ec2.internal": ["169.254.169.254"],
    "ipv6-metadata.test": ["fd00:ec2::254"],
    "xn--bcher-kva.example": ["10.0.0.1"],  # bücher.example
    "xn--e1afmkfd.xn--80akhbyknj4f": ["192.168.0.1"],  # пример.испытание
    "mixed.test": [PUBLIC_V4, "10.0.0.1"],
    "mixed6.test": ["2606:4700::1111", "::1"],
    "mixed-meta.test": ["1.1.1.1", "169.254.169.254"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "nat64.test": ["64:ff9b::a9fe:a9fe"],
    "sixtofour.test": ["2002:a00:1::"],
    "teredo.test": [teredo("65.54.227.120", "192.168.1.10").strip("[]")],
    "cgnat.test": ["100.64.0.1"],
    "zero.test": ["0.0.0.0"],
    "multicast.test": ["224.0.0.251"],
    "broadcast.test": ["255.255.255.255"],
    "reserved.test": ["240.0.0.1"],
    "scoped.test": ["fe80::1%eth0"],
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "localtest.me": ["127.0.0.1"],
    "empty.test": [],
    "garbage.test": ["not-an-ip"],
}


@dataclass
class FakeResolver:
    table: dict[str, list[str]] = field(default_factory=lambda: DNS)
    calls: list[tuple[str, int]] = field(default_factory=list)

    def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


class SocketRecorder:
    """Stands in for socket connects: records the address, then runs `behaviour`."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def create_connection(self, address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(address)
        return self.behaviour(address)

    def connect(self, _sock: Any, address: Any) -> None:
        self.calls.append(address)
        raise AssertionError(f"socket.connect({address!r}) called")

    def behaviour(self, address: tuple[str, int]) -> Any:
        raise AssertionError(f"socket.create_connection({address!r}) called")


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> SocketRecorder:
    recorder = SocketRecorder()
    monkeypatch.setattr(socket, "create_connection", recorder.create_connection)
    for cls in {socket.socket, pytest_socket._true_socket}:
        monkeypatch.setattr(cls, "connect", recorder.connect)
        monkeypatch.setattr(cls, "connect_ex", recorder.connect)
    return recorder


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


def make_client(resolver: FakeResolver, policy: EgressPolicy | None = None) -> SafeHttpClient:
    def no_sleep(seconds: float) -> None:
        pass

    return SafeHttpClient(policy or EgressPolicy(), resolver=resolver, sleep=no_sleep, random=lambda: 0.0)


PA = "private-address"

NUMERIC_IPV4 = [
    ("http://2130706433/", PA),
    ("http://0x7f000001/", PA),
    ("http://0X7F000001/", PA),
    ("http://0177.0.0.1/", PA),
    ("http://127.1/", PA),
    ("http://127.0.1/", PA),
    ("http://0x7f.1/", PA),
    ("http://0x7f.0.0.1/", PA),
    ("http://0177.1/", PA),
    ("http://017700000001/", PA),
    ("http://127.000.000.001/", PA),
    ("http://0/", PA),
    ("http://0x0/", PA),
    ("http://167772161/", PA),  # 10.0.0.1
    ("http://10.1/", PA),
    ("http://2852039166/", PA),  # 169.254.169.254
    ("http://0xa9fea9fe/", PA),
    ("http://0xa9.0xfe.0xa9.0xfe/", PA),
    ("http://0251.0376.0251.0376/", PA),
    ("http://169.254.43518/", PA),
    ("http://3232235521/", PA),  # 192.168.0.1
    ("http://0300.0250.0.1/", PA),
    ("http://0xc0a80001/", PA),
    ("http://1681915905/", PA),  # 100.64.0.1
]

IPV6_FORMS = [
    ("http://[::1]/", PA),
    ("http://[::]/", PA),
    ("http://[0:0:0:0:0:0:0:1]/", PA),
    ("http://[::ffff:127.0.0.1]/", PA),
    ("http://[::ffff:7f00:1]/", PA),
    ("http://[::ffff:169.254.169.254]/", PA),
    ("http://[::ffff:a9fe:a9fe]/", PA),
    ("http://[::ffff:10.0.0.1]/", PA),
    ("http://[::ffff:192.168.1.1]/", PA),
    ("http://[::ffff:100.64.0.1]/", PA),
    ("http://[::127.0.0.1]/", PA),  # IPv4-compatible (deprecated)
    ("http://[::ffff:0:127.0.0.1]/", PA),  # IPv4-translated (SIIT)
    ("http://[2002:7f00:1::]/", PA),  # 6to4
    ("http://[2002:a9fe:a9fe::]/", PA),
    ("http://[2002:a00:1::1]/", PA),
    ("http://[2002:c0a8:101::]/", PA),
    (f"http://{teredo('65.54.227.120', '127.0.0.1')}/", PA),  # Teredo, private client
    (f"http://{teredo('127.0.0.1', '8.8.8.8')}/", PA),  # Teredo, private server
    (f"http://{teredo('65.54.227.120', '169.254.169.254')}/", PA),
    (f"http://{teredo('10.0.0.1', '65.54.227.120')}/", PA),
    ("http://[64:ff9b::7f00:1]/", PA),  # NAT64 well-known prefix
    ("http://[64:ff9b::127.0.0.1]/", PA),
    ("http://[64:ff9b::a9fe:a9fe]/", PA),
    ("http://[64:ff9b::10.0.0.1]/", PA),
    ("http://[64:ff9b::192.168.0.1]/", PA),
    ("http://[64:ff9b:1::a9fe:a9fe]/", PA),  # NAT64 local-use, /96 placement
    ("http://[64:ff9b:1:a9fe:a9:fe00::]/", PA),  # NAT64 local-use, RFC 6052 /48 placement
    ("http://[64:ff9b:1:7f00:0:100::]/", PA),
    ("http://[fd00:ec2::254]/", PA),  # EC2 IMDS over IPv6
    ("http://[fe80::1]/", PA),
    ("http://[fe80::a9fe:a9fe]/", PA),
    ("http://[fc00::1]/", PA),
    ("http://[fd12:3456:789a::1]/", PA),
    ("http://[ff02::1]/", PA),
    ("http://[ff05::1:3]/", PA),
    ("http://[fec0::1]/", PA),
    ("http://[100::1]/", PA),
    ("http://[2001:db8::1]/", PA),
    ("http://[fe80::1%25eth0]/", "invalid-host"),
]

PRIVATE_RANGES = [
    (f"http://{ip}/", PA)
    for ip in (
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "169.254.170.2",
        "169.254.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "250.1.2.3",
        "0.0.0.0",
        "0.1.2.3",
        "192.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.7",
        "203.0.113.5",
    )
]

HOSTNAMES = [
    ("http://localhost/", PA),
    ("http://localhost./", PA),
    ("http://LOCALHOST/", PA),
    ("http://localhost:9001/2018-06-01/runtime/invocation/next", "port"),  # Lambda runtime API
    ("http://localhost:2773/systemsmanager/parameters/get", "port"),  # Lambda extension
    ("http://metadata.google.internal/computeMetadata/v1/", PA),
    ("http://instance-data.ec2.internal/latest/meta-data/", PA),
    ("http://ipv6-metadata.test/latest/api/token", PA),
    ("http://bücher.example/", PA),
    ("http://BÜCHER.example./", PA),
    ("https://пример.испытание/", PA),
    ("http://mixed.test/", PA),  # one public and one private answer
    ("http://mixed6.test/", PA),
    ("http://mixed-meta.test/", PA),
    ("http://mapped.test/", PA),
    ("http://nat64.test/", PA),
    ("http://sixtofour.test/", PA),
    ("http://teredo.test/", PA),
    ("http://cgnat.test/", PA),
    ("http://zero.test/", PA),
    ("http://multicast.test/", PA),
    ("http://broadcast.test/", PA),
    ("http://reserved.test/", PA),
    ("http://scoped.test/", PA),
    ("http://127.0.0.1.nip.io/", PA),
    ("http://localtest.me/", PA),
    ("http://127.0.0.1./", PA),
    ("http://169.254.169.254./latest/", PA),
    ("http://nxdomain.test/", "unresolvable"),
    ("http://empty.test/", "unresolvable"),
    ("http://garbage.test/", "invalid-address"),
]

USERINFO = [
    ("http://example.com@127.0.0.1/", "userinfo"),
    ("http://public.test@169.254.169.254/", "userinfo"),
    ("http://user:pass@public.test/", "userinfo"),
    ("http://user@public.test/", "userinfo"),
    ("http://a%40b@127.0.0.1/", "userinfo"),
    ("http://evil.com\\@127.0.0.1/", "userinfo"),
    ("http://public.test:80@10.0.0.1/", "userinfo"),
    ("http://:@127.0.0.1/", "userinfo"),
    ("http://@127.0.0.1/", PA),  # empty userinfo: judged on the real host
]

SCHEMES = [
    ("file:///etc/passwd", "scheme"),
    ("file://localhost/etc/passwd", "scheme"),
    ("ftp://public.test/", "scheme"),
    ("gopher://127.0.0.1:70/_SLAVEOF", "scheme"),
    ("dict://127.0.0.1:11211/stat", "scheme"),
    ("ldap://127.0.0.1/", "scheme"),
    ("sftp://public.test/", "scheme"),
    ("tftp://public.test/x", "scheme"),
    ("ws://public.test/", "scheme"),
    ("wss://public.test/", "scheme"),
    ("jar:http://public.test/!/", "scheme"),
    ("netdoc:///etc/passwd", "scheme"),
    ("data:text/plain,hello", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("//public.test/", "scheme"),
]

PORTS = [
    (f"http://public.test:{port}/", "port")
    for port in (0, 21, 22, 25, 2375, 6379, 8080, 9001, 2773, 11211, 65535)
] + [("https://8.8.8.8:8443/", "port")]

MALFORMED = [
    ("http:///path", "invalid-host"),
    ("http://a..b/", "invalid-host"),
    ("http://-bad.test/", "invalid-host"),
    ("http://public.test.0x1/", "invalid-host"),  # numeric last label that is no IPv4 address
    ("http://1.2.3.4.5/", "invalid-host"),
    ("http://4294967296/", "invalid-host"),
    ("http://0x/", "invalid-host"),
    ("http://127.0.0.%31/", "invalid-host"),
    ("http://256.0.0.1/", "invalid-url"),
    ("http://[::1/", "invalid-url"),
]

CORPUS = NUMERIC_IPV4 + IPV6_FORMS + PRIVATE_RANGES + HOSTNAMES + USERINFO + SCHEMES + PORTS + MALFORMED


def test_corpus_is_large() -> None:
    assert len(CORPUS) >= 100
    assert len({url for url, _ in CORPUS}) == len(CORPUS), "duplicate corpus entries"


@pytest.mark.parametrize(("url", "reason"), CORPUS, ids=[url for url, _ in CORPUS])
def test_refused_before_any_socket_connects(
    sockets: SocketRecorder, resolver: FakeResolver, url: str, reason: str
) -> None:
    # Given the default policy (80/443, no private networks)
    client = make_client(resolver)

    # When
    outcome = client.send(RequestSpec("GET", url))

    # Then nothing connected, nothing was sent, and the refusal names the rule that fired
    assert sockets.calls == []
    assert (outcome.error_kind, outcome.attempts, outcome.ok, outcome.http_status) == (
        "egress-denied",
        0,
        False,
        None,
    )
    with pytest.raises(EgressDenied) as denied:
        client.check_url(url)
    assert denied.value.reason == reason
    assert sockets.calls == []


@pytest.mark.parametrize("port", [9001, 2773, 8080])
def test_localhost_refused_even_when_its_port_is_allowed(
    sockets: SocketRecorder, resolver: FakeResolver, port: int
) -> None:
    # Given the Lambda runtime / extension ports are allowed
    client = make_client(resolver, EgressPolicy(allowed_ports=frozenset({80, 443, port})))

    # When
    outcome = client.send(RequestSpec("GET", f"http://localhost:{port}/"))

    # Then the address rule still refuses it, after one lookup
    assert outcome.error_kind == "egress-denied"
    assert sockets.calls == []
    assert resolver.calls == [("localhost", port)]
    assert outcome.error is not None
    assert outcome.error.startswith("private-address")


def test_idn_host_is_resolved_in_its_ascii_form(sockets: SocketRecorder, resolver: FakeResolver) -> None:
    # When
    with pytest.raises(EgressDenied):
        make_client(resolver).check_url("http://BÜCHER.example./")

    # Then the resolver saw the normalised IDNA name, without the trailing dot
    assert resolver.calls == [("xn--bcher-kva.example", 80)]


# --- what passes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        "1.1.1.1",
        PUBLIC_V4,
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_pass(ip: str) -> None:
    EgressPolicy().check_address(ip)


@pytest.mark.parametrize("ip", ["10.1.2.3", "::ffff:10.1.2.3", "64:ff9b::a01:203", "2002:a01:203::"])
def test_allowed_cidrs_apply_to_the_unwrapped_address(ip: str) -> None:
    # Given
    policy = EgressPolicy(allowed_cidrs=(ipaddress.ip_network("10.0.0.0/8"),))

    # When / Then: no exception
    policy.check_address(ip)


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("169.254.169.254", "169.254.0.0/16"),
        ("::ffff:169.254.169.254", "169.254.0.0/16"),
        ("169.254.170.2", "169.254.0.0/16"),
        ("fd00:ec2::254", "fd00::/8"),
        ("0.0.0.0", "0.0.0.0/8"),
    ],
)
def test_metadata_and_this_host_cannot_be_allowed(ip: str, allowed: str) -> None:
    policy = EgressPolicy(allowed_cidrs=(ipaddress.ip_network(allowed),))
    with pytest.raises(EgressDenied) as denied:
        policy.check_address(ip)
    assert denied.value.reason == "private-address"


def test_public_hostname_passes_without_connecting(sockets: SocketRecorder, resolver: FakeResolver) -> None:
    # When
    addresses = make_client(resolver).check_url("https://public.test/path?q=1")

    # Then
    assert addresses == [PUBLIC_V4]
    assert resolver.calls == [("public.test", 443)]
    assert sockets.calls == []


def test_numeric_public_address_is_understood(resolver: FakeResolver) -> None:
    assert make_client(resolver).check_url("http://134744072/") == ["8.8.8.8"]
    assert resolver.calls == []


# --- pinning and rebinding -------------------------------------------------------------------------


class RebindingResolver:
    """Answers public first, then private: a DNS rebinding attack."""

    def __init__(self) -> None:
        self.answers = iter([[PUBLIC_V4], ["127.0.0.1"], ["169.254.169.254"]])
        self.calls = 0

    def resolve(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return next(self.answers)


def test_rebinding_resolver_is_consulted_once_and_every_connect_uses_the_first_ip(
    sockets: SocketRecorder,
) -> None:
    # Given connects that fail, so the client retries
    def refuse(address: tuple[str, int]) -> Any:
        raise ConnectionRefusedError(111, "Connection refused")

    sockets.behaviour = refuse  # type: ignore[method-assign]
    rebinding = RebindingResolver()
    client = SafeHttpClient(EgressPolicy(), resolver=rebinding, sleep=lambda s: None, random=lambda: 0.0)

    # When
    outcome = client.send(RequestSpec("GET", "http://rebind.test/", max_attempts=3))

    # Then all three connects went to the validated public IP; DNS was asked once
    assert rebinding.calls == 1
    assert sockets.calls == [(PUBLIC_V4, 80)] * 3
    assert (outcome.attempts, outcome.error_kind) == (3, "connect")


def test_all_validated_addresses_are_tried_in_order(sockets: SocketRecorder) -> None:
    # Given a dual-stack host whose IPv6 address is unreachable from here
    def refuse(address: tuple[str, int]) -> Any:
        raise OSError(101, "Network is unreachable")

    sockets.behaviour = refuse  # type: ignore[method-assign]
    resolver = FakeResolver({"dual.test": ["2606:4700::1111", "1.1.1.1"]})
    client = make_client(resolver)

    # When
    outcome = client.send(RequestSpec("GET", "http://dual.test/", max_attempts=1))

    # Then
    assert sockets.calls == [("2606:4700::1111", 80), ("1.1.1.1", 80)]
    assert outcome.error_kind == "connect"


class FakeSocket:
    """Enough of a socket for httpcore's SyncStream: replays one canned HTTP response."""

    def __init__(self, response: bytes) -> None:
        self._response = response
        self.sent = b""

    def setsockopt(self, *args: Any) -> None:
        pass

    def settimeout(self, timeout: float | None) -> None:
        pass

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def recv(self, max_bytes: int) -> bytes:
        out, self._response = self._response[:max_bytes], self._response[max_bytes:]
        return out

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


def http_response(status: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"] + [
        f"{k}: {v}" for k, v in headers.items()
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    "location",
    [
        "http://internal.test/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://2130706433/",
        "http://localhost:2773/2018-06-01/runtime/invocation/next",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://user@public.test/",
        "gopher://public.test/",
    ],
)
def test_redirect_chain_ending_on_a_forbidden_target_stops_at_the_first_hop(
    sockets: SocketRecorder, location: str
) -> None:
    # Given a public server that redirects to a forbidden target
    served: list[FakeSocket] = []

    def serve(address: tuple[str, int]) -> FakeSocket:
        served.append(FakeSocket(http_response(302, {"Location": location})))
        return served[-1]

    sockets.behaviour = serve  # type: ignore[method-assign]
    resolver = FakeResolver({**DNS, "internal.test": ["10.0.0.5"]})

    # When
    outcome = make_client(resolver).send(RequestSpec("GET", "http://public.test/start"))

    # Then only the public hop connected
    assert sockets.calls == [(PUBLIC_V4, 80)]
    assert (outcome.error_kind, outcome.attempts, outcome.redirects) == ("egress-denied", 1, 0)
    assert served[0].sent.startswith(b"GET /start HTTP/1.1\r\n")


def test_redirect_back_to_the_same_host_reuses_the_pinned_address(sockets: SocketRecorder) -> None:
    # Given public.test redirects to itself, and DNS would now answer a private address
    responses = iter([http_response(302, {"Location": "/next"}), http_response(200, {}, b"ok")])
    sockets.behaviour = lambda address: FakeSocket(next(responses))  # type: ignore[method-assign]
    rebinding = RebindingResolver()
    client = SafeHttpClient(EgressPolicy(), resolver=rebinding)

    # When
    outcome = client.send(RequestSpec("GET", "http://public.test/"))

    # Then
    assert outcome.ok
    assert outcome.body == "ok"
    assert outcome.redirects == 1
    assert rebinding.calls == 1
    assert all(address == (PUBLIC_V4, 80) for address in sockets.calls)


# --- no secrets in errors ----------------------------------------------------------------------------


def test_header_injection_is_refused_without_echoing_the_value(
    sockets: SocketRecorder, resolver: FakeResolver
) -> None:
    # When
    spec = RequestSpec(
        "GET", "http://public.test/", headers={"Authorization": "Bearer hunter2\r\nHost: evil"}
    )
    outcome = make_client(resolver).send(spec)

    # Then
    assert outcome.error_kind == "invalid-request"
    assert sockets.calls == []
    assert outcome.error is not None
    assert "hunter2" not in outcome.error


def test_denial_message_has_no_userinfo_or_query(resolver: FakeResolver) -> None:
    with pytest.raises(EgressDenied) as denied:
        make_client(resolver).check_url("http://admin:hunter2@127.0.0.1/x?token=abc#frag")
    assert "hunter2" not in str(denied.value)
    assert "token" not in str(denied.value)
    assert denied.value.url == "http://127.0.0.1/x"
    assert redact_url("https://u:p@public.test:8443/a?b=c") == "https://public.test:8443/a"


# --- policy settings --------------------------------------------------------------------------------


def test_from_settings_parses_ports_and_cidrs() -> None:
    policy = EgressPolicy.from_settings(allowed_ports="443, 8443", allowed_cidrs="10.0.0.0/8, fd00::/8")
    assert policy.allowed_ports == frozenset({443, 8443})
    assert policy.allowed_cidrs == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert EgressPolicy.from_settings() == EgressPolicy()


@pytest.mark.parametrize(
    ("kwargs", "bad_item"),
    [
        ({"allowed_ports": "80,http"}, "'http'"),
        ({"allowed_ports": "0"}, "'0'"),
        ({"allowed_ports": "443,70000"}, "'70000'"),
        ({"allowed_cidrs": "10.0.0.0/8,10.0.0.1/8"}, "'10.0.0.1/8'"),
        ({"allowed_cidrs": "intranet"}, "'intranet'"),
        ({"allowed_cidrs": "0.0.0.0/0"}, "'0.0.0.0/0'"),
    ],
)
def test_from_settings_names_the_bad_item(kwargs: dict[str, str], bad_item: str) -> None:
    with pytest.raises(ValueError, match=bad_item):
        EgressPolicy.from_settings(**kwargs)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("0", "0.0.0.0"),
        ("08", None),
        ("256.1", None),
        ("1.2.3.4.5", None),
        ("4294967296", None),
        ("example.com", None),
    ],
)
def test_parse_loose_ipv4_matches_inet_aton(host: str, expected: str | None) -> None:
    result = parse_loose_ipv4(host)
    assert (str(result) if result else None) == expected
    if expected is not None:  # the OS agrees
        assert socket.inet_ntoa(socket.inet_aton(host)) == expected


# --- transport internals the pinning relies on ------------------------------------------------------


def test_transport_pool_uses_the_pinned_backend() -> None:
    # Guards the one httpx internal we replace (HTTPTransport._pool)
    backend = PinnedBackend({}, lambda: 1.0)
    transport = PinnedTransport(__import__("ssl").create_default_context(), backend)
    assert transport._pool._network_backend is backend


def test_pinned_backend_refuses_an_origin_that_was_not_pinned(sockets: SocketRecorder) -> None:
    backend = PinnedBackend({("public.test", 80): (PUBLIC_V4,)}, lambda: 1.0)
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("other.test", 80)
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("public.test", 8080)
    assert sockets.calls == []


def test_deadline_stream_refuses_io_once_the_budget_is_spent() -> None:
    class Never(httpcore.NetworkStream):
        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            raise AssertionError("read past the deadline")

    stream = DeadlineStream(Never(), lambda: 0.0)
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(10, timeout=5)


def test_deadline_stream_clamps_every_timeout_to_the_remaining_budget() -> None:
    # Given an inner stream that records the timeouts it is given, and 0.7 s left
    seen: list[float | None] = []

    class Recording(httpcore.NetworkStream):
        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            seen.append(timeout)
            return b"x"

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            seen.append(timeout)

    stream = DeadlineStream(Recording(), lambda: 0.7)

    # When
    stream.read(10, timeout=5)
    stream.read(10, timeout=None)
    stream.write(b"x", timeout=0.2)

    # Then the shorter of the operation timeout and the budget wins
    assert seen == [0.7, 0.7, 0.2]


def test_spent_budget_means_no_send(sockets: SocketRecorder, resolver: FakeResolver) -> None:
    # Given a clock that jumps past the budget right after the send starts
    ticks: Iterator[float] = iter([0.0, *([100.0] * 10)])
    client = SafeHttpClient(EgressPolicy(), resolver=resolver, monotonic=lambda: next(ticks))

    # When
    outcome = client.send(RequestSpec("GET", "http://public.test/", total_timeout=1))

    # Then
    assert (outcome.error_kind, outcome.attempts) == ("timeout", 0)
    assert sockets.calls == []


def test_closed_client_refuses_to_send(resolver: FakeResolver) -> None:
    client = make_client(resolver)
    client.close()
    with pytest.raises(RuntimeError):
        client.send(RequestSpec("GET", "http://public.test/"))

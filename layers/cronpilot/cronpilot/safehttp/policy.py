"""Egress policy: which URLs and addresses the outbound client may reach.

Everything here is pure (no sockets, no DNS) so it can be unit-tested exhaustively and
reused to validate endpoint URLs when a job is registered.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, NamedTuple
from urllib.parse import urlsplit

import httpx

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_net = ipaddress.ip_network

# Never reachable, whatever allowed_cidrs says: cloud metadata / credential endpoints (EC2 IMDS,
# ECS task credentials, EKS pod identity) and "this host" addresses that the kernel routes to loopback.
_ALWAYS_DENIED: Final[tuple[tuple[IPNetwork, str], ...]] = (
    (_net("169.254.169.254/32"), "cloud metadata"),
    (_net("169.254.170.2/32"), "container credentials"),
    (_net("169.254.170.23/32"), "container credentials"),
    (_net("fd00:ec2::254/128"), "cloud metadata"),
    (_net("fd00:ec2::23/128"), "container credentials"),
    (_net("0.0.0.0/8"), "this-network"),
    (_net("::/128"), "unspecified"),
)

# Denied unless inside allowed_cidrs. `is_global` already covers most of these; listing them keeps
# the intent readable and guards against stdlib changes (e.g. multicast and fec0::/10 count as global).
_DENIED: Final[tuple[tuple[IPNetwork, str], ...]] = (
    (_net("10.0.0.0/8"), "private"),
    (_net("100.64.0.0/10"), "shared address space"),
    (_net("127.0.0.0/8"), "loopback"),
    (_net("169.254.0.0/16"), "link-local"),
    (_net("172.16.0.0/12"), "private"),
    (_net("192.0.0.0/24"), "IETF protocol assignments"),
    (_net("192.0.2.0/24"), "documentation"),
    (_net("192.88.99.0/24"), "6to4 relay anycast"),
    (_net("192.168.0.0/16"), "private"),
    (_net("198.18.0.0/15"), "benchmarking"),
    (_net("198.51.100.0/24"), "documentation"),
    (_net("203.0.113.0/24"), "documentation"),
    (_net("224.0.0.0/4"), "multicast"),
    (_net("240.0.0.0/4"), "reserved"),
    (_net("::1/128"), "loopback"),
    (_net("100::/64"), "discard-only"),
    (_net("2001:db8::/32"), "documentation"),
    (_net("fc00::/7"), "unique-local"),
    (_net("fe80::/10"), "link-local"),
    (_net("fec0::/10"), "site-local"),
    (_net("ff00::/8"), "multicast"),
)

_IPV4_MAPPED = _net("::ffff:0:0/96")
_IPV4_TRANSLATED = _net("::ffff:0:0:0/96")  # SIIT (RFC 2765)
_IPV4_COMPATIBLE = _net("::/96")  # deprecated, but some stacks still route it
_NAT64_WELL_KNOWN = _net("64:ff9b::/96")
_NAT64_LOCAL = _net("64:ff9b:1::/48")

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")

DEFAULT_PORTS: Final = frozenset({80, 443})
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})


class EgressDenied(Exception):
    """A URL or address the policy refuses. `str()` is safe to log: no userinfo, query or header values."""

    def __init__(self, reason: str, detail: str, url: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.url = url
        super().__init__(f"{reason}: {detail}" + (f" [{url}]" if url else ""))

    def for_url(self, url: str | httpx.URL) -> EgressDenied:
        """The same denial with the (redacted) URL attached."""
        return EgressDenied(self.reason, self.detail, redact_url(url))


def redact_url(url: str | httpx.URL) -> str:
    """scheme://host[:port]/path only: userinfo, query and fragment can carry credentials."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid url>"


def _first_denial(addr: IPAddress, table: tuple[tuple[IPNetwork, str], ...]) -> str | None:
    for network, label in table:
        if addr.version == network.version and addr in network:
            return label
    return None


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a translation mechanism would really reach through this IPv6 address."""
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _NAT64_WELL_KNOWN or addr in _IPV4_TRANSLATED:
        return [low32]
    if addr in _NAT64_LOCAL:
        # RFC 6052: a /48 prefix puts the IPv4 in bits 48-63 and 72-87 (bits 64-71 are the zero "u" octet);
        # the prefix length is deployment-specific, so check the /96 placement too.
        packed = addr.packed
        return [ipaddress.IPv4Address(packed[6:8] + packed[9:11]), low32]
    if addr.sixtofour is not None:
        return [addr.sixtofour]
    if addr.teredo is not None:
        server, client = addr.teredo
        return [server, client]
    if addr in _IPV4_COMPATIBLE and int(addr) > 1:
        return [low32]
    return []


class EgressPolicy(NamedTuple):
    """Where outbound calls may go. Private networks are reachable only through `allowed_cidrs`."""

    allowed_ports: frozenset[int] = DEFAULT_PORTS
    allowed_cidrs: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, *, allowed_ports: str = "", allowed_cidrs: str = "") -> EgressPolicy:
        """Build from comma-separated environment strings.

        `allowed_ports` is the complete set (list 80 and 443 too to keep them); empty means 80,443.
        """
        ports: set[int] = set()
        for item in _items(allowed_ports):
            if not item.isdigit() or not 1 <= int(item) <= 65535:
                raise ValueError(f"allowed_ports: {item!r} is not a TCP port (1-65535)")
            ports.add(int(item))
        cidrs: list[IPNetwork] = []
        for item in _items(allowed_cidrs):
            try:
                network = ipaddress.ip_network(item, strict=True)
            except ValueError as exc:
                raise ValueError(
                    f"allowed_cidrs: {item!r} is not a network in CIDR notation (e.g. 10.0.0.0/8): {exc}"
                ) from exc
            if network.prefixlen == 0:
                raise ValueError(f"allowed_cidrs: {item!r} would disable egress filtering entirely")
            cidrs.append(network)
        return cls(allowed_ports=frozenset(ports) or DEFAULT_PORTS, allowed_cidrs=tuple(cidrs))

    def check_address(self, ip: str) -> None:
        """Raise EgressDenied unless a connection to `ip` is allowed."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError as exc:
            raise EgressDenied("invalid-address", f"{ip!r} is not an IP address") from exc
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.scope_id is not None:
                raise EgressDenied("private-address", f"{addr} is scoped (link-local)")
            if addr in _IPV4_MAPPED and addr.ipv4_mapped is not None:
                # The kernel connects to the IPv4 address itself: judge exactly that.
                addr = addr.ipv4_mapped
            else:
                label = _first_denial(addr, _ALWAYS_DENIED)
                if label:
                    raise EgressDenied("private-address", f"{addr} is {label}")
                embedded = _embedded_ipv4(addr)
                if embedded:
                    # A translator (6to4, Teredo, NAT64) delivers to the embedded IPv4: judge those, and
                    # ignore the wrapper prefix's own non-global status.
                    for inner in embedded:
                        self._check_one(inner, shown=f"{inner} (embedded in {addr})")
                    return
        self._check_one(addr, shown=str(addr))

    def _check_one(self, addr: IPAddress, *, shown: str) -> None:
        label = _first_denial(addr, _ALWAYS_DENIED)
        if label:
            raise EgressDenied("private-address", f"{shown} is {label}")
        if any(addr.version == net.version and addr in net for net in self.allowed_cidrs):
            return
        label = _first_denial(addr, _DENIED)
        if label is None and not addr.is_global:
            label = "not globally routable"
        if label:
            raise EgressDenied("private-address", f"{shown} is {label}")

    def check_port(self, port: int) -> None:
        if port not in self.allowed_ports:
            raise EgressDenied("port", f"port {port} is not allowed")


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address inet_aton() (and so getaddrinfo) would make of `host`, or None.

    Accepts 1-4 dot-separated parts in decimal, octal (leading 0) or hex (0x): `127.1`, `2130706433`,
    `0x7f000001`, `0177.0.0.1` all mean 127.0.0.1. The last part fills the remaining bytes.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        try:
            if part[:2] in ("0x", "0X"):
                values.append(int(part[2:], 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part[1:], 8))
            else:
                values.append(int(part, 10) if part.isdigit() else -1)
        except ValueError:
            return None
        if values[-1] < 0:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


class Destination(NamedTuple):
    """A URL that passed the static checks, normalised for resolution and connection."""

    url: httpx.URL
    host: str  # what httpcore will hand to connect_tcp (IDNA/ASCII, no trailing dot, no brackets)
    port: int
    literal: IPAddress | None  # set when the host is an IP address in any notation

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.url.scheme, self.host, self.port)


def parse_destination(url: str | httpx.URL, policy: EgressPolicy) -> Destination:
    """Parse and statically validate a URL (scheme, userinfo, host syntax, port). No DNS."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as exc:
        denied = _invalid_url_denial(str(url), policy)
        raise EgressDenied(denied.reason, denied.detail, "<invalid url>") from exc
    try:
        return _parse(parsed, policy)
    except EgressDenied as exc:
        raise exc.for_url(parsed) from None


def _parse(url: httpx.URL, policy: EgressPolicy) -> Destination:
    if url.scheme not in ALLOWED_SCHEMES:
        raise EgressDenied("scheme", f"scheme {url.scheme!r} is not allowed (http and https only)")
    if url.userinfo:
        # Refused outright: `http://trusted@10.0.0.1/` reads as "trusted" to a human while the real host
        # is 10.0.0.1, and credentials in URLs end up in logs. Send credentials in headers instead.
        raise EgressDenied("userinfo", "credentials in the URL are not allowed")
    raw = url.raw_host.decode("ascii").lower()
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    literal: IPAddress | None = None
    if ":" in raw:
        if "%" in raw:
            raise EgressDenied("invalid-host", "IPv6 zone identifiers are not allowed")
        try:
            literal = ipaddress.IPv6Address(raw)
        except ValueError as exc:
            raise EgressDenied("invalid-host", "malformed IPv6 address") from exc
        host = str(literal)
    else:
        host = raw.removesuffix(".")
        labels = host.split(".")
        if not host or len(host) > 253 or not all(_LABEL.match(label) for label in labels):
            raise EgressDenied("invalid-host", f"{host!r} is not a valid host name")
        if _NUMERIC_LABEL.match(labels[-1]):
            # A numeric last label means the OS parses the host as an IPv4 address (inet_aton): do the
            # same, so `0x7f000001` is judged as 127.0.0.1 instead of going to the resolver.
            literal = parse_loose_ipv4(host)
            if literal is None:
                raise EgressDenied("invalid-host", f"{host!r} is neither a host name nor an IPv4 address")
    policy.check_port(port)
    if host != raw:
        url = url.copy_with(host=host)
    return Destination(url=url, host=url.raw_host.decode("ascii"), port=port, literal=literal)


def _invalid_url_denial(url: str, policy: EgressPolicy) -> EgressDenied:
    """httpx refuses some dotted forms (`0177.0.0.1`): still say what they point at, for the operator."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    address = parse_loose_ipv4(host) if host else None
    if address is not None:
        try:
            policy.check_address(str(address))
        except EgressDenied as denied:
            return denied
    return EgressDenied("invalid-url", "the URL cannot be parsed")

"""SSRF-safe outbound HTTP for endpoint calls.

Every hop is checked by an EgressPolicy (scheme, port, host syntax, every resolved address), the
connection is pinned to the validated address (see `transport`), redirects are followed by hand,
and time, body size and retries are bounded.
"""

from cronpilot.safehttp.client import (
    IDEMPOTENT_METHODS,
    MAX_REDIRECTS,
    HttpOutcome,
    RequestSpec,
    SafeHttpClient,
)
from cronpilot.safehttp.policy import EgressDenied, EgressPolicy, parse_loose_ipv4, redact_url
from cronpilot.safehttp.transport import Resolver, SystemResolver

__all__ = [
    "IDEMPOTENT_METHODS",
    "MAX_REDIRECTS",
    "EgressDenied",
    "EgressPolicy",
    "HttpOutcome",
    "RequestSpec",
    "Resolver",
    "SafeHttpClient",
    "SystemResolver",
    "parse_loose_ipv4",
    "redact_url",
]

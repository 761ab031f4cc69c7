"""Signed requests on the wire: what a receiver gets verifies with the independent `standardwebhooks`
package, and a redirect to another origin does not carry the signature along."""

from __future__ import annotations

import json
from collections.abc import Iterator
from ipaddress import ip_network

import pytest
from cronpilot.domain.step_calls import build_request
from cronpilot.models.job import SecretRef
from cronpilot.safehttp import EgressPolicy, SafeHttpClient
from cronpilot.safehttp.signing import generate_key
from standardwebhooks import Webhook

from tests.integration.http_servers import LoopbackHTTPServer, Reply
from tests.support.factories import make_job

KEY = generate_key()


@pytest.fixture
def servers() -> Iterator[tuple[LoopbackHTTPServer, LoopbackHTTPServer]]:
    with LoopbackHTTPServer() as first, LoopbackHTTPServer() as second:
        yield first, second


def client(*servers: LoopbackHTTPServer) -> SafeHttpClient:
    ports = frozenset(s.port for s in servers)
    return SafeHttpClient(EgressPolicy(allowed_cidrs=(ip_network("127.0.0.0/8"),), allowed_ports=ports))


def resolver(ref: SecretRef) -> str:
    return KEY


def test_the_bytes_received_verify_and_a_cross_origin_redirect_drops_the_signature(servers):
    first, second = servers
    first.route("POST", "/hook", Reply(307, headers=[("Location", second.url("/moved"))]))
    second.route("POST", "/moved", Reply(200, body=b"{}"))
    first.route("POST", "/direct", Reply(200, body=b"{}"))
    job = make_job(
        signing={"secret": "cronpilot/dev/key"},
        endpoints=[
            {
                "id": "direct",
                "method": "POST",
                "url": first.url("/direct"),
                "body": {"amount": 5, "note": "ü"},
            },
            {"id": "moved", "method": "POST", "url": first.url("/hook"), "body": {"amount": 5}},
        ],
    )
    http = client(first, second)

    direct = http.send(build_request(job, job.endpoint("direct"), "run-1-direct", resolver, {}))
    http.send(build_request(job, job.endpoint("moved"), "run-1-moved", resolver, {}))

    assert direct.ok
    [received] = [r for r in first.requests if r.path == "/direct"]
    assert Webhook(KEY).verify(received.body, received.headers) == {"amount": 5, "note": "ü"}
    assert received.headers["webhook-id"] == "run-1-direct"
    [hop] = second.requests
    assert json.loads(hop.body) == {"amount": 5}
    assert "webhook-signature" not in hop.headers

"""`expect:` checks name what did not hold; signatures follow Standard Webhooks, verified by the
independent `standardwebhooks` package (including a rotation with two keys)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cronpilot.domain.assertions import failed_expectations, status_accepted
from cronpilot.domain.templating import ParsedBody
from cronpilot.models.workflow import ExpectSpec
from cronpilot.safehttp.signing import SigningKeyError, generate_key, parse_signing_keys, sign
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def expect(**fields) -> ExpectSpec:
    return ExpectSpec.model_validate(fields)


def body(document) -> ParsedBody:
    return ParsedBody(json.dumps(document), False)


# ------------------------------------------------------------------ assertions


@pytest.mark.parametrize(
    ("statuses", "status", "accepted"),
    [
        (None, 204, True),
        (None, 404, False),
        ([200], 201, False),
        (["2xx", 404], 404, True),
        (["400-410"], 409, True),
        (["400-410"], 411, False),
        ([304, "5xx"], 503, True),
    ],
)
def test_status_codes_and_ranges(statuses, status, accepted):
    spec = expect(status=statuses) if statuses else None
    assert status_accepted(spec, status) is accepted


def test_a_failed_status_says_what_was_accepted():
    failures = failed_expectations(expect(status=[200, "3xx"]), 500, 10, body({}))
    assert failures == ["status 500 is not one of 200, 3xx"]


def test_jmespath_expectations_compare_values_and_types():
    spec = expect(json={"status": "ok", "length(items) > `1`": True, "count": 1})
    assert failed_expectations(spec, 200, 5, body({"status": "ok", "items": [1, 2], "count": 1})) == []
    failures = failed_expectations(spec, 200, 5, body({"status": "degraded", "items": [1], "count": True}))
    assert failures == [
        'json \'status\' is "degraded", expected "ok"',
        "json 'length(items) > `1`' is false, expected true",
        "json 'count' is true, expected 1",
    ]


def test_a_jmespath_expectation_on_a_body_that_is_not_json_fails():
    failures = failed_expectations(expect(json={"ok": True}), 200, 5, ParsedBody("<html>", False))
    assert failures == ["json 'ok': the response is not JSON"]


def test_substring_and_latency():
    spec = expect(contains="all good", max_latency="1s")
    assert failed_expectations(spec, 200, 999, ParsedBody("it is all good", False)) == []
    assert failed_expectations(spec, 200, 1500, ParsedBody("not so", False)) == [
        'body does not contain "all good"',
        "latency 1500 ms is over max_latency 1000 ms",
    ]


def test_assertion_retries_are_off_unless_asked_for():
    assert expect(status=[200]).retry_on_failure is False
    assert expect(status=[200], retry_on_failure=True).retry_on_failure is True


# ------------------------------------------------------------------ signing


def test_a_signature_verifies_with_the_standard_webhooks_package():
    key = generate_key()
    payload = b'{"amount": 10, "note": "caf\xc3\xa9"}'
    headers = sign(parse_signing_keys(key), "msg_1", int(time.time()), payload)

    assert Webhook(key).verify(payload, headers) == {"amount": 10, "note": "café"}


def test_a_tampered_body_or_id_fails_verification():
    key = generate_key()
    headers = sign(parse_signing_keys(key), "msg_1", int(time.time()), b'{"amount": 10}')
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(b'{"amount": 99}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(b'{"amount": 10}', {**headers, "webhook-id": "msg_2"})


def test_rotation_sends_both_signatures_and_each_key_verifies():
    current, upcoming = generate_key(), generate_key()
    keys = parse_signing_keys(json.dumps({"current": current, "next": upcoming}))
    headers = sign(keys, "msg_1", int(time.time()), b"")

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(current).verify(b"", headers, json_parse=False)
    Webhook(upcoming).verify(b"", headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_key()).verify(b"", headers, json_parse=False)


def test_space_separated_keys_are_a_rotation_too():
    assert len(parse_signing_keys(f"{generate_key()} {generate_key()}")) == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "the signing secret is empty"),
        ("plain-password", "must start with whsec_"),
        ("whsec_!!!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "decodes to 5 bytes: use at least 24"),
        ('{"next": "whsec_x"}', 'needs a "current" key'),
        ("{not json", "not valid JSON"),
        (" ".join(generate_key() for _ in range(3)), "holds 3 keys"),
    ],
)
def test_unusable_secrets_are_named_without_their_value(value, message):
    with pytest.raises(SigningKeyError, match=message) as caught:
        parse_signing_keys(value)
    if len(value) > 8:
        assert value not in str(caught.value)

"""Reading a header's secret at call time: a missing or unreadable one fails only that step, named with
the endpoint; throttling is left to the state machine's Retry; the value is never quoted."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from cronpilot.domain.execution import _json_field
from cronpilot.domain.step_calls import UNREADABLE, CallNotMade, build_request
from cronpilot.models.job import SecretRef

from tests.support.factories import endpoint, make_job

VALUE = "s3cr3t-value-never-shown"


def aws_error(code: str) -> Exception:
    """What Powertools raises: its own error, caused by botocore's (the code is on the cause)."""
    cause = ClientError({"Error": {"Code": code, "Message": f"details {VALUE}"}}, "GetSecretValue")
    try:
        raise cause
    except ClientError:
        try:
            raise RuntimeError(f"wrapped: {cause}")
        except RuntimeError as wrapped:
            return wrapped


def request_with(resolver):
    job = make_job(endpoints=[endpoint("keyed", headers={"Authorization": {"secret": "api-key"}})])
    return build_request(job, job.endpoints[0], "key", resolver, {})


def test_a_missing_secret_names_the_secret_endpoint_header_and_error_code():
    def resolver(ref: SecretRef) -> str:
        raise aws_error("ResourceNotFoundException")

    with pytest.raises(CallNotMade) as caught:
        request_with(resolver)
    assert caught.value.kind == UNREADABLE
    message = str(caught.value)
    assert message.startswith(
        "secret 'api-key' for endpoint 'keyed' (header Authorization) cannot be read: "
        "ResourceNotFoundException; "
    )
    assert VALUE not in message, "the store's own text is not repeated"


def test_throttling_is_raised_for_the_state_machines_retry():
    def resolver(ref: SecretRef) -> str:
        raise aws_error("ThrottlingException")

    with pytest.raises(RuntimeError):
        request_with(resolver)


def test_a_json_key_problem_is_described_without_the_value():
    with pytest.raises(ValueError, match="json_key 'token' is set but the value is not JSON") as caught:
        _json_field(VALUE, "token")
    assert VALUE not in str(caught.value)
    with pytest.raises(ValueError, match="its JSON has no key 'token'"):
        _json_field('{"other": "x"}', "token")
    assert _json_field('{"token": "t"}', "token") == "t"

    def resolver(ref: SecretRef) -> str:
        return _json_field(VALUE, "token")

    with pytest.raises(
        CallNotMade, match="cannot be read: json_key 'token' is set but the value is not JSON"
    ):
        request_with(resolver)


def test_a_readable_secret_is_sent():
    spec = request_with(lambda ref: VALUE)
    assert spec.headers["Authorization"] == VALUE
    assert "authorization" in spec.secret_header_names

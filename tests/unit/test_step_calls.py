"""A step's request built from earlier values and signed; its response judged against `expect:` and
its values extracted (hidden ones masked in the kept body)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cronpilot.domain.step_calls import (
    MAX_TOTAL_BUDGET,
    STORED_BODY_CHARS,
    CallNotMade,
    build_request,
    call,
    judge,
)
from cronpilot.models.job import Endpoint, SecretRef
from cronpilot.models.run import StepResult, StepStatus
from cronpilot.models.workflow import MAX_PARSED_BODY_BYTES
from cronpilot.safehttp import HttpOutcome, RequestSpec
from cronpilot.safehttp.signing import generate_key
from standardwebhooks import Webhook

from tests.support.factories import make_job

KEY = generate_key()
SECRETS = {"signing-key": KEY, "api-key": "k-123"}


def resolver(ref: SecretRef) -> str:
    assert ref.secret is not None
    return SECRETS[ref.secret]


def outcome(status: int | None = 200, body: Any = "", **fields: Any) -> HttpOutcome:
    text = body if isinstance(body, str) else json.dumps(body)
    defaults: dict[str, Any] = {
        "ok": status is not None and 200 <= status < 300,
        "http_status": status,
        "attempts": 1,
        "latency_ms": 12,
        "body": text,
        "body_truncated": False,
        "body_bytes": len(text),
        "error": None if status is not None and 200 <= status < 300 else f"HTTP {status}",
        "error_kind": None if status is not None and 200 <= status < 300 else "http-status",
        "final_url": None,
        "redirects": 0,
    }
    return HttpOutcome(**{**defaults, **fields})


def endpoint(**fields: Any) -> Endpoint:
    return Endpoint.model_validate({"id": "a", "url": "https://api.example.com/x", **fields})


def produced(**values: Any) -> dict[str, StepResult]:
    return {
        "login": StepResult(step_id="login", endpoint_id="login", status=StepStatus.SUCCEEDED, outputs=values)
    }


TWO_STEPS = [
    {"id": "login", "url": "https://auth.example.com/t", "extract": {"token": "token", "cursor": "next"}},
    {
        "id": "use",
        "method": "POST",
        "url": "https://api.example.com/items?cursor={{ steps.login.cursor }}",
        "headers": {"Authorization": "Bearer {{ steps.login.token }}", "X-Api-Key": {"secret": "api-key"}},
        "body": {"token": "{{ steps.login.token }}"},
        "depends_on": ["login"],
    },
]


# ------------------------------------------------------------------ building the request


def test_references_are_filled_and_secrets_resolved():
    job = make_job(endpoints=TWO_STEPS)
    spec = build_request(job, job.endpoint("use"), "key-1", resolver, produced(token="t-9", cursor="c 2"))
    assert spec.url == "https://api.example.com/items?cursor=c%202"
    assert spec.headers["Authorization"] == "Bearer t-9"
    assert spec.headers["X-Api-Key"] == "k-123"
    assert spec.headers["Content-Type"] == "application/json"
    assert spec.body == '{"token": "t-9"}'
    assert "x-api-key" in spec.secret_header_names


def test_a_missing_value_means_no_call_and_names_the_expression():
    job = make_job(endpoints=TWO_STEPS)
    results = produced(token="t-9")
    results["login"].output_problems["cursor"] = "'next' matched nothing in the response"
    with pytest.raises(CallNotMade) as caught:
        build_request(job, job.endpoint("use"), "key-1", resolver, results)
    assert caught.value.kind == "template"
    assert str(caught.value) == (
        "{{ steps.login.cursor }} has no value: 'next' matched nothing in the response"
    )


def test_a_failed_producer_is_named():
    job = make_job(endpoints=TWO_STEPS)
    failed = {"login": StepResult(step_id="login", endpoint_id="login", status=StepStatus.FAILED)}
    with pytest.raises(CallNotMade, match=r"\{\{ steps.login.\w+ \}\} has no value: step login failed"):
        build_request(job, job.endpoint("use"), "key-1", resolver, failed)


def test_signed_requests_verify_over_the_exact_body_bytes():
    endpoints = [
        TWO_STEPS[0],
        {
            "id": "use",
            "method": "POST",
            "url": "https://api.example.com/",
            "depends_on": ["login"],
            "body": {"note": "café {{ steps.login.cursor }}"},
        },
    ]
    job = make_job(endpoints=endpoints, signing={"secret": "signing-key"})
    spec = build_request(job, job.endpoint("use"), "cronpilot-run-use", resolver, produced(cursor="ü"))
    assert isinstance(spec.body, str)
    assert spec.headers["webhook-id"] == "cronpilot-run-use"
    assert Webhook(KEY).verify(spec.body.encode(), dict(spec.headers)) == {"note": "café ü"}
    assert "webhook-signature" in spec.secret_header_names


def test_an_endpoint_signing_key_overrides_the_jobs_and_user_headers_cannot_fake_one():
    other = generate_key()
    SECRETS["other"] = other
    job = make_job(
        endpoints=[
            {
                "id": "a",
                "url": "https://a.example.com/",
                "signing": {"secret": "other"},
                "headers": {"Webhook-Signature": "v1,forged"},
            }
        ],
        signing={"secret": "signing-key"},
    )
    spec = build_request(job, job.endpoint("a"), "id-1", resolver, {})
    assert "Webhook-Signature" not in spec.headers
    Webhook(other).verify(b"", dict(spec.headers), json_parse=False)


def test_an_unusable_signing_secret_fails_the_step_without_its_value():
    SECRETS["bad"] = "not-a-key-at-all"
    job = make_job(endpoints=[{"id": "a", "url": "https://a.example.com/"}], signing={"secret": "bad"})
    with pytest.raises(CallNotMade) as caught:
        build_request(job, job.endpoint("a"), "id-1", resolver, {})
    assert caught.value.kind == "signing"
    assert "signing secret 'bad': a signing key must start with whsec_" in str(caught.value)
    assert "not-a-key-at-all" not in str(caught.value)


def test_bodies_are_read_in_full_only_when_something_parses_them():
    job = make_job(endpoints=TWO_STEPS)
    assert (
        build_request(job, job.endpoint("login"), "k", resolver, {}).stored_body_bytes
        == MAX_PARSED_BODY_BYTES
    )
    plain = make_job(endpoints=[{"id": "a", "url": "https://a.example.com/"}])
    assert build_request(plain, plain.endpoint("a"), "k", resolver, {}).stored_body_bytes == STORED_BODY_CHARS


# ------------------------------------------------------------------ judging the response


def test_a_2xx_without_expectations_succeeds_and_extracts():
    verdict = judge(endpoint(extract={"token": "auth.token"}), outcome(200, {"auth": {"token": "tok-123"}}))
    assert verdict.status == StepStatus.SUCCEEDED
    assert verdict.outputs == {"token": "tok-123"}
    assert "tok-123" not in verdict.body
    assert '"token": "[hidden]"' in verdict.body


def test_values_marked_show_stay_visible():
    verdict = judge(
        endpoint(extract={"cursor": {"path": "next", "show": True}}), outcome(200, {"next": "p-22"})
    )
    assert verdict.outputs_shown == ["cursor"]
    assert "p-22" in verdict.body


def test_a_failing_assertion_is_a_failed_step_of_kind_assertion():
    verdict = judge(
        endpoint(expect={"json": {"status": "ok"}, "max_latency": "10ms"}), outcome(200, {"status": "down"})
    )
    assert verdict.status == StepStatus.FAILED
    assert verdict.error_kind == "assertion"
    assert verdict.error == (
        'assertion failed: json \'status\' is "down", expected "ok"; latency 12 ms is over max_latency 10 ms'
    )


def test_expected_status_accepts_a_non_2xx_answer():
    verdict = judge(endpoint(expect={"status": [404]}), outcome(404, "gone"))
    assert verdict.status == StepStatus.SUCCEEDED
    assert verdict.error is None


def test_an_unexpected_2xx_fails_when_status_is_declared():
    verdict = judge(endpoint(expect={"status": [201]}), outcome(200))
    assert verdict.error == "assertion failed: status 200 is not one of 201"


def test_a_non_2xx_without_status_expectations_stays_an_http_failure():
    verdict = judge(endpoint(expect={"contains": "ok"}), outcome(500, "ok"))
    assert (verdict.status, verdict.error, verdict.error_kind) == (
        StepStatus.FAILED,
        "HTTP 500",
        "http-status",
    )


def test_a_network_failure_is_not_judged_or_extracted():
    failed = outcome(None, error="connect failed: refused", error_kind="connect", ok=False)
    verdict = judge(endpoint(extract={"t": "t"}, expect={"status": [200]}), failed)
    assert (verdict.error, verdict.error_kind, verdict.outputs) == ("connect failed: refused", "connect", {})


def test_the_kept_body_is_bounded_after_masking():
    verdict = judge(endpoint(), outcome(200, "x" * (STORED_BODY_CHARS + 10)))
    assert len(verdict.body) == STORED_BODY_CHARS
    assert verdict.body_truncated


# ------------------------------------------------------------------ sending with assertion retries


class Scripted:
    """A sender whose calls take `seconds` each on a fake monotonic clock, answering `documents` in turn."""

    def __init__(self, documents: list[Any], seconds: float) -> None:
        self.documents = documents
        self.seconds = seconds
        self.now = 0.0
        self.budgets: list[float] = []

    def __call__(self, spec: Any) -> HttpOutcome:
        self.budgets.append(spec.total_timeout)
        self.now += self.seconds
        return outcome(200, self.documents.pop(0))

    def sleep(self, seconds: float) -> None:
        self.now += seconds


RETRIED = {"expect": {"json": {"ok": True}, "retry_on_failure": True}}


def test_an_assertion_is_re_sent_only_when_the_endpoint_asks():
    once = Scripted([{"ok": False}, {"ok": True}], seconds=1)
    verdict, _ = call(
        once, build_spec(), endpoint(expect={"json": {"ok": True}}), once.sleep, lambda: once.now
    )
    assert (verdict.error_kind, verdict.attempts, len(once.budgets)) == ("assertion", 1, 1)

    again = Scripted([{"ok": False}, {"ok": False}, {"ok": True}], seconds=1)
    verdict, _ = call(again, build_spec(), endpoint(**RETRIED), again.sleep, lambda: again.now)
    assert (verdict.status, verdict.attempts) == (StepStatus.SUCCEEDED, 3)
    assert again.now == 1 + 1 + 1 + 2 + 1  # three sends, 1 s and 2 s apart


def test_assertion_retries_stay_inside_the_executors_budget():
    slow = Scripted(
        [{"ok": False}, {"ok": False}, {"ok": True}], seconds=MAX_TOTAL_BUDGET.total_seconds() - 30
    )
    verdict, _ = call(slow, build_spec(total_timeout=240), endpoint(**RETRIED), slow.sleep, lambda: slow.now)
    assert verdict.error_kind == "assertion"
    assert len(slow.budgets) == 2
    assert slow.budgets[1] == pytest.approx(30 - 1)  # what was left after the first send and the pause


def build_spec(total_timeout: float = 30) -> Any:
    return RequestSpec("GET", "https://api.example.com/x", total_timeout=total_timeout)


def test_a_failed_step_still_masks_its_hidden_values_and_publishes_none():
    spec = endpoint(extract={"token": "auth.token"}, expect={"json": {"auth": {"type": "bearer"}}})
    verdict = judge(spec, outcome(200, {"auth": {"token": "tok-secret-1", "type": "basic"}}))
    assert verdict.error_kind == "assertion"
    assert verdict.outputs == {}
    assert "tok-secret-1" not in verdict.body
    assert "tok-secret-1" not in (verdict.error or "")
    assert "[hidden]" in (verdict.error or "")

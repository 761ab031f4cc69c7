"""One step's HTTP call from start to verdict: fill the request's references from earlier steps'
values, sign it, send it (again only when an endpoint asks for assertion retries), then judge the
response against `expect:` and extract the values later steps use."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cronpilot.domain.assertions import ASSERTION, failed_expectations, status_accepted
from cronpilot.domain.budget import MAX_CALL_BUDGET, call_budget
from cronpilot.domain.templating import (
    Lookup,
    MissingValue,
    ParsedBody,
    RenderedRequest,
    extract_values,
    hidden_texts,
    mask,
    render,
)
from cronpilot.models.job import Endpoint, Job, SecretRef
from cronpilot.models.run import StepResult, StepStatus
from cronpilot.models.workflow import MAX_PARSED_BODY_BYTES, Reference
from cronpilot.safehttp import HttpOutcome, RequestSpec
from cronpilot.safehttp.signing import SIGNATURE_HEADERS, SigningKeyError, parse_signing_keys, sign

# The executor Lambda's timeout is 300 s; a call's total budget stays well inside it (and is what a
# run's budget counts for the step: cronpilot.domain.budget).
MAX_TOTAL_BUDGET = MAX_CALL_BUDGET
STORED_BODY_CHARS = 8 << 10
ASSERTION_ATTEMPTS = 3  # with `expect.retry_on_failure`
ASSERTION_BACKOFF_SECONDS = 1.0
MIN_SEND_SECONDS = 1.0  # an assertion retry is not started with less budget than this
TEMPLATE = "template"
SIGNING = "signing"
UNREADABLE = "secret-unreadable"
# Secret-store errors worth the state machine's retry; any other failure to read a secret fails the step.
TRANSIENT_SECRET_ERRORS = frozenset(
    {"ThrottlingException", "InternalServiceError", "InternalServerError", "ServiceUnavailable",
     "RequestTimeout", "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}
)  # fmt: skip

SecretResolver = Callable[[SecretRef], str]
Sender = Callable[[RequestSpec], HttpOutcome]


class CallNotMade(Exception):
    """The request could not be built (a missing value, an unusable signing key): the step fails
    with `kind` and the message, and the endpoint is never called."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def describe_ref(ref: SecretRef) -> str:
    return f"secret {ref.secret!r}" if ref.secret is not None else f"parameter {ref.parameter!r}"


def read_secret(resolver: SecretResolver, ref: SecretRef, endpoint_id: str, used_for: str) -> str:
    """The value, or CallNotMade naming the secret and the endpoint: a missing or unreadable secret fails
    only the steps that need it. Throttling and service errors are raised for the state machine's Retry.
    Only our own words and the AWS error code are kept: a library's text could echo the value."""
    try:
        return resolver(ref)
    except ValueError as exc:  # resolve_secret's own messages (json_key), which never quote the value
        reason = str(exc)
    except Exception as exc:
        reason = _error_code(exc)
        if reason in TRANSIENT_SECRET_ERRORS:
            raise
    raise CallNotMade(
        UNREADABLE,
        f"{describe_ref(ref)} for endpoint {endpoint_id!r} ({used_for}) cannot be read: {reason}; "
        "create it and let the executor read it (local mode: --secret NAME=env:VAR or "
        "'cronpilot --local secrets set NAME')",
    )


def _error_code(exc: Exception) -> str:
    """The AWS error code when there is one (ResourceNotFoundException, AccessDeniedException, ...)."""
    cause: BaseException | None = exc
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code"):
            return str(response["Error"]["Code"])
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def value_lookup(results: Mapping[str, StepResult]) -> Lookup:
    """References read the values stored with the producing step's result in this run."""

    def lookup(ref: Reference) -> Any:
        result = results.get(ref.endpoint_id)
        if result is None:
            raise MissingValue(
                f"{ref.expression} has no value: step {ref.endpoint_id} has no result in this run"
            )
        if result.status != StepStatus.SUCCEEDED:
            raise MissingValue(f"{ref.expression} has no value: step {ref.endpoint_id} {result.status}")
        if ref.name in result.outputs:
            return result.outputs[ref.name]
        why = result.output_problems.get(ref.name, "the step extracted no such value")
        raise MissingValue(f"{ref.expression} has no value: {why}")

    return lookup


def parses_body(endpoint: Endpoint) -> bool:
    expect = endpoint.expect
    return bool(endpoint.extract) or (
        expect is not None and (expect.reads_json or expect.contains is not None)
    )


def build_request(
    job: Job,
    endpoint: Endpoint,
    idempotency_key: str,
    resolver: SecretResolver,
    results: Mapping[str, StepResult],
    *,
    wall_clock: Callable[[], float] = time.time,
) -> RequestSpec:
    """The request as sent: references filled (CallNotMade when one cannot be), secrets resolved,
    Standard Webhooks headers over the exact body bytes when the endpoint or job signs."""
    try:
        rendered = render(endpoint, value_lookup(results))
    except MissingValue as exc:
        raise CallNotMade(TEMPLATE, str(exc)) from None
    headers = {
        name: (
            read_secret(resolver, value, endpoint.id, f"header {name}")
            if isinstance(value, SecretRef)
            else value
        )
        for name, value in rendered.headers.items()
    }
    body = _body_text(rendered, headers)
    secret_names = set(endpoint.secret_header_names())
    signing = job.signing_for(endpoint)
    if signing is not None:
        try:
            keys = parse_signing_keys(
                read_secret(resolver, SecretRef(secret=signing.secret), endpoint.id, "signing")
            )
        except SigningKeyError as exc:
            raise CallNotMade(SIGNING, f"signing secret {signing.secret!r}: {exc}") from None
        headers = {k: v for k, v in headers.items() if k.lower() not in SIGNATURE_HEADERS}
        # The timestamp is real time (receivers compare it with their clock), whatever clock runs the job.
        headers.update(sign(keys, idempotency_key, int(wall_clock()), (body or "").encode()))
        secret_names.add("webhook-signature")  # meant for this origin only, like credentials
    timeout = endpoint.timeout.total_seconds()
    return RequestSpec(
        method=endpoint.method,
        url=rendered.url,
        headers=headers,
        body=body,
        connect_timeout=min(5.0, timeout),
        read_timeout=timeout,
        total_timeout=call_budget(endpoint).total_seconds(),
        stored_body_bytes=MAX_PARSED_BODY_BYTES if parses_body(endpoint) else STORED_BODY_CHARS,
        retry_non_idempotent=bool(endpoint.retryable),
        max_attempts=3 if endpoint.retryable is not False else 1,
        secret_header_names=frozenset(secret_names),
        idempotency_key=idempotency_key,
    )


def _body_text(rendered: RenderedRequest, headers: dict[str, str]) -> str | None:
    if rendered.body is None or isinstance(rendered.body, str):
        return rendered.body
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(rendered.body)


@dataclass
class Verdict:
    """How a response is recorded: the step's fields except ids and times."""

    status: StepStatus
    http_status: int | None
    attempts: int
    latency_ms: int
    error: str | None = None
    error_kind: str | None = None
    body: str = ""
    body_truncated: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    output_problems: dict[str, str] = field(default_factory=dict)
    outputs_shown: list[str] = field(default_factory=list)
    # What the AI pilot's news detection reads besides the status (cronpilot.domain.news).
    content_type: str | None = None
    body_bytes: int | None = None

    def result(self, step_id: str, endpoint_id: str) -> StepResult:
        return StepResult(step_id=step_id, endpoint_id=endpoint_id, **self.__dict__)


def judge(endpoint: Endpoint, outcome: HttpOutcome) -> Verdict:
    """Success is an accepted status (2xx unless `expect.status` says otherwise) with every other
    expectation met; only then are values extracted. Hidden values are masked in the kept body."""
    verdict = Verdict(
        status=StepStatus.FAILED,
        http_status=outcome.http_status,
        attempts=outcome.attempts,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
        error_kind=outcome.error_kind,
        content_type=outcome.content_type,
        body_bytes=outcome.body_bytes,
    )
    body = ParsedBody(outcome.body, outcome.body_truncated)
    failures = _unmet(endpoint, outcome, body)
    if failures:
        verdict.error, verdict.error_kind = "assertion failed: " + "; ".join(failures), ASSERTION
    elif failures is not None:
        verdict.status, verdict.error, verdict.error_kind = StepStatus.SUCCEEDED, None, None
    kept = outcome.body
    if endpoint.extract and outcome.body:
        # Values are published only by a step that succeeded, but hidden ones are masked whatever
        # the outcome: a failed step's body and assertion message reach people and the AI too.
        extracted = extract_values(endpoint.extract, body)
        secrets = hidden_texts(endpoint.extract, extracted.values)
        kept = mask(kept, secrets)
        if verdict.error is not None:
            verdict.error = mask(verdict.error, secrets)
        if verdict.status == StepStatus.SUCCEEDED:
            verdict.outputs, verdict.output_problems = extracted.values, extracted.problems
            verdict.outputs_shown = [name for name, spec in endpoint.extract.items() if spec.show]
    verdict.body = kept[:STORED_BODY_CHARS]
    verdict.body_truncated = outcome.body_truncated or len(kept) > STORED_BODY_CHARS
    return verdict


def _unmet(endpoint: Endpoint, outcome: HttpOutcome, body: ParsedBody) -> list[str] | None:
    """The expectations a response did not meet ([] when it met them all), or None when it is a
    failure before any expectation: no answer, an unreadable body, or a non-2xx that `expect.status`
    does not accept explicitly (kept as the client reported it, e.g. `HTTP 500`)."""
    status = outcome.http_status
    if status is None or outcome.error_kind not in (None, "http-status"):
        return None
    expect = endpoint.expect
    accepted = status_accepted(expect, status)
    if expect is None:
        return [] if accepted else None
    if not accepted and expect.status is None:
        return None
    return failed_expectations(expect, status, outcome.latency_ms, body)


def call(
    send: Sender,
    spec: RequestSpec,
    endpoint: Endpoint,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[Verdict, HttpOutcome]:
    """Send and judge; also the last raw outcome (the circuit breaker's evidence). An assertion
    failure is final unless `expect.retry_on_failure`; transport-level retries (connect failures,
    429, 5xx on idempotent calls) stay the client's business. Every send, sleep included, fits in
    MAX_TOTAL_BUDGET, which keeps the executor inside its Lambda timeout."""
    deadline = monotonic() + MAX_TOTAL_BUDGET.total_seconds()
    expect = endpoint.expect
    retries = ASSERTION_ATTEMPTS - 1 if expect is not None and expect.retry_on_failure else 0
    outcome = send(spec)
    verdict = judge(endpoint, outcome)
    sent = verdict.attempts
    for retry in range(retries):
        delay = ASSERTION_BACKOFF_SECONDS * 2**retry
        left = deadline - monotonic() - delay
        if verdict.error_kind != ASSERTION or left < MIN_SEND_SECONDS:
            break
        sleep(delay)
        outcome = send(spec._replace(total_timeout=min(spec.total_timeout, left)))
        verdict = judge(endpoint, outcome)
        sent += verdict.attempts
    verdict.attempts = sent
    return verdict, outcome

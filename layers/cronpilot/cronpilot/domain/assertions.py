"""`expect:` — what a response must satisfy for its step to succeed. Each check that fails is named
with what was expected and what came back, so the summary and the AI can say what did not hold."""

from __future__ import annotations

import json
from typing import Any

from cronpilot.domain.templating import ParsedBody
from cronpilot.models.workflow import ExpectSpec, search

ASSERTION = "assertion"
MAX_SHOWN_CHARS = 80  # of an unexpected value in a failure message


def status_accepted(expect: ExpectSpec | None, status: int) -> bool:
    ranges = expect.status_ranges() if expect is not None else None
    if ranges is None:
        return 200 <= status < 300
    return any(r.accepts(status) for r in ranges)


def failed_expectations(expect: ExpectSpec, status: int, latency_ms: int, body: ParsedBody) -> list[str]:
    """What did not hold, in the order declared: status, json, contains, max_latency."""
    failures: list[str] = []
    ranges = expect.status_ranges()
    if ranges is not None and not any(r.accepts(status) for r in ranges):
        failures.append(f"status {status} is not one of {', '.join(r.text for r in ranges)}")
    if expect.json_:
        document, error = body.document()
        for expression, expected in expect.json_.items():
            if error is not None:
                failures.append(f"json {expression!r}: {error}")
                continue
            actual = search(expression, document)
            if actual != expected or isinstance(actual, bool) != isinstance(expected, bool):
                failures.append(f"json {expression!r} is {_shown(actual)}, expected {_shown(expected)}")
    if expect.contains is not None and expect.contains not in body.text:
        where = " (in the part of the body that was read)" if body.truncated else ""
        failures.append(f"body does not contain {_shown(expect.contains)}{where}")
    if expect.max_latency is not None:
        limit_ms = int(expect.max_latency.total_seconds() * 1000)
        if latency_ms > limit_ms:
            failures.append(f"latency {latency_ms} ms is over max_latency {limit_ms} ms")
    return failures


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."

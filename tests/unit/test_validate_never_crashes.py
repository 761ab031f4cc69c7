"""`cronpilot validate` on anything: arbitrary text, YAML and JSON documents, and mutated valid job
files. It exits 0 or 1, prints one line per problem (each naming the file), never raises, and stays
within bounded memory. Time is bounded by the input sizes and example counts below, not by a clock."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from cronpilot.cli import app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.support.factories import endpoint, job_doc

# Hundreds of CLI invocations: run with the slow set (without coverage tracing), as `make test` does.
pytestmark = pytest.mark.slow

# Inputs stay small (a few KB) so each example is milliseconds; the hostile-input tests cover size.
SETTINGS = settings(
    max_examples=60,
    deadline=None,  # a loaded CI machine must not fail on time; sizes bound the work instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
# Python objects for a few KB of input, with room to spare; an alias bomb or a runaway copy is far above.
MEMORY_BOUND = 32 * 1024 * 1024

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["5m", "1h30m", "0 9 * * MON-FRI", "https://api.example.com/x", "Europe/Berlin"]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=40,
)
# Keys and values a job file uses, so mutations land on fields the model checks.
FIELD_NAMES = [
    "id", "name", "goal", "schedule", "cron", "rate", "at", "timezone", "guardrails", "min_interval",
    "max_interval", "max_steps", "max_parallel", "max_tokens_per_run", "max_lateness", "jitter",
    "overlap", "max_concurrent_runs", "endpoints", "method", "url", "headers", "body", "timeout",
    "depends_on", "on_dependency_failure", "retryable", "status", "llm", "provider", "shadow", "secret",
]  # fmt: skip


# Pieces of YAML and JSON syntax the byte-level mutations insert.
SYNTAX = [
    "&a ",
    "*a",
    "!!python/object ",
    "[",
    "{",
    "\n- ",
    ": ",
    "\t",
    "\x00",
    "---\n",
    ".inf",
    "1e999",
    "<<: ",
]


def run_validate(text: str | bytes, suffix: str) -> None:
    """Validate one file and check the contract every outcome must keep."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"job{suffix}"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        tracemalloc.start()
        try:
            result = CliRunner().invoke(app, ["validate", str(path)])
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.exit_code in (0, 1), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    if result.exit_code == 0:
        assert result.stdout.startswith(f"ok {path}: job "), result.stdout
        assert result.stdout.count("\n") == 1, result.stdout
        return
    lines = result.stderr.splitlines()
    assert lines, "a refusal says why"
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    for line in lines[1:]:
        assert line.startswith(f"{path}: "), f"a problem spilled over two lines: {line!r}"
    assert "Traceback" not in result.stderr
    assert "Input should" not in result.stderr, result.stderr


def valid_doc() -> dict[str, Any]:
    return job_doc(
        "prop",
        guardrails={"max_parallel": 3, "jitter": "30s", "overlap": "skip"},
        endpoints=[
            endpoint("a", headers={"X-Key": {"secret": "api-key"}}),
            endpoint("b", method="POST", body={"n": 1}, depends_on=["a"], timeout="30s"),
        ],
    )


@st.composite
def mutated_docs(draw: st.DrawFn) -> Any:
    """A valid job with a few random changes: a field set to anything, a field dropped, a key added."""
    doc: Any = valid_doc()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        containers = _containers(doc)
        container = draw(st.sampled_from(containers))
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if isinstance(container, dict) and container and action != "add":
            key = draw(st.sampled_from(sorted(container)))
            if action == "drop":
                del container[key]
            else:
                container[key] = draw(values)
        elif isinstance(container, dict):
            container[draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=8))] = draw(values)
        elif container and action == "replace":
            container[draw(st.integers(0, len(container) - 1))] = draw(values)
        elif action == "add":
            container.append(draw(values))
        elif container:
            container.pop()
    return doc


def _containers(doc: Any) -> list[Any]:
    found, pending = [], [doc]
    while pending:
        value = pending.pop()
        if isinstance(value, dict | list):
            found.append(value)
            pending.extend(value.values() if isinstance(value, dict) else value)
    return found


def to_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@SETTINGS
@given(text=st.text(max_size=3000), suffix=st.sampled_from([".yaml", ".json", ".yml"]))
def test_arbitrary_text(text, suffix):
    run_validate(text, suffix)


# YAML's and JSON's own punctuation, so the text reaches the parsers' corners rather than plain scalars.
SYNTAX_ALPHABET = "{}[]:,-?&*!|>'\"%@`#\n \t.0123456789abefilnorstuxy~<=_/\\"


@SETTINGS
@given(text=st.text(alphabet=SYNTAX_ALPHABET, max_size=400), suffix=st.sampled_from([".yaml", ".json"]))
def test_text_made_of_syntax(text, suffix):
    run_validate(text, suffix)


@SETTINGS
@given(raw=st.binary(max_size=2000), suffix=st.sampled_from([".yaml", ".json"]))
def test_arbitrary_bytes(raw, suffix):
    run_validate(raw, suffix)


@SETTINGS
@given(doc=values)
def test_arbitrary_yaml_documents(doc):
    run_validate(to_yaml(doc), ".yaml")


@SETTINGS
@given(doc=values)
def test_arbitrary_json_documents(doc):
    run_validate(json.dumps(doc), ".json")


@SETTINGS
@given(doc=mutated_docs(), as_json=st.booleans())
def test_mutated_valid_job_files(doc, as_json):
    run_validate(json.dumps(doc) if as_json else to_yaml(doc), ".json" if as_json else ".yaml")


@SETTINGS
@given(data=st.data(), as_json=st.booleans())
def test_mutated_bytes_of_a_valid_job_file(data, as_json):
    # Byte-level damage: truncation, insertions of YAML/JSON syntax, deletions
    text = json.dumps(valid_doc(), indent=1) if as_json else to_yaml(valid_doc())
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        action = data.draw(st.sampled_from(["insert", "delete", "truncate"]))
        if action == "insert":
            piece = data.draw(st.sampled_from(SYNTAX) | st.text(max_size=4))
            text = text[:at] + piece + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + data.draw(st.integers(min_value=1, max_value=20)) :]
        else:
            text = text[:at]
    run_validate(text, ".json" if as_json else ".yaml")


def test_the_valid_document_is_valid():
    # The mutations start from a job that validates, so they test the edges of a real job
    run_validate(to_yaml(valid_doc()), ".yaml")
    run_validate(json.dumps(valid_doc()), ".json")

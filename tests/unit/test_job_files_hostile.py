"""Hostile and careless job files: each class is refused with one line naming the file, the field and
the fix, in cronpilot's words, before it can cost time or memory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cronpilot import jobfiles
from cronpilot.jobfiles import JobFileError, load_job_file
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.factories import endpoint, job_doc

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# Words that only pydantic or PyYAML would write: a message with one of them leaked the library's wording.
LIBRARY_WORDING = (
    "Input should",
    "Tuple should",
    "List should",
    "constrained-str",
    "Value error,",
    "validation error",
    "For further information",
    "function-after",
    'in "<unicode string>"',
    "Traceback",
)


def refused(path: Path, **kwargs) -> list[str]:
    """The problem lines for a refused file; each one names the file and is in cronpilot's words."""
    with pytest.raises(JobFileError) as caught:
        load_job_file(path, now=NOW, **kwargs)
    lines = str(caught.value).splitlines()
    assert lines, "a refusal says why"
    for line in lines:
        assert line.startswith(f"{path}: "), line
        assert not any(word in line for word in LIBRARY_WORDING), line
        assert len(line) < 500, line
    return [line.removeprefix(f"{path}: ") for line in lines]


def write_yaml(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def write_json(tmp_path: Path, doc: object, name: str = "job.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


VALID_YAML = "id: ok\nschedule: {rate: 5m}\nendpoints:\n  - {id: a, url: 'https://api.example.com/a'}\n"


# ------------------------------------------------------------------ size, before parsing


def test_oversized_file_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    # Given a 2 MiB file of YAML that would be a syntax error if it were ever parsed
    path = write_yaml(tmp_path, "id: [" * ((2 << 20) // 5))
    monkeypatch.setattr(jobfiles, "parse_document", lambda *a, **k: pytest.fail("parsed an oversized file"))
    # Then the refusal names the size and the limit
    [line] = refused(path)
    assert "larger than the 1.0 MiB a job file may be" in line
    assert "CRONPILOT_MAX_JOB_FILE_BYTES" in line


def test_size_limit_is_a_setting(tmp_path, monkeypatch):
    path = write_yaml(tmp_path, VALID_YAML)
    monkeypatch.setenv("CRONPILOT_MAX_JOB_FILE_BYTES", "40")
    [line] = refused(path)
    assert "larger than the 40 bytes a job file may be" in line
    monkeypatch.setenv("CRONPILOT_MAX_JOB_FILE_BYTES", "lots")
    with pytest.raises(JobFileError, match="CRONPILOT_MAX_JOB_FILE_BYTES: 'lots' is not a size in bytes"):
        load_job_file(path, now=NOW)


def test_endless_device_is_read_only_up_to_the_limit():
    # /dev/zero reports size 0 and never ends: the read is bounded all the same
    [line] = refused(Path("/dev/zero"))
    assert "larger than the 1.0 MiB" in line


def test_directory_and_missing_file(tmp_path):
    assert refused(tmp_path) == ["is a directory: give the job file itself"]
    [line] = refused(tmp_path / "nope.yaml")
    assert line == "cannot read the file (no such file or directory): check the path and its permissions"


# ------------------------------------------------------------------ encoding


def test_non_utf8_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("id: ok\nname: caf\u00e9\n".encode("latin-1"))
    assert refused(path) == ["line 2: byte 0xe9 is not UTF-8: save the file as UTF-8 text"]


def test_utf8_with_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID_YAML.encode())
    assert load_job_file(path, now=NOW).id == "ok"


# ------------------------------------------------------------------ aliases, anchors, tags


def test_yaml_alias_bomb_is_refused_without_expanding(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    path = write_yaml(tmp_path, "\n".join(lines) + "\n")
    [line] = refused(path)
    assert (
        line == "a (line 1): YAML anchors (&a) are not allowed in a job file: remove it and write values out"
    )


def test_yaml_alias_and_merge_key_are_refused(tmp_path):
    [line] = refused(write_yaml(tmp_path, "id: ok\nname: *elsewhere\n"))
    # PyYAML reports an undefined alias as a composer error; the event reader refuses the alias itself
    assert (
        line == "name (line 2): YAML aliases (*elsewhere) are not allowed in a job file: write the value out"
    )
    [line] = refused(write_yaml(tmp_path, "id: ok\nguardrails:\n  <<: {max_steps: 5}\n"))
    assert line == "guardrails (line 3): YAML merge keys (<<) are not allowed in a job file: write keys out"


def test_yaml_tags_beyond_plain_data_are_refused(tmp_path):
    [line] = refused(write_yaml(tmp_path, "id: !!python/object/apply:os.system ['true']\n"))
    assert line.startswith("id (line 1): YAML tag tag:yaml.org,2002:python/object/apply:os.system")
    [line] = refused(write_yaml(tmp_path, "id: ok\nname: !!binary aGVsbG8=\n"))
    assert "YAML tag tag:yaml.org,2002:binary is not supported" in line


# ------------------------------------------------------------------ nesting


def test_deeply_nested_yaml_is_refused_at_the_bound(tmp_path):
    path = write_yaml(tmp_path, "id: ok\nbody: " + "[" * 200_000 + "]" * 200_000 + "\n")
    [line] = refused(path)
    assert line.endswith(
        f"nested more than {jobfiles.MAX_NESTING} levels deep: flatten the value (or send it as text)"
    )
    assert line.startswith("body[0][0]")


def test_deeply_nested_block_yaml_is_refused(tmp_path):
    text = "id: ok\n" + "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(100)) + "  " * 100 + "x: 1\n"
    [line] = refused(write_yaml(tmp_path, text))
    assert "nested more than" in line


@pytest.mark.parametrize("depth", [40, 200_000])
def test_deeply_nested_json_is_refused(tmp_path, depth):
    doc = '{"id": "ok", "body": ' + "[" * depth + "]" * depth + "}"
    [line] = refused(write_json(tmp_path, doc))
    assert "nested more than 32 levels deep: flatten the value" in line


def test_moderately_nested_body_is_accepted(tmp_path):
    body: dict = {"leaf": 1}
    for level in range(20):
        body = {f"level{level}": body}
    path = write_json(tmp_path, job_doc(endpoints=[endpoint("a", method="POST", body=body)]))
    assert load_job_file(path, now=NOW).endpoints[0].body is not None


# ------------------------------------------------------------------ numbers


def test_non_finite_numbers_are_refused_with_the_fields_range(tmp_path):
    text = (
        "id: ok\nschedule: {rate: .inf}\n"
        "guardrails: {max_parallel: .inf, max_steps: .nan, max_lateness: -.inf}\n"
        "endpoints:\n  - {id: a, url: 'https://api.example.com/a', body: {n: [1, .nan]}}\n"
    )
    lines = refused(write_yaml(tmp_path, text))
    assert lines == [
        "schedule.rate: a duration must be a finite number of seconds: "
        "use a duration from 1m to 366d, such as '15m'",
        "guardrails.max_steps: expected a whole number from 1 to 100, got NaN",
        "guardrails.max_parallel: expected a whole number from 1 to 40, got infinity",
        "guardrails.max_lateness: a duration must be a finite number of seconds: "
        "use a duration from 0s to 366d, such as '15m'",
        "endpoints[0:a].body: n[1] is NaN or infinity, which JSON cannot carry: "
        "use a finite number or quote it",
    ]


def test_json_nan_and_infinity_are_refused_with_the_fields_range(tmp_path):
    doc = json.dumps(job_doc(guardrails={"max_parallel": 1, "jitter": 1}))
    doc = doc.replace('"max_parallel": 1', '"max_parallel": Infinity').replace('"jitter": 1', '"jitter": NaN')
    lines = refused(write_json(tmp_path, doc))
    assert "guardrails.max_parallel: expected a whole number from 1 to 40, got infinity" in lines
    assert (
        "guardrails.jitter: a duration must be a finite number of seconds: use a duration from 0s to 1d, "
        "such as '15m'" in lines
    )


def test_out_of_range_numbers_name_the_range(tmp_path):
    doc = job_doc(guardrails={"max_parallel": 1000, "max_tokens_per_run": -1, "jitter": "2d"})
    doc["endpoints"][0]["timeout"] = "1h"
    lines = refused(write_json(tmp_path, doc))
    assert "guardrails.max_parallel: 1000 is out of range: use a whole number from 1 to 40" in lines
    assert "guardrails.max_tokens_per_run: -1 is out of range: use a whole number from 0 to 10000000" in lines
    assert "guardrails.jitter: 2d is out of range: use a duration from 0s to 1d, such as '15m'" in lines
    assert "endpoints[0:a].timeout: 1h is out of range: use a duration from 1s to 10m, such as '15m'" in lines


def test_huge_numbers_are_refused_before_conversion(tmp_path):
    [line] = refused(write_yaml(tmp_path, "id: ok\nguardrails: {max_steps: " + "9" * 5000 + "}\n"))
    assert (
        line == "guardrails.max_steps (line 2): a number with more than 40 digits: "
        "use a number in the field's range"
    )
    [line] = refused(write_json(tmp_path, '{"id": "ok", "n": ' + "9" * 5000 + "}"))
    assert line == "a number with more than 40 digits: use a number in the field's range"
    # Huge, but not absurd: the model gives the range, and durations no longer overflow
    lines = refused(write_yaml(tmp_path, "id: ok\nschedule: {rate: 99999999999999999999}\n"))
    assert (
        "schedule.rate: a duration cannot exceed 3650d: use a duration from 1m to 366d, such as '15m'"
        in lines
    )


# ------------------------------------------------------------------ strict types


def test_booleans_are_not_numbers_and_numbers_are_not_booleans(tmp_path):
    doc = job_doc(guardrails={"max_parallel": True, "max_steps": "5", "max_concurrent_runs": 2.5})
    doc["llm"] = {"shadow": 1}
    doc["endpoints"][0]["retryable"] = "yes"
    doc["endpoints"][0]["extract"] = {"token": {"path": "access_token", "show": 1}}
    doc["endpoints"][0]["expect"] = {"retry_on_failure": "true"}
    lines = refused(write_json(tmp_path, doc))
    assert "guardrails.max_parallel: expected a whole number from 1 to 40, got true" in lines
    assert "guardrails.max_steps: expected a whole number from 1 to 100, got the text '5'" in lines
    assert "guardrails.max_concurrent_runs: expected a whole number from 1 to 20, got the number 2.5" in lines
    assert "llm.shadow: expected true or false, got the number 1" in lines
    assert "endpoints[0:a].retryable: expected true or false, got the text 'yes'" in lines
    assert "endpoints[0:a].extract.token.show: expected true or false, got the number 1" in lines
    assert "endpoints[0:a].expect.retry_on_failure: expected true or false, got the text 'true'" in lines


def test_wrong_shapes_get_one_line_each_in_our_words(tmp_path):
    doc = job_doc(job_id=5, name=7, status="on")
    doc["endpoints"] = [
        endpoint(
            "a",
            headers={"X-Count": 5, "X-Key": {"secret": 9}, "X-Both": {"secret": "s", "parameter": "p"}},
            body=5,
            depends_on=[1],
            method="FETCH",
        )
    ]
    lines = refused(write_json(tmp_path, doc))
    assert lines == [
        "id: expected text, got the number 5: quote the value",
        "name: expected text, got the number 7: quote the value",
        "endpoints[0:a].method: the text 'FETCH' is not allowed: "
        "use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        "endpoints[0:a].headers.X-Count: a header value is text, or a mapping with 'secret' or 'parameter' "
        "(a reference): quote numbers and booleans",
        "endpoints[0:a].headers.X-Key.secret: expected text, got the number 9: quote the value",
        "endpoints[0:a].headers.X-Both: a header reference sets exactly one of 'secret' (Secrets Manager) "
        "or 'parameter' (SSM)",
        "endpoints[0:a].body: a body is text, a mapping or a list (sent as JSON): quote it to send as text",
        "endpoints[0:a].depends_on[0]: expected text, got the number 1: quote the value",
        "status: the text 'on' is not allowed: use one of active, paused",
    ]


def test_no_endpoints_and_an_only_invalid_endpoint_are_one_line(tmp_path):
    assert refused(write_json(tmp_path, job_doc(endpoints=[]))) == [
        "endpoints: a job needs at least one endpoint: add one under 'endpoints'"
    ]
    # pydantic counts the valid items and would add a false "at least 1 item" line here
    assert refused(write_json(tmp_path, job_doc(endpoints=[endpoint("a", url="ftp://x")]))) == [
        "endpoints[0:a].url: url scheme 'ftp' is not allowed: use an http:// or https:// URL"
    ]
    many = [endpoint(f"e{i}") for i in range(101)]
    assert refused(write_json(tmp_path, job_doc(endpoints=many))) == [
        "endpoints: 101 endpoints are more than a job may have (100): split the job"
    ]


def test_yaml_keys_that_are_not_text_and_duplicate_keys(tmp_path):
    [line] = refused(write_yaml(tmp_path, VALID_YAML + "on: 1\n"))
    assert line == "line 5: the key 'on' reads as true, not text: quote it"
    [line] = refused(write_yaml(tmp_path, VALID_YAML + "id: again\n"))
    assert line == "id: this key appears twice in one mapping: keep one"
    [line] = refused(write_json(tmp_path, '{"id": "a", "id": "b"}'))
    assert line == "the key 'id' appears twice in one object: keep one"


def test_documents_that_are_not_one_job(tmp_path):
    assert refused(write_yaml(tmp_path, "")) == [
        "the file is empty: a job file holds one job with id, schedule and endpoints"
    ]
    assert refused(write_yaml(tmp_path, "- 1\n- 2\n")) == [
        "a job file holds one job: a mapping with id, schedule and endpoints (this one holds a list)"
    ]
    assert refused(write_yaml(tmp_path, VALID_YAML + "---\n" + VALID_YAML)) == [
        "line 5: a job file holds one YAML document: remove the '---' separators"
    ]


def test_syntax_errors_are_one_line_with_the_position(tmp_path):
    assert refused(write_yaml(tmp_path, "id: [unclosed\n")) == [
        "line 2, column 1: not valid YAML (did not find expected ',' or ']'): fix the syntax there"
    ]
    assert refused(write_json(tmp_path, '{"id": "a",\n  oops}')) == [
        "line 2, column 3: not valid JSON (Expecting property name enclosed in double quotes): "
        "fix the syntax there"
    ]


# ------------------------------------------------------------------ one-off times


def test_one_off_in_the_past_is_refused(tmp_path):
    doc = job_doc(schedule={"at": "2026-11-30T11:59:00Z"})
    assert refused(write_json(tmp_path, doc)) == [
        "schedule.at: 2026-11-30T11:59:00Z is in the past: pick a future time, or use cron or rate to repeat"
    ]


def test_one_off_without_offset_is_read_in_the_schedules_timezone(tmp_path):
    # 12:30 in Berlin is 11:30 UTC: already past at NOW (12:00 UTC); 13:30 Berlin is still ahead
    past = job_doc(schedule={"at": "2026-11-30T12:30:00", "timezone": "Europe/Berlin"})
    assert "is in the past" in refused(write_json(tmp_path, past))[0]
    ahead = job_doc(schedule={"at": "2026-11-30T13:30:00", "timezone": "Europe/Berlin"})
    assert load_job_file(write_json(tmp_path, ahead), now=NOW).schedule.at is not None


def test_one_off_absurdly_far_ahead_is_refused(tmp_path):
    doc = job_doc(schedule={"at": "9999-12-31T23:59:59Z"})
    assert refused(write_json(tmp_path, doc)) == [
        "schedule.at: 9999-12-31T23:59:59Z is more than 10 years ahead: pick a nearer time"
    ]


# ------------------------------------------------------------------ the stored item


def test_one_body_too_large_for_a_dynamodb_item_is_named(tmp_path):
    big = {"rows": ["x" * 1000] * 450}
    doc = job_doc(endpoints=[endpoint("small"), endpoint("upload", method="POST", body=big)])
    [line] = refused(write_json(tmp_path, doc))
    assert line.startswith("endpoints[1:upload].body: the stored job would be at least 441.")
    assert "over the 384.0 KiB a job may take in one DynamoDB item" in line
    assert line.endswith("shorten it, or move the data out of the job")


def test_many_bodies_together_too_large_name_the_field_they_share(tmp_path):
    endpoints = [endpoint(f"e{i}", method="POST", body="y" * 5000) for i in range(90)]
    doc = job_doc(endpoints=endpoints, guardrails={"max_steps": 100})
    [line] = refused(write_json(tmp_path, doc))
    assert line.startswith("endpoints[*].body (all 90 endpoints together): the stored job would be")


def test_multibyte_text_counts_in_bytes(tmp_path):
    # 140k characters of 3-byte UTF-8 are 420 KB stored, though fewer than 400k characters
    doc = job_doc(goal="ok", endpoints=[endpoint("a", method="POST", body="\u20ac" * 140_000)])
    [line] = refused(write_json(tmp_path, doc))
    assert line.startswith("endpoints[0:a].body: the stored job would be at least 410.")


def test_job_just_under_the_item_budget_is_accepted(tmp_path):
    doc = job_doc(endpoints=[endpoint("a", method="POST", body="")])
    path = write_json(tmp_path, doc)
    stored = len(load_job_file(path, now=NOW).model_dump_json().encode())
    doc["endpoints"][0]["body"] = "z" * (jobfiles.MAX_JOB_DOC_BYTES - stored)
    path = write_json(tmp_path, doc)
    assert len(load_job_file(path, now=NOW).model_dump_json().encode()) == jobfiles.MAX_JOB_DOC_BYTES
    # Over by one byte only once the model's defaults are in: refused after validation
    doc["endpoints"][0]["body"] += "z"
    assert refused(write_json(tmp_path, doc))[0].startswith(
        "endpoints[0:a].body: the stored job would be 384.0 KiB"
    )


# ------------------------------------------------------------------ what still works


def test_yaml_types_a_job_file_uses_still_work(tmp_path):
    text = (
        "id: typed\nschedule: {at: 2026-12-01T09:00:00Z}\n"
        "guardrails: {max_parallel: 0x10, jitter: 30}\n"
        "llm: {shadow: yes}\n"
        "endpoints:\n  - id: a\n    url: https://api.example.com/a\n    method: post\n"
        "    body: {count: 3, ratio: 0.5, flag: false, nothing: null, when: 2026-12-01}\n"
    )
    job = load_job_file(write_yaml(tmp_path, text), now=NOW)
    assert job.schedule.at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert job.guardrails.max_parallel == 16
    assert job.guardrails.jitter == timedelta(seconds=30)
    assert job.llm.shadow is True
    body = job.endpoints[0].body
    assert isinstance(body, dict)
    assert (body["count"], body["ratio"], body["flag"], body["nothing"]) == (3, 0.5, False, None)
    assert body["when"] == "2026-12-01", "a body is JSON: a YAML date in it is sent as its ISO text"


def test_overlong_cron_and_timezone_are_refused_before_parsing(tmp_path):
    doc = job_doc(schedule={"cron": "9" * 5000 + " * * * *", "timezone": "x" * 5000})
    assert refused(write_json(tmp_path, doc)) == [
        "schedule.cron: cron is longer than 200 characters: write 5 fields, e.g. '0 9 * * MON-FRI'",
        "schedule.timezone: unknown time zone (too long): use an IANA name such as 'Europe/Berlin'",
    ]


def test_huge_hexadecimal_numbers_are_refused_before_conversion(tmp_path):
    [line] = refused(write_yaml(tmp_path, "id: ok\nguardrails: {max_steps: 0x" + "f" * 5000 + "}\n"))
    assert line.endswith("a number with more than 40 digits: use a number in the field's range")
    # Built in Python (not from a file), the model still describes it without printing it
    from cronpilot.models.job import describe_value

    assert describe_value(16**5000) == "a number with more than 38 digits"


def test_a_document_parsed_elsewhere_is_bounded_too():
    # The HTTP API parses its JSON body itself and hands the document over: deep nesting is one line
    from cronpilot.jobfiles import parse_job_data

    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    doc = job_doc(endpoints=[endpoint("a", method="POST", body=deep)])
    with pytest.raises(JobFileError) as caught:
        parse_job_data(doc, "request body", now=NOW)
    assert caught.value.problems == ["nested more than 32 levels deep: flatten the value"]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789_xobe.+-:", min_size=1, max_size=12),  # (an empty value is text)
        st.sampled_from(["true", "True", "TRUE", "false", "yes", "No", "on", "null", "~", "0", "007"]),
        st.integers(min_value=-(10**45), max_value=10**45).map(str),
        st.text(alphabet="0123456789\u0663\u00b2", min_size=1, max_size=5),
    )
)
def test_plain_scalars_read_as_yamls_own_resolver_reads_them(text):
    # The builder reads `true` and decimal integers without the resolver: it must agree with it
    import yaml

    document = f"value: {text}\n"
    try:
        expected = yaml.safe_load(document)["value"]
    except (yaml.YAMLError, ValueError, OverflowError):
        return  # not a plain scalar PyYAML reads; the resolver path refuses these as before
    try:
        got = jobfiles._YamlBuilder().build(document)["value"]
    except jobfiles._Refused:
        return  # refused (e.g. too many digits): never silently read otherwise
    assert got == expected
    assert type(got) is type(expected)

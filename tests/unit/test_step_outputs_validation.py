"""`cronpilot validate`, offline: every mistake in `extract:`, `expect:`, `signing:` and in
`{{ steps.<endpoint>.<name> }}` references fails with the file, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cronpilot.jobfiles import JobFileError, load_job_file
from cronpilot.models.job import Job
from cronpilot.models.workflow import MAX_EXTRACTS_PER_JOB

from tests.support.factories import endpoint, job_doc

LOGIN = endpoint("login", "https://auth.example.com/token", method="POST", extract={"token": "access_token"})


def problems(tmp_path: Path, *endpoints: dict) -> str:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job_doc(endpoints=list(endpoints))))
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)
    message = str(caught.value)
    assert message.startswith(str(path)), "the message names the file"
    return message


def loads(tmp_path: Path, *endpoints: dict) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(job_doc(endpoints=list(endpoints))))
    load_job_file(path)


def test_a_job_using_values_of_its_dependencies_is_valid(tmp_path):
    loads(
        tmp_path,
        endpoint("login", extract={"token": "access_token", "base": {"path": "instance_url", "show": True}}),
        endpoint(
            "list",
            "https://api.example.com/items?since={{ steps.login.base }}",
            depends_on=["login"],
            extract={"cursor": "next"},
        ),
        endpoint(
            "page",
            "{{ steps.login.base }}/items/{{steps.list.cursor}}?n=1",
            depends_on=["list"],
            headers={"Authorization": "Bearer {{ steps.login.token }}"},
            method="POST",
            body={"cursor": "{{ steps.list.cursor }}", "note": "after {{ steps.list.cursor }}"},
        ),
    )


def test_unknown_endpoint_is_named_with_the_known_ones(tmp_path):
    message = problems(
        tmp_path, LOGIN, endpoint("use", headers={"X-Token": "{{ steps.logn.token }}"}, depends_on=["login"])
    )
    assert "endpoint 'use' headers.X-Token: {{ steps.logn.token }} names unknown endpoint 'logn'" in message
    assert "use one of ['login', 'use']" in message


def test_unknown_name_lists_what_the_endpoint_extracts(tmp_path):
    message = problems(
        tmp_path, LOGIN, endpoint("use", "https://a.example.com/{{ steps.login.tok }}", depends_on=["login"])
    )
    assert "endpoint 'use' url: {{ steps.login.tok }}: endpoint 'login' extracts no 'tok'" in message
    assert "(it extracts token)" in message
    assert "add extract: {tok: <JMESPath>} to 'login'" in message


def test_a_producer_the_step_does_not_depend_on_is_refused(tmp_path):
    message = problems(tmp_path, LOGIN, endpoint("use", body={"t": "{{ steps.login.token }}"}, method="POST"))
    assert "endpoint 'use' body.t: {{ steps.login.token }}" in message
    assert "endpoint 'use' does not depend on 'login'" in message
    assert "add 'login' to its depends_on" in message


def test_a_transitive_dependency_is_enough(tmp_path):
    loads(
        tmp_path,
        LOGIN,
        endpoint("middle", depends_on=["login"]),
        endpoint("use", "https://a.example.com/x?t={{ steps.login.token }}", depends_on=["middle"]),
    )


def test_a_reference_to_its_own_endpoint_is_refused(tmp_path):
    message = problems(tmp_path, endpoint("a", "https://a.example.com/{{ steps.a.x }}", extract={"x": "x"}))
    assert "endpoint 'a' url: {{ steps.a.x }} refers to its own endpoint" in message


@pytest.mark.parametrize(
    "text",
    [
        "{{ steps.login }}",
        "{{ steps.login.token | upper }}",
        "{{ step.login.token }}",
        "{{ steps.login.token() }}",
    ],
)
def test_anything_but_a_plain_reference_is_a_syntax_error(tmp_path, text):
    message = problems(tmp_path, LOGIN, endpoint("use", headers={"X": text}, depends_on=["login"]))
    assert "endpoints[1:use]" in message
    assert "headers.X" in message
    assert "is not a reference: write {{ steps.<endpoint id>.<name> }}" in message


def test_other_double_braces_are_literal_text(tmp_path):
    loads(tmp_path, endpoint("a", method="POST", body="Hello {{ name }}, {{#each items}}"))


@pytest.mark.parametrize(
    "url",
    [
        "https://{{ steps.login.token }}.example.com/x",
        "https://api.example.com:{{ steps.login.token }}/x",
        "https://api{{ steps.login.token }}/x",
    ],
)
def test_a_reference_cannot_fill_the_host_or_port(tmp_path, url):
    message = problems(tmp_path, LOGIN, endpoint("use", url, depends_on=["login"]))
    assert "endpoints[1:use]" in message
    assert "a reference may fill the path or query, not the scheme, host or port" in message


def test_a_reference_that_starts_the_url_must_be_followed_by_a_path(tmp_path):
    message = problems(
        tmp_path, LOGIN, endpoint("use", "{{ steps.login.token }}.evil.example/x", depends_on=["login"])
    )
    assert "the URL must go on with '/' or '?'" in message


def test_a_reference_cannot_be_a_json_key(tmp_path):
    message = problems(
        tmp_path,
        LOGIN,
        endpoint("use", method="POST", depends_on=["login"], body={"{{ steps.login.token }}": 1}),
    )
    assert "body.{{ steps.login.token }}: a JSON key cannot hold a reference" in message


def test_an_invalid_jmespath_in_extract_names_the_value(tmp_path):
    message = problems(tmp_path, endpoint("a", extract={"token": "data.[token"}))
    assert "endpoints[0:a].extract.token.path" in message
    assert "'data.[token' is not a valid JMESPath expression" in message
    assert "fix it, e.g. 'data.token'" in message


def test_an_extract_name_must_be_an_identifier(tmp_path):
    message = problems(tmp_path, endpoint("a", extract={"my-token": "token"}))
    assert "endpoints[0:a].extract" in message
    assert "extract name 'my-token' is not allowed: use letters, digits and '_'" in message


def test_an_unknown_extract_option_is_named(tmp_path):
    message = problems(tmp_path, endpoint("a", extract={"token": {"path": "t", "secret": True}}))
    assert "endpoints[0:a].extract.token.secret: unknown field" in message


def test_the_number_of_extracted_values_per_job_is_bounded(tmp_path):
    half = MAX_EXTRACTS_PER_JOB // 2 + 1
    first = endpoint("a", extract={f"v{n}": "x" for n in range(half)})
    second = endpoint("b", extract={f"v{n}": "x" for n in range(half)})
    message = problems(tmp_path, first, second)
    assert f"the endpoints extract {half * 2} values, at most {MAX_EXTRACTS_PER_JOB} per job" in message


@pytest.mark.parametrize(
    ("expect", "field", "text"),
    [
        ({"status": ["2xx", "600"]}, "expect.status", "status '600' is not a status code or range"),
        ({"status": ["299-200"]}, "expect.status", "is backwards: write the lower code first"),
        ({"status": []}, "expect.status", "status is an empty list"),
        ({"json": {"a.[b": 1}}, "expect.json", "'a.[b' is not a valid JMESPath expression"),
        ({"max_latency": "soon"}, "expect.max_latency", "'soon' is not a duration"),
        ({"max_latency": 0}, "expect.max_latency", "max_latency must be positive"),
        ({}, "expect", "expect is empty: set status, json, contains or max_latency"),
        ({"statuses": [200]}, "expect.statuses", "unknown field"),
    ],
)
def test_expect_mistakes_name_the_field_and_fix(tmp_path, expect, field, text):
    message = problems(tmp_path, endpoint("a", expect=expect))
    assert f"endpoints[0:a].{field}" in message
    assert text in message


def test_valid_expectations_load(tmp_path):
    loads(
        tmp_path,
        endpoint(
            "a",
            expect={
                "status": [200, "3xx", "404-410"],
                "json": {"status": "ok", "length(items) > `0`": True},
                "contains": "ok",
                "max_latency": "2s",
                "retry_on_failure": True,
            },
        ),
    )


def test_signing_needs_a_secret_name(tmp_path):
    message = problems(tmp_path, endpoint("a", signing={"key": "x"}))
    assert "endpoints[0:a].signing.secret: required field is missing" in message


def test_a_job_with_every_new_field_survives_its_stored_form():
    doc = job_doc(
        signing={"secret": "job-key"},
        endpoints=[
            endpoint(
                "login",
                extract={"token": "t", "cursor": {"path": "c", "show": True}},
                signing={"secret": "k"},
            ),
            endpoint(
                "use",
                "https://api.example.com/x?c={{ steps.login.cursor }}",
                depends_on=["login"],
                expect={"status": [200, "3xx"], "json": {"a": 1}, "contains": "ok", "max_latency": "250ms"},
            ),
        ],
    )
    job = Job.model_validate(doc)
    assert Job.model_validate_json(job.model_dump_json()) == job
    assert Job.model_validate(json.loads(json.dumps(job.model_dump(mode="json")))) == job
    assert "expect" in json.dumps(Job.model_json_schema())


def test_the_pipeline_example_is_valid(repo_root):
    job = load_job_file(repo_root / "examples" / "payments-pipeline.yaml")
    assert job.endpoint("settle").depends_on == ("pending",)
    assert job.signing is not None


@pytest.mark.parametrize("seed", range(20))
def test_no_value_moves_a_request_off_its_registered_host(seed):
    # Any text a server could return, URL-encoded into the path and query, leaves scheme, host and port as
    # registered (the egress policy then checks the same host it would check without templates).
    import random
    from urllib.parse import urlsplit

    from cronpilot.domain.templating import render
    from cronpilot.models.job import Endpoint

    rng = random.Random(seed)
    alphabet = "/?#@:.%&=\\ \t\r\n[]!$'()*+,;~-_aZ0é\x00"
    consumer = Endpoint.model_validate(
        {"id": "use", "url": "https://api.example.com:8443/items/{{ steps.a.v }}?q={{ steps.a.w }}#f"}
    )
    for _ in range(200):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        if value in (".", ".."):
            continue
        url = render(consumer, lambda ref, value=value: value).url
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) == ("https", "api.example.com", 8443)
        assert url.startswith("https://api.example.com:8443/items/")
        assert url.endswith("#f")


def test_a_url_taken_from_a_value_cannot_carry_stored_secrets(tmp_path):
    message = problems(
        tmp_path,
        endpoint("login", extract={"base": "instance_url"}),
        endpoint(
            "use",
            "{{ steps.login.base }}/x",
            depends_on=["login"],
            headers={"X-Api-Key": {"secret": "cronpilot/dev/key"}},
        ),
    )
    assert "endpoints[1:use]" in message
    assert "cannot send secret headers (x-api-key): use a token an earlier step extracted" in message

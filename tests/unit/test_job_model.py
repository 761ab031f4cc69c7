"""Job files: every invalid file fails with the file, the field and the fix in the message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cronpilot.jobfiles import JobFileError, load_job_file

from tests.support.factories import endpoint, job_doc


def write(tmp_path: Path, doc: dict, name: str = "job.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def problems(tmp_path: Path, doc: dict) -> str:
    path = write(tmp_path, doc)
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)
    message = str(caught.value)
    assert message.startswith(str(path)), "every line names the file"
    return message


def test_valid_yaml_file_loads(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        "id: nightly\nschedule: {cron: '30 2 * * *', timezone: Europe/Berlin}\n"
        "guardrails: {min_interval: 10m, max_interval: 1d, jitter: 30s}\n"
        "endpoints:\n  - {id: a, url: 'https://api.example.com/a'}\n"
    )
    job = load_job_file(path)
    assert job.id == "nightly"
    assert job.guardrails.min_interval.total_seconds() == 600
    assert job.guardrails.jitter.total_seconds() == 30


def test_unknown_dependency_names_endpoint_and_known_ids(tmp_path):
    message = problems(tmp_path, job_doc(endpoints=[endpoint("a"), endpoint("b", depends_on=["nope"])]))
    assert "endpoints" in message
    assert "'b' depends_on unknown endpoint 'nope'" in message
    assert "use one of ['a', 'b']" in message


def test_dependency_cycle_is_named(tmp_path):
    doc = job_doc(
        endpoints=[
            endpoint("a", depends_on=["c"]),
            endpoint("b", depends_on=["a"]),
            endpoint("c", depends_on=["b"]),
        ]
    )
    message = problems(tmp_path, doc)
    assert "dependency cycle a -> c -> b -> a" in message
    assert "remove one of these depends_on entries" in message


def test_duplicate_endpoint_ids(tmp_path):
    message = problems(tmp_path, job_doc(endpoints=[endpoint("a"), endpoint("a")]))
    assert "duplicate endpoint ids ['a']" in message
    assert "unique id" in message


def test_min_interval_above_max_interval(tmp_path):
    message = problems(tmp_path, job_doc(guardrails={"min_interval": "2h", "max_interval": "1h"}))
    assert "guardrails" in message
    assert "make min_interval <= max_interval" in message


def test_bad_cron_names_the_cron_field(tmp_path):
    message = problems(tmp_path, job_doc(schedule={"cron": "0 24 * * *"}))
    assert "schedule.cron" in message
    assert "'hour'" in message
    assert "use 0-23" in message


def test_unknown_timezone(tmp_path):
    message = problems(tmp_path, job_doc(schedule={"cron": "0 9 * * *", "timezone": "Mars/Olympus"}))
    assert "schedule.timezone" in message
    assert "IANA" in message


def test_non_http_url_names_the_endpoint(tmp_path):
    message = problems(tmp_path, job_doc(endpoints=[endpoint("a", url="file:///etc/passwd")]))
    assert "endpoints[0:a].url" in message
    assert "use an http:// or https:// URL" in message


def test_schedule_needs_exactly_one_kind(tmp_path):
    message = problems(tmp_path, job_doc(schedule={"cron": "0 9 * * *", "rate": "5m"}))
    assert "exactly one of 'cron', 'rate' or 'at'" in message


def test_unknown_field_and_missing_field(tmp_path):
    doc = job_doc(shedule={"rate": "5m"})
    del doc["schedule"]
    message = problems(tmp_path, doc)
    assert "shedule: unknown field" in message
    assert "schedule: required field is missing" in message


def test_job_id_that_would_break_execution_names(tmp_path):
    message = problems(tmp_path, job_doc(job_id="Bad Id/With:colon"))
    assert "id must be lower-case letters, digits and '-'" in message


def test_too_many_endpoints_for_max_steps(tmp_path):
    message = problems(tmp_path, job_doc(guardrails={"max_steps": 1}))
    assert "exceed guardrails.max_steps (1)" in message


def test_invalid_yaml_syntax(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("id: [unclosed\n")
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)
    assert "not valid YAML" in str(caught.value)


def test_longest_job_id_gives_a_legal_execution_name():
    from datetime import UTC, datetime

    from cronpilot.models.run import make_run_id, parse_run_id

    from tests.support.factories import make_job

    job = make_job("a" * 63)
    run_id = make_run_id(job.id, datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    assert len(run_id) <= 80
    assert not set(run_id) & set(' <>{}[]?*"#%\\^|~`$&,;:/')
    assert parse_run_id(run_id) == (job.id, "20261122T090000Z")


def test_ai_guardrails_have_defaults_and_limits(tmp_path):
    job = load_job_file(write(tmp_path, job_doc()))
    assert job.guardrails.max_decision_age.total_seconds() == 24 * 3600
    assert job.guardrails.max_pause.total_seconds() == 7 * 24 * 3600
    assert job.llm.consult == "on-news"
    message = problems(tmp_path, job_doc(guardrails={"max_decision_age": "31d"}))
    assert "guardrails.max_decision_age: max_decision_age 31d is outside 1m..30d" in message
    assert "at most 30d" in message
    message = problems(tmp_path, job_doc(guardrails={"max_pause": "10s"}))
    assert "guardrails.max_pause: max_pause 10s is shorter than 1m: use e.g. 7d" in message


def test_watch_expressions_must_be_jmespath(tmp_path):
    job = load_job_file(write(tmp_path, job_doc(endpoints=[endpoint("a", watch=["data.items[0].version"])])))
    assert job.endpoints[0].watch == ("data.items[0].version",)
    message = problems(tmp_path, job_doc(endpoints=[endpoint("a", watch=["status", "data[?"])]))
    assert "endpoints[0:a].watch: watch[1] 'data[?' is not a JMESPath expression" in message
    assert "write e.g. 'status'" in message


def test_consult_is_on_news_or_every_run(tmp_path):
    message = problems(tmp_path, job_doc(llm={"consult": "sometimes"}))
    assert "llm.consult" in message

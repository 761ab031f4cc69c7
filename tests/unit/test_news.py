"""What counts as news for the AI pilot: each kind detected on its own, and nothing else is news."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cronpilot.clock import FixedClock
from cronpilot.domain.discovery import Discovery
from cronpilot.domain.news import (
    ASK_AI_TRIGGER,
    NewsKind,
    find_news,
    inputs_of,
    latest_observations,
    observe,
    outcome_class,
    size_class,
)
from cronpilot.domain.operations import trigger_job
from cronpilot.models.run import RunRecord, StandingDecision, StepResult, StepStatus

from tests.support.factories import endpoint, make_job
from tests.support.memory import InMemoryStore, RecordingStarter

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _job(**fields):
    doc = {
        "schedule": {"rate": "15m"},
        "endpoints": [
            endpoint("orders", watch=["data.version", "status"]),
            endpoint("ping", url="https://other.example.com/ping"),
        ],
    }
    doc.update(fields)
    return make_job("news-job", **doc)


def _ok(endpoint_id: str, body: object = None, **fields) -> StepResult:
    text = json.dumps(body if body is not None else {"status": "ok", "data": {"version": 1}})
    values = {"http_status": 200, "content_type": "application/json; charset=utf-8", "body_bytes": len(text)}
    values.update(fields)
    return StepResult(
        step_id=endpoint_id, endpoint_id=endpoint_id, status=StepStatus.SUCCEEDED, body=text, **values
    )


def _decision(job, results, *, circuits=None, valid_for=timedelta(hours=24), consult_again_at=None):
    return StandingDecision(
        phase="summarize",
        run_id="news-job.20261122T083000Z",
        decided_at=NOW - timedelta(minutes=30),
        valid_until=NOW - timedelta(minutes=30) + valid_for,
        consult_again_at=consult_again_at,
        inputs=inputs_of(job, circuits or {}, observe(job, results)),
    )


BASE = [_ok("orders"), _ok("ping", {"pong": True})]


def _news_after(results, *, job=None, circuits=None, trigger="schedule", **decision):
    before = _job()
    standing = _decision(before, BASE, **decision)
    current = job or before
    return find_news(
        standing, inputs_of(current, circuits or {}, observe(current, results)), now=NOW, trigger=trigger
    )


def test_the_same_inputs_are_no_news():
    assert _news_after([_ok("orders"), _ok("ping", {"pong": True})]) == []


def test_reordered_json_keys_and_a_different_body_size_within_its_class_are_no_news():
    body = {"data": {"version": 1}, "status": "ok", "extra_padding_is_not_a_key_change": None}
    changed = _news_after(
        [_ok("orders", {"data": {"version": 1}, "status": "ok"}), _ok("ping", {"pong": True})]
    )
    assert changed == []
    assert [n.kind for n in _news_after([_ok("orders", body), BASE[1]])] == [NewsKind.RESPONSE]


def test_no_standing_decision_is_news():
    job = _job()
    news = find_news(None, inputs_of(job, {}, observe(job, BASE)), now=NOW, trigger="schedule")
    assert [n.kind for n in news] == [NewsKind.FIRST]


def test_a_changed_job_definition_is_news_but_pausing_it_is_not():
    changed = _job(goal="a new goal")
    assert [n.kind for n in _news_after(BASE, job=changed)] == [NewsKind.JOB_CHANGED]
    paused = _job(status="paused")
    assert _news_after(BASE, job=paused) == []


@pytest.mark.parametrize(("state", "news"), [("open", True), ("half-open", True), ("closed", False)])
def test_a_circuit_that_opened_is_news(state, news):
    found = _news_after(BASE, circuits={"ping": state})
    assert [n.kind for n in found] == ([NewsKind.CIRCUIT] if news else [])
    if news:
        assert "'ping' circuit closed -> open" in str(found[0])


def test_a_circuit_that_closed_again_is_news():
    before = _job()
    standing = _decision(before, BASE, circuits={"ping": "open"})
    news = find_news(
        standing, inputs_of(before, {"ping": "closed"}, observe(before, BASE)), now=NOW, trigger="s"
    )
    assert [str(n) for n in news] == ["circuit: endpoint 'ping' circuit open -> closed"]


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (_ok("orders"), "success/2xx"),
        (StepResult(step_id="o", endpoint_id="o", status="failed", http_status=503), "failure/5xx"),
        (StepResult(step_id="o", endpoint_id="o", status="failed", http_status=404), "failure/4xx"),
        (StepResult(step_id="o", endpoint_id="o", status="failed", error_kind="timeout"), "timeout"),
        (StepResult(step_id="o", endpoint_id="o", status="failed", error_kind="connect"), "failure/connect"),
        (StepResult(step_id="o", endpoint_id="o", status="skipped", skip_reason="circuit-open"), "skipped"),
    ],
)
def test_outcome_classes(result, outcome):
    assert outcome_class(result) == outcome


def test_a_changed_outcome_class_is_news():
    failed = StepResult(step_id="orders", endpoint_id="orders", status="failed", http_status=503, body="")
    news = _news_after([failed, BASE[1]])
    assert [str(n) for n in news] == ["outcome: endpoint 'orders' success/2xx -> failure/5xx"]


@pytest.mark.parametrize(
    ("changed", "detail"),
    [
        (_ok("orders", http_status=201), "status 200 -> 201"),
        (_ok("orders", content_type="text/html"), "content type application/json -> text/html"),
        (_ok("orders", body_bytes=50_000), "body size <1KB -> 10-100KB"),
        (_ok("orders", {"status": "ok", "data": {"version": 1}, "new": 1}), "top-level JSON keys changed"),
        (_ok("orders", {"status": "ok", "data": {"version": 2}}), "watched 'data.version' changed"),
        (_ok("orders", {"status": "degraded", "data": {"version": 1}}), "watched 'status' changed"),
    ],
)
def test_each_part_of_the_response_fingerprint_is_news(changed, detail):
    news = _news_after([changed, BASE[1]])
    assert [n.kind for n in news] == [NewsKind.RESPONSE]
    assert detail in str(news[0])


def test_an_unwatched_value_is_no_news():
    # ping watches nothing: its values may change freely while its keys stay the same
    assert _news_after([BASE[0], _ok("ping", {"pong": False})]) == []


def test_an_endpoint_not_called_this_run_is_no_news_and_one_seen_first_is():
    assert _news_after([BASE[0]]) == []
    job = _job(endpoints=[*(_job().model_dump()["endpoints"]), endpoint("new")])
    news = _news_after([*BASE, _ok("new")], job=job)
    assert {n.kind for n in news} == {NewsKind.JOB_CHANGED, NewsKind.OUTCOME}


def test_an_expired_decision_is_news():
    news = _news_after(BASE, valid_for=timedelta(minutes=30))
    assert [n.kind for n in news] == [NewsKind.EXPIRED]
    assert _news_after(BASE, valid_for=timedelta(minutes=31)) == []


def test_the_models_consult_again_time_is_news_once_reached():
    assert _news_after(BASE, consult_again_at=NOW + timedelta(seconds=1)) == []
    assert [n.kind for n in _news_after(BASE, consult_again_at=NOW)] == [NewsKind.CONSULT_AGAIN]


def test_an_operator_ask_ai_trigger_is_news():
    assert [n.kind for n in _news_after(BASE, trigger=ASK_AI_TRIGGER)] == [NewsKind.ASK_AI]
    assert _news_after(BASE, trigger="manual") == []


def test_every_run_consults_always():
    job = _job()
    standing = _decision(job, BASE)
    inputs = inputs_of(job, {}, observe(job, BASE))
    assert find_news(standing, inputs, now=NOW, trigger="schedule", every_run=False) == []
    assert [n.kind for n in find_news(standing, inputs, now=NOW, trigger="s", every_run=True)] == [
        NewsKind.EVERY_RUN
    ]


def test_truncated_or_non_json_bodies_are_unreadable_not_guessed():
    job = _job()
    truncated = _ok("orders", body_truncated=True)
    html = StepResult(step_id="ping", endpoint_id="ping", status="succeeded", http_status=200, body="<html>")
    seen = observe(job, [truncated, html])
    assert seen["orders"].keys == "unreadable"
    assert seen["orders"].watch == {"data.version": "unreadable", "status": "unreadable"}
    assert seen["ping"].keys == "unreadable"


def test_size_classes_are_orders_of_magnitude():
    assert [size_class(n) for n in (0, 1, 999, 1_000, 99_999, 100_000, 2_000_000)] == [
        "empty",
        "<1KB",
        "<1KB",
        "1-10KB",
        "10-100KB",
        "100KB-1MB",
        ">=1MB",
    ]


def test_the_latest_observations_are_each_endpoints_newest():
    job = _job()
    older = RunRecord.claimed(job.id, NOW - timedelta(minutes=30), 1, "schedule", NOW)
    older.observations = observe(job, BASE)
    refused = StepResult(step_id="ping", endpoint_id="ping", status="skipped", skip_reason="circuit-open")
    newer = RunRecord.claimed(job.id, NOW - timedelta(minutes=15), 2, "schedule", NOW)
    newer.observations = observe(job, [_ok("orders", {"status": "ok", "data": {"version": 2}}), refused])
    assert set(newer.observations) == {"orders"}  # a refused step says nothing about its endpoint
    in_flight = RunRecord.claimed(job.id, NOW, 3, "schedule", NOW)
    latest = latest_observations([in_flight, newer, older])
    assert latest == {"orders": newer.observations["orders"], "ping": older.observations["ping"]}
    assert latest_observations([]) == {}


def test_an_operator_trigger_with_ask_ai_claims_a_run_whose_trigger_is_news():
    # Given a job triggered by an operator with --ask-ai
    store, starter = InMemoryStore(), RecordingStarter()
    job = _job()
    store.put_job(job, next_run_at=NOW + timedelta(hours=1), source="baseline", reason="test", now=NOW)
    trigger_job(store, job.id, NOW, ask_ai=True)
    # When discovery claims it
    claimed = Discovery(store, starter, FixedClock(NOW), owner="tick").tick().claimed
    # Then the run's trigger is ask-ai, which is news for both phases
    run = store.get_run(claimed[0])
    assert run.trigger == ASK_AI_TRIGGER
    inputs = inputs_of(job, {}, observe(job, BASE))
    assert [n.kind for n in find_news(_decision(job, BASE), inputs, now=NOW, trigger=run.trigger)] == [
        NewsKind.ASK_AI
    ]

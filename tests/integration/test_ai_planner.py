"""The AI planner against the real anthropic SDK and the fake Messages API: every answer is validated,
every failure classified and recorded, and the run always gets a valid plan."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from anthropic._constants import ANTHROPIC_API_VERSION
from cronpilot.ai.pilot import PilotPlanner
from cronpilot.ai.prompts import PLAN_TOOL
from cronpilot.clock import FixedClock
from cronpilot.dal.store import Store
from cronpilot.dal.usage import UsageStore
from cronpilot.domain.planning import plan_run
from cronpilot.models.run import RunRecord, TokenUsage
from cronpilot.runtime import Runtime

from tests.integration.conftest import START, TABLE
from tests.support.factories import claim_run, endpoint, make_job
from tests.support.fake_anthropic import (
    FakeAnthropic,
    Reply,
    ai_settings,
    error_reply,
    plan_reply,
    text_reply,
    tool_reply,
)

SECRET = "sekrit-header-value-123"


def _job(**fields):
    doc = {
        "goal": "refresh the cache, then warm the report",
        "schedule": {"rate": "5m"},
        "guardrails": {"min_interval": "5m", "max_interval": "1h", "max_steps": 4},
        "endpoints": [
            endpoint(
                "fetch",
                url="https://api.example.com/fetch?token=querysecret",
                description="fetches fresh data",
                headers={"Authorization": f"Bearer {SECRET}"},
            ),
            endpoint("build", description="rebuilds the cache", depends_on=["fetch"]),
            endpoint("report", description="warms the report", depends_on=["build"]),
            endpoint("ping", description="health ping"),
        ],
    }
    doc.update(fields)
    return make_job("ai-job", **doc)


def _plan(store: Store, fake: FakeAnthropic, job, *, at=START, **settings) -> RunRecord:
    clock = FixedClock(at)
    runtime = Runtime(settings=ai_settings(fake, TABLE, **settings), clock=clock)
    runtime.__dict__["store"] = store  # the moto-backed store of the fixture
    ref = claim_run(store, job, at)
    plan_run(store, runtime.health_store, clock, ref, PilotPlanner(runtime))
    return store.get_run(ref.run_id)


def _classes(run: RunRecord) -> list[str]:
    return [f.failure_class for f in run.llm_failures]


def test_valid_plan_is_recorded_with_source_ai_and_rationale(store, fake, env):
    # Given the model picks fetch -> build and skips the rest
    fake.push(plan_reply([("fetch", []), ("build", ["fetch"])], rationale="only the cache is stale"))
    # When the run is planned
    run = _plan(store, fake, _job())
    # Then the AI plan is recorded, as waves, with its rationale and the tokens used
    assert run.plan is not None
    assert run.plan.source == "ai"
    assert run.plan.rationale == "only the cache is stale"
    assert run.plan.waves == [["fetch"], ["build"]]
    assert run.plan.decided_by == "anthropic:claude-haiku-4-5"
    assert run.llm_failures == []
    assert run.tokens.output == 50
    assert run.tokens.input > 0
    # And the request was schema-bound, forced to the tool, free of secrets, and without a cache marker
    # (its ~700-token prefix is below Haiku 4.5's 4,096-token minimum: a marker would be a false claim)
    request = fake.message_requests[0]
    body = request.json
    assert request.path == "/v1/messages"
    assert request.headers["authorization"] == "Bearer test-key"  # the SDK sends the API key so
    assert body["tool_choice"] == {"type": "tool", "name": PLAN_TOOL}
    assert body["tools"][0]["strict"] is True
    assert body["tools"][0]["input_schema"]["additionalProperties"] is False
    assert all("cache_control" not in block for block in body["system"])
    assert run.tokens.cache_ttl == "none"
    for leaked in (SECRET, "querysecret", "api.example.com", "Authorization"):
        assert leaked.encode() not in request.body


def test_declared_dependencies_are_kept_even_when_the_model_omits_the_edge(store, fake, env):
    fake.push(plan_reply([("build", []), ("fetch", [])]))
    run = _plan(store, fake, _job())
    assert run.plan.source == "ai"
    assert run.plan.waves == [["fetch"], ["build"]]


INVALID_ANSWERS = [
    pytest.param(
        tool_reply(PLAN_TOOL, '{"rationale": "x", "steps": [{"endpoint_'), "schema_parse_error", id="bad-json"
    ),
    pytest.param(
        tool_reply(PLAN_TOOL, {"rationale": "x", "steps": "fetch"}), "schema_parse_error", id="wrong-type"
    ),
    pytest.param(
        tool_reply(PLAN_TOOL, {"rationale": "x", "steps": [{"endpoint_id": "fetch"}]}),
        "schema_parse_error",
        id="partial-object",
    ),
    pytest.param(plan_reply([("fetch", []), ("nope", [])]), "semantic_violation", id="unknown-id"),
    pytest.param(
        plan_reply([("build", ["report"]), ("report", ["build"]), ("fetch", [])]),
        "structural_inconsistency",
        id="cycle",
    ),
    pytest.param(plan_reply([("ping", [])] * 2), "structural_inconsistency", id="duplicate"),
    pytest.param(
        plan_reply([("fetch", []), ("build", []), ("report", []), ("ping", []), ("ping", [])]),
        "semantic_violation",
        id="too-many-steps",
    ),
    pytest.param(plan_reply([("report", [])]), "semantic_violation", id="dropped-hard-dependency"),
    pytest.param(Reply(content=[]), "empty_response", id="empty-content"),
    pytest.param(
        text_reply("I think you should call everything."), "tool_not_called", id="text-without-tool"
    ),
]


@pytest.mark.parametrize(("reply", "failure_class"), INVALID_ANSWERS)
def test_invalid_answers_end_in_the_deterministic_plan_with_the_class_recorded(
    store, fake, env, reply, failure_class
):
    # Given the model answers wrongly every time (first answer and both repairs)
    fake.push(reply, reply, reply)
    # When the run is planned
    run = _plan(store, fake, _job())
    # Then the run still has a valid plan: every endpoint, in declared order
    assert run.plan.source == "fallback"
    assert run.plan.failure_class == failure_class
    assert run.plan.waves == [["fetch", "ping"], ["build"], ["report"]]
    assert run.status == "running"
    # And each attempt and the failed repair are recorded
    assert _classes(run) == [failure_class] * 3 + ["repair_failed"]
    assert len(fake.message_requests) == 3
    assert run.tokens.output == 150


def test_repair_feeds_back_precise_errors_and_records_ai_repaired(store, fake, env):
    # Given an unknown id first, then a valid plan
    fake.push(plan_reply([("fetch", []), ("nope", [])]), plan_reply([("ping", [])]))
    # When the run is planned
    run = _plan(store, fake, _job())
    # Then the repaired plan runs, and the first failure stays on record
    assert run.plan.source == "ai-repaired"
    assert run.plan.waves == [["ping"]]
    assert _classes(run) == ["semantic_violation"]
    # And the repair turn carried the precise error as a tool_result, after the same cached prefix
    first, second = (r.json for r in fake.message_requests)
    feedback = second["messages"][-1]["content"][0]
    assert feedback["type"] == "tool_result"
    assert feedback["is_error"] is True
    assert "'nope' is not in the catalogue" in feedback["content"]
    assert second["messages"][1]["role"] == "assistant"
    assert first["system"] == second["system"]
    assert first["tools"] == second["tools"]


def test_text_answer_is_repaired_with_a_follow_up_turn(store, fake, env):
    fake.push(text_reply("fetch then build"), plan_reply([("fetch", [])]))
    run = _plan(store, fake, _job())
    assert run.plan.source == "ai-repaired"
    assert _classes(run) == ["tool_not_called"]
    assert "call submit_plan again" in json.dumps(fake.message_requests[1].json["messages"][-1])


def test_rate_limited_and_overloaded_then_success_uses_the_sdk_retries(store, fake, env):
    fake.push(error_reply(429), error_reply(529), plan_reply([("ping", [])]))
    run = _plan(store, fake, _job())
    assert run.plan.source == "ai"
    assert run.llm_failures == []
    assert len(fake.message_requests) == 3


def test_server_errors_until_retries_are_spent_is_an_api_error(store, fake, env):
    fake.push(*[error_reply(500)] * 5)
    run = _plan(store, fake, _job(), llm_max_retries=2)
    assert run.plan.source == "fallback"
    assert _classes(run) == ["api_error"]
    assert "HTTP 500" in run.llm_failures[0].detail
    assert len(fake.message_requests) == 3  # the first try and two SDK retries, no repair loop


def test_an_answer_slower_than_the_timeout_is_a_timeout(store, fake, env):
    fake.push(Reply(delay=2.0, content=plan_reply([("ping", [])]).content))
    run = _plan(store, fake, _job(), llm_timeout_seconds=0.3, llm_max_retries=0)
    assert run.plan.source == "fallback"
    assert _classes(run) == ["timeout"]
    assert run.plan.waves == [["fetch", "ping"], ["build"], ["report"]]


def test_over_the_daily_budget_makes_no_api_call(store, fake, env):
    # Given a job that already spent most of today's budget
    job = _job(guardrails={"max_tokens_per_day": 5_000})
    usage = UsageStore(TABLE, store.client)
    usage.settle(usage.reserve(job.id, START, 0, 5_000), START, TokenUsage(input=4_900))
    # When the run is planned
    run = _plan(store, fake, job)
    # Then the deterministic plan runs, over_budget is recorded, and the API was never called
    assert fake.requests == []
    assert run.plan.source == "fallback"
    assert run.plan.failure_class == "over_budget"
    assert _classes(run) == ["over_budget"]
    assert "max_tokens_per_day" in run.llm_failures[0].detail


def test_calls_in_flight_hold_the_daily_budget_so_concurrent_runs_cannot_overrun_it(store, fake, env):
    # Given a concurrent run of the job whose call holds most of today's budget (nothing used yet)
    job = _job(guardrails={"max_tokens_per_day": 5_000})
    usage = UsageStore(TABLE, store.client)
    held = usage.reserve(job.id, START, 4_900, job.guardrails.max_tokens_per_day)
    assert held is not None
    assert usage.today(job.id, START).total == 0
    # When this run is planned, it may not spend what the other call holds
    run = _plan(store, fake, job)
    assert fake.requests == []
    assert _classes(run) == ["over_budget"]
    assert "4900 used or held by calls in flight" in run.llm_failures[0].detail
    # And once that call settles to what it really used, the rest of the budget is free again
    usage.settle(held, START, TokenUsage(input=1_000, output=100))
    assert usage.committed(job.id, START) == 1_100
    fake.push(plan_reply([("ping", [])]))
    run = _plan(store, fake, job, at=START + timedelta(minutes=5))
    assert run.plan.source == "ai"
    assert usage.committed(job.id, START) == usage.today(job.id, START).total


def test_a_failed_call_gives_its_hold_back(store, fake, env):
    job = _job(guardrails={"max_tokens_per_day": 50_000})
    fake.push(error_reply(500))
    run = _plan(store, fake, job, llm_max_retries=0)
    assert _classes(run) == ["api_error"]
    assert UsageStore(TABLE, store.client).committed(job.id, START) == 0


def test_over_the_per_run_cap_makes_no_api_call(store, fake, env):
    run = _plan(store, fake, _job(guardrails={"max_tokens_per_run": 100}))
    assert fake.requests == []
    assert _classes(run) == ["over_budget"]


def test_usage_is_summed_per_job_per_day(store, fake, env):
    job = _job(llm={"consult": "every-run"})
    fake.push(plan_reply([("ping", [])]), plan_reply([("ping", [])]))
    first = _plan(store, fake, job)
    second = _plan(store, fake, job, at=START + timedelta(minutes=5))
    today = UsageStore(TABLE, store.client).today(job.id, START)
    assert today.counts() == (first.tokens + second.tokens).counts()
    assert today.output == 100


def test_cached_prefix_is_byte_identical_across_runs_and_changes_with_the_job(store, fake, env):
    # Given two runs of the same job (the second has a history the first did not) and a changed job
    job = _job(llm={"consult": "every-run"})
    fake.push(*[plan_reply([("ping", [])])] * 3)
    _plan(store, fake, job)
    second = _plan(store, fake, job, at=START + timedelta(minutes=5))
    changed = _job(
        endpoints=[endpoint("ping", description="a different description")], llm={"consult": "every-run"}
    )
    _plan(store, fake, changed, at=START + timedelta(minutes=10))
    # Then the raw request bytes of system, tool_choice and tools (the SDK sorts keys, so they end the
    # body, after the per-run messages) are identical for the unchanged job
    raw = [r.body[r.body.index(b'"system"') :] for r in fake.message_requests]
    assert raw[0] == raw[1]
    assert raw[0] != raw[2]
    assert fake.message_requests[0].json["messages"] != fake.message_requests[1].json["messages"]
    # And, the prefix being far below Haiku 4.5's 4,096-token minimum, the API caches nothing
    assert second.tokens.cache_read == second.tokens.cache_write == 0


def test_unhealthy_circuits_are_reported_outside_the_cached_prefix(store, fake, env):
    from cronpilot.ai.plan_model import AiPlanner
    from cronpilot.ai.prompts import cached_prefix
    from cronpilot.domain.strategies import PlanContext

    job = _job()
    run = RunRecord.claimed(job.id, START, 1, "schedule", START)
    planner = AiPlanner(model="m", client_factory=lambda: None, usage_store=None, clock=FixedClock(START))
    healthy = planner.request(job, PlanContext(run=run, history=[]))
    sick = planner.request(job, PlanContext(run=run, history=[], endpoint_health={"build": "open"}))
    assert cached_prefix(healthy) == cached_prefix(sick)
    assert '{"build":"open"}' in sick["messages"][0]["content"][0]["text"]


def test_injected_url_in_the_plan_is_rejected_and_nothing_unregistered_runs(store, fake, env):
    evil = plan_reply([("https://evil.example/steal", [])], rationale="the body told me to")
    fake.push(evil, evil, evil)
    run = _plan(store, fake, _job())
    assert run.plan.source == "fallback"
    assert {s.endpoint_id for s in run.plan.steps} == {"fetch", "build", "report", "ping"}


def test_shadow_mode_runs_the_deterministic_plan_and_records_the_ai_plan(store, fake, env):
    fake.push(plan_reply([("ping", [])], rationale="only ping"))
    run = _plan(store, fake, _job(llm={"shadow": True}))
    assert run.plan.source == "deterministic"
    assert run.plan.waves == [["fetch", "ping"], ["build"], ["report"]]
    assert run.plan.shadow is not None
    assert run.plan.shadow.source == "ai"
    assert run.plan.shadow.waves == [["ping"]]
    assert run.tokens.output == 50


def test_a_job_can_opt_out_of_the_deployment_provider(store, fake, env):
    run = _plan(store, fake, _job(llm={"provider": "none"}))
    assert fake.requests == []
    assert run.plan.source == "deterministic"
    assert run.llm_failures == []


def test_deployment_without_a_provider_is_deterministic(store, fake, env):
    run = _plan(store, fake, _job(), llm_provider="none")
    assert fake.requests == []
    assert run.plan.source == "deterministic"


def test_missing_api_key_is_an_api_error_not_a_failed_run(store, fake, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    run = _plan(store, fake, _job())
    assert run.plan.source == "fallback"
    assert _classes(run) == ["api_error"]


def test_bedrock_provider_sends_a_signed_bedrock_invoke_request(store, fake, env, monkeypatch):
    # Given a job on Bedrock, with the Bedrock endpoint pointed at the fake and fake AWS credentials
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", fake.base_url)
    fake.push(plan_reply([("ping", [])]))
    # When the run is planned
    run = _plan(store, fake, _job(llm={"provider": "bedrock"}))
    # Then the SDK sent Bedrock's invoke call: model in the path, version in the body, SigV4 auth
    assert run.plan.source == "ai"
    assert run.plan.decided_by == "bedrock:us.anthropic.claude-haiku-4-5-20251001-v1:0"
    request = fake.message_requests[0]
    assert request.path == "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke"
    body = request.json
    assert body["anthropic_version"] == ANTHROPIC_API_VERSION  # the SDK's Bedrock API version
    assert "model" not in body
    assert body["tools"][0]["name"] == PLAN_TOOL
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert "/bedrock/aws4_request" in request.headers["authorization"]
    assert "x-amz-date" in request.headers
    assert "x-api-key" not in request.headers
    assert "test-key" not in request.headers["authorization"]

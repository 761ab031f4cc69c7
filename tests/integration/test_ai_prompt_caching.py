"""The planner's and summarizer's requests against the fake Messages API with the real caching rules:
a breakpoint only where the prefix reaches the model's minimum, a hit within the TTL, a miss after it."""

from __future__ import annotations

from datetime import timedelta

from cronpilot.ai.pilot import PilotPlanner, PilotSummarizer
from cronpilot.clock import FixedClock
from cronpilot.dal.store import Store
from cronpilot.domain.planning import plan_run
from cronpilot.domain.strategies import SummaryContext
from cronpilot.models.run import RunRecord, StepResult
from cronpilot.runtime import Runtime

from tests.integration.conftest import START, TABLE
from tests.support.factories import claim_run, endpoint, make_job
from tests.support.fake_anthropic import FakeAnthropic, ai_settings, next_run_reply, plan_reply

BIG = "returns the full inventory of one warehouse region, with stock levels per article " * 4


def _job(endpoints: int, rate: str = "15m"):
    eps = [
        endpoint(f"ep{n}", description=f"{BIG} ({n})" if endpoints > 5 else "pings") for n in range(endpoints)
    ]
    return make_job(
        "cache-job",
        endpoints=eps,
        schedule={"rate": rate},
        guardrails={"max_steps": 100, "min_interval": "1m", "max_interval": "1d"},
        # every run calls the model: these tests are about the cache between calls, not about reuse
        llm={"consult": "every-run"},
    )


def _plan(store: Store, fake: FakeAnthropic, job, at) -> RunRecord:
    fake.push(plan_reply([("ep0", [])]))
    clock = FixedClock(at)
    runtime = Runtime(settings=ai_settings(fake, TABLE), clock=clock)
    runtime.__dict__["store"] = store
    ref = claim_run(store, job, at)
    plan_run(store, runtime.health_store, clock, ref, PilotPlanner(runtime))
    return store.get_run(ref.run_id)


def test_a_small_job_sends_no_breakpoint_and_caches_nothing(store, fake, env):
    job = _job(2)
    first = _plan(store, fake, job, START)
    fake.advance(15 * 60)
    second = _plan(store, fake, job, START + timedelta(minutes=15))
    body = fake.message_requests[0].json
    assert not any("cache_control" in block for block in body["system"] + body["tools"])
    for run in (first, second):
        assert (run.tokens.cache_write, run.tokens.cache_read) == (0, 0)
        assert run.tokens.cache_ttl == "none"
        assert "minimum 4096" in (run.tokens.cache_reason or "")


def test_a_prefix_over_the_minimum_is_read_by_the_next_run_within_the_ttl(store, fake, env):
    # Given a job whose catalogue brings the prefix over Haiku 4.5's minimum, every 15 minutes
    job = _job(40)
    first = _plan(store, fake, job, START)
    fake.advance(15 * 60)
    second = _plan(store, fake, job, START + timedelta(minutes=15))
    # Then the first run writes the prefix with a 1h TTL and the second reads it
    assert fake.message_requests[0].json["system"][1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert first.tokens.cache_write >= 4096
    assert first.tokens.cache_write_1h == first.tokens.cache_write
    assert first.tokens.cache_ttl == "1h"
    assert (second.tokens.cache_read, second.tokens.cache_write) == (first.tokens.cache_write, 0)
    # And reading is cheaper than writing
    assert second.tokens.cost_usd < first.tokens.cost_usd


def test_the_entry_is_gone_after_its_ttl(store, fake, env):
    job = _job(40)
    _plan(store, fake, job, START)
    fake.advance(3601)
    late = _plan(store, fake, job, START + timedelta(minutes=61))
    assert late.tokens.cache_read == 0
    assert late.tokens.cache_write > 0


def test_the_summarizer_reads_what_the_planner_wrote_in_the_same_run(store, fake, env):
    # Given a job that runs every 2 hours: nothing survives between runs, so a 5m entry is chosen
    job = _job(40, rate="2h")
    planned = _plan(store, fake, job, START)
    fake.advance(60)
    fake.push(next_run_reply(interval_seconds=7200))
    runtime = Runtime(settings=ai_settings(fake, TABLE), clock=FixedClock(START + timedelta(minutes=1)))
    runtime.__dict__["store"] = store
    results = [StepResult(step_id="ep0", endpoint_id="ep0", status="succeeded", http_status=200, body="{}")]
    proposal = PilotSummarizer(runtime).propose(
        job, SummaryContext(run=planned, results=results, now=START + timedelta(minutes=1))
    )
    assert planned.tokens.cache_ttl == proposal.tokens.cache_ttl == "5m"
    assert proposal.tokens.cache_read == planned.tokens.cache_write > 0
    assert proposal.tokens.cache_write == 0

"""Where prompt-cache breakpoints go and which TTL they get: pure functions, no SDK, no network."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from cronpilot.ai import caching
from cronpilot.ai.caching import (
    MIN_CACHEABLE_TOKENS,
    UNKNOWN_MODEL_MINIMUM,
    cache_ttl_of,
    choose_ttl,
    job_cadence,
    low_token_estimate,
    min_cacheable_tokens,
    place_breakpoints,
)
from cronpilot.ai.pricing import LIST_PRICES
from cronpilot.ai.prompts import PILOT_RULES, plan_request
from cronpilot.models.run import RunRecord

from tests.support import fake_anthropic
from tests.support.factories import endpoint, make_job

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
HAIKU = LIST_PRICES["claude-haiku-4-5"]


def _job(endpoints: int = 3, rate: str = "15m", description: str = "fetches one feed"):
    eps = [endpoint(f"ep{n}", description=f"{description} ({n})") for n in range(endpoints)]
    return make_job("cached", endpoints=eps, schedule={"rate": rate}, guardrails={"max_steps": 100})


def _request(job, model="claude-haiku-4-5"):
    run = RunRecord.claimed(job.id, NOW, 1, "schedule", NOW)
    return plan_request(job, model=model, max_tokens=1024, run=run, history=[], endpoint_health={})


def test_the_minimum_table_matches_the_fake_apis_and_the_documented_figures():
    assert MIN_CACHEABLE_TOKENS == fake_anthropic.MIN_CACHEABLE_TOKENS
    assert min_cacheable_tokens("claude-haiku-4-5") == 4096
    assert min_cacheable_tokens("claude-haiku-4-5-20251001") == 4096
    assert min_cacheable_tokens("eu.anthropic.claude-haiku-4-5-20251001-v1:0") == 4096
    assert min_cacheable_tokens("claude-opus-4-6") == min_cacheable_tokens("claude-opus-4-5") == 4096
    assert min_cacheable_tokens("claude-sonnet-4-6") == min_cacheable_tokens("claude-3-5-haiku") == 2048
    assert min_cacheable_tokens("claude-sonnet-4-5") == min_cacheable_tokens("claude-opus-4-1") == 1024
    assert min_cacheable_tokens("claude-opus-4-20250514") == 1024
    assert min_cacheable_tokens("some-future-model") == UNKNOWN_MODEL_MINIMUM == 4096


@pytest.mark.parametrize("seed", range(50))
def test_the_estimate_never_exceeds_what_the_fake_counts(seed):
    rng = random.Random(seed)
    alphabet = 'abc xyz{}":,é€\n' + "".join(chr(c) for c in range(0x4E00, 0x4E10))
    texts = [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(400))) for _ in range(rng.randrange(6))
    ]
    blocks = [{"type": "text", "text": t} for t in texts]
    fake_count = sum(fake_anthropic.block_tokens(b) for b in blocks)
    assert low_token_estimate(blocks) <= fake_count


def test_the_deployment_rules_are_not_padded_to_reach_a_minimum():
    # The rules are what the model needs, far below every minimum: caching them alone is never claimed
    assert low_token_estimate([{"type": "text", "text": PILOT_RULES}]) < min(MIN_CACHEABLE_TOKENS.values())


def test_no_breakpoint_below_the_minimum():
    request = _request(_job())
    plan = place_breakpoints(request, gap=timedelta(minutes=15), price=HAIKU)
    assert plan.breakpoints == ()
    assert plan.label == "none"
    assert "minimum 4096" in plan.reason
    assert cache_ttl_of(request) == "none"
    assert all("cache_control" not in block for block in request["system"])


def test_a_large_catalogue_gets_a_job_breakpoint_after_it():
    job = _job(endpoints=60, description="returns the full inventory of one warehouse region " * 6)
    request = _request(job)
    plan = place_breakpoints(request, gap=timedelta(minutes=15), price=HAIKU)
    assert plan.breakpoints == ("job",)
    assert plan.prefix_tokens >= 4096
    assert "cache_control" not in request["system"][0]
    assert request["system"][1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_a_model_with_a_low_minimum_caches_the_deployment_part_too():
    job = _job(endpoints=60, description="returns the full inventory of one warehouse region " * 6)
    request = _request(job, model="claude-sonnet-4-5")
    rules_only = low_token_estimate([*request["tools"], request["system"][0]])
    plan = place_breakpoints(request, gap=timedelta(minutes=3), price=LIST_PRICES["claude-sonnet-4-5"])
    if rules_only >= 1024:
        assert plan.breakpoints == ("deployment", "job")
    else:
        assert plan.breakpoints == ("job",)
    assert cache_ttl_of(request) == "5m"


@pytest.mark.parametrize(
    ("gap", "share", "ttl"),
    [
        (timedelta(minutes=1), 1.0, "5m"),  # every run reads; a 5m write is the cheaper write
        (timedelta(minutes=15), 1.0, "1h"),  # a 5m entry dies between runs, a 1h one is read
        (timedelta(minutes=59), 1.0, "1h"),
        (timedelta(hours=2), 1.0, "5m"),  # nothing survives between runs; the summarizer reads the plan's
        (None, 1.0, "5m"),  # a one-off: only the second phase reads
        (timedelta(minutes=15), 0.2, "5m"),  # standing decisions: the next consultation is rarely within 1h
    ],
)
def test_the_ttl_is_the_cheapest_for_the_cadence(gap, share, ttl):
    assert choose_ttl(gap=gap, price=HAIKU, next_use_share=share).ttl == ttl


def test_one_call_a_consultation_over_hours_is_cheapest_uncached():
    choice = choose_ttl(gap=timedelta(hours=3), price=HAIKU, calls=1)
    assert choice.ttl is None
    assert "none 1.00x" in choice.reason


def test_no_price_means_no_premium_paid():
    assert choose_ttl(gap=timedelta(minutes=1), price=None).ttl is None


def test_job_cadence_from_rate_cron_and_one_off():
    assert job_cadence(_job(rate="15m"), NOW) == timedelta(minutes=15)
    cron = make_job("c", schedule={"cron": "0 */2 * * *"})
    assert job_cadence(cron, NOW) == timedelta(hours=2)
    once = make_job("o", schedule={"at": (NOW + timedelta(days=1)).isoformat()})
    assert job_cadence(once, NOW) is None


def test_breakpoints_are_replaced_not_accumulated():
    job = _job(endpoints=60, description="returns the full inventory of one warehouse region " * 6)
    request = _request(job)
    place_breakpoints(request, gap=timedelta(minutes=15), price=HAIKU)
    place_breakpoints(request, gap=timedelta(minutes=1), price=HAIKU)
    markers = [b["cache_control"] for b in request["system"] if "cache_control" in b]
    assert markers == [{"type": "ephemeral"}]
    assert caching.CACHE_MARKER_SEGMENTS == ("deployment", "job")

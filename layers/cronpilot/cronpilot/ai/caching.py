"""Prompt caching that engages: breakpoints only where the API caches, a TTL the job's cadence pays for.

Pure: no SDK, no I/O. The request is tools -> system -> messages, and the API caches a prefix of it up to
a block marked with `cache_control`, but only when that prefix reaches the model's minimum cacheable
length; below it the marker is silently ignored and everything is billed as input. So:
- the deployment-wide part (both tool definitions and the pilot's rules) comes first, identical for every
  job and for both phases, then the job's catalogue, then the per-run text;
- a breakpoint goes after the rules and/or after the catalogue only where a low estimate of the prefix
  before it reaches the minimum (no filler is ever added to get there);
- the TTL (5m, 1h or no breakpoint at all) is whichever the job's cadence makes cheapest, and the choice
  is recorded on the run (TokenUsage.cache_ttl / cache_reason).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cronpilot.ai.pricing import Price, model_family
from cronpilot.domain.scheduling import next_slot
from cronpilot.models.job import Job

# Minimum cacheable prompt length per model, in tokens (the whole prefix up to a breakpoint). From
# "Cache limitations" in https://platform.claude.com/docs/en/build-with-claude/prompt-caching (checked
# 2026-11). Sonnet 4.6 appears at 1,024 in older copies of that page but caches only from 2,048 in
# practice (anthropics/anthropic-sdk-python#1194): the stricter figure is kept.
MIN_CACHEABLE_TOKENS = {
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4": 1024,
    "claude-sonnet-4": 1024,
    "claude-3-7-sonnet": 1024,
}
# A model not in the table gets the strictest minimum: a breakpoint that cannot engage is never claimed.
UNKNOWN_MODEL_MINIMUM = max(MIN_CACHEABLE_TOKENS.values())
# Claude's tokenizer needs ~1 token per 3.5 bytes of English and fewer bytes on JSON; 4.5 bytes a token
# under-counts, so a prefix estimated above the minimum is above it for the API too.
LOW_BYTES_PER_TOKEN = 4.5
TTL_WINDOWS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}
# The planner and the summarizer of one run share the whole cached prefix (same tools, rules, catalogue),
# and the summarizer asks within minutes of the planner: one write serves both.
CALLS_PER_CONSULTATION = 2
CACHE_MARKER_SEGMENTS = ("deployment", "job")

Ttl = Literal["5m", "1h"]


def min_cacheable_tokens(model: str) -> int:
    family = model_family(model, MIN_CACHEABLE_TOKENS)
    return MIN_CACHEABLE_TOKENS[family] if family else UNKNOWN_MODEL_MINIMUM


def low_token_estimate(blocks: list[dict[str, Any]]) -> int:
    """A low estimate of the tokens of tool definitions and text blocks (markers excluded)."""
    return int(sum(_block_bytes(block) for block in blocks) / LOW_BYTES_PER_TOKEN)


def _block_bytes(block: Any) -> int:
    if isinstance(block, dict) and block.get("type") == "text":
        return len(str(block.get("text", "")).encode())
    bare = {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block
    return len(json.dumps(bare, separators=(",", ":"), ensure_ascii=False).encode())


@dataclass(frozen=True)
class TtlChoice:
    ttl: Ttl | None
    reason: str

    @property
    def label(self) -> str:
        return self.ttl or "none"


def choose_ttl(
    *,
    gap: timedelta | None,
    price: Price | None,
    next_use_share: float = 1.0,
    calls: int = CALLS_PER_CONSULTATION,
) -> TtlChoice:
    """The cheapest of no cache, 5m and 1h for a cached prefix, per consultation of the model.

    Costs are in units of "the prefix billed once as input". A consultation makes `calls` calls on the same
    prefix; with a breakpoint the first call writes (or reads, when the previous consultation's entry is
    still alive) and the others read. The previous entry is alive when the gap between consultations is
    inside the TTL (a read refreshes it) — with probability `next_use_share` (the share of runs that
    consult the model; 1.0 when every run does).
    """
    if price is None or price.input <= 0:
        return TtlChoice(None, "no price for this model: no basis to pay a cache-write premium")
    read = price.cache_read / price.input
    writes = {"5m": price.cache_write_5m / price.input, "1h": price.cache_write_1h / price.input}
    costs: dict[Ttl | None, float] = {None: float(calls)}
    for ttl, write in writes.items():
        alive = gap is not None and gap <= TTL_WINDOWS[ttl]
        first = next_use_share * read + (1 - next_use_share) * write if alive else write
        costs[ttl] = first + (calls - 1) * read  # type: ignore[index]
    best = min(costs, key=lambda key: costs[key])  # first wins ties: no cache, then 5m
    cadence = f"every {_short(gap)}" if gap else "once"
    summary = ", ".join(f"{key or 'none'} {value:.2f}x" for key, value in costs.items())
    return TtlChoice(best, f"job runs {cadence}, {calls} calls a consultation: {summary}")


def _short(gap: timedelta) -> str:
    seconds = int(gap.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class CachePlan:
    """Where the breakpoints went in one request, and why."""

    ttl: Ttl | None
    breakpoints: tuple[str, ...]  # "deployment" (after tools + rules), "job" (after the catalogue)
    prefix_tokens: int  # low estimate at the last eligible boundary
    minimum: int
    reason: str

    @property
    def label(self) -> str:
        return self.ttl if self.ttl and self.breakpoints else "none"


def place_breakpoints(
    request: dict[str, Any],
    *,
    gap: timedelta | None,
    price: Price | None,
    next_use_share: float = 1.0,
) -> CachePlan:
    """Mark request["system"][0] (rules) and/or [1] (job catalogue) where the prefix reaches the minimum.

    Mutates the request's system blocks (markers only) and returns what it did.
    """
    system: list[dict[str, Any]] = request["system"]
    for block in system:
        block.pop("cache_control", None)
    minimum = min_cacheable_tokens(str(request["model"]))
    # Running byte totals: the tools are serialized once, and the per-run text after the last eligible
    # boundary is never measured (this runs on every model call).
    size = sum(_block_bytes(tool) for tool in request.get("tools") or [])
    boundaries = []
    for block in system[: len(CACHE_MARKER_SEGMENTS)]:
        size += _block_bytes(block)
        boundaries.append(int(size / LOW_BYTES_PER_TOKEN))
    eligible = [n for n, tokens in enumerate(boundaries) if tokens >= minimum]
    longest = boundaries[-1] if boundaries else 0
    if not eligible:
        return CachePlan(
            None,
            (),
            longest,
            minimum,
            f"prefix ~{longest} tokens < the model's minimum {minimum}: not cacheable",
        )
    choice = choose_ttl(gap=gap, price=price, next_use_share=next_use_share)
    if choice.ttl is None:
        return CachePlan(
            None, (), boundaries[eligible[-1]], minimum, f"no cache is cheapest: {choice.reason}"
        )
    for n in eligible:
        marker: dict[str, Any] = {"type": "ephemeral"}
        if choice.ttl != "5m":
            marker["ttl"] = choice.ttl
        system[n]["cache_control"] = marker
    return CachePlan(
        choice.ttl,
        tuple(CACHE_MARKER_SEGMENTS[n] for n in eligible),
        boundaries[eligible[-1]],
        minimum,
        f"{choice.ttl}: {choice.reason}",
    )


def cache_ttl_of(request: dict[str, Any]) -> str:
    """The TTL a request's markers ask for ("5m", "1h"), or "none" without a marker."""
    blocks = [*(request.get("tools") or []), *(request.get("system") or [])]
    for message in request.get("messages") or []:
        content = message.get("content")
        blocks += content if isinstance(content, list) else []
    ttls = [
        b["cache_control"].get("ttl", "5m")
        for b in blocks
        if isinstance(b, dict) and isinstance(b.get("cache_control"), dict)
    ]
    return ttls[-1] if ttls else "none"


def job_cadence(job: Job, at: datetime) -> timedelta | None:
    """The baseline gap between two runs of the job around `at` (None for a one-off)."""
    first = next_slot(job.schedule, after=at, previous=at)
    second = next_slot(job.schedule, after=first, previous=first) if first else None
    return second - first if first and second else None

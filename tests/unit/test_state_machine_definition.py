"""The one ASL file: the properties the run's guarantees depend on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cronpilot.local.cloud import ASL_PATH, ASL_SUBSTITUTIONS, render_asl

ASL = json.loads(ASL_PATH.read_text())


def states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])


def test_flow_is_plan_waves_summarize():
    assert ASL["StartAt"] == "Plan"
    assert ASL["States"]["Plan"]["Next"] == "Waves"
    assert ASL["States"]["Waves"]["Next"] == "Summarize"
    assert ASL["States"]["Summarize"]["Next"] == "Done"
    assert "QueryLanguage" not in ASL or ASL["QueryLanguage"] == "JSONPath"


def test_waves_run_one_at_a_time_and_steps_up_to_max_parallel():
    waves = ASL["States"]["Waves"]
    assert waves["MaxConcurrency"] == 1
    steps = waves["ItemProcessor"]["States"]["Steps"]
    assert steps["MaxConcurrencyPath"] == "$.max_parallel"
    assert (
        steps["ItemProcessor"]["States"]["Execute"]["Parameters"]["FunctionName"] == "${ExecutorFunctionArn}"
    )


@pytest.mark.parametrize("name", ["Plan", "Waves", "Summarize"])
def test_every_stage_is_caught_into_finalize_failure(name):
    [catch] = ASL["States"][name]["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    assert catch["Next"] == "FinalizeFailure"
    assert catch["ResultPath"] == "$.error"


RUN_LIMITS = {
    "Plan": "$.limits.plan_seconds",
    "Execute": "$.step_seconds",
    "Summarize": "$.limits.summarize_seconds",
}
THROTTLE = "Lambda.TooManyRequestsException"
BURST_FACTOR = 4  # issue 13: a burst of executor_concurrency x 4 simultaneous steps completes


def _execute() -> dict[str, Any]:
    return ASL["States"]["Waves"]["ItemProcessor"]["States"]["Steps"]["ItemProcessor"]["States"]["Execute"]


def test_every_task_has_a_timeout_and_retries_lambda_service_errors_with_full_jitter():
    tasks = [(name, s) for name, s in states(ASL) if s["Type"] == "Task"]
    assert {name for name, _ in tasks} == {"Plan", "Execute", "Summarize", "FinalizeFailure"}
    for name, task in tasks:
        # the stages' timeouts are the run's limits (its job's worst case), so a stage that overruns is
        # caught inside Express's 5 minutes; finalize-failure's own bound is fixed and short
        assert task.get("TimeoutSecondsPath") == RUN_LIMITS.get(name), name
        if name == "FinalizeFailure":
            assert 0 < task["TimeoutSeconds"] <= 60
        errors = [e for retry in task["Retry"] for e in retry["ErrorEquals"]]
        assert "Lambda.ServiceException" in errors, name
        assert errors.count(THROTTLE) == 1, name
        for retry in task["Retry"]:
            assert retry["JitterStrategy"] == "FULL", name
            assert retry["BackoffRate"] > 1, name


def test_the_run_limits_reach_every_step_of_every_wave():
    waves = ASL["States"]["Waves"]
    assert waves["ItemSelector"]["step_seconds.$"] == "$.limits.step_seconds"
    steps = waves["ItemProcessor"]["States"]["Steps"]
    assert steps["ItemSelector"]["step_seconds.$"] == "$.step_seconds"


def _expected_wait(retry: dict[str, Any]) -> float:
    """Seconds a retrier waits in total, on average, before giving up: full jitter draws each delay
    uniformly below its capped exponential backoff."""
    delays = [
        min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry.get("MaxDelaySeconds", float("inf")))
        for n in range(retry["MaxAttempts"])
    ]
    return sum(delays) / 2


def test_throttled_steps_wait_long_enough_for_a_burst_of_four_times_the_concurrency():
    # Given a burst of BURST_FACTOR x concurrency steps, the last ones get a slot after the first
    # (BURST_FACTOR - 1) rounds; a round holds a slot for at most an endpoint's default timeout
    from cronpilot.models.job import Endpoint

    slot_seconds = Endpoint.model_fields["timeout"].default.total_seconds()
    (throttle,) = [r for r in _execute()["Retry"] if THROTTLE in r["ErrorEquals"]]
    assert throttle["ErrorEquals"] == [THROTTLE]
    # Then the throttle retrier waits that long on average before it gives up
    assert _expected_wait(throttle) >= (BURST_FACTOR - 1) * slot_seconds
    # And its longest single wait stays short, so a slot that frees up is taken soon after
    assert throttle["MaxDelaySeconds"] <= slot_seconds


def test_state_stays_small_step_outputs_are_discarded():
    assert ASL["States"]["Waves"]["ResultPath"] is None
    assert ASL["States"]["Waves"]["ItemProcessor"]["States"]["Steps"]["ResultPath"] is None


def test_whole_execution_times_out_before_the_claim_lease():
    from cronpilot.domain.discovery import LEASE_DURATION

    assert ASL["TimeoutSeconds"] < LEASE_DURATION.total_seconds()


def test_render_substitutes_every_function_and_leaves_nothing_behind():
    rendered = render_asl({key: f"arn:aws:lambda:us-east-1:1:function:{key}" for key in ASL_SUBSTITUTIONS})
    assert "${" not in rendered
    with pytest.raises(ValueError, match="substitution"):
        render_asl({})


def test_a_duplicate_step_still_in_progress_is_retried_not_failed():
    execute = _execute()
    errors = [name for retry in execute["Retry"] for name in retry["ErrorEquals"]]
    assert "IdempotencyAlreadyInProgressError" in errors

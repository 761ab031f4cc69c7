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


def test_every_task_has_a_timeout_and_retries_lambda_service_errors_with_full_jitter():
    tasks = [(name, s) for name, s in states(ASL) if s["Type"] == "Task"]
    assert {name for name, _ in tasks} == {"Plan", "Execute", "Summarize", "FinalizeFailure"}
    for name, task in tasks:
        assert 0 < task["TimeoutSeconds"] <= 300, name
        retry = task["Retry"][0]
        assert "Lambda.ServiceException" in retry["ErrorEquals"], name
        assert "Lambda.TooManyRequestsException" in retry["ErrorEquals"], name
        assert retry["JitterStrategy"] == "FULL", name
        assert retry["BackoffRate"] > 1, name


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
    execute = ASL["States"]["Waves"]["ItemProcessor"]["States"]["Steps"]["ItemProcessor"]["States"]["Execute"]
    errors = [name for retry in execute["Retry"] for name in retry["ErrorEquals"]]
    assert "IdempotencyAlreadyInProgressError" in errors

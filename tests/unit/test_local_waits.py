"""Local mode waits as long as a slow model can legitimately take: the arithmetic at default settings."""

from __future__ import annotations

import pytest
from cronpilot.ai import plan_model, summary_model
from cronpilot.ai.client import call_worst_seconds
from cronpilot.ai.conversation import DEADLINE_SECONDS, conversation_worst_seconds
from cronpilot.config import Settings
from cronpilot.local.runner import STEP_ALLOWANCE_SECONDS, run_wait_seconds

DEFAULTS = Settings(table_name="t")


def test_one_call_at_default_settings_can_take_91_5_seconds():
    # 30 s timeout x 3 attempts (2 retries), with the SDK's 0.5 s and 1 s backoff between them
    assert (DEFAULTS.llm_timeout_seconds, DEFAULTS.llm_max_retries) == (30.0, 2)
    assert call_worst_seconds(DEFAULTS) == 30 * 3 + 0.5 + 1.0 == 91.5


def test_each_phase_can_take_a_repair_started_just_before_the_deadline_plus_one_call():
    assert DEADLINE_SECONDS == 60
    assert plan_model.MAX_REPAIRS == 2
    assert summary_model.MAX_REPAIRS == 1
    assert conversation_worst_seconds(91.5, plan_model.MAX_REPAIRS) == 60 + 91.5
    assert conversation_worst_seconds(91.5, summary_model.MAX_REPAIRS) == 60 + 91.5
    # Without repairs a conversation is one call; with a fast model the deadline never binds
    assert conversation_worst_seconds(91.5, 0) == 91.5
    assert conversation_worst_seconds(2.0, 2) == 6.0


def test_local_mode_waits_for_both_phases_at_their_worst_plus_the_steps():
    # The old fixed wait (120 s) was shorter than one slow phase; the wait now covers both
    assert run_wait_seconds(DEFAULTS) == 151.5 * 2 + STEP_ALLOWANCE_SECONDS == 423.0
    assert run_wait_seconds(DEFAULTS) > 120


@pytest.mark.parametrize(
    ("timeout", "retries", "expected"), [(5.0, 0, 5.0), (10.0, 5, 60 + 0.5 + 1 + 2 + 4 + 8)]
)
def test_the_backoff_follows_the_sdk_and_is_capped_at_8_seconds(timeout, retries, expected):
    settings = Settings(table_name="t", llm_timeout_seconds=timeout, llm_max_retries=retries)
    assert call_worst_seconds(settings) == expected

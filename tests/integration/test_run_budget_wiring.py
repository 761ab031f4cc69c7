"""The run budget's wiring: the starter's choice of state machine and input, and the constants the
budget shares with the executor and the AI pilot (checked here: importing those needs no network, but
their observability module opens the X-Ray emitter's socket, which unit tests refuse)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from cronpilot.dal.executions import StepFunctionsStarter
from cronpilot.domain import budget
from cronpilot.domain.budget import RunBudget, RunLimits, call_budget
from cronpilot.domain.ports import StartFailed
from cronpilot.models.run import RunRecord
from moto import mock_aws

from tests.support.factories import make_job

LIMITS = RunLimits(plan_seconds=15, step_seconds=40, summarize_seconds=15)
EXPRESS = RunBudget(limits=LIMITS, worst_case=timedelta(seconds=120))
STANDARD = RunBudget(limits=LIMITS, worst_case=timedelta(seconds=600))
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


def _run(run_id: str) -> RunRecord:
    return RunRecord.claimed("job", datetime(2026, 11, 22, 9, tzinfo=UTC), 3, "schedule", datetime.now(UTC))


@pytest.fixture
def machines():
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        role = "arn:aws:iam::123456789012:role/x"
        standard = sfn.create_state_machine(name="run", definition=DEFINITION, roleArn=role)[
            "stateMachineArn"
        ]
        express = sfn.create_state_machine(
            name="run-express", definition=DEFINITION, roleArn=role, type="EXPRESS"
        )["stateMachineArn"]
        yield sfn, standard, express


@pytest.mark.parametrize(("run_budget", "machine"), [(EXPRESS, "express"), (STANDARD, "standard")])
def test_the_starter_starts_the_machine_the_budget_fits_with_the_limits_as_input(
    machines, run_budget, machine
):
    sfn, standard, express = machines
    starter = StepFunctionsStarter(sfn, standard, express)
    run = _run("job")
    assert starter.start(run, run_budget) == "started"
    arn = {"express": express, "standard": standard}[machine]
    [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert execution["name"] == run.run_id
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {
        "run_id": run.run_id,
        "job_id": "job",
        "epoch": 3,
        "limits": {"plan_seconds": 15, "step_seconds": 40, "summarize_seconds": 15},
    }


def test_without_an_express_machine_every_run_goes_to_standard(machines):
    sfn, standard, _ = machines
    starter = StepFunctionsStarter(sfn, standard)
    starter.start(_run("job"), EXPRESS)
    assert len(sfn.list_executions(stateMachineArn=standard)["executions"]) == 1


def test_a_refused_start_is_a_start_failure(machines):
    sfn, standard, _ = machines
    starter = StepFunctionsStarter(sfn, standard.replace(":run", ":missing"), "")
    with pytest.raises(StartFailed):
        starter.start(_run("job"), STANDARD)


def test_the_model_call_counts_follow_the_pilots_repair_limits() -> None:
    from cronpilot.ai import plan_model, summary_model

    assert budget.PLAN_MODEL_CALLS == 1 + plan_model.MAX_REPAIRS
    assert budget.SUMMARY_MODEL_CALLS == 1 + summary_model.MAX_REPAIRS


def test_the_executor_calls_with_the_budgeted_total_timeout() -> None:
    from cronpilot.domain.step_calls import build_request

    job = make_job("j", endpoints=[{"id": "a", "url": "https://x.example.com/", "timeout": "7s"}])
    endpoint = job.endpoints[0]
    request = build_request(job, endpoint, "key", resolver=lambda ref: "", results={})
    assert request.total_timeout == call_budget(endpoint).total_seconds() == 21

"""Express and Standard from one ASL file: discovery picks per run, and an Express run that fails or
overruns a stage limit still ends recorded, finalized and with its lease released (Express sends no
status-change events, so only the Catch can do it)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from cronpilot.dal.executions import StepFunctionsStarter
from cronpilot.domain.budget import RunBudget, RunLimits, run_budget
from cronpilot.local.cloud import LocalCloud
from cronpilot.local.runner import apply_jobs, tick_until
from cronpilot.models.job import Job
from cronpilot.models.run import RunStatus, StepStatus
from cronpilot.runtime import get_runtime

from tests.integration.http_servers import Reply
from tests.support.factories import make_job


def _job(job_id: str, target: Any, timeout: str = "10s") -> Job:
    return make_job(
        job_id,
        schedule={"rate": "10m"},
        endpoints=[
            {"id": "fetch", "url": f"{target.base_url}/inventory", "timeout": timeout},
            {"id": "push", "url": f"{target.base_url}/reorder", "method": "POST", "depends_on": ["fetch"]},
        ],
    )


def _budget_with_step_limit(seconds: int) -> Any:
    """Discovery's budgeter for these runs: Express, with the step limit short enough to overrun."""

    def budget(job: Job) -> RunBudget:
        return RunBudget(limits=RunLimits(30, seconds, 30), worst_case=timedelta(seconds=60))

    return budget


def test_short_runs_go_to_express_and_long_ones_to_standard(cloud, store, clock, target):
    # Given a job whose worst case fits well inside 5 minutes and one with a 5-minute endpoint timeout
    quick, slow = _job("quick", target), _job("slow", target, timeout="5m")
    assert run_budget(quick).execution_type == "express"
    assert run_budget(slow).execution_type == "standard"
    apply_jobs(store, [quick, slow], clock.now())
    # When the scheduler ticks
    tick_until(cloud, clock, store, ticks=1)
    # Then both succeed, each on its own machine, from the same definition
    for job_id, kind in (("quick", "EXPRESS"), ("slow", "STANDARD")):
        [run] = store.list_runs(job_id)[0]
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert cloud.execution_type(run.run_id) == kind
        assert store.get_job(job_id).state.lease_owner is None
    # And each execution got its run's limits as input (the ASL's TimeoutSecondsPath)
    started = {e["name"]: e for e in cloud.executions()}
    assert set(started) == {r.run_id for j in ("quick", "slow") for r in store.list_runs(j)[0]}


def test_an_express_stage_that_fails_is_caught_finalized_and_released(cloud, store, clock, target):
    # Given a planner that crashes on an Express run
    def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("planner crashed")

    cloud.replace_handler("planner", crash)
    apply_jobs(store, [_job("crashy", target)], clock.now())
    # When it runs
    tick_until(cloud, clock, store, ticks=1)
    # Then the Catch finalized it: failed with the error, the lease released, a backoff slot chosen
    [run] = store.list_runs("crashy")[0]
    assert cloud.execution_type(run.run_id) == "EXPRESS"
    assert run.status == RunStatus.FAILED
    assert "planner crashed" in (run.error or "")
    state = store.get_job("crashy").state
    assert state.lease_owner is None
    assert state.next_run_at is not None
    assert state.next_run_at > run.scheduled_at
    assert [name for name, _ in cloud.invocations].count("cronpilot-local-finalize-failure") == 1


def test_an_express_step_that_overruns_its_limit_times_out_into_the_catch(cloud, store, clock, target):
    # Given an Express run whose steps may take 1 s, and an executor that hangs for 3 s
    get_runtime().__dict__["run_budgeter"] = _budget_with_step_limit(1)

    def hang(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(3)
        return {"step_id": event["step"]["step_id"], "status": "succeeded"}

    cloud.replace_handler("executor", hang)
    apply_jobs(store, [_job("hangs", target)], clock.now())
    # When it runs
    tick_until(cloud, clock, store, ticks=1)
    # Then the step's task timed out (States.Timeout) and the Catch recorded and released the run,
    # long before Express's 5 minutes would have ended it with no trace
    [run] = store.list_runs("hangs")[0]
    assert cloud.execution_type(run.run_id) == "EXPRESS"
    assert run.status == RunStatus.FAILED
    assert "States.Timeout" in (run.error or "")
    assert store.get_job("hangs").state.lease_owner is None


def test_an_express_run_that_dies_silently_is_abandoned_by_the_next_claim_after_its_lease(target, clock):
    # Given Express's wall at 2 s (5 minutes on AWS) and a planner whose first call hangs past it,
    # under a plan limit too long for the Catch to come first
    with LocalCloud(
        clock,
        egress_allowed_cidrs="127.0.0.0/8",
        egress_allowed_ports=f"80,443,{target.port}",
        express_limit_seconds=2,
    ) as cloud:
        get_runtime().__dict__["run_budgeter"] = lambda job: RunBudget(
            limits=RunLimits(60, 40, 30), worst_case=timedelta(seconds=150)
        )
        real_planner = cloud.replace_handler("planner", lambda event, context: None)
        calls = []

        def hang_once(event: dict[str, Any], context: Any) -> Any:
            calls.append(event["run_id"])
            if len(calls) == 1:
                time.sleep(4)
                raise RuntimeError("too late: the execution already ended")
            return real_planner(event, context)

        cloud.replace_handler("planner", hang_once)
        store = get_runtime().store
        apply_jobs(store, [_job("silent", target)], clock.now())
        # When the first run's execution hits the wall: no Catch, no event, the run stays claimed
        tick_until(cloud, clock, store, ticks=1)
        [first] = store.list_runs("silent")[0]
        assert cloud.describe_execution(first.run_id)["status"] != "SUCCEEDED"
        assert "cronpilot-local-finalize-failure" not in [
            n for n, e in cloud.invocations if e.get("run_id") == first.run_id
        ]
        assert not RunStatus(first.status).is_final
        assert store.get_job("silent").state.lease_owner is not None
        time.sleep(2.5)  # the hanging planner gives up; nothing it does reaches the run
        cloud.express_limit_seconds = 300  # the real wall again: local runs take seconds, not minutes
        # And the scheduler ticks on past the 30-minute lease (the slots in between are skipped)
        tick_until(cloud, clock, store, ticks=4)
        # Then the next claim after the lease fenced the silent run as abandoned and ran a new one
        runs = {r.run_id: r for r in store.list_runs("silent")[0]}
        assert runs[first.run_id].status == RunStatus.ABANDONED
        assert any(r.status == RunStatus.SUCCEEDED for r in runs.values()), [
            (r.run_id, r.status, r.error) for r in runs.values()
        ]


def test_an_express_run_started_twice_calls_each_endpoint_once_and_ends_once(server, clock, monkeypatch):
    # Given StartExecution answered but the answer lost, so it is sent again (botocore's retry, or the
    # start check after a tick died): Express, unlike Standard, starts a second execution of the run
    server.route("GET", "/read", Reply(200, body=b'{"ok": true}'))
    server.route("POST", "/write", Reply(200, body=b'{"ok": true}'))
    start = StepFunctionsStarter.start

    def started_twice(self: StepFunctionsStarter, run: Any, budget: Any) -> Any:
        start(self, run, budget)
        return start(self, run, budget)

    monkeypatch.setattr(StepFunctionsStarter, "start", started_twice)
    with LocalCloud(
        clock, egress_allowed_cidrs="127.0.0.0/8", egress_allowed_ports=f"80,443,{server.port}"
    ) as cloud:
        store = get_runtime().store
        url = f"http://127.0.0.1:{server.port}"
        job = make_job(
            "twice",
            schedule={"rate": "10m"},
            endpoints=[
                {"id": "read", "url": f"{url}/read"},
                {"id": "write", "url": f"{url}/write", "method": "POST", "depends_on": ["read"]},
            ],
        )
        apply_jobs(store, [job], clock.now())
        # When the run executes
        tick_until(cloud, clock, store, ticks=1)
        # Then two executions ran it, as on AWS
        [run] = store.list_runs("twice")[0]
        executions = [e for e in cloud.executions() if e["name"] == run.run_id]
        assert [e["status"] for e in executions] == ["SUCCEEDED", "SUCCEEDED"]
        # And the idempotent steps called each endpoint once, and the fenced writes recorded one outcome
        assert sorted(r.path for r in server.requests) == ["/read", "/write"]
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert {step.status for step in store.get_step_results(run.run_id).values()} == {StepStatus.SUCCEEDED}
        state = store.get_job("twice").state
        assert state.lease_owner is None
        assert state.next_run_at is not None
        assert state.next_run_at > run.scheduled_at

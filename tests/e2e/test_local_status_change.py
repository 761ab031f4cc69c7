"""Local mode delivers what the deployed stack's EventBridge rule would: a stopped Standard execution
never reaches its Catch, and its status-change event still finalizes the run and releases the lease."""

from __future__ import annotations

import threading
import time

from cronpilot.local.runner import apply_jobs
from cronpilot.models.run import RunStatus, execution_name

from tests.support.factories import make_job


def test_a_stopped_execution_is_finalized_as_on_aws(cloud, store, clock, target):
    # Given a run whose execution is in flight, in its Plan state
    # (an endpoint timeout whose worst case does not fit Express: the run executes on Standard)
    job = make_job(
        "stoppable",
        schedule={"rate": "10m"},
        endpoints=[{"id": "ok", "url": f"{target.base_url}/ok", "timeout": "4m"}],
    )
    apply_jobs(store, [job], clock.now())
    planning = threading.Event()
    plan = cloud.replace_handler("planner", lambda event, context: None)

    def slow_plan(event, context):
        planning.set()
        time.sleep(1.5)
        return plan(event, context)

    cloud.replace_handler("planner", slow_plan)
    clock.jump_to(store.get_job("stoppable").state.next_run_at)
    [run_id] = cloud.tick()["claimed"]
    assert planning.wait(timeout=30)
    # When an operator stops the execution (StopExecution: no Catch runs)
    arn = cloud.describe_execution(run_id)["executionArn"]
    assert arn.endswith(f":cronpilot-local-run:{execution_name(run_id)}")
    cloud.client("stepfunctions").stop_execution(executionArn=arn)
    cloud.wait_idle()
    # Then the status-change event reached finalize-failure, as the CDK rule routes it on AWS
    assert cloud.describe_execution(run_id)["status"] == "ABORTED"
    [event] = cloud.delivered_events
    assert event["detail-type"] == "Step Functions Execution Status Change"
    assert event["detail"]["status"] == "ABORTED"
    # And the run is recorded as failed with why, the lease released and the job backed off
    run = store.get_run(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("ExecutionAborted")
    state = store.get_job("stoppable").state
    assert state.lease_owner is None
    assert state.current_run_id is None
    assert state.next_run_source == "backoff"


def test_executions_that_end_normally_send_nothing_to_finalize(cloud, store, clock, target):
    job = make_job(
        "quiet", schedule={"rate": "10m"}, endpoints=[{"id": "ok", "url": f"{target.base_url}/ok"}]
    )
    apply_jobs(store, [job], clock.now())
    clock.jump_to(store.get_job("quiet").state.next_run_at)
    [run_id] = cloud.tick()["claimed"]
    cloud.wait_idle()
    assert cloud.describe_execution(run_id)["status"] == "SUCCEEDED"
    assert cloud.delivered_events == []
    assert store.get_run(run_id).status == RunStatus.SUCCEEDED

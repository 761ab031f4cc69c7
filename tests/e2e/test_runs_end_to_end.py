"""Runs through the real ASL interpreter: success, dependency skips, a crashing executor, the report."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cronpilot.cli import app
from cronpilot.domain.operations import OperationError, delete_job
from cronpilot.local.runner import apply_jobs, tick_until
from cronpilot.models.run import RunStatus, StepStatus
from typer.testing import CliRunner

from tests.support.factories import make_job


def test_job_whose_endpoints_all_succeed(cloud, store, clock, target):
    # Given a job with a dependency chain, all endpoints healthy
    job = make_job(
        "happy",
        schedule={"rate": "10m"},
        endpoints=[
            {"id": "inventory", "url": f"{target.base_url}/inventory"},
            {
                "id": "reorder",
                "url": f"{target.base_url}/reorder",
                "method": "POST",
                "depends_on": ["inventory"],
            },
            {"id": "warehouse", "url": f"{target.base_url}/slow?ms=50"},
        ],
    )
    apply_jobs(store, [job], clock.now())
    # When the scheduler ticks once the job is due
    tick_until(cloud, clock, store, ticks=1)
    # Then the run succeeded through Plan -> Waves -> Summarize, with waves that respect dependencies
    [run] = store.list_runs("happy")[0]
    assert run.status == RunStatus.SUCCEEDED
    assert run.plan.waves == [["inventory", "warehouse"], ["reorder"]]
    assert run.plan.source == "deterministic"
    assert cloud.describe_execution(run.run_id)["status"] == "SUCCEEDED"
    results = store.get_step_results(run.run_id)
    assert {r.status for r in results.values()} == {StepStatus.SUCCEEDED}
    assert results["reorder"].http_status == 200
    # And the lease is released with the next run chosen from the baseline schedule
    state = store.get_job("happy").state
    assert state.lease_owner is None
    assert run.next_run.source == "baseline"
    assert state.next_run_at == run.next_run.at
    assert run.next_run.at == run.scheduled_at + timedelta(minutes=10)


def test_failing_endpoint_skips_its_dependents_and_backs_off(cloud, store, clock, target):
    # Given an endpoint that fails, a dependent, and an independent endpoint
    job = make_job(
        "broken",
        schedule={"rate": "10m"},
        guardrails={"min_interval": "5m", "max_interval": "1h"},
        endpoints=[
            {"id": "source", "url": f"{target.base_url}/fail"},
            {"id": "render", "url": f"{target.base_url}/ok", "depends_on": ["source"]},
            {"id": "audit", "url": f"{target.base_url}/ok", "depends_on": ["render"]},
            {"id": "ping", "url": f"{target.base_url}/ok"},
        ],
    )
    apply_jobs(store, [job], clock.now())
    # When it runs
    tick_until(cloud, clock, store, ticks=1)
    # Then the failure is recorded, dependents are skipped with the reason, the rest still ran
    [run] = store.list_runs("broken")[0]
    results = store.get_step_results(run.run_id)
    assert results["source"].status == StepStatus.FAILED
    assert results["source"].http_status == 500
    assert results["render"].status == StepStatus.SKIPPED
    assert results["render"].skip_reason == "dependency source failed"
    assert results["audit"].skip_reason == "dependency render skipped"
    assert results["ping"].status == StepStatus.SUCCEEDED
    assert run.status == RunStatus.PARTIAL
    assert run.step_counts == {"succeeded": 1, "failed": 1, "skipped": 2}
    # And the next run backs off from min_interval
    assert run.next_run.source == "backoff"
    # (5 minutes from the summarizer's clock reading, taken just before finished_at: a busy machine can
    # put a second boundary between the two)
    decided_at = run.next_run.at - timedelta(minutes=5)
    assert run.finished_at - timedelta(seconds=2) <= decided_at <= run.finished_at
    assert store.get_job("broken").state.consecutive_failures == 1


def test_executor_that_raises_is_caught_into_finalize_failure(cloud, store, clock, target):
    # Given an executor that crashes (as a Lambda with a bug would)
    def crashing_executor(event, context):
        raise RuntimeError("executor crashed")

    cloud.replace_handler("executor", crashing_executor)
    job = make_job(
        "crashy", schedule={"rate": "10m"}, endpoints=[{"id": "a", "url": f"{target.base_url}/ok"}]
    )
    apply_jobs(store, [job], clock.now())
    # When the run executes
    tick_until(cloud, clock, store, ticks=1)
    # Then Catch routes it to finalize-failure: run failed, lease released, next run backed off
    [run] = store.list_runs("crashy")[0]
    assert run.status == RunStatus.FAILED
    assert "executor crashed" in run.error
    assert cloud.describe_execution(run.run_id)["status"] == "FAILED"
    state = store.get_job("crashy").state
    assert state.lease_owner is None
    assert state.lease_expires_at is None
    assert run.next_run.source == "backoff"
    assert state.next_run_at == run.next_run.at
    # And the job is due again later, and runs normally once the executor is fixed
    from cronpilot.local.cloud import load_handler

    cloud.replace_handler("executor", load_handler("executor"))
    tick_until(cloud, clock, store, ticks=1)
    runs, _ = store.list_runs("crashy")
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.FAILED]


def local_run(job_file, *options: str) -> dict:
    """`cronpilot local run JOBFILE --report PATH OPTIONS...`, which must succeed; the report it wrote."""
    report_path = job_file.parent / "report.json"
    result = CliRunner().invoke(app, ["local", "run", str(job_file), "--report", str(report_path), *options])
    assert result.exit_code == 0, result.output
    return json.loads(report_path.read_text())


def test_local_run_report_field_by_field(tmp_path, target):
    # Given a job file that names endpoints on the local target
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        f"""
id: report-check
goal: check the report fields
schedule: {{rate: 5m}}
endpoints:
  - id: first
    url: {target.base_url}/ok
  - id: second
    url: {target.base_url}/fail
    depends_on: [first]
"""
    )
    # When `cronpilot local run` runs it with a report
    report = local_run(
        job_file, "--ticks", "2", "--allow-private", "127.0.0.0/8", "--allow-port", str(target.port)
    )
    # Then every run has the documented fields with the right values
    assert len(report["runs"]) == 2
    first = report["runs"][0]
    assert first["job_id"] == "report-check"
    assert first["run_id"] == f"report-check.{first['scheduled_at'].replace('-', '').replace(':', '')}"
    assert first["status"] == "partial"
    assert first["plan"] == {
        "source": "deterministic",
        "rationale": "every endpoint, in the order their declared dependencies require",
        "waves": [["first"], ["second"]],
    }
    steps = {s["step_id"]: s for s in first["steps"]}
    assert set(steps["first"]) >= {
        "step_id",
        "endpoint_id",
        "status",
        "http_status",
        "attempts",
        "latency_ms",
        "error",
    }
    assert steps["first"]["status"] == "succeeded"
    assert steps["first"]["http_status"] == 200
    assert steps["first"]["attempts"] == 1
    assert steps["first"]["latency_ms"] >= 0
    assert steps["first"]["error"] is None
    assert steps["second"]["status"] == "failed"
    assert steps["second"]["http_status"] == 500
    assert "500" in first["summary"] or "second" in first["summary"]
    assert first["next_run"]["source"] == "backoff"
    assert first["next_run"]["at"] > first["scheduled_at"]
    assert first["next_run"]["reason"]
    assert first["tokens"] == {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
    assert report["runs"][1]["scheduled_at"] == first["next_run"]["at"]


def test_local_run_refuses_loopback_unless_allowed(tmp_path, target):
    # Given a job file that calls 127.0.0.1, run without --allow-private
    job_file = tmp_path / "job.json"
    job_file.write_text(
        json.dumps(
            {
                "id": "no-private",
                "schedule": {"rate": "5m"},
                "endpoints": [{"id": "a", "url": f"{target.base_url}/ok"}],
            }
        )
    )
    # (--fail-on never: the run fails by design, and `local run` would exit 5)
    report = local_run(job_file, "--ticks", "1", "--allow-port", str(target.port), "--fail-on", "never")
    # Then the executor refuses the address before connecting
    [run] = report["runs"]
    assert run["steps"][0]["status"] == "failed"
    assert target.server.counts == {}


def test_overlap_allow_runs_two_executions_at_once(cloud, store, clock, target):
    # Given a job allowed to overlap, whose run outlasts the interval between its slots
    job = make_job(
        "overlapping",
        schedule={"rate": "1m"},
        guardrails={"overlap": "allow", "max_concurrent_runs": 2},
        endpoints=[{"id": "report", "url": f"{target.base_url}/slow?ms=1500"}],
    )
    apply_jobs(store, [job], clock.now())
    # When the next slot's tick comes while the first run is still calling its endpoint
    claimed = []
    for _ in range(2):
        clock.jump_to(store.get_job("overlapping").state.next_run_at)
        claimed += cloud.tick()["claimed"]
    assert len(claimed) == 2
    assert store.get_job("overlapping").state.runs_in_flight(clock.now()) == claimed
    cloud.wait_idle()
    # Then both executions ran to the end; the newer one decided the next run, the older deferred to it
    older, newer = sorted(store.list_runs("overlapping")[0], key=lambda r: r.scheduled_at)
    assert [cloud.describe_execution(r.run_id)["status"] for r in (older, newer)] == ["SUCCEEDED"] * 2
    assert (older.status, newer.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    assert older.next_run.source == "superseded"
    assert newer.next_run.source == "baseline"
    state = store.get_job("overlapping").state
    assert state.runs_in_flight(clock.now()) == []
    assert state.lease_owner is None
    assert state.next_run_at == newer.next_run.at


def test_deleting_a_job_mid_run_needs_force_and_the_run_is_recorded_as_failed(cloud, store, clock, target):
    # Given a run in flight
    job = make_job(
        "doomed",
        schedule={"rate": "10m"},
        endpoints=[{"id": "slow", "url": f"{target.base_url}/slow?ms=1500"}],
    )
    apply_jobs(store, [job], clock.now())
    clock.jump_to(store.get_job("doomed").state.next_run_at)
    [run_id] = cloud.tick()["claimed"]
    # When an operator deletes the job, it is refused without --force
    with pytest.raises(OperationError, match=r"in flight .*--force"):
        delete_job(store, "doomed", clock.now())
    delete_job(store, "doomed", clock.now(), force=True)
    cloud.wait_idle()
    # Then the run's late writes are fenced, and its record says what happened instead of "running"
    run = store.get_run(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("job deleted while the run was in flight")
    assert cloud.describe_execution(run_id)["status"] == "FAILED"
    assert store.get_step_results(run_id) == {}

"""docs/deploy.md's cost model: computed from the ASL file, the synthesized template and counted calls."""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cronpilot.clock import AcceleratedClock
from cronpilot.dal.schema import all_due_shards
from cronpilot.local.cloud import LocalCloud
from cronpilot.local.demo_server import DemoServer
from cronpilot.local.moto_patches import DynamoCall
from cronpilot.local.runner import apply_jobs, next_tick_time
from cronpilot.models.job import Job
from cronpilot.models.run import RunStatus
from cronpilot.runtime import get_runtime
from cronpilot_infra import cost
from cronpilot_infra.cost import (
    DynamoUsage,
    WorkedExample,
    cost_per_million_runs,
    deployed_machines,
    dynamo_calls_per_run,
    dynamo_usage_per_run,
    invocations_per_run,
    total,
    transitions_per_run,
)

from tests.e2e.conftest import START
from tests.infra.conftest import functions_by_name
from tests.support.factories import make_job

SOME_DYNAMO = DynamoUsage(write_units=40, read_units=12)


@pytest.mark.parametrize(("waves", "steps"), [(1, 1), (2, 4), (3, 10), (5, 40)])
def test_transitions_per_run_is_n_plus_w_plus_4(waves: int, steps: int) -> None:
    assert transitions_per_run(waves, steps) == steps + waves + 4


@pytest.mark.parametrize(("waves", "steps"), [(1, 1), (2, 4), (5, 40)])
def test_a_successful_run_invokes_planner_each_step_and_summarizer(waves: int, steps: int) -> None:
    assert invocations_per_run(waves, steps) == {"planner": 1, "executor": steps, "summarizer": 1}


def test_template_gives_each_machine_its_type_log_level_and_task_functions(
    template_json: dict[str, Any],
) -> None:
    machines = deployed_machines(template_json)
    assert set(machines) == {"standard", "express"}
    fns = functions_by_name(template_json)
    for machine in machines.values():
        for name in ("planner", "executor", "summarizer", "finalize_failure"):
            assert machine.functions[name].memory_mb == fns[name]["Properties"]["MemorySize"]
            assert machine.functions[name].architecture == "arm64"
    assert machines["express"].log_level == "ERROR"


def test_express_bills_one_request_and_the_critical_path_not_transitions(
    template_json: dict[str, Any],
) -> None:
    lines = {line.item: line for line in cost_per_million_runs("express", template_json, SOME_DYNAMO)}
    assert "Step Functions Standard state transitions" not in lines
    assert lines["Step Functions Express requests"].usd_per_million_runs == pytest.approx(1.00)
    # Each task's I/O wait plus its 30 ms of CPU at its memory's share of a vCPU (1,769 MB = 1):
    # planner and summarizer 0.2 s at 1024 MB -> 0.252 s at 512 MB; executor 0.5 s at 512 MB ->
    # 0.535 s at 384 MB; planner + 2 waves x executor + summarizer + 10 states x 0.02 = 1.77 -> 1.8 s
    planner = 0.2 - 0.03 * 1769 / 1024 + 0.03 * 1769 / 512
    executor = 0.5 - 0.03 * 1769 / 512 + 0.03 * 1769 / 384
    assert 2 * planner + 2 * executor + 10 * 0.02 == pytest.approx(1.7728, abs=1e-4)
    duration = lines["Step Functions Express duration"]
    assert duration.quantity == "1.8 s x 64 MB"
    assert duration.usd_per_million_runs == pytest.approx(1.8 * 64 / 1024 * 0.06 / 3600 * 1e6)


def test_standard_bills_every_transition(template_json: dict[str, Any]) -> None:
    lines = {line.item: line for line in cost_per_million_runs("standard", template_json, SOME_DYNAMO)}
    assert lines["Step Functions Standard state transitions"].usd_per_million_runs == pytest.approx(250.0)


def test_lambda_duration_follows_the_templates_memory(template_json: dict[str, Any]) -> None:
    # Given the template with the executor at twice its memory
    bigger = copy.deepcopy(template_json)
    executor = functions_by_name(bigger)["executor"]["Properties"]
    executor["MemorySize"] *= 2

    def duration(template: dict[str, Any]) -> float:
        (line,) = [
            x for x in cost_per_million_runs("express", template, SOME_DYNAMO) if x.item == "Lambda duration"
        ]
        return line.usd_per_million_runs

    # Then only the executors' I/O wait costs twice as much: their CPU work takes half the time on
    # twice the CPU share, the same GB-seconds (below one vCPU), and nothing else moves
    memory_mb = functions_by_name(template_json)["executor"]["Properties"]["MemorySize"]
    io_wait = 0.5 - 0.03 * 1769 / 512
    extra = 4 * io_wait * memory_mb / 1024
    assert duration(bigger) - duration(template_json) == pytest.approx(extra * 0.0000133334 * 1e6)


def test_cpu_time_follows_the_memorys_share_of_a_vcpu() -> None:
    example = WorkedExample()
    # At the memory the duration was set for, it is that duration
    assert example.duration("executor", 512) == pytest.approx(0.5)
    # At half the memory the CPU part (30 ms on a whole vCPU) takes twice as long; the wait does not
    assert example.duration("executor", 256) - example.duration("executor", 512) == pytest.approx(
        0.03 * 1769 / 512
    )
    # Past one vCPU (1,769 MB) a single-threaded handler gets no faster
    assert example.duration("executor", 1769) == example.duration("executor", 4096)


def test_logging_all_adds_the_step_functions_history_to_the_logs_line(template_json: dict[str, Any]) -> None:
    verbose = copy.deepcopy(template_json)
    for value in verbose["Resources"].values():
        if value["Type"] == "AWS::StepFunctions::StateMachine":
            value["Properties"]["LoggingConfiguration"]["Level"] = "ALL"
    quiet = total(cost_per_million_runs("express", template_json, SOME_DYNAMO))
    loud = total(cost_per_million_runs("express", verbose, SOME_DYNAMO))
    # 2 x 10 state events + 3 x 6 task events, 800 bytes each, $0.50 per GB
    assert loud - quiet == pytest.approx((2 * 10 + 3 * 6) * 800 / 1e9 * 0.50 * 1e6)


def test_dynamodb_lines_price_the_counted_units(template_json: dict[str, Any]) -> None:
    lines = {line.item: line for line in cost_per_million_runs("express", template_json, SOME_DYNAMO)}
    assert lines["DynamoDB writes (counted)"].usd_per_million_runs == pytest.approx(40 * 0.625)
    assert lines["DynamoDB reads (counted)"].usd_per_million_runs == pytest.approx(12 * 0.125)


def test_express_billed_seconds_round_up_to_100_ms(template_json: dict[str, Any]) -> None:
    example = WorkedExample(
        reference_durations={"planner": (0.21, 1024), "executor": (0.5, 512), "summarizer": (0.2, 1024)},
        cpu_seconds={"planner": 0.0, "executor": 0.0, "summarizer": 0.0},
    )
    machine = deployed_machines(template_json)["express"]
    # 0.21 + 2 x 0.5 + 0.2 + 10 x 0.02 = 1.61 s
    assert cost.express_billed_seconds(example, 10, machine) == pytest.approx(1.7)


def test_lambdas_platform_lines_are_logged_at_system_level_info_and_not_at_warn(
    template_json: dict[str, Any],
) -> None:
    def logs(template: dict[str, Any]) -> float:
        lines = cost_per_million_runs("express", template, SOME_DYNAMO)
        (line,) = [x for x in lines if x.item.startswith("CloudWatch")]
        return line.usd_per_million_runs

    functions = functions_by_name(template_json).values()
    assert {fn["Properties"]["LoggingConfig"]["SystemLogLevel"] for fn in functions} == {"WARN"}
    verbose = copy.deepcopy(template_json)
    for fn in functions_by_name(verbose).values():
        fn["Properties"]["LoggingConfig"]["SystemLogLevel"] = "INFO"
    # START, END and REPORT (380 bytes and 3 events of 26) for each of the 6 invocations
    assert logs(verbose) - logs(template_json) == pytest.approx(6 * (380 + 3 * 26) / 1e9 * 0.50 * 1e6)


def test_deploy_guide_states_the_computed_formula_and_worked_example(
    repo_root: Path, template_json: dict[str, Any]
) -> None:
    guide = (repo_root / "docs" / "deploy.md").read_text()
    assert "`n + w + 4`" in guide
    # The worked example's table is what the model computes from the ASL, this template and the
    # DynamoDB calls (the model equals local mode's count: the test below)
    dynamo = dynamo_usage_per_run(2, 4)
    example = re.search(r"\| Step Functions \| (\d+) transitions: \$([\d.]+) \|", guide)
    assert example is not None
    assert int(example.group(1)) == transitions_per_run(2, 4)
    assert float(example.group(2)) == pytest.approx(transitions_per_run(2, 4) * 25.0)
    writes = re.search(r"\| DynamoDB writes \(counted\) \| ([\d.]+) WRU: \$([\d.]+) \|", guide)
    assert writes is not None
    assert float(writes.group(1)) == dynamo.write_units
    totals = re.search(
        r"\| \*\*total without an LLM\*\* \| \*\*\$([\d.]+)\*\* \| \*\*\$([\d.]+)\*\* \|", guide
    )
    assert totals is not None
    for kind, stated in zip(("standard", "express"), totals.groups(), strict=True):
        assert float(stated) == pytest.approx(
            total(cost_per_million_runs(kind, template_json, dynamo)), abs=0.005
        )


# ------------------------------------------------------------- DynamoDB: the model against the meter


def _worked_example(base_url: str) -> Job:
    """docs/deploy.md's worked example: 4 endpoints in 2 waves, on one origin."""
    return make_job(
        "worked",
        schedule={"rate": "10m"},
        endpoints=[
            {"id": "orders", "url": f"{base_url}/inventory"},
            {"id": "stock", "url": f"{base_url}/inventory"},
            {"id": "invoice", "url": f"{base_url}/inventory", "depends_on": ["orders"]},
            {"id": "reorder", "url": f"{base_url}/inventory", "depends_on": ["stock"]},
        ],
    )


def counted_dynamo_calls() -> tuple[list[DynamoCall], int]:
    """The worked example run once in local mode, every DynamoDB request metered; with the number of
    the tick's due-index queries (one per shard, paid per tick whatever it finds)."""
    with DemoServer() as target:
        clock = AcceleratedClock(START)
        with LocalCloud(
            clock,
            egress_allowed_cidrs="127.0.0.0/8",
            egress_allowed_ports=f"80,443,{target.port}",
            meter=True,
        ) as cloud:
            store = get_runtime().store
            apply_jobs(store, [_worked_example(target.base_url)], clock.now())
            clock.jump_to(next_tick_time(store, clock.now()))
            assert cloud.dynamo_meter is not None
            cloud.dynamo_meter.clear()
            cloud.tick()
            cloud.wait_idle()
            [run] = store.list_runs("worked")[0]
            assert run.status == RunStatus.SUCCEEDED, run.error
            calls = [c for c in cloud.dynamo_meter.calls if c.function]  # not the test's own reads
    return calls, len(all_due_shards())


def _key(function: str, operation: str, writes: float, reads: float) -> tuple[str, str, float, float]:
    return (function.removeprefix("cronpilot-local-").replace("-", "_"), operation, writes, reads)


def test_the_model_counts_every_dynamodb_request_a_run_makes() -> None:
    # Given the worked example run once in local mode with every DynamoDB request metered
    counted, shards = counted_dynamo_calls()
    # When the tick's due-index queries (one per shard, per tick not per run) are set aside
    tick_queries = [c for c in counted if c.function.endswith("discovery") and c.operation == "query"]
    assert len(tick_queries) == shards
    per_run = Counter(
        _key(c.function, c.operation, c.write_units + c.index_write_units, c.read_units)
        for c in counted
        if c not in tick_queries
    )
    # Then the model names exactly those requests, function by function, with the same units
    modelled = Counter(
        _key(c.function, c.operation, c.write_units, c.read_units) for c in dynamo_calls_per_run(2, 4)
    )
    assert per_run == modelled, {
        "counted, not modelled": per_run - modelled,
        "modelled, not counted": modelled - per_run,
    }
    usage = dynamo_usage_per_run(2, 4)
    assert usage.write_units == sum(c.write_units + c.index_write_units for c in counted)
    assert usage.read_units == sum(c.read_units for c in counted if c not in tick_queries)

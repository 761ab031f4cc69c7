"""The cost model of docs/deploy.md: computed from the ASL file, the synthesized template and the
DynamoDB calls a run makes in local mode, never written down by hand.

- the ASL file gives the state transitions and the Lambda invocations of a successful run;
- the template gives each task function's memory, architecture and system log level, each state
  machine's type and logging level;
- the DynamoDB write and read units come from `DynamoUsage`, which `dynamo_usage_per_run` models call
  by call and tests/infra/test_cost_model.py checks against what local mode counts.

Prices are the published us-east-1 on-demand list prices; what is an assumption (durations, CPU time,
log bytes) is named as such in `WorkedExample`, and bench/cost.py prints what local mode measures beside
each assumption it can measure.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .paths import ASL_PATH

Kind = Literal["standard", "express"]

# Published prices, us-east-1, on-demand.
STANDARD_TRANSITION = 25.0 / 1e6
EXPRESS_REQUEST = 1.00 / 1e6
EXPRESS_GB_SECOND = 0.06 / 3600  # $0.06 per GB-hour (the first 1,000 GB-hours a month)
EXPRESS_MEMORY_CHUNK_MB = 64
EXPRESS_BASE_MEMORY_MB = 50  # AWS's estimate: 50 MB + definition + payload x Map iterations
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
DYNAMODB_WRITE_UNIT = 0.625 / 1e6
DYNAMODB_READ_UNIT = 0.125 / 1e6
LOGS_INGESTED_GB = 0.50
# Lambda gives a function CPU in proportion to its memory: 1,769 MB is one full vCPU (a Python handler
# runs on one thread, so more than that buys it nothing).
LAMBDA_MB_PER_VCPU = 1769

PER_MILLION = 1e6
# The ASL placeholder of each task function, and the functions/ folder it deploys.
TASK_FUNCTIONS = {
    "PlannerFunctionArn": "planner",
    "ExecutorFunctionArn": "executor",
    "SummarizerFunctionArn": "summarizer",
    "FinalizeFailureFunctionArn": "finalize_failure",
}


# ------------------------------------------------------------------------------------------- the ASL


def _load(asl_path: Path) -> dict[str, Any]:
    machine: dict[str, Any] = json.loads(asl_path.read_text())
    return machine


def _happy_path(states: dict[str, Any], start: str) -> list[str]:
    """The states a successful execution enters, in order: follow Next until End or a Succeed state."""
    path, name = [], start
    while True:
        path.append(name)
        state = states[name]
        if state.get("End") or state["Type"] == "Succeed":
            return path
        name = state["Next"]


def _walk(machine: dict[str, Any], runs: int, items: dict[str, int], visit: Any) -> None:
    """Call visit(state, times entered) for every state of a successful run."""
    for name in _happy_path(machine["States"], machine["StartAt"]):
        state = machine["States"][name]
        visit(state, runs)
        if state["Type"] == "Map":
            _walk(state["ItemProcessor"], items[name], items, visit)


def transitions_per_run(waves: int, steps: int, asl_path: Path = ASL_PATH) -> int:
    """Step Functions state transitions of one successful run whose plan has `waves` waves holding
    `steps` steps in total (each state entered is one transition; each Map iteration enters its
    processor's states). Retries add one transition each and are not counted."""
    total = 0

    def count(state: dict[str, Any], times: int) -> None:
        nonlocal total
        total += times

    _walk(_load(asl_path), 1, {"Waves": waves, "Steps": steps}, count)
    return total


def invocations_per_run(waves: int, steps: int, asl_path: Path = ASL_PATH) -> dict[str, int]:
    """Lambda invocations of one successful run, per task function (functions/ folder name)."""
    calls: dict[str, int] = {}

    def count(state: dict[str, Any], times: int) -> None:
        if state["Type"] == "Task" and state["Resource"] == "arn:aws:states:::lambda:invoke":
            placeholder = state["Parameters"]["FunctionName"].removeprefix("${").removesuffix("}")
            name = TASK_FUNCTIONS[placeholder]
            calls[name] = calls.get(name, 0) + times

    _walk(_load(asl_path), 1, {"Waves": waves, "Steps": steps}, count)
    return calls


# -------------------------------------------------------------------------------------- the template


@dataclass(frozen=True)
class DeployedFunction:
    memory_mb: int
    architecture: str
    # Lambda's own START/END/REPORT lines are written at INFO and DEBUG; WARN keeps only failures'.
    system_log_level: str = "INFO"


@dataclass(frozen=True)
class DeployedMachine:
    kind: Kind
    log_level: str
    include_execution_data: bool
    functions: dict[str, DeployedFunction]  # functions/ folder name -> what the template deploys


def deployed_machines(template: dict[str, Any]) -> dict[Kind, DeployedMachine]:
    """Each state machine of the synthesized template, with the functions its tasks invoke."""
    resources = template["Resources"]
    machines: dict[Kind, DeployedMachine] = {}
    for value in resources.values():
        if value["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        props = value["Properties"]
        kind: Kind = "express" if props.get("StateMachineType") == "EXPRESS" else "standard"
        functions = {}
        for placeholder, arn in props["DefinitionSubstitutions"].items():
            fn = resources[arn["Fn::GetAtt"][0]]["Properties"]
            functions[TASK_FUNCTIONS[placeholder]] = DeployedFunction(
                memory_mb=int(fn.get("MemorySize", 128)),
                architecture=fn.get("Architectures", ["x86_64"])[0],
                system_log_level=fn.get("LoggingConfig", {}).get("SystemLogLevel", "INFO"),
            )
        logging = props.get("LoggingConfiguration", {})
        machines[kind] = DeployedMachine(
            kind=kind,
            log_level=logging.get("Level", "OFF"),
            include_execution_data=bool(logging.get("IncludeExecutionData", False)),
            functions=functions,
        )
    return machines


# ------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class DynamoUsage:
    """DynamoDB request units one run consumes (on-demand: write and read request units)."""

    write_units: float
    read_units: float


def _cpu_slowdown(memory_mb: int) -> float:
    """How much longer CPU work takes at `memory_mb` than on one full vCPU."""
    return max(1.0, LAMBDA_MB_PER_VCPU / memory_mb)


@dataclass(frozen=True)
class WorkedExample:
    """docs/deploy.md's worked example. The durations, CPU times and log sizes are assumptions, named
    here; bench/cost.py prints local mode's measurement beside the CPU times and log bytes."""

    waves: int = 2
    steps: int = 4
    # Billed Lambda duration per warm invocation, deterministic pilot (no LLM), at the memory each figure
    # was set for: (seconds, MB). The executor's is mostly the endpoint's latency.
    reference_durations: dict[str, tuple[float, int]] = field(
        default_factory=lambda: {
            "planner": (0.2, 1024),
            "executor": (0.5, 512),
            "summarizer": (0.2, 1024),
            "finalize_failure": (0.1, 256),
        }
    )
    # CPU seconds per warm invocation on one full vCPU, outside the AWS calls' waits. Local mode measures
    # 6-15 ms on x86 (the handler thread's CPU time less moto's share); assumed 30 ms, for arm64 cores,
    # for TLS to real endpoints (local mode's target is plain HTTP) and for the measurement's noise.
    cpu_seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("planner", "executor", "summarizer", "finalize_failure"), 0.03)
    )
    # Step Functions' own time per state entered (scheduling a task, starting a Map iteration).
    transition_overhead_seconds: float = 0.02
    # CloudWatch Logs bytes per Lambda invocation, by part. The handler's one structured INFO line
    # (Powertools, with the Lambda context) and the EMF metrics document Powertools prints, as local mode
    # logs them for the worked example:
    application_log_bytes: dict[str, int] = field(
        default_factory=lambda: {"planner": 490, "executor": 500, "summarizer": 490, "finalize_failure": 500}
    )
    metrics_log_bytes: dict[str, int] = field(
        default_factory=lambda: {"planner": 0, "executor": 280, "summarizer": 200, "finalize_failure": 200}
    )
    # Lambda's START, END and REPORT lines (with the X-Ray trace line: tracing is active), written at
    # system log level INFO; at WARN a successful invocation has none.
    platform_log_bytes: int = 380
    platform_log_events: int = 3
    # CloudWatch Logs counts 26 bytes per log event beside its message.
    log_event_overhead_bytes: int = 26

    def duration(self, name: str, memory_mb: int) -> float:
        """Billed seconds of one invocation at `memory_mb`: the I/O wait (the reference duration less
        its CPU time at the reference memory) plus the CPU time at this memory's share of a vCPU."""
        seconds, reference_mb = self.reference_durations[name]
        cpu = self.cpu_seconds[name]
        return seconds - cpu * _cpu_slowdown(reference_mb) + cpu * _cpu_slowdown(memory_mb)

    def log_bytes(self, name: str, system_log_level: str) -> int:
        """CloudWatch Logs bytes one successful invocation ingests."""
        events = [self.application_log_bytes[name]]
        if self.metrics_log_bytes[name]:
            events.append(self.metrics_log_bytes[name])
        total = sum(events) + len(events) * self.log_event_overhead_bytes
        if system_log_level in ("INFO", "DEBUG"):
            total += self.platform_log_bytes + self.platform_log_events * self.log_event_overhead_bytes
        return total

    # Step Functions log bytes per history event at level ALL with execution data (input/output kept
    # small by design); a successful run logs nothing at ERROR or FATAL.
    sfn_log_bytes_per_event: int = 800
    # Execution data held per Map iteration (run id, job id, epoch, one step descriptor).
    payload_bytes_per_iteration: int = 1024


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: str
    usd_per_million_runs: float


def _sfn_history_events(transitions: int, tasks: int) -> int:
    """History events of a successful run: every state entered and exited, and per task scheduled,
    started and succeeded."""
    return 2 * transitions + 3 * tasks


def express_billed_seconds(example: WorkedExample, transitions: int, machine: DeployedMachine) -> float:
    """Express bills the execution's wall time rounded up to 100 ms: the critical path (planner, the
    slowest step of each wave, summarizer, each at its function's memory) plus Step Functions' own
    time per state."""

    def seconds(name: str) -> float:
        return example.duration(name, machine.functions[name].memory_mb)

    critical = (
        seconds("planner")
        + example.waves * seconds("executor")
        + seconds("summarizer")
        + transitions * example.transition_overhead_seconds
    )
    return math.ceil(round(critical * 10, 6)) / 10


def express_billed_memory_mb(example: WorkedExample, asl_path: Path = ASL_PATH) -> int:
    used_mb = (
        EXPRESS_BASE_MEMORY_MB
        + asl_path.stat().st_size / 1e6
        + example.payload_bytes_per_iteration * (example.waves + example.steps) / 1e6
    )
    return math.ceil(used_mb / EXPRESS_MEMORY_CHUNK_MB) * EXPRESS_MEMORY_CHUNK_MB


def cost_per_million_runs(
    kind: Kind,
    template: dict[str, Any],
    dynamo: DynamoUsage,
    example: WorkedExample | None = None,
    asl_path: Path = ASL_PATH,
) -> list[CostLine]:
    """Every line of a successful run's cost on the `kind` state machine, per million runs."""
    example = example or WorkedExample()
    machine = deployed_machines(template)[kind]
    transitions = transitions_per_run(example.waves, example.steps, asl_path)
    calls = invocations_per_run(example.waves, example.steps, asl_path)
    lines: list[CostLine] = []
    if kind == "standard":
        lines.append(
            CostLine(
                "Step Functions Standard state transitions",
                f"{transitions} transitions",
                transitions * STANDARD_TRANSITION * PER_MILLION,
            )
        )
    else:
        seconds = express_billed_seconds(example, transitions, machine)
        memory_mb = express_billed_memory_mb(example, asl_path)
        lines.append(CostLine("Step Functions Express requests", "1 request", EXPRESS_REQUEST * PER_MILLION))
        lines.append(
            CostLine(
                "Step Functions Express duration",
                f"{seconds:.1f} s x {memory_mb} MB",
                seconds * memory_mb / 1024 * EXPRESS_GB_SECOND * PER_MILLION,
            )
        )
    invocations = sum(calls.values())
    lines.append(
        CostLine("Lambda requests", f"{invocations} invocations", invocations * LAMBDA_REQUEST * PER_MILLION)
    )
    gb_seconds = 0.0
    usd = 0.0
    for name, count in calls.items():
        fn = machine.functions[name]
        seconds = count * example.duration(name, fn.memory_mb) * fn.memory_mb / 1024
        gb_seconds += seconds
        usd += seconds * LAMBDA_GB_SECOND[fn.architecture]
    lines.append(CostLine("Lambda duration", f"{gb_seconds:.2f} GB-s", usd * PER_MILLION))
    lines.append(
        CostLine(
            "DynamoDB writes (counted)",
            f"{dynamo.write_units:g} WRU",
            dynamo.write_units * DYNAMODB_WRITE_UNIT * PER_MILLION,
        )
    )
    lines.append(
        CostLine(
            "DynamoDB reads (counted)",
            f"{dynamo.read_units:g} RRU",
            dynamo.read_units * DYNAMODB_READ_UNIT * PER_MILLION,
        )
    )
    log_bytes = sum(
        count * example.log_bytes(name, machine.functions[name].system_log_level)
        for name, count in calls.items()
    )
    if machine.log_level == "ALL":
        tasks = invocations  # every task of a successful run invokes one function
        log_bytes += _sfn_history_events(transitions, tasks) * example.sfn_log_bytes_per_event
    lines.append(
        CostLine(
            f"CloudWatch Logs (Lambda + Step Functions at {machine.log_level})",
            f"{log_bytes / 1000:.1f} KB",
            log_bytes / 1e9 * LOGS_INGESTED_GB * PER_MILLION,
        )
    )
    return lines


def total(lines: list[CostLine]) -> float:
    return sum(line.usd_per_million_runs for line in lines)


# ----------------------------------------------------------------------- DynamoDB, call by call


@dataclass(frozen=True)
class ItemSizes:
    """The worked example's item sizes, in started KB (DynamoDB bills writes per 1 KB, reads per 4 KB).
    The job's definition and the run's record are stored zlib-packed (dal/items.pack_doc): 1.5 KB and
    2 KB of JSON take under 0.5 KB and 0.7 KB."""

    job_kb: int = 1  # the job document with its schedule state and lease
    run_kb: int = 1  # the run record as claimed
    planned_run_kb: int = 1  # with its plan
    finished_run_kb: int = 1  # with its plan, outcome, summary and next-run decision
    step_result_kb: int = 1
    due_entry_kb: int = 1  # the job's entry in the due index: keys only (it projected ALL before)


@dataclass(frozen=True)
class ModelledCall:
    function: str  # functions/ folder name
    operation: str
    write_units: float = 0.0
    read_units: float = 0.0
    why: str = ""


def dynamo_calls_per_run(
    waves: int, steps: int, sizes: ItemSizes | None = None, *, origins: int = 1
) -> list[ModelledCall]:
    """Every DynamoDB request one successful run makes, with its billed units (on-demand): a write is
    1 unit per KB (2 in a transaction, ConditionCheck included; index writes are plain writes, 2 when
    the index key moves); a strongly consistent read 1 unit per 4 KB, an eventually consistent one
    half. `steps` spread evenly over `waves`; every step after the first wave depends on one step of
    the wave before. tests/infra/test_cost_model.py checks this list against local mode's meter."""
    s = sizes or ItemSizes()
    dependent_steps = steps - steps // waves if waves > 1 else 0
    calls = [
        ModelledCall(
            "discovery",
            "batch_get_item",
            read_units=1,
            why="the due job itself (the index holds keys only), one consistent batch read per page",
        ),
        ModelledCall(
            "discovery",
            "transact_write_items",
            write_units=2 * s.job_kb + 2 * s.run_kb + 2 * s.due_entry_kb,
            why="claim: job update (lease, epoch, start check) + run put; the due entry moves (delete + put)",
        ),
        ModelledCall(
            "discovery", "update_item", write_units=1, why="the run marked started (the start check's answer)"
        ),
        ModelledCall("planner", "get_item", read_units=1, why="the job"),
        ModelledCall("planner", "get_item", read_units=1, why="the run, fenced by its epoch"),
        ModelledCall("planner", "query", read_units=0.5, why="recent runs (history for the plan)"),
        ModelledCall("planner", "get_item", read_units=1, why="the job's standing plan decision (none)"),
        *[
            ModelledCall("planner", "get_item", read_units=1, why="endpoint health of one origin")
            for _ in range(origins)
        ],
        ModelledCall(
            "planner",
            "transact_write_items",
            write_units=2 * s.job_kb + 2 * s.planned_run_kb,
            why="the plan: epoch fence (ConditionCheck on the job) + run put",
        ),
    ]
    for n in range(steps):
        dependencies = 1 if n >= steps - dependent_steps else 0
        calls += [
            ModelledCall("executor", "put_item", write_units=1, why="idempotency record IN_PROGRESS"),
            ModelledCall(
                "executor",
                "batch_get_item",
                read_units=2 + dependencies,
                why="the job, the step's own result (a retry's) and its dependencies' results",
            ),
            ModelledCall("executor", "get_item", read_units=1, why="circuit breaker state of the origin"),
            ModelledCall(
                "executor",
                "transact_write_items",
                write_units=2 * s.job_kb + 2 * s.step_result_kb,
                why="the result: epoch fence (ConditionCheck on the job) + result put",
            ),
            ModelledCall("executor", "update_item", write_units=1, why="idempotency record COMPLETED"),
        ]
    calls += [
        ModelledCall("summarizer", "get_item", read_units=1, why="the job"),
        ModelledCall("summarizer", "get_item", read_units=1, why="the run, fenced by its epoch"),
        ModelledCall("summarizer", "query", read_units=1, why="the step results"),
        ModelledCall(
            "summarizer", "get_item", read_units=1, why="the job's standing next-run decision (none)"
        ),
        ModelledCall(
            "summarizer",
            "transact_write_items",
            write_units=2 * s.job_kb + 2 * s.finished_run_kb + 2 * s.due_entry_kb,
            why="finish: job update (release, next run) + run put; the due entry moves from the start "
            "check to the next run (delete + put)",
        ),
    ]
    return calls


def dynamo_usage_per_run(waves: int, steps: int, sizes: ItemSizes | None = None) -> DynamoUsage:
    calls = dynamo_calls_per_run(waves, steps, sizes)
    return DynamoUsage(
        write_units=sum(c.write_units for c in calls), read_units=sum(c.read_units for c in calls)
    )

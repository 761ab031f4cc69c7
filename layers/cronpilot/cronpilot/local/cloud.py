"""Local mode: the whole AWS side of cronpilot on moto, in this process, with no AWS account.

moto's docker-free Lambda backend only echoes payloads, so `invoke` is replaced with a call of the
real handler (DESIGN.md); the patches of moto's own internals (the DynamoDB lock, transaction
rollback, the caches) live in moto_patches.py.

moto's EventBridge does not deliver to Lambda targets, so local mode delivers the one event the
deployed stack routes to a function itself: a Standard execution that timed out or was stopped ends
without reaching its Catch, and EventBridge's status-change event (matched against the same rule
pattern as the CDK stack's, by moto's own matcher: its TestEventPattern is not implemented) goes to
finalize-failure, asynchronously.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import logging
import os
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from cronpilot import runtime
from cronpilot.clock import Clock, to_iso
from cronpilot.dal import schema
from cronpilot.local.moto_patches import (
    DynamoMeter,
    cache_interpreter_setup,
    cache_request_routing,
    express_executions_repeat_names,
    keep_states_errors_out_of_map_iterations,
    meter_dynamodb,
    running_function,
    serialize_dynamodb_writes,
)
from cronpilot.models.run import ABNORMAL_END_STATUSES, EXECUTION_STATUS_CHANGE, execution_name

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE_NAME = "cronpilot-local"
STATE_MACHINE_NAME = "cronpilot-local-run"
EXPRESS_STATE_MACHINE_NAME = "cronpilot-local-run-express"
FUNCTIONS = ("discovery", "planner", "executor", "summarizer", "finalize_failure", "notify")
ASL_PATH = Path(__file__).resolve().parent.parent / "asl" / "run_job.asl.json"
FUNCTIONS_DIR = Path(__file__).resolve().parents[4] / "functions"
ASL_SUBSTITUTIONS = {
    "PlannerFunctionArn": "planner",
    "ExecutorFunctionArn": "executor",
    "SummarizerFunctionArn": "summarizer",
    "FinalizeFailureFunctionArn": "finalize_failure",
}


@functools.cache
def _too_many_requests() -> type[Exception]:
    """Lambda's answer to an invocation beyond the function's reserved concurrency: HTTP 429
    TooManyRequestsException (moto turns its JsonRESTError into that response)."""
    from moto.core.exceptions import JsonRESTError

    class TooManyRequestsException(JsonRESTError):
        code = 429

        def __init__(self) -> None:
            super().__init__("TooManyRequestsException", "Rate Exceeded.")

    return TooManyRequestsException


def function_name(name: str) -> str:
    return f"cronpilot-local-{name.replace('_', '-')}"


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(name)}"


def render_asl(arns: dict[str, str]) -> str:
    """The one ASL file with `${...}` replaced, exactly as CDK's definition_substitutions do."""
    text = ASL_PATH.read_text()
    for key, value in arns.items():
        text = text.replace("${" + key + "}", value)
    if "${" in text:
        raise ValueError("ASL file has a substitution that was not provided")
    return text


def load_handler(name: str) -> Callable[[dict[str, Any], Any], Any]:
    """Import functions/<name>/handler.py under a unique module name (each Lambda has its own handler.py)."""
    path = FUNCTIONS_DIR / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"cronpilot_function_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


@dataclass
class LambdaContext:
    """The attributes Powertools reads from Lambda's context object."""

    function_name: str
    aws_request_id: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class LocalCloud:
    """Start moto, install the seams, build the table, functions, state machine and schedule rule."""

    def __init__(
        self,
        clock: Clock,
        *,
        egress_allowed_cidrs: str = "",
        egress_allowed_ports: str = "80,443",
        extra_env: dict[str, str] | None = None,
        reserved_concurrency: dict[str, int] | None = None,
        meter: bool = False,
        express_limit_seconds: float = 300.0,
    ) -> None:
        self.clock = clock
        # put_function_concurrency per function, as the stack reserves it; the seam enforces it
        self.reserved_concurrency = dict(reserved_concurrency or {})
        # what each DynamoDB request would be billed (the cost model's counted calls); off by default
        self.dynamo_meter: DynamoMeter | None = DynamoMeter() if meter else None
        # Express executions end at 5 minutes with no Catch and no event (moto runs them as long as
        # they like); tests shorten the wall to watch a run die silently
        self.express_limit_seconds = express_limit_seconds
        self._walls: list[threading.Timer] = []
        self._ended_express: set[str] = set()  # execution names past the wall
        self.env = {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "TABLE_NAME": TABLE_NAME,
            "NOTIFY_FUNCTION_NAME": function_name("notify"),
            "EGRESS_ALLOWED_CIDRS": egress_allowed_cidrs,
            "EGRESS_ALLOWED_PORTS": egress_allowed_ports,
            "POWERTOOLS_SERVICE_NAME": "cronpilot",
            "POWERTOOLS_METRICS_NAMESPACE": "cronpilot",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("CRONPILOT_LOCAL_LOG_LEVEL", "ERROR"),
            **(extra_env or {}),
        }
        self._saved_env: dict[str, str | None] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self._undo: list[Callable[[], None]] = []
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._in_flight_lock = threading.Lock()
        self.throttled: list[str] = []  # function names, one entry per refused invocation
        self.state_machine_arn = ""
        self._deliveries: list[threading.Thread] = []
        self._deliveries_lock = threading.Lock()
        self._ending = 0  # executions between their final status and their event's dispatch
        self.delivered_events: list[dict[str, Any]] = []
        self.express_state_machine_arn = ""

    # ----------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalCloud:
        from moto import mock_aws

        # The interpreter logs every caught task failure at ERROR; the run record already says it.
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)

        for key, value in self.env.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self._mock = mock_aws(
            config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        )
        self._mock.start()
        self._install_dynamodb_lock()
        self._install_lambda_seam()
        self._install_status_change_events()
        self._undo.append(cache_interpreter_setup())
        self._undo.append(cache_request_routing())
        self._undo.append(keep_states_errors_out_of_map_iterations())
        if self.dynamo_meter is not None:
            self._undo.append(meter_dynamodb(self.dynamo_meter))
        self._install_express_wall()
        self._undo.append(express_executions_repeat_names())
        self._create_resources()
        for key, value in (
            ("STATE_MACHINE_ARN", self.state_machine_arn),
            ("EXPRESS_STATE_MACHINE_ARN", self.express_state_machine_arn),
        ):
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        runtime.reset()
        runtime.override(clock=self.clock)
        forget_cached_secrets()
        self._handlers = {function_name(n): load_handler(n) for n in FUNCTIONS}
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait_idle(timeout=30, raise_on_timeout=False)
        for undo in reversed(self._undo):
            undo()
        self._mock.stop()
        self._clients.clear()
        runtime.reset()
        forget_cached_secrets()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # ---------------------------------------------------------------- seams

    def _install_dynamodb_lock(self) -> None:
        self._undo.append(serialize_dynamodb_writes())

    def _install_lambda_seam(self) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend

        original = LambdaSimpleBackend.invoke
        cloud = self

        def invoke(
            backend: Any,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> bytes:
            fn = backend.get_function(function_name, qualifier)  # unknown functions still fail like AWS
            cloud._enter(fn.function_name, fn.reserved_concurrency)
            try:
                return cloud._run_handler(fn.function_name, body, response_headers)
            finally:
                cloud._leave(fn.function_name)

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
        self._undo.append(lambda: setattr(LambdaSimpleBackend, "invoke", original))

    def _install_status_change_events(self) -> None:
        from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

        original = BaseExecutionWorkerCommunication.terminated
        cloud = self

        def terminated(communication: Any) -> None:
            with cloud._deliveries_lock:  # wait_idle must not see it ended before its event is out
                cloud._ending += 1
            try:
                original(communication)  # the execution's final status is set here
                cloud._execution_ended(communication.execution)
            finally:
                with cloud._deliveries_lock:
                    cloud._ending -= 1

        BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign,assignment]
        self._undo.append(lambda: setattr(BaseExecutionWorkerCommunication, "terminated", original))

    def _execution_ended(self, execution: Any) -> None:
        """EventBridge's part: the status-change event of a Standard execution (Express executions
        send none), to every target of every rule whose pattern matches it."""
        if str(getattr(execution.sm_type, "value", execution.sm_type)) != "STANDARD":
            return
        from moto.events.models import EventPattern

        event = _status_change_event(execution)
        events = self.client("events")
        for rule in events.list_rules()["Rules"]:
            pattern = rule.get("EventPattern")
            if not pattern or not EventPattern.load(pattern).matches_event(event):  # type: ignore[arg-type]
                continue
            for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
                name = (
                    target["Arn"]
                    .rsplit(":function:", 1)[-1]
                    .removeprefix("cronpilot-local-")
                    .replace("-", "_")
                )
                delivery = threading.Thread(target=self._deliver, args=(name, event), daemon=True)
                with self._deliveries_lock:
                    self._deliveries.append(delivery)
                delivery.start()

    def _deliver(self, name: str, event: dict[str, Any]) -> None:
        """An asynchronous invocation, as EventBridge's: nobody waits for its answer."""
        self.delivered_events.append(event)
        try:
            self.invoke(name, event)
        except RuntimeError:
            logging.getLogger(__name__).exception("local-mode event delivery failed", extra={"target": name})

    def _install_express_wall(self) -> None:
        """End each Express execution still running after the limit, as the service does: no Catch
        runs and no status-change event is sent, so the run is left to its lease."""
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        original = StepFunctionsParserBackend.start_execution
        cloud = self

        def start_execution(backend: Any, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
            execution = original(backend, state_machine_arn, *args, **kwargs)
            if backend.describe_state_machine(state_machine_arn).type == "EXPRESS":
                wall = threading.Timer(cloud.express_limit_seconds, cloud._end_express, args=(execution,))
                wall.daemon = True
                cloud._walls.append(wall)
                wall.start()
            return execution

        StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign,assignment]

        def undo() -> None:
            StepFunctionsParserBackend.start_execution = original  # type: ignore[method-assign]
            for wall in self._walls:
                wall.cancel()

        self._undo.append(undo)

    def _end_express(self, execution: Any) -> None:
        """moto only stops an execution between states; a task already running would still return
        into its Catch. So the seam also refuses every later invocation for that run: nothing after
        the wall reaches a function, as on AWS."""
        if execution.status == "RUNNING":
            self._ended_express.add(execution.name)
            execution.stop(stop_date=datetime.now(UTC), error="States.Timeout", cause="Express limit reached")

    def _enter(self, name: str, reserved: int | str | None) -> None:
        """Lambda refuses an invocation beyond the function's reserved concurrency with HTTP 429
        TooManyRequestsException (Step Functions sees Lambda.TooManyRequestsException)."""
        with self._in_flight_lock:
            running = self._in_flight.get(name, 0)
            if reserved is not None and running >= int(reserved):
                self.throttled.append(name)
                raise _too_many_requests()()
            self._in_flight[name] = running + 1

    def _leave(self, name: str) -> None:
        with self._in_flight_lock:
            self._in_flight[name] -= 1

    def _run_handler(self, name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        event = json.loads(body) if body else {}
        self.invocations.append((name, event))
        ended = isinstance(event, dict) and execution_name(str(event.get("run_id"))) in self._ended_express
        if ended:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {"errorType": "ExecutionEnded", "errorMessage": "past Express's limit"}
            ).encode()
        context = LambdaContext(
            function_name=name, aws_request_id=str(uuid.uuid4()), invoked_function_arn=function_arn(name)
        )
        token = running_function.set(name)
        try:
            result = self._handlers[name](event, context)
        except Exception as exc:  # Lambda's Unhandled error envelope, so Retry/Catch behave as on AWS
            response_headers["x-amz-function-error"] = "Unhandled"
            envelope = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_tb(exc.__traceback__)[-3:],
            }
            return json.dumps(envelope).encode()
        finally:
            running_function.reset(token)
        return json.dumps(result, default=str).encode()

    def replace_handler(self, name: str, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[..., Any]:
        """For failure-injection tests: swap one function's handler, return the previous one."""
        key = function_name(name)
        previous = self._handlers[key]
        self._handlers[key] = handler
        return previous

    # ------------------------------------------------------------ resources

    def client(self, service: str) -> Any:
        """One client per service for the cloud's lifetime (boto3 clients are thread-safe, and building
        one costs milliseconds of CPU that the handlers' threads then wait for)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(service, region_name=REGION)  # type: ignore[call-overload]
            return self._clients[service]

    def _create_resources(self) -> None:
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(**schema.create_table_request(TABLE_NAME))
        dynamodb.update_time_to_live(
            TableName=TABLE_NAME,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TTL_ATTRIBUTE},
        )
        iam = self.client("iam")
        role = iam.create_role(
            RoleName="cronpilot-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        lambda_ = self.client("lambda")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "# replaced by the local-mode seam\n")
        for name in FUNCTIONS:
            lambda_.create_function(
                FunctionName=function_name(name),
                Runtime="python3.13",
                Role=role,
                Handler="handler.lambda_handler",
                Code={"ZipFile": code.getvalue()},
                Architectures=["arm64"],
            )
            if name in self.reserved_concurrency:
                lambda_.put_function_concurrency(
                    FunctionName=function_name(name),
                    ReservedConcurrentExecutions=self.reserved_concurrency[name],
                )
        sfn = self.client("stepfunctions")
        definition = render_asl({key: function_arn(name) for key, name in ASL_SUBSTITUTIONS.items()})
        # Both types from the one definition, as CDK deploys them; discovery picks per run.
        self.state_machine_arn = sfn.create_state_machine(
            name=STATE_MACHINE_NAME, definition=definition, roleArn=role, type="STANDARD"
        )["stateMachineArn"]
        self.express_state_machine_arn = sfn.create_state_machine(
            name=EXPRESS_STATE_MACHINE_NAME, definition=definition, roleArn=role, type="EXPRESS"
        )["stateMachineArn"]
        events = self.client("events")
        events.put_rule(Name="cronpilot-local-tick", ScheduleExpression="rate(1 minute)", State="ENABLED")
        events.put_targets(
            Rule="cronpilot-local-tick", Targets=[{"Id": "discovery", "Arn": function_arn("discovery")}]
        )
        # The deployed stack's rule for executions that end where no Catch sees them (infra:
        # state_machine.py, AbnormalEnds); `_execution_ended` delivers what it matches.
        abnormal_ends = {
            "source": ["aws.states"],
            "detail-type": [EXECUTION_STATUS_CHANGE],
            "detail": {"stateMachineArn": [self.state_machine_arn], "status": list(ABNORMAL_END_STATUSES)},
        }
        events.put_rule(Name="cronpilot-local-run-ended-abnormally", EventPattern=json.dumps(abnormal_ends))
        events.put_targets(
            Rule="cronpilot-local-run-ended-abnormally",
            Targets=[{"Id": "finalize-failure", "Arn": function_arn("finalize_failure")}],
        )

    # ------------------------------------------------------------ operations

    def tick(self) -> dict[str, Any]:
        """What EventBridge does every minute: invoke discovery with a scheduled event."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": to_iso(self.clock.now()),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/cronpilot-local-tick"],
            "detail": {},
        }
        return self.invoke("discovery", event)

    def invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        response = self.client("lambda").invoke(FunctionName=function_name(name), Payload=json.dumps(event))
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise RuntimeError(f"{name} failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
        return payload

    @property
    def state_machine_arns(self) -> list[str]:
        return [arn for arn in (self.state_machine_arn, self.express_state_machine_arn) if arn]

    def executions(self, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Both machines' executions. A test's view only: AWS lists no Express executions (their
        history is the log group's), and cronpilot itself never lists or describes executions."""
        sfn = self.client("stepfunctions")
        for arn in self.state_machine_arns:
            kwargs: dict[str, Any] = {"stateMachineArn": arn}
            if status:
                kwargs["statusFilter"] = status
            for page in sfn.get_paginator("list_executions").paginate(**kwargs):
                yield from page["executions"]

    def wait_idle(self, timeout: float = 120, *, raise_on_timeout: bool = True) -> None:
        """Block until no execution is RUNNING (moto runs them on background threads) and every
        event delivered meanwhile has been handled."""
        deadline = time.monotonic() + timeout
        while self._any_running() or self._delivering():
            if time.monotonic() > deadline:
                if raise_on_timeout:
                    raise TimeoutError("executions still running after the local-mode timeout")
                return
            time.sleep(0.05)

    def _delivering(self) -> bool:
        with self._deliveries_lock:
            self._deliveries = [delivery for delivery in self._deliveries if delivery.is_alive()]
            return bool(self._deliveries) or self._ending > 0

    def _any_running(self) -> bool:
        """What `executions("RUNNING")` answers, read from moto's backend: this polls every 50 ms, and
        through the API each poll cost a ListExecutions round trip under the GIL the runs need."""
        from moto.stepfunctions.responses import get_backend

        backend = get_backend(ACCOUNT, REGION)
        for arn in self.state_machine_arns:
            machine = backend.describe_state_machine(arn)
            if any(execution.status == "RUNNING" for execution in list(machine.executions)):
                return True
        return False

    def execution_type(self, run_id: str) -> str:
        """Which machine ran the run: "STANDARD" or "EXPRESS" (a test's view, see `executions`)."""
        return self._execution(run_id)[0]

    def describe_execution(self, run_id: str) -> dict[str, Any]:
        return self._execution(run_id)[1]

    def _execution(self, run_id: str) -> tuple[str, dict[str, Any]]:
        sfn = self.client("stepfunctions")
        for kind, arn in (("STANDARD", self.state_machine_arn), ("EXPRESS", self.express_state_machine_arn)):
            if not arn:
                continue
            execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{execution_name(run_id)}"
            try:
                return kind, sfn.describe_execution(executionArn=execution_arn)
            except sfn.exceptions.ExecutionDoesNotExist:
                continue
        raise LookupError(f"no execution named {execution_name(run_id)}")


def forget_cached_secrets() -> None:
    """The executor's secret reads are cached per process for 5 minutes (as per Lambda container): a
    local run must not see a value, or a missing secret, from an earlier run in the same process."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()


def _status_change_event(execution: Any) -> dict[str, Any]:
    """EventBridge's "Step Functions Execution Status Change" event for a finished execution."""

    def millis(moment: Any) -> int | None:
        return int(moment.timestamp() * 1000) if moment is not None else None

    status = str(getattr(execution.exec_status, "value", execution.exec_status))
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": EXECUTION_STATUS_CHANGE,
        "source": "aws.states",
        "account": ACCOUNT,
        "time": to_iso(execution.stop_date) if execution.stop_date else None,
        "region": REGION,
        "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": millis(execution.start_date),
            "stopDate": millis(execution.stop_date),
            "input": execution.input_data
            if isinstance(execution.input_data, str)
            else json.dumps(execution.input_data),
            "output": None,
            "error": getattr(execution, "error", None),
            "cause": getattr(execution, "cause", None),
        },
    }

"""Local mode: the whole AWS side of cronpilot on moto, in this process, with no AWS account.

moto's docker-free Lambda backend only echoes payloads, so `invoke` is replaced with a call of the
real handler (DESIGN.md); the patches of moto's own internals (the DynamoDB lock, transaction
rollback, the caches) live in moto_patches.py.
"""

from __future__ import annotations

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
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from cronpilot import runtime
from cronpilot.clock import Clock, to_iso
from cronpilot.dal import schema
from cronpilot.local.moto_patches import (
    cache_interpreter_setup,
    cache_request_routing,
    serialize_dynamodb_writes,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE_NAME = "cronpilot-local"
STATE_MACHINE_NAME = "cronpilot-local-run"
FUNCTIONS = ("discovery", "planner", "executor", "summarizer", "finalize_failure", "notify")
ASL_PATH = Path(__file__).resolve().parent.parent / "asl" / "run_job.asl.json"
FUNCTIONS_DIR = Path(__file__).resolve().parents[4] / "functions"
ASL_SUBSTITUTIONS = {
    "PlannerFunctionArn": "planner",
    "ExecutorFunctionArn": "executor",
    "SummarizerFunctionArn": "summarizer",
    "FinalizeFailureFunctionArn": "finalize_failure",
}


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
    ) -> None:
        self.clock = clock
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
        self.state_machine_arn = ""

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
        self._undo.append(cache_interpreter_setup())
        self._undo.append(cache_request_routing())
        self._create_resources()
        os.environ["STATE_MACHINE_ARN"] = self.state_machine_arn
        self._saved_env.setdefault("STATE_MACHINE_ARN", None)
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
            return cloud._run_handler(fn.function_name, body, response_headers)

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
        self._undo.append(lambda: setattr(LambdaSimpleBackend, "invoke", original))

    def _run_handler(self, name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        event = json.loads(body) if body else {}
        self.invocations.append((name, event))
        context = LambdaContext(
            function_name=name, aws_request_id=str(uuid.uuid4()), invoked_function_arn=function_arn(name)
        )
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
        sfn = self.client("stepfunctions")
        definition = render_asl({key: function_arn(name) for key, name in ASL_SUBSTITUTIONS.items()})
        self.state_machine_arn = sfn.create_state_machine(
            name=STATE_MACHINE_NAME, definition=definition, roleArn=role, type="STANDARD"
        )["stateMachineArn"]
        events = self.client("events")
        events.put_rule(Name="cronpilot-local-tick", ScheduleExpression="rate(1 minute)", State="ENABLED")
        events.put_targets(
            Rule="cronpilot-local-tick", Targets=[{"Id": "discovery", "Arn": function_arn("discovery")}]
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

    def executions(self, status: str | None = None) -> Iterator[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn}
        if status:
            kwargs["statusFilter"] = status
        for page in sfn.get_paginator("list_executions").paginate(**kwargs):
            yield from page["executions"]

    def wait_idle(self, timeout: float = 120, *, raise_on_timeout: bool = True) -> None:
        """Block until no execution is RUNNING (moto runs them on background threads)."""
        deadline = time.monotonic() + timeout
        while self._any_running():
            if time.monotonic() > deadline:
                if raise_on_timeout:
                    raise TimeoutError("executions still running after the local-mode timeout")
                return
            time.sleep(0.05)

    def _any_running(self) -> bool:
        """What `executions("RUNNING")` answers, read from moto's backend: this polls every 50 ms, and
        through the API each poll cost a ListExecutions round trip under the GIL the runs need."""
        from moto.stepfunctions.responses import get_backend

        if not self.state_machine_arn:
            return False
        machine = get_backend(ACCOUNT, REGION).describe_state_machine(self.state_machine_arn)
        return any(execution.status == "RUNNING" for execution in list(machine.executions))

    def describe_execution(self, run_id: str) -> dict[str, Any]:
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{run_id}"
        return self.client("stepfunctions").describe_execution(executionArn=arn)


def forget_cached_secrets() -> None:
    """The executor's secret reads are cached per process for 5 minutes (as per Lambda container): a
    local run must not see a value, or a missing secret, from an earlier run in the same process."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()

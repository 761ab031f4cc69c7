"""bench/cold_start.py measures each handler's import and, beside it, its import plus what its normal
invocation adds lazily: the modules it imports (FIRST_INVOCATION) and the deferred models it builds
(FIRST_INVOCATION_MODELS). This keeps those lists true: each handler runs its sample event in a fresh
interpreter (against moto, after the earlier handlers of its run prepared the state), and the package
modules its invocation imported and the package models it built must be exactly the ones the bench adds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cold_start import API_HANDLERS, FIRST_INVOCATION, FIRST_INVOCATION_MODELS, HANDLERS

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: the earlier handlers of the run prepare the state in moto, then every
# package module is dropped (a new container) and only the handler under test is imported and invoked.
PROBE = r"""
import importlib.util, json, os, sys
target = sys.argv[1]
PREPARE = {"discovery": [], "planner": ["discovery"], "executor": ["discovery", "planner"],
           "summarizer": ["discovery", "planner", "executor"], "finalize_failure": ["discovery"], "api": []}
import boto3
from moto import mock_aws
from tests.conftest import load_event
from tests.integration.conftest import START
from tests.integration.http_servers import LoopbackHTTPServer, Reply

def built_models():
    # The package's model classes whose validator is built, by module path and name.
    from pydantic import BaseModel
    return {
        f"{name}.{attr}"
        for name, module in list(sys.modules.items())
        if name.startswith("cronpilot.")
        for attr, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == name
        and value.__dict__.get("__pydantic_complete__")
    }

def load(name):
    path = f"functions/{name}/handler.py"
    spec = importlib.util.spec_from_file_location(f"cronpilot_function_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler

def context(name):
    from cronpilot.local.cloud import LambdaContext
    return LambdaContext(function_name=name, aws_request_id="req-" + name)

with LoopbackHTTPServer() as server, mock_aws():
    server.route("GET", "/status", Reply(status=503, body=b"down"))
    os.environ["EGRESS_ALLOWED_PORTS"] = f"80,443,{server.port}"
    from cronpilot import runtime
    from cronpilot.clock import FixedClock
    from cronpilot.dal import schema
    from cronpilot.local.cloud import ASL_SUBSTITUTIONS, render_asl, serialize_dynamodb_writes
    from tests.support.factories import make_job
    serialize_dynamodb_writes()
    boto3.client("dynamodb").create_table(**schema.create_table_request("handlers"))
    role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    os.environ["STATE_MACHINE_ARN"] = boto3.client("stepfunctions").create_state_machine(
        name="m", definition=render_asl(dict.fromkeys(ASL_SUBSTITUTIONS, arn)), roleArn=role
    )["stateMachineArn"]
    runtime.reset()
    runtime.override(clock=FixedClock(START))
    job = make_job(
        "sample-job",
        schedule={"rate": "5m"},
        guardrails={"min_interval": "5m", "max_interval": "1h"},
        endpoints=[{"id": "status", "url": server.url("/status"), "retryable": False}],
    )
    runtime.get_runtime().store.put_job(job, next_run_at=START, source="baseline", reason="sample", now=START)
    for name in PREPARE[target]:
        load(name)(load_event(name), context(name))
    package = ("cronpilot.", "cronpilot_function_")
    for name in [n for n in sys.modules if n == "cronpilot" or n.startswith(package)]:
        del sys.modules[name]
    from cronpilot import runtime
    from cronpilot.clock import FixedClock
    from cronpilot.local.cloud import LambdaContext
    runtime.override(clock=FixedClock(START))
    handler = load(target)
    imported = set(sys.modules)
    ready = built_models()
    result = handler(load_event(target), LambdaContext(function_name=target, aws_request_id="req-probe"))
    invoked = set(sys.modules)
    models = sorted(built_models() - ready)
invocation = sorted(m for m in invoked - imported if m.startswith("cronpilot"))
print(json.dumps({"result": result, "invocation": invocation, "models": models}))
"""

SAMPLE_EVENT_OUTCOME = {
    "discovery": lambda result: result["claimed"] == ["sample-job.20261122T090000Z"],
    "planner": lambda result: len(result["waves"]) == 1,
    "executor": lambda result: result == {"step_id": "status", "status": "failed"},
    "summarizer": lambda result: result == {"status": "failed"},
    "finalize_failure": lambda result: result == {"status": "failed"},
    "api": lambda result: result["statusCode"] == 200,
}


def probe(handler: str) -> dict:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TABLE_NAME": "handlers",
        "EGRESS_ALLOWED_CIDRS": "127.0.0.0/8",
        "POWERTOOLS_SERVICE_NAME": "cronpilot-probe",
        "POWERTOOLS_METRICS_NAMESPACE": "cronpilot",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, handler], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("handler", HANDLERS + API_HANDLERS)
def test_the_bench_counts_what_each_handlers_first_invocation_imports(handler):
    # Given a fresh interpreter that imported only the handler, When its sample event is handled
    found = probe(handler)
    # Then it did its normal work
    assert SAMPLE_EVENT_OUTCOME[handler](found["result"]), found["result"]
    # And the package modules it imported on the way are exactly the ones the bench imports after it
    assert found["invocation"] == sorted(FIRST_INVOCATION[handler])
    # And the models it built are exactly the ones the bench builds after it
    assert found["models"] == sorted(FIRST_INVOCATION_MODELS[handler])

"""Infrastructure tests: the layers are built and the app is synthesized ONCE per test session.

The infra tests share one xdist group, so under `pytest -n 2 --dist loadgroup` a single worker
builds and synthesizes; the checks that need no synthesis (the pinned CLI's own synth, asl-validator)
form a second group that runs beside it.

Three stacks are synthesized in the same app: the defaults from cdk.json (anthropic), a Bedrock
variant with the opposite choices (no reserved concurrency, private CIDRs with the executor in a VPC
and its endpoints, an alarm e-mail, a 5-minute tick), and `prod` (termination protection, retained
logs), so every branch of each construct is asserted from one synthesis.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "infra"))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import build_layers
from app import build_app
from aws_cdk import App, Environment
from aws_cdk.assertions import Template
from cronpilot_infra.settings import DeploySettings
from cronpilot_infra.stack import CronpilotStack

DEFAULT_STACK = "cronpilot-dev"
BEDROCK_STACK = "cronpilot-bedrock"
PROD_STACK = "cronpilot-prod"
EXECUTOR_SUBNETS = ["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"]
EXECUTOR_GROUP = "sg-0a1b2c3d4e5f60718"
BEDROCK_SETTINGS = DeploySettings(
    stage="bedrock",
    llm_provider="bedrock",
    reserved_concurrency=False,
    executor_private_cidrs="10.20.0.0/16, 192.168.1.0/24",
    executor_subnet_ids=",".join(EXECUTOR_SUBNETS),
    executor_security_group_id=EXECUTOR_GROUP,
    executor_vpc_endpoints=True,
    executor_vpc_id="vpc-0a1b2c3d4e5f60718",
    executor_route_table_ids="rtb-0a1b2c3d4e5f60718",
    alarm_email="oncall@example.com",
    tick_minutes=5,
    notify_topic_arns="arn:aws:sns:us-east-1:123456789012:team-alerts",
    # a regional Bedrock endpoint's price (the list prices are the global endpoints')
    llm_prices='{"us.anthropic.claude-haiku-4-5-20251001-v1:0": {"input": 1.1, "output": 5.5}}',
)
PROD_SETTINGS = DeploySettings(stage="prod")
ENV = Environment(account="123456789012", region="us-east-1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            # tests that need no synthesis (the CLI's own synth, asl-validator) pick their own group
            if item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group("infra"))
            item.add_marker(pytest.mark.slow)


@dataclass(frozen=True)
class Synthesized:
    app: App
    outdir: Path
    layers: dict[str, Path]

    def template_json(self, stack: str) -> dict[str, Any]:
        return json.loads((self.outdir / f"{stack}.template.json").read_text())

    def template(self, stack: str = DEFAULT_STACK) -> Template:
        return Template.from_json(self.template_json(stack))


@pytest.fixture(scope="session")
def lambda_layers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The production layers (manylinux2014 aarch64, cp313), built exactly as `make build` does."""
    # the dependency layer's bytecode step (~8 s) is skipped: the cronpilot layer proves it works
    return build_layers.build(tmp_path_factory.mktemp("layers-aarch64"), compile_deps=False)


@pytest.fixture(scope="session")
def host_layers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same locked dependency set built for this machine, so the import test can load it."""
    return build_layers.build(tmp_path_factory.mktemp("layers-host"), host=True, compile_deps=False)


@pytest.fixture(scope="session")
def synthesized(
    lambda_layers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Synthesized]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    layers_dir = lambda_layers["deps"].parent
    # cdk.json's context as `cdk deploy` reads it: the settings and the feature flags users deploy with
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    app = build_app(App(outdir=str(outdir), context={**context, "layers_dir": str(layers_dir)}))
    CronpilotStack(app, BEDROCK_STACK, settings=BEDROCK_SETTINGS, layers_dir=layers_dir, env=ENV)
    CronpilotStack(app, PROD_STACK, settings=PROD_SETTINGS, layers_dir=layers_dir, env=ENV)
    app.synth()
    return Synthesized(app=app, outdir=outdir, layers=lambda_layers)


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> Template:
    return synthesized.template(DEFAULT_STACK)


@pytest.fixture(scope="session")
def template_json(synthesized: Synthesized) -> dict[str, Any]:
    return synthesized.template_json(DEFAULT_STACK)


@pytest.fixture(scope="session")
def prod_json(synthesized: Synthesized) -> dict[str, Any]:
    return synthesized.template_json(PROD_STACK)


@pytest.fixture(scope="session")
def bedrock_json(synthesized: Synthesized) -> dict[str, Any]:
    return synthesized.template_json(BEDROCK_STACK)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def functions_by_name(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Lambda functions keyed by the functions/ folder they ship (discovery, planner, ...)."""
    out = {}
    for value in resources(template, "AWS::Lambda::Function").values():
        name = value["Properties"]["FunctionName"].split("-", 2)[2].replace("-", "_")
        out[name] = value
    return out


def state_machine_id(template: dict[str, Any], kind: str = "STANDARD") -> str:
    """The logical id of the Standard (or the Express) run state machine."""
    (found,) = [
        key
        for key, value in resources(template, "AWS::StepFunctions::StateMachine").items()
        if value["Properties"]["StateMachineType"] == kind
    ]
    return found


def queue_id(template: dict[str, Any], suffix: str) -> str:
    """The logical id of the queue named `<prefix>-<suffix>` (events-dlq, async-failures)."""
    return logical_id(template, "AWS::SQS::Queue", lambda p: p["QueueName"].endswith(f"-{suffix}"))


def logical_id(template: dict[str, Any], kind: str, predicate: Any) -> str:
    matches = [k for k, v in resources(template, kind).items() if predicate(v["Properties"])]
    assert len(matches) == 1, matches
    return matches[0]


def role_statements(template: dict[str, Any], role_ref: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of every policy attached to the role (inline policies and AWS::IAM::Policy)."""
    role_id = role_ref["Fn::GetAtt"][0] if "Fn::GetAtt" in role_ref else role_ref["Ref"]
    role = template["Resources"][role_id]["Properties"]
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def grants(statements: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """action -> the resources it is allowed on (a statement's lists flattened)."""
    out: dict[str, list[Any]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        found = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            out.setdefault(action, []).extend(found)
    return out


# Actions that support no resource-level permissions: the only ones allowed on "*".
NO_RESOURCE_LEVEL = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}

# Lambda manages a VPC function's network interfaces with its role and checks these unscoped at create
# time: allowed on "*" for the executor in a VPC only (tests/infra/test_network.py).
LAMBDA_VPC_ENI = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}

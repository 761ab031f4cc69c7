"""Lambda functions and layers: runtime, architecture, tracing, logs, sizing, environment."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import BEDROCK_SETTINGS, functions_by_name, resources, state_machine_id

EXPECTED = {
    # name: (timeout s, memory MB, reserved concurrency with defaults)
    "discovery": (60, 512, 1),
    "planner": (180, 512, 10),
    "executor": (300, 384, 50),
    "summarizer": (180, 512, 10),
    "finalize_failure": (60, 256, None),
    "notify": (120, 256, None),
    "api": (15, 512, 10),
}


def test_every_function_folder_is_deployed(template_json: dict[str, Any], repo_root) -> None:
    # Given the functions/ folders, When synthesized, Then each is one Lambda function
    folders = {p.name for p in (repo_root / "functions").iterdir() if (p / "handler.py").is_file()}
    assert set(functions_by_name(template_json)) == folders == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_function_runtime_architecture_tracing_and_size(template_json: dict[str, Any], name: str) -> None:
    props = functions_by_name(template_json)[name]["Properties"]
    timeout, memory, reserved = EXPECTED[name]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Handler"] == "handler.lambda_handler"
    assert props["Timeout"] == timeout
    assert props["MemorySize"] == memory
    assert props.get("ReservedConcurrentExecutions") == reserved
    assert len(props["Layers"]) == 2


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_function_logs_to_its_own_group_with_retention(template_json: dict[str, Any], name: str) -> None:
    props = functions_by_name(template_json)[name]["Properties"]
    group_id = props["LoggingConfig"]["LogGroup"]["Ref"]
    group = template_json["Resources"][group_id]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == 30
    assert group["Properties"]["LogGroupName"] == f"/aws/lambda/{props['FunctionName']}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_function_logs_json_without_lambdas_own_lines_of_successful_invocations(
    template_json: dict[str, Any], name: str
) -> None:
    # Lambda's START/REPORT lines are INFO: at system level WARN only failures' are written
    logging = functions_by_name(template_json)[name]["Properties"]["LoggingConfig"]
    assert (logging["LogFormat"], logging["SystemLogLevel"], logging["ApplicationLogLevel"]) == (
        "JSON",
        "WARN",
        "INFO",
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_function_environment(template_json: dict[str, Any], name: str) -> None:
    env = functions_by_name(template_json)[name]["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "cronpilot-dev"
    assert env["PYDANTIC_DISABLE_PLUGINS"] == "1"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "cronpilot"
    assert env["STAGE"] == "dev"
    assert "Ref" in env["TABLE_NAME"]


def test_role_specific_environment(template_json: dict[str, Any]) -> None:
    fns = functions_by_name(template_json)
    env = {name: fn["Properties"]["Environment"]["Variables"] for name, fn in fns.items()}
    machine_id = state_machine_id(template_json)
    assert env["discovery"]["STATE_MACHINE_ARN"] == {"Ref": machine_id}
    assert env["executor"]["EGRESS_ALLOWED_PORTS"] == "80,443"
    assert env["executor"]["EGRESS_ALLOWED_CIDRS"] == ""
    secret_id = next(iter(resources(template_json, "AWS::SecretsManager::Secret")))
    for name in ("planner", "summarizer"):
        assert env[name]["LLM_PROVIDER"] == "anthropic"
        assert env[name]["LLM_MODEL"] == "claude-haiku-4-5"
        assert env[name]["ANTHROPIC_SECRET_ARN"] == {"Ref": secret_id}
    # discovery knows the provider (a run's budget counts model time) but holds no key
    assert env["discovery"]["LLM_PROVIDER"] == "anthropic"
    assert env["discovery"]["EXPRESS_STATE_MACHINE_ARN"] == {
        "Ref": state_machine_id(template_json, "EXPRESS")
    }
    for name in ("executor", "finalize_failure"):
        assert "LLM_PROVIDER" not in env[name]
    for name in ("discovery", "executor", "finalize_failure"):
        assert "ANTHROPIC_SECRET_ARN" not in env[name]


def test_bedrock_variant_has_no_secret_and_no_reserved_concurrency(bedrock_json: dict[str, Any]) -> None:
    fns = functions_by_name(bedrock_json)
    assert not resources(bedrock_json, "AWS::SecretsManager::Secret")
    for fn in fns.values():
        assert "ReservedConcurrentExecutions" not in fn["Properties"]
    planner = fns["planner"]["Properties"]["Environment"]["Variables"]
    assert planner["LLM_PROVIDER"] == "bedrock"
    assert planner["LLM_MODEL"] == "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert "ANTHROPIC_SECRET_ARN" not in planner
    # the deployment's prices reach the functions that price model calls, and only them
    for name, fn in fns.items():
        variables = fn["Properties"]["Environment"]["Variables"]
        if name in ("planner", "summarizer"):
            assert variables["LLM_PRICES"] == BEDROCK_SETTINGS.llm_prices
        else:
            assert "LLM_PRICES" not in variables
    executor = fns["executor"]["Properties"]["Environment"]["Variables"]
    assert executor["EGRESS_ALLOWED_CIDRS"] == "10.20.0.0/16,192.168.1.0/24"


def test_layers_are_arm64_python313(template_json: dict[str, Any]) -> None:
    layers = resources(template_json, "AWS::Lambda::LayerVersion")
    assert len(layers) == 2
    for layer in layers.values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    for fn in resources(template_json, "AWS::Lambda::Function").values():
        assert sorted(ref["Ref"] for ref in fn["Properties"]["Layers"]) == sorted(layers)


def test_each_lambda_timeout_covers_its_task_timeout_in_the_asl(template_json: dict) -> None:
    import json

    from cronpilot.local.cloud import ASL_PATH

    asl = json.loads(ASL_PATH.read_text())
    # the stages' task timeouts are the run's limits, which the run budget caps at these Lambda timeouts
    from cronpilot.domain.budget import LAMBDA_TIMEOUTS

    task_timeouts = {name: limit.total_seconds() for name, limit in LAMBDA_TIMEOUTS.items()}
    task_timeouts["finalize_failure"] = asl["States"]["FinalizeFailure"]["TimeoutSeconds"]
    for name, (timeout, _memory, _reserved) in EXPECTED.items():
        if name in task_timeouts:
            assert timeout >= task_timeouts[name], name

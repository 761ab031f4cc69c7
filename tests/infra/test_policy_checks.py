"""The checks AWS publishes, run offline: cdk-nag AwsSolutions, cfn-lint, asl-validator, and the pinned
CDK CLI synthesizing through cdk.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack, Validations
from cronpilot.local import cloud

from tests.infra.conftest import BEDROCK_STACK, DEFAULT_STACK, PROD_STACK, Synthesized

NPX_TIMEOUT = 300


def _offline_env(**extra: str) -> dict[str, str]:
    """No credentials and no instance metadata: the CLI must not reach AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **env,
        "AWS_EC2_METADATA_DISABLED": "true",
        # npx: use the cached package when one satisfies the pinned major, without asking the registry
        "npm_config_prefer_offline": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        **extra,
    }


def _path_with_uv() -> str:
    """cdk.json runs the app with `uv run`: make the uv running these tests (`$UV`) findable."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is required: cdk.json's app command is `uv run`"
    return os.pathsep.join([str(Path(uv).parent), os.environ.get("PATH", "")])


def _npx() -> str:
    found = shutil.which("npx")
    assert found, "Node.js (npx) is required for the infrastructure checks"
    return found


def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(synthesized: Synthesized) -> None:
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())
    (nag,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert nag["conclusion"] == "success"
    assert nag["violations"] == []


def _acknowledgements(synthesized: Synthesized) -> list[tuple[Any, str, str]]:
    found = []
    for construct in synthesized.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found += [(construct, rule, reason) for rule, reason in entry.data.items()]
    return found


def test_every_acknowledgement_names_its_resource_and_gives_a_reason(synthesized: Synthesized) -> None:
    acknowledgements = _acknowledgements(synthesized)
    assert acknowledgements
    for construct, rule, reason in acknowledgements:
        # attached to one resource's construct, never to a whole stack or the app
        assert not isinstance(construct, Stack), (rule, construct.node.path)
        assert construct.node.path.count("/") >= 2, (rule, construct.node.path)
        assert rule.startswith("AwsSolutions::AwsSolutions-"), rule
        assert len(reason) >= 80, (rule, reason)
    # Wildcard acknowledgements carry the exact wildcard resource they accept
    wildcards = {rule for _, rule, _ in acknowledgements if "IAM5" in rule}
    assert wildcards == {
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:"
        "<AWS::AccountId>:secret:cronpilot/dev/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:"
        "<AWS::AccountId>:parameter/cronpilot/dev/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:"
        "<AWS::AccountId>:secret:cronpilot/bedrock/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:"
        "<AWS::AccountId>:parameter/cronpilot/bedrock/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:"
        "<AWS::AccountId>:secret:cronpilot/prod/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:"
        "<AWS::AccountId>:parameter/cronpilot/prod/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/"
        "anthropic.claude-haiku-4-5-20251001-v1:0]",
    }


@pytest.mark.parametrize("stack", [DEFAULT_STACK, BEDROCK_STACK, PROD_STACK])
def test_cfn_lint_reports_no_errors(synthesized: Synthesized, stack: str) -> None:
    from cfnlint.api import ManualArgs, lint_file

    # W3005 (redundant DependsOn) is what CDK output triggers; nothing else is ignored, warnings included
    matches = lint_file(
        synthesized.outdir / f"{stack}.template.json",
        config=ManualArgs(ignore_checks=["W3005"], regions=["us-east-1"]),
    )
    assert [str(m) for m in matches] == []


def _validate_asl(definition: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "definition.asl.json"
    path.write_text(definition)
    return subprocess.run(
        [_npx(), "--yes", "asl-validator@4", "--json-path", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=NPX_TIMEOUT,
        env=_offline_env(),
    )


@pytest.mark.xdist_group("infra-cli")
def test_asl_validator_accepts_the_asl_file_with_substitutions_applied(tmp_path: Path) -> None:
    # Given the one ASL file rendered with Lambda ARNs, as CDK's definition_substitutions produce them
    arns = {
        key: f"arn:aws:lambda:us-east-1:123456789012:function:cronpilot-dev-{key.removesuffix('FunctionArn')}"
        for key in cloud.ASL_SUBSTITUTIONS
    }
    done = _validate_asl(cloud.render_asl(arns), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # And the validator really validates: a dangling Next is rejected
    broken = json.loads(cloud.render_asl(arns))
    broken["States"]["Plan"]["Next"] = "NoSuchState"
    rejected = _validate_asl(json.dumps(broken), tmp_path)
    assert rejected.returncode != 0


@pytest.mark.xdist_group("infra-cli")
def test_pinned_cdk_cli_synthesizes_offline_through_cdk_json(
    lambda_layers: dict[str, Path], repo_root: Path, tmp_path: Path
) -> None:
    # Given cdk.json's app command and the pinned CLI major, When synthesized without credentials
    out = tmp_path / "cdk.out"
    done = subprocess.run(
        [
            _npx(),
            "--yes",
            "aws-cdk@2",
            "synth",
            "--quiet",
            "--no-notices",
            "--output",
            str(out),
            "--context",
            f"layers_dir={lambda_layers['deps'].parent}",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=False,
        timeout=NPX_TIMEOUT,
        env=_offline_env(CDK_DISABLE_VERSION_CHECK="true", PATH=_path_with_uv()),
    )
    # Then the assembly holds the stack, with cdk-nag run inside the app and passing
    assert done.returncode == 0, done.stderr[-3000:]
    template = json.loads((out / f"{DEFAULT_STACK}.template.json").read_text())
    kinds = [r["Type"] for r in template["Resources"].values()]
    assert kinds.count("AWS::Lambda::Function") == 7
    assert kinds.count("AWS::StepFunctions::StateMachine") == 2  # Standard and Express
    report = json.loads((out / "validation-report.json").read_text())
    assert [p["conclusion"] for p in report["pluginReports"]] == ["success"]

"""cdk-nag (AwsSolutions) acknowledgements. Each is attached to the one construct it concerns, never to
the stack, and carries the reason a reviewer needs. Any new finding fails synthesis."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

from .secrets import inference_profile_geo

if TYPE_CHECKING:
    from .stack import CronpilotStack

XRAY_REASON = (
    "Resource '*' for X-Ray only: xray:PutTraceSegments and xray:PutTelemetryRecords have no "
    "resource-level permissions (added by Tracing.ACTIVE). Every other statement names its ARN."
)


def _ack(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))


def acknowledge_findings(stack: CronpilotStack) -> None:
    settings = stack.functions.settings
    for name, fn in stack.functions.functions.items():
        _ack(
            fn,
            "AwsSolutions-L1",
            f"{name} is pinned to python3.13 on purpose: the dependency layer holds cp313 aarch64 "
            "wheels; moving to a newer runtime means rebuilding the layer and re-running the tests.",
        )
        assert fn.role is not None
        _ack(fn.role, "AwsSolutions-IAM5[Resource::*]", f"{name}: {XRAY_REASON}")
    for machine, level in (
        (stack.machine.state_machine, settings.standard_log_level),
        (stack.machine.express, settings.express_log_level),
    ):
        _ack(
            machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "State machine role: X-Ray (xray:PutTraceSegments, PutTelemetryRecords, GetSampling*) and "
            "CloudWatch Logs delivery (logs:CreateLogDelivery, PutResourcePolicy, ...) support no "
            "resource-level permissions. lambda:InvokeFunction names the four task functions' ARNs.",
        )
        if level != "ALL":
            _ack(
                machine,
                "AwsSolutions-SF1",
                f"Logs at {level} by the standard_log_level / express_log_level setting: every run's "
                "outcome, plan and step results are in DynamoDB and failed executions' events are "
                "logged; ALL would log every transition of every run (CloudWatch Logs ingestion).",
            )
    prefix = settings.secret_prefix
    for reader, why, parameters in (
        (stack.functions.executor, "Executor reads header secrets that job files reference by name", True),
        (stack.functions.notify, "Notify reads the webhook signing secrets that job files name", False),
    ):
        role = reader.role
        assert role is not None
        _ack(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:{prefix}*]",
            f"{why}; operators create them after deploy, so the ARN is a name prefix ({prefix}) "
            "reserved for cronpilot job secrets; GetSecretValue only.",
        )
        if not parameters:
            continue
        _ack(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/{prefix}*]",
            f"{why} (or SSM parameters), created by operators after deploy: GetParameter only, under the "
            f"/{prefix} path reserved for cronpilot job secrets.",
        )
    geo = inference_profile_geo(settings.model)
    if settings.llm_provider == "bedrock" and geo is not None:
        model_arn = f"arn:<AWS::Partition>:bedrock:*::foundation-model/{settings.model.removeprefix(geo)}"
        for fn in (stack.functions.planner, stack.functions.summarizer):
            assert fn.role is not None
            _ack(
                fn.role,
                f"AwsSolutions-IAM5[Resource::{model_arn}]",
                f"bedrock:InvokeModel through the cross-region inference profile {settings.model}: "
                "the profile routes each call to the model in whichever of its regions has capacity, "
                "so the foundation-model ARN names one model id in any region.",
            )
    if stack.secrets.anthropic_key is not None:
        _ack(
            stack.secrets.anthropic_key,
            "AwsSolutions-SMG4",
            "Anthropic API keys are issued in the Anthropic console; there is no API a rotation Lambda "
            "could call. Rotate by creating a new key and running put-secret-value (docs/deploy.md).",
        )
    if stack.network is not None:
        _ack(
            stack.network.eni_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "Executor in the operator's VPC (executor_private_cidrs): Lambda creates, describes and deletes "
            "its network interfaces with the function's role, and Lambda validates these ec2 actions "
            "unscoped at create time; the statement equals AWSLambdaVPCAccessExecutionRole's.",
        )
    _ack(
        stack.failures.queue,
        "AwsSolutions-SQS3",
        "This queue is the on-failure destination of discovery's and finalize-failure's asynchronous "
        "invocations (Lambda destinations), i.e. itself a dead-letter queue; it is alarmed and needs no DLQ.",
    )
    _ack(
        stack.schedule.dead_letters,
        "AwsSolutions-SQS3",
        "This queue is the dead-letter queue of the tick and ended-execution rules' targets (EventBridge "
        "DeadLetterConfig), which cdk-nag does not recognise as a DLQ; a DLQ needs no DLQ of its own.",
    )

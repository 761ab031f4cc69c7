"""The run state machine: the one ASL file, with the function ARNs substituted, Standard type."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .functions import CronpilotFunctions, retention
from .paths import ASL_PATH
from .settings import DeploySettings

DELIVERY_RETRIES = 2


def substitutions(functions: CronpilotFunctions) -> dict[str, str]:
    """The ASL file's `${...}` placeholders; local mode fills the same names (cronpilot.local.cloud)."""
    return {
        "PlannerFunctionArn": functions.planner.function_arn,
        "ExecutorFunctionArn": functions.executor.function_arn,
        "SummarizerFunctionArn": functions.summarizer.function_arn,
        "FinalizeFailureFunctionArn": functions.finalize_failure.function_arn,
    }


class RunStateMachine(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploySettings, functions: CronpilotFunctions
    ) -> None:
        super().__init__(scope, construct_id)
        # Vended-logs prefix: Step Functions' log delivery then needs no per-group resource policy.
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{settings.prefix}-run",
            retention=retention(settings.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{settings.prefix}-run",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_PATH)),
            definition_substitutions=substitutions(functions),
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        # The definition comes from a file, so CDK cannot infer the tasks' permissions: invoke exactly
        # the four task functions, unqualified (the ASL calls them by unqualified ARN).
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[
                    fn.function_arn
                    for fn in (
                        functions.planner,
                        functions.executor,
                        functions.summarizer,
                        functions.finalize_failure,
                    )
                ],
            )
        )

    def finalize_abnormal_ends(
        self, finalize: lambda_.IFunction, *, prefix: str, dead_letters: sqs.IQueue
    ) -> events.Rule:
        """An execution that times out or is stopped never reaches its Catch: EventBridge's status
        change sends it to finalize-failure, which records the run and releases the lease at once
        (instead of the lease expiring 30 minutes later and the run showing as running until then)."""
        return events.Rule(
            self,
            "AbnormalEnds",
            rule_name=f"{prefix}-run-ended-abnormally",
            description="cronpilot: finalize runs whose execution timed out or was stopped",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                    "status": ["TIMED_OUT", "ABORTED"],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    finalize, dead_letter_queue=dead_letters, retry_attempts=DELIVERY_RETRIES
                )
            ],
        )

    def grant_start(self, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["states:StartExecution"],
            resource_arns=[self.state_machine.state_machine_arn],
        )

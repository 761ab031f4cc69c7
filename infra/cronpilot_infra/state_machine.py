"""The run state machines: the one ASL file, with the function ARNs substituted, deployed twice.

Runs whose worst case fits well inside 5 minutes execute on the Express machine (billed per request
and duration instead of per state transition); longer ones on the Standard machine. Discovery picks
per run (cronpilot's run budget); both machines run the same definition with the same substitutions.
"""

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
        # The Standard machine keeps the construct ids it always had, so a deployed stack keeps it.
        self.state_machine, self.log_group = self._machine(
            ("StateMachine", "Logs"),
            name=f"{settings.prefix}-run",
            kind=sfn.StateMachineType.STANDARD,
            level=settings.standard_log_level,
            settings=settings,
            functions=functions,
        )
        self.express, self.express_log_group = self._machine(
            ("Express", "ExpressLogs"),
            name=f"{settings.prefix}-run-express",
            kind=sfn.StateMachineType.EXPRESS,
            level=settings.express_log_level,
            settings=settings,
            functions=functions,
        )

    def _machine(
        self,
        ids: tuple[str, str],
        *,
        name: str,
        kind: sfn.StateMachineType,
        level: str,
        settings: DeploySettings,
        functions: CronpilotFunctions,
    ) -> tuple[sfn.StateMachine, logs.LogGroup]:
        machine_id, logs_id = ids
        # Vended-logs prefix: Step Functions' log delivery then needs no per-group resource policy.
        log_group = logs.LogGroup(
            self,
            logs_id,
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=retention(settings.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        machine = sfn.StateMachine(
            self,
            machine_id,
            state_machine_name=name,
            state_machine_type=kind,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_PATH)),
            definition_substitutions=substitutions(functions),
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel[level], include_execution_data=True
            ),
            tracing_enabled=True,
        )
        # The definition comes from a file, so CDK cannot infer the tasks' permissions: invoke exactly
        # the four task functions, unqualified (the ASL calls them by unqualified ARN).
        machine.add_to_role_policy(
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
        return machine, log_group

    def finalize_abnormal_ends(
        self, finalize: lambda_.IFunction, *, prefix: str, dead_letters: sqs.IQueue
    ) -> events.Rule:
        """A Standard execution that times out or is stopped never reaches its Catch: EventBridge's
        status change sends it to finalize-failure, which records the run and releases the lease at once
        (instead of the lease expiring 30 minutes later and the run showing as running until then).
        Express executions send no status-change events: their task timeouts (the run's limits) end
        inside the Catch, and one that dies anyway is abandoned by the next claim after its lease."""
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
            resource_arns=[self.state_machine.state_machine_arn, self.express.state_machine_arn],
        )

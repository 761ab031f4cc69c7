"""The cronpilot stack: composes the constructs and wires their permissions. No resources of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from .access import ACCESS
from .api import CronpilotApi
from .failures import FINALIZE_RETRIES, AsyncFailures
from .functions import CronpilotFunctions
from .monitoring import MonitoredResources, Monitoring
from .nag import acknowledge_findings
from .network import ExecutorNetwork
from .paths import DEFAULT_LAYERS_DIR
from .schedule import DiscoverySchedule
from .secrets import CronpilotSecrets
from .settings import DeploySettings
from .state_machine import RunStateMachine
from .table import CronpilotTable


class CronpilotStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        layers_dir: Path = DEFAULT_LAYERS_DIR,
        **kwargs: Any,
    ) -> None:
        tags = {"project": "cronpilot", "stage": settings.stage}
        prod = settings.stage == "prod"
        super().__init__(
            scope,
            construct_id,
            description=f"cronpilot ({settings.stage})",
            termination_protection=prod,
            tags=tags,  # the stack itself (explicitStackTags); Tags.of below tags every resource
            **kwargs,
        )
        table = CronpilotTable(
            self,
            "Data",
            table_name=f"{settings.prefix}-data",
            retain=settings.stage == "prod",
            due_index=settings.due_index,
        )
        secrets = CronpilotSecrets(self, "Secrets", settings=settings)
        functions = CronpilotFunctions(
            self, "Functions", settings=settings, layers_dir=layers_dir, table_name=table.table.table_name
        )
        self.network = (
            ExecutorNetwork(self, "ExecutorNetwork", settings=settings, executor=functions.executor)
            if settings.subnet_ids
            else None
        )
        machine = RunStateMachine(self, "Run", settings=settings, functions=functions)
        failures = AsyncFailures(self, "AsyncFailures", settings=settings)
        schedule = DiscoverySchedule(
            self, "Schedule", settings=settings, discovery=functions.discovery, failures=failures
        )
        # finalize-failure is invoked asynchronously by the ended-execution rule: after Lambda's retries
        # the notice and the error land on the async-failures queue (alarmed), not nowhere.
        failures.keep_failures_of(
            functions.finalize_failure, retry_attempts=FINALIZE_RETRIES, max_event_age=Duration.hours(6)
        )
        machine.finalize_abnormal_ends(
            functions.finalize_failure, prefix=settings.prefix, dead_letters=schedule.dead_letters
        )

        # discovery: due query, claims (transaction of run put + job update), start one execution per run.
        table.grant_due_query(functions.discovery)
        machine.grant_start(functions.discovery)
        functions.discovery.add_environment("STATE_MACHINE_ARN", machine.state_machine.state_machine_arn)
        functions.discovery.add_environment("EXPRESS_STATE_MACHINE_ARN", machine.express.state_machine_arn)
        # the run budget counts model time when the deployment's provider plans and summarizes
        functions.discovery.add_environment("LLM_PROVIDER", settings.llm_provider)
        # every function: only the table partitions it reads and writes (access.ACCESS)
        for name, fn in functions.functions.items():
            table.grant_items(fn, ACCESS[name])
        # executor: header secrets of registered endpoints, under the job secret prefix only.
        secrets.grant_job_secrets(functions.executor)
        # notify: publish to the allowed topics only, webhook signing secrets under the job prefix;
        # the functions that raise notices invoke it asynchronously, its failures kept like the others'.
        for fn in functions.notifiers:
            # the unqualified function only (grant_invoke would add every version and alias, `:*`)
            iam.Grant.add_to_principal(
                grantee=fn, actions=["lambda:InvokeFunction"], resource_arns=[functions.notify.function_arn]
            )
        if settings.topic_arns:
            iam.Grant.add_to_principal(
                grantee=functions.notify, actions=["sns:Publish"], resource_arns=settings.topic_arns
            )
        # webhook signing secrets are Secrets Manager secrets (domain/notifications): no SSM
        secrets.grant_job_secrets(functions.notify, parameters=False)
        failures.keep_failures_of(
            functions.notify, retry_attempts=FINALIZE_RETRIES, max_event_age=Duration.hours(6)
        )
        # planner and summarizer: the LLM (API key secret, or the one Bedrock model).
        for fn in (functions.planner, functions.summarizer):
            secrets.grant_llm(fn)
            for key, value in secrets.environment.items():
                fn.add_environment(key, value)

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            settings=settings,
            resources=MonitoredResources(
                state_machine=machine.state_machine,
                functions=functions.functions,
                dead_letters=schedule.dead_letters,
                async_failures=failures.queue,
                express_state_machine=machine.express,
            ),
        )
        self.api = CronpilotApi(
            self, "Api", settings=settings, functions=functions, table=table, monitoring=self.monitoring
        )
        self.table, self.functions, self.machine, self.schedule, self.secrets, self.failures = (
            table,
            functions,
            machine,
            schedule,
            secrets,
            failures,
        )
        CfnOutput(self, "TableName", value=table.table.table_name)
        CfnOutput(self, "StateMachineArn", value=machine.state_machine.state_machine_arn)
        CfnOutput(self, "ExpressStateMachineArn", value=machine.express.state_machine_arn)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        if secrets.anthropic_key is not None:
            CfnOutput(self, "AnthropicSecretArn", value=secrets.anthropic_key.secret_arn)
        CfnOutput(self, "AsyncFailuresQueueUrl", value=failures.queue.queue_url)
        # what `cronpilot doctor` needs beyond the resources (cronpilot.dal.deployment.read_deployment)
        CfnOutput(self, "JobSecretPrefix", value=settings.secret_prefix)
        CfnOutput(self, "TickMinutes", value=str(settings.tick_minutes))
        CfnOutput(self, "MetricsService", value=settings.service)
        for key, value in tags.items():
            Tags.of(self).add(key, value)
        if prod:
            # prod keeps its logs when the stack goes (the table is retained too: CronpilotTable)
            for construct in self.node.find_all():
                if isinstance(construct, logs.LogGroup):
                    construct.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge_findings(self)

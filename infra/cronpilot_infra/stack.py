"""The cronpilot stack: composes the constructs and wires their permissions. No resources of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct
from cronpilot.dal import idempotency

from .functions import CronpilotFunctions
from .monitoring import MonitoredResources, Monitoring
from .nag import acknowledge_findings
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
        super().__init__(scope, construct_id, description=f"cronpilot ({settings.stage})", **kwargs)
        table = CronpilotTable(
            self, "Data", table_name=f"{settings.prefix}-data", retain=settings.stage == "prod"
        )
        secrets = CronpilotSecrets(self, "Secrets", settings=settings)
        functions = CronpilotFunctions(
            self, "Functions", settings=settings, layers_dir=layers_dir, table_name=table.table.table_name
        )
        machine = RunStateMachine(self, "Run", settings=settings, functions=functions)
        schedule = DiscoverySchedule(self, "Schedule", settings=settings, discovery=functions.discovery)
        machine.finalize_abnormal_ends(
            functions.finalize_failure, prefix=settings.prefix, dead_letters=schedule.dead_letters
        )

        # discovery: due query, claims (transaction of run put + job update), start one execution per run.
        table.grant_due_query(functions.discovery)
        table.grant_items(functions.discovery)
        machine.grant_start(functions.discovery)
        functions.discovery.add_environment("STATE_MACHINE_ARN", machine.state_machine.state_machine_arn)
        functions.discovery.add_environment("EXPRESS_STATE_MACHINE_ARN", machine.express.state_machine_arn)
        # the run budget counts model time when the deployment's provider plans and summarizes
        functions.discovery.add_environment("LLM_PROVIDER", settings.llm_provider)
        # the state machine's tasks: their run's items, fenced by the epoch.
        for fn in (functions.planner, functions.executor, functions.summarizer, functions.finalize_failure):
            table.grant_items(fn)
        # executor: its idempotency records (same table, one partition), and header secrets
        table.grant_idempotency_deletes(functions.executor, idempotency.EXECUTOR_PARTITION)
        # executor: header secrets of registered endpoints, under the job secret prefix only.
        secrets.grant_job_secrets(functions.executor)
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
            ),
        )
        self.table, self.functions, self.machine, self.schedule, self.secrets = (
            table,
            functions,
            machine,
            schedule,
            secrets,
        )
        CfnOutput(self, "TableName", value=table.table.table_name)
        CfnOutput(self, "StateMachineArn", value=machine.state_machine.state_machine_arn)
        CfnOutput(self, "ExpressStateMachineArn", value=machine.express.state_machine_arn)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        if secrets.anthropic_key is not None:
            CfnOutput(self, "AnthropicSecretArn", value=secrets.anthropic_key.secret_arn)
        acknowledge_findings(self)

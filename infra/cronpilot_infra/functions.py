"""The five Lambda functions and the two layers they share. Each function has its own role and log group.

Permissions beyond writing its own logs and traces are granted by the stack, from the constructs that
own the resources (table, state machine, secrets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .paths import FUNCTIONS_DIR
from .settings import DeploySettings

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    description: str
    timeout: Duration
    memory_mb: int


SPECS = {
    spec.name: spec
    for spec in (
        # One Query per shard plus one transaction per claimed run; a tick must end before the next.
        FunctionSpec(
            "discovery", "Claims due jobs and starts one execution per run", Duration.seconds(60), 512
        ),
        # Planner, executor and summarizer wait on DynamoDB, the endpoint or the model far longer than
        # they compute (~0.01-0.03 s of CPU a warm run): memory past what they hold (80-120 MB) mostly
        # pays for waiting. Their CPU share (1,769 MB = 1 vCPU) still sets the cold start: the planner
        # and summarizer import anthropic when a model is consulted, so they keep 512 MB; the
        # executor's imports (boto3, Powertools, pydantic, httpx) load in about 1.3x the time at 384 MB
        # as at 512 MB. The cost model (cronpilot_infra/cost.py) prices the CPU at each size.
        FunctionSpec(
            "planner", "Plans a run's endpoint calls as dependency waves", Duration.seconds(180), 512
        ),
        # One HTTP call with retries inside a 240 s total budget (domain.execution.MAX_TOTAL_BUDGET).
        FunctionSpec(
            "executor", "Calls one endpoint through the SSRF-safe client", Duration.seconds(300), 384
        ),
        FunctionSpec(
            "summarizer", "Summarizes a run and picks the next run time", Duration.seconds(180), 512
        ),
        FunctionSpec(
            "finalize_failure", "Records a failed run and releases its lease", Duration.seconds(60), 256
        ),
        # A batch of notices, each webhook up to 3 attempts of 10 s (cronpilot.domain.notifications).
        FunctionSpec(
            "notify", "Delivers job notifications (SNS, signed webhooks)", Duration.seconds(120), 256
        ),
    )
}


class CronpilotFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        layers_dir: Path,
        table_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        for layer in ("deps", "cronpilot"):
            if not (layers_dir / layer / "python").is_dir():
                raise FileNotFoundError(f"{layers_dir / layer / 'python'} is missing: run `make build` first")
        self.deps_layer = lambda_.LayerVersion(
            self,
            "DepsLayer",
            code=lambda_.Code.from_asset(str(layers_dir / "deps")),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="cronpilot runtime dependencies (uv.lock versions, manylinux2014 aarch64, cp313)",
        )
        self.package_layer = lambda_.LayerVersion(
            self,
            "CronpilotLayer",
            code=lambda_.Code.from_asset(str(layers_dir / "cronpilot")),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="the cronpilot package, without local mode and the CLI",
        )
        self.environment = {
            "TABLE_NAME": table_name,
            "STAGE": settings.stage,
            "POWERTOOLS_SERVICE_NAME": settings.service,
            "POWERTOOLS_METRICS_NAMESPACE": "cronpilot",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # pydantic otherwise scans every installed distribution's entry points for plugins on the
            # first model build, on every cold start; cronpilot uses none.
            "PYDANTIC_DISABLE_PLUGINS": "1",
        }
        self.functions: dict[str, lambda_.Function] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        for spec in SPECS.values():
            self.functions[spec.name] = self._function(spec, settings)
        self.discovery = self.functions["discovery"]
        self.planner = self.functions["planner"]
        self.executor = self.functions["executor"]
        self.summarizer = self.functions["summarizer"]
        self.finalize_failure = self.functions["finalize_failure"]
        self.notify = self.functions["notify"]
        self.executor.add_environment("EGRESS_ALLOWED_PORTS", settings.executor_ports)
        self.executor.add_environment(
            "EGRESS_ALLOWED_CIDRS", ",".join(str(c) for c in settings.private_cidrs)
        )
        # notify sends webhooks through the same SSRF-safe client; it is in no VPC: public networks only
        self.notify.add_environment("EGRESS_ALLOWED_PORTS", settings.executor_ports)
        self.notify.add_environment("NOTIFY_TOPIC_ARNS", ",".join(settings.topic_arns))
        # the functions that hand notices to notify (asynchronously, so delivery never delays a run)
        for fn in self.notifiers:
            fn.add_environment("NOTIFY_FUNCTION_NAME", self.notify.function_name)
        for fn in (self.planner, self.summarizer):
            fn.add_environment("LLM_PROVIDER", settings.llm_provider)
            fn.add_environment("LLM_MODEL", settings.model)
            if settings.llm_prices:
                fn.add_environment("LLM_PRICES", settings.llm_prices)

    @property
    def notifiers(self) -> tuple[lambda_.Function, ...]:
        return (self.discovery, self.summarizer, self.finalize_failure)

    def _function(self, spec: FunctionSpec, settings: DeploySettings) -> lambda_.Function:
        ident = "".join(part.title() for part in spec.name.split("_"))
        name = f"{settings.prefix}-{spec.name.replace('_', '-')}"
        log_group, role = function_logs_and_role(self, ident, spec.name, name, settings)
        fn = lambda_.Function(
            self,
            ident,
            function_name=name,
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / spec.name), exclude=["__pycache__", "*.pyc"]),
            layers=[self.package_layer, self.deps_layer],
            timeout=spec.timeout,
            memory_size=spec.memory_mb,
            **logging_options(settings),
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
            environment=dict(self.environment),
            reserved_concurrent_executions=_reserved(spec.name, settings),
        )
        self.log_groups[spec.name] = log_group
        return fn


def function_logs_and_role(
    scope: Construct, ident: str, kind: str, function_name: str, settings: DeploySettings
) -> tuple[logs.LogGroup, iam.Role]:
    """A function's own log group (`<ident>Logs`) and role (`<ident>Role`).

    Its own role, no managed policy: logs to its own group only; X-Ray is added by `tracing`.
    """
    log_group = logs.LogGroup(
        scope,
        f"{ident}Logs",
        log_group_name=f"/aws/lambda/{function_name}",
        retention=retention(settings.log_retention_days),
        removal_policy=RemovalPolicy.DESTROY,
    )
    role = iam.Role(
        scope,
        f"{ident}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"cronpilot {kind} function ({settings.stage})",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    return log_group, role


def logging_options(settings: DeploySettings) -> dict[str, Any]:
    """Every function's log settings. Powertools writes JSON whatever the format; Lambda's JSON format
    lets Lambda filter its own START/REPORT lines by level (lambda_system_log_level). The application
    level is Powertools' own (POWERTOOLS_LOG_LEVEL), so the two never disagree."""
    return {
        "logging_format": lambda_.LoggingFormat.JSON,
        "system_log_level_v2": lambda_.SystemLogLevel[settings.lambda_system_log_level],
        "application_log_level_v2": lambda_.ApplicationLogLevel.INFO,
    }


def _reserved(name: str, settings: DeploySettings) -> int | None:
    """Discovery: one tick at a time. Executor: caps the fan-out of every running job together, so a
    burst of runs can neither starve the account's other functions nor flood the endpoints. Planner
    and summarizer: cap concurrent LLM calls (rate limits, spend). Finalize-failure and notify stay
    unreserved: neither may be throttled (a lease to release, a notice to deliver)."""
    if not settings.reserved_concurrency:
        return None
    return {
        "discovery": 1,
        "executor": settings.executor_concurrency,
        "planner": settings.llm_concurrency,
        "summarizer": settings.llm_concurrency,
    }.get(name)


RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def retention(days: int) -> logs.RetentionDays:
    """CloudWatch Logs accepts only some retention periods; these are the ones the settings allow."""
    if days not in RETENTION:
        raise ValueError(f"log_retention_days {days}: one of {sorted(RETENTION)}")
    return RETENTION[days]

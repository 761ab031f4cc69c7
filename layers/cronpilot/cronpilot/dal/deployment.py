"""The deployed stack as `cronpilot doctor` sees it: its outputs, and read-only questions to the AWS
services behind them (DeploymentProbe). Secret values are read only to check them, never returned."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from cronpilot.models.deployment import Deployment, SecretState
from cronpilot.models.job import SecretRef

# The custom metric discovery emits once per tick (EMF, namespace "cronpilot", dimension service).
TICK_METRIC = "DiscoveryLagSeconds"
METRICS_NAMESPACE = "cronpilot"
ANTHROPIC_KEY_PREFIX = "sk-ant-"
# Encrypted with these, a secret is readable by any role allowed to get it (no kms:Decrypt grant needed).
AWS_MANAGED_KEYS = {"alias/aws/secretsmanager", "alias/aws/ssm"}


class DeploymentNotFound(Exception):
    """The stack does not exist or is not a cronpilot stack."""


def read_deployment(cloudformation: Any, stack: str) -> Deployment:
    """The stack's outputs; older stacks without the doctor's outputs get the defaults they had."""
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        raise DeploymentNotFound(f"cannot read stack {stack!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    table = next((v for k, v in outputs.items() if "TableName" in k), None)
    if table is None:
        raise DeploymentNotFound(f"stack {stack!r} has no TableName output: is it a cronpilot stack?")
    stage = stack.removeprefix("cronpilot-")
    return Deployment(
        stack=stack,
        table=table,
        state_machine_arns=tuple(sorted(v for k, v in outputs.items() if k.endswith("StateMachineArn"))),
        alarm_topic_arn=outputs.get("AlarmTopicArn"),
        anthropic_secret_arn=outputs.get("AnthropicSecretArn"),
        job_secret_prefix=outputs.get("JobSecretPrefix", f"cronpilot/{stage}/"),
        tick_minutes=int(outputs.get("TickMinutes", "1")),
        metrics_service=outputs.get("MetricsService", stack),
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class AwsDeploymentProbe:
    def __init__(self, deployment: Deployment, clients: dict[str, Any]) -> None:
        """`clients`: boto3 clients for dynamodb, stepfunctions, cloudwatch, sns, secretsmanager, ssm."""
        self.deployment = deployment
        self._clients = clients

    def table_exists(self) -> bool:
        try:
            self._clients["dynamodb"].describe_table(TableName=self.deployment.table)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
            raise
        return True

    def state_machine_exists(self, arn: str) -> bool:
        try:
            self._clients["stepfunctions"].describe_state_machine(stateMachineArn=arn)
        except ClientError as exc:
            if _code(exc) == "StateMachineDoesNotExist":
                return False
            raise
        return True

    def last_tick(self, since: datetime, now: datetime) -> datetime | None:
        points = self._clients["cloudwatch"].get_metric_statistics(
            Namespace=METRICS_NAMESPACE,
            MetricName=TICK_METRIC,
            Dimensions=[{"Name": "service", "Value": self.deployment.metrics_service}],
            StartTime=since,
            EndTime=now,
            Period=60,
            Statistics=["SampleCount"],
        )["Datapoints"]
        stamps = [p["Timestamp"] for p in points if p.get("SampleCount")]
        return max(stamps) if stamps else None

    def confirmed_subscriptions(self) -> int:
        assert self.deployment.alarm_topic_arn is not None
        paginator = self._clients["sns"].get_paginator("list_subscriptions_by_topic")
        confirmed = 0
        for page in paginator.paginate(TopicArn=self.deployment.alarm_topic_arn):
            for subscription in page["Subscriptions"]:
                # pending ones are not ARNs yet: nobody confirmed the e-mail
                confirmed += subscription["SubscriptionArn"].startswith("arn:")
        return confirmed

    def anthropic_key_set(self) -> bool:
        """The deploy-time placeholder is a random password; a key the console issues is sk-ant-..."""
        arn = self.deployment.anthropic_secret_arn
        assert arn is not None
        value = self._clients["secretsmanager"].get_secret_value(SecretId=arn)
        return str(value.get("SecretString", "")).startswith(ANTHROPIC_KEY_PREFIX)

    def secret_state(self, ref: SecretRef) -> SecretState:
        try:
            if ref.secret is not None:
                return self._secret(ref.secret, ref.json_key)
            assert ref.parameter is not None
            return self._parameter(ref.parameter, ref.json_key)
        except ClientError as exc:
            if _code(exc) in ("ResourceNotFoundException", "ParameterNotFound"):
                return "missing"
            if _code(exc) in ("AccessDeniedException", "AccessDenied"):
                return "unreadable"
            raise

    def _secret(self, name: str, json_key: str | None) -> SecretState:
        secrets = self._clients["secretsmanager"]
        key = secrets.describe_secret(SecretId=name).get("KmsKeyId")
        if key is not None and key not in AWS_MANAGED_KEYS:
            return "customer-key"
        value = secrets.get_secret_value(SecretId=name).get("SecretString", "")
        return _json_key_state(value, json_key)

    def _parameter(self, name: str, json_key: str | None) -> SecretState:
        ssm = self._clients["ssm"]
        by_name = [{"Key": "Name", "Values": [name]}]
        described = ssm.describe_parameters(ParameterFilters=by_name)["Parameters"]
        if not described:
            return "missing"
        key = described[0].get("KeyId")
        if described[0].get("Type") == "SecureString" and key is not None and key not in AWS_MANAGED_KEYS:
            return "customer-key"
        value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        return _json_key_state(value, json_key)


def _json_key_state(value: str, json_key: str | None) -> SecretState:
    if json_key is None:
        return "readable"
    try:
        document = json.loads(value)
    except ValueError:
        return "no-json-key"
    return "readable" if isinstance(document, dict) and json_key in document else "no-json-key"

"""Deployment settings, read from CDK context (`cdk.json` or `-c key=value`), with documented defaults.

Every key is listed in docs/deploy.md. Values given on the command line arrive as strings and are
coerced here; a bad value fails synthesis with the key's name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from cronpilot.ai.pricing import PriceConfigError, price_table

PROVIDERS = ("anthropic", "bedrock", "none")
LOG_LEVELS = ("ALL", "ERROR", "FATAL", "OFF")
SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")
_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_SECRET_PREFIX = re.compile(r"^[A-Za-z0-9/_+=.@-]+/$")
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
# Context keys of earlier versions: the alarm priced all tokens at one model's prices.
REMOVED_TOKEN_PRICES = tuple(
    f"token_price_{kind}" for kind in ("input", "output", "cache_read", "cache_write")
)


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class DeploySettings:
    stage: str = "dev"
    # Discovery tick: the schedule rule fires every `tick_minutes` minutes.
    tick_minutes: int = 1
    llm_provider: str = "anthropic"
    # Anthropic API model name, or a Bedrock model / inference profile id when llm_provider=bedrock.
    llm_model: str = ""
    # The daily token spend alarm fires above this many USD of LLM tokens per day.
    daily_budget_usd: float = 5.0
    # Prices for model ids the list prices (cronpilot.ai.pricing) lack or price differently: JSON, USD
    # per million tokens, e.g. {"claude-haiku-4-5": {"input": 1.0, "output": 5.0}}. The planner and
    # summarizer price each call with them (LLM_PRICES); the spend alarm sums those costs.
    llm_prices: str = ""
    # Alarms go to this e-mail address (subscribed to the stack's topic) ...
    alarm_email: str = ""
    # ... or to an existing SNS topic instead of a new one.
    alarm_topic_arn: str = ""
    # Private CIDRs the executor may call (comma-separated); empty = public internet only.
    executor_private_cidrs: str = ""
    executor_ports: str = "80,443"
    # The executor reaches private networks only from inside a VPC: its subnets (comma-separated) and
    # security group. Required with executor_private_cidrs; the subnets need a NAT gateway for public
    # endpoints, and a route to the private networks.
    executor_subnet_ids: str = ""
    executor_security_group_id: str = ""
    # Create the VPC endpoints the executor needs without a NAT route to AWS (DynamoDB gateway endpoint
    # on these route tables; Secrets Manager, SSM and X-Ray interface endpoints in the subnets).
    executor_vpc_endpoints: bool = False
    executor_vpc_id: str = ""
    executor_route_table_ids: str = ""
    # Job files reference header secrets by name; the executor may read only names under this prefix
    # (Secrets Manager secrets `<prefix>*` and SSM parameters `/<prefix>*`). Default: cronpilot/<stage>/.
    job_secret_prefix: str = ""
    # SNS topics job files may name in `notify:` (comma-separated ARNs); the notify function may publish
    # to these only. Empty = webhook notifications only.
    notify_topic_arns: str = ""
    # Discovery lag (seconds between a job's due time and its claim) that raises the alarm; 0 = one
    # tick plus two minutes (a job due just after a tick waits a whole tick by design).
    discovery_lag_alarm_seconds: int = 0
    log_retention_days: int = 30
    # Reserved concurrency caps the fan-out against the account (set false in accounts whose
    # concurrency limit is below 100+ these numbers, e.g. new accounts with a limit of 10).
    reserved_concurrency: bool = True
    executor_concurrency: int = 50
    llm_concurrency: int = 10
    # Upgrade only: false for one deploy removes the due index, so the next deploy can re-create it
    # keys-only (CloudFormation cannot change an index's projection in place). docs/deploy.md.
    due_index: bool = True
    # Step Functions execution logging per state machine type. Standard keeps its own execution
    # history, so its log mostly duplicates it; Express keeps none, so ERROR keeps the events of the
    # executions that failed (ALL logs every transition of every run: ~$0.50 per GB ingested).
    standard_log_level: str = "ERROR"
    express_log_level: str = "ERROR"
    # Lambda's own log lines (its JSON log format): at WARN, a successful invocation writes none (no
    # START/REPORT lines, ~0.4 KB each: duration and errors stay in the functions' metrics, the traces
    # and the alarms); INFO brings back each invocation's REPORT (duration, memory used, init time).
    lambda_system_log_level: str = "WARN"

    def __post_init__(self) -> None:
        if not _STAGE.match(self.stage):
            raise SettingsError(f"stage {self.stage!r}: lower-case letters, digits and '-', at most 16")
        if self.llm_provider not in PROVIDERS:
            raise SettingsError(f"llm_provider {self.llm_provider!r}: one of {', '.join(PROVIDERS)}")
        if not 1 <= self.tick_minutes <= 60:
            raise SettingsError("tick_minutes: between 1 and 60")
        if self.daily_budget_usd <= 0:
            raise SettingsError("daily_budget_usd: must be positive")
        try:
            price_table(self.llm_prices)
        except PriceConfigError as exc:
            raise SettingsError(str(exc).replace("LLM_PRICES", "llm_prices")) from None
        if self.job_secret_prefix and not _SECRET_PREFIX.match(self.job_secret_prefix):
            raise SettingsError("job_secret_prefix: a name prefix ending in '/', e.g. cronpilot/prod/")
        for cidr in self.private_cidrs:
            if not cidr.is_private:
                raise SettingsError(f"executor_private_cidrs: {cidr} is not a private network")
        for key in ("standard_log_level", "express_log_level"):
            if getattr(self, key) not in LOG_LEVELS:
                raise SettingsError(f"{key} {getattr(self, key)!r}: one of {', '.join(LOG_LEVELS)}")
        if self.lambda_system_log_level not in SYSTEM_LOG_LEVELS:
            raise SettingsError(
                f"lambda_system_log_level {self.lambda_system_log_level!r}: "
                f"one of {', '.join(SYSTEM_LOG_LEVELS)}"
            )
        self._check_network()
        for arn in self.topic_arns:
            if not _TOPIC_ARN.match(arn):
                raise SettingsError(f"notify_topic_arns: {arn!r} is not an SNS topic ARN (arn:aws:sns:...)")
        if self.anthropic_secret_name.startswith(self.secret_prefix):
            # the executor (the function that calls external URLs) could then read the LLM API key
            raise SettingsError(
                f"job_secret_prefix {self.secret_prefix!r} covers the Anthropic key's secret "
                f"{self.anthropic_secret_name!r}: choose a prefix that is not a beginning of it, "
                f"e.g. cronpilot/{self.stage}/"
            )
        if self.discovery_lag_alarm_seconds and self.discovery_lag_alarm_seconds <= self.tick_seconds:
            raise SettingsError(
                f"discovery_lag_alarm_seconds {self.discovery_lag_alarm_seconds}: must exceed the tick "
                f"({self.tick_seconds} s with tick_minutes={self.tick_minutes}), or 0 for tick + 120 s"
            )
        for port in self.executor_ports.split(","):
            if not port.strip().isdigit() or not 0 < int(port) < 65536:
                raise SettingsError(f"executor_ports: {port!r} is not a port")

    @property
    def private_cidrs(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        try:
            return [
                ipaddress.ip_network(c.strip()) for c in self.executor_private_cidrs.split(",") if c.strip()
            ]
        except ValueError as exc:
            raise SettingsError(f"executor_private_cidrs: {exc}") from exc

    def _check_network(self) -> None:
        """A setting that cannot take effect fails synthesis and says what to add."""
        in_vpc = bool(self.subnet_ids or self.executor_security_group_id)
        if in_vpc and not (self.subnet_ids and self.executor_security_group_id):
            raise SettingsError(
                "the executor's VPC needs both executor_subnet_ids and executor_security_group_id"
            )
        if self.private_cidrs and not in_vpc:
            raise SettingsError(
                f"executor_private_cidrs={self.executor_private_cidrs}: the executor reaches private "
                "networks only from a VPC; add -c executor_subnet_ids=subnet-a,subnet-b "
                "-c executor_security_group_id=sg-... (subnets routed to those networks, with a NAT "
                "gateway for public endpoints; see docs/deploy.md)"
            )
        for subnet in self.subnet_ids:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", subnet):
                raise SettingsError(f"executor_subnet_ids: {subnet!r} is not a subnet id (subnet-...)")
        if in_vpc and not re.fullmatch(r"sg-[0-9a-f]{8,17}", self.executor_security_group_id):
            raise SettingsError(
                f"executor_security_group_id: {self.executor_security_group_id!r} is not a security "
                "group id (sg-...)"
            )
        if self.executor_vpc_endpoints:
            if not in_vpc:
                raise SettingsError("executor_vpc_endpoints: the executor is in no VPC (executor_subnet_ids)")
            if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", self.executor_vpc_id):
                raise SettingsError("executor_vpc_endpoints: add -c executor_vpc_id=vpc-... (subnets' VPC)")
            if not self.route_table_ids:
                raise SettingsError(
                    "executor_vpc_endpoints: add -c executor_route_table_ids=rtb-... (the subnets' route "
                    "tables, for the DynamoDB gateway endpoint)"
                )

    @property
    def topic_arns(self) -> list[str]:
        return [a.strip() for a in self.notify_topic_arns.split(",") if a.strip()]

    @property
    def subnet_ids(self) -> list[str]:
        return [s.strip() for s in self.executor_subnet_ids.split(",") if s.strip()]

    @property
    def route_table_ids(self) -> list[str]:
        return [s.strip() for s in self.executor_route_table_ids.split(",") if s.strip()]

    @property
    def tick_seconds(self) -> int:
        return self.tick_minutes * 60

    @property
    def lag_alarm_seconds(self) -> int:
        return self.discovery_lag_alarm_seconds or self.tick_seconds + 120

    @property
    def model(self) -> str:
        if self.llm_model:
            return self.llm_model
        if self.llm_provider == "bedrock":
            return "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        return "claude-haiku-4-5"

    @property
    def secret_prefix(self) -> str:
        return self.job_secret_prefix or f"cronpilot/{self.stage}/"

    @property
    def anthropic_secret_name(self) -> str:
        return f"{self.prefix}/anthropic-api-key"

    @property
    def prefix(self) -> str:
        """Name prefix of every named resource: two stages can live in one account."""
        return f"cronpilot-{self.stage}"

    @property
    def service(self) -> str:
        """Powertools service name: the `service` dimension of every custom metric."""
        return self.prefix

    @classmethod
    def from_context(cls, get: Any) -> DeploySettings:
        """`get` is `node.try_get_context`; keys are the field names."""
        for old in REMOVED_TOKEN_PRICES:
            if get(old) is not None:
                raise SettingsError(
                    f"{old}: removed, the spend alarm now sums each model call's recorded cost; give "
                    """prices for a model with llm_prices='{"<model>": {"input": 1.0, "output": 5.0}}'"""
                )
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            raw = get(item.name)
            if raw is None:
                continue
            if item.name == "llm_prices" and not isinstance(raw, str):
                raw = json.dumps(raw)  # cdk.json may hold the prices as an object
            values[item.name] = _coerce(item.name, raw, type(getattr(cls(), item.name)))
        return cls(**values)


def _coerce(name: str, raw: Any, kind: type) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "1", "yes"):
                return True
            if str(raw).lower() in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"context {name}={raw!r}: expected {kind.__name__}") from exc

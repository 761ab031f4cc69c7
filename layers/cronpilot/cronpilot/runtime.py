"""The composition root: what a handler needs, built once per cold start.

The only place that builds AWS clients and the objects around them: the store, the usage ledger, the
circuit breaker, the idempotency layer, the execution starter, the HTTP client and the strategies.
Domain code receives them; it never builds them. Local mode and the tests replace parts with
`override(...)`; nothing else mutates it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from cronpilot.clock import Clock, SystemClock
from cronpilot.config import Settings, get_settings
from cronpilot.dal.store import Store

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from cronpilot.dal.executions import StepFunctionsStarter
    from cronpilot.dal.health import DynamoHealthStore
    from cronpilot.dal.idempotency import Handler
    from cronpilot.dal.usage import UsageStore
    from cronpilot.domain.budget import RunBudgeter
    from cronpilot.domain.circuit import CircuitBreaker
    from cronpilot.domain.execution import StepExecutor
    from cronpilot.domain.notifications import Channels
    from cronpilot.domain.ports import NoticeQueue
    from cronpilot.domain.strategies import PlanStrategy, SummaryStrategy
    from cronpilot.safehttp import SafeHttpClient

# The connection pool fits discovery's concurrent workers and readers (domain/discovery.py: 32 + 4);
# botocore's default pool holds 10, and a worker waiting for a connection would idle.
_BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=40,
)


@dataclass
class Runtime:
    """The process's settings, clock and the clients and stores built from them (lazily)."""

    settings: Settings
    clock: Clock

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.table_name, boto3.client("dynamodb", config=_BOTO_CONFIG))

    @cached_property
    def health_store(self) -> DynamoHealthStore:
        from cronpilot.dal.health import DynamoHealthStore

        return DynamoHealthStore(self.store.table_name, self.store.client)

    @cached_property
    def usage_ledger(self) -> UsageStore:
        from cronpilot.dal.usage import UsageStore

        return UsageStore(self.store.table_name, self.store.client)

    @cached_property
    def circuit_breaker(self) -> CircuitBreaker:
        """One breaker per origin, shared by every job that calls it."""
        from cronpilot.domain.circuit import CircuitBreaker

        return CircuitBreaker(self.health_store, self.clock)

    @cached_property
    def sfn(self) -> SFNClient:
        return boto3.client("stepfunctions", config=_BOTO_CONFIG)

    @cached_property
    def starter(self) -> StepFunctionsStarter:
        from cronpilot.dal.executions import StepFunctionsStarter

        return StepFunctionsStarter(
            self.sfn, self.settings.state_machine_arn, self.settings.express_state_machine_arn
        )

    @cached_property
    def run_budgeter(self) -> RunBudgeter:
        """Discovery's worst case per job, with the deployment's model settings."""
        from cronpilot.domain.budget import LlmTiming, RunBudgeter

        settings = self.settings
        return RunBudgeter(
            LlmTiming(settings.llm_provider, settings.llm_timeout_seconds, settings.llm_max_retries)
        )

    @cached_property
    def http_client(self) -> SafeHttpClient:
        """The executor's SSRF-safe client, kept for its connection pool. The private networks it may
        reach are a deployment choice worth a line in the logs, once per container."""
        from cronpilot.observability import logger
        from cronpilot.safehttp import EgressPolicy, SafeHttpClient  # only the executor calls out

        policy = EgressPolicy.from_settings(
            allowed_ports=self.settings.egress_allowed_ports, allowed_cidrs=self.settings.egress_allowed_cidrs
        )
        if policy.allowed_cidrs:
            logger.warning(
                "private networks reachable by the executor", cidrs=[str(c) for c in policy.allowed_cidrs]
            )
        return SafeHttpClient(policy)

    @cached_property
    def step_executor(self) -> StepExecutor:
        from cronpilot.domain.execution import StepExecutor

        return StepExecutor(self.store, self.clock, self.http_client.send, breaker=self.circuit_breaker)

    def idempotent(self, handler: Handler, on_replay: Callable[[Any], None] | None = None) -> Handler:
        """Wrap a handler in Powertools idempotency, its records in the application table."""
        from cronpilot.dal.idempotency import idempotent_executor

        return idempotent_executor(
            handler, table_name=self.store.table_name, client=self.store.client, on_replay=on_replay
        )

    @cached_property
    def notice_queue(self) -> NoticeQueue:
        from cronpilot.dal.notifications import DisabledNoticeQueue, LambdaNoticeQueue

        if not self.settings.notify_function_name:
            return DisabledNoticeQueue()
        lambda_client = boto3.client("lambda", config=_BOTO_CONFIG)
        return LambdaNoticeQueue(lambda_client, self.settings.notify_function_name)

    @cached_property
    def notify_channels(self) -> Channels:
        from cronpilot.dal.notifications import AwsChannels

        return AwsChannels(boto3.client("sns", config=_BOTO_CONFIG), self.http_client.send)

    @staticmethod
    def signing_secret(name: str) -> str:
        """A webhook signing secret's value (Secrets Manager, cached like the executor's)."""
        from cronpilot.domain.execution import resolve_secret
        from cronpilot.models.job import SecretRef

        return resolve_secret(SecretRef(secret=name))

    @cached_property
    def plan_strategy(self) -> PlanStrategy:
        from cronpilot.ai.pilot import PilotPlanner

        return PilotPlanner(self)

    @cached_property
    def summary_strategy(self) -> SummaryStrategy:
        from cronpilot.ai.pilot import PilotSummarizer

        return PilotSummarizer(self)


_current: Runtime | None = None


def get_runtime() -> Runtime:
    global _current  # the one cached composition root of a Lambda process
    if _current is None:
        _current = Runtime(settings=get_settings(), clock=SystemClock())
    return _current


def override(**changes: Any) -> Runtime:
    """Replace parts of the runtime (local mode's accelerated clock, a test's settings)."""
    global _current
    base = _current or Runtime(settings=get_settings(), clock=SystemClock())
    _current = replace(base, **changes)
    return _current


def reset() -> None:
    global _current
    _current = None
    get_settings.cache_clear()

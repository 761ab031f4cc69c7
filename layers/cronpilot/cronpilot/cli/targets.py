"""Where the CLI operates: a deployed stack (real AWS) or local mode's persistent state file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from cronpilot.clock import Clock, FixedClock, SystemClock
from cronpilot.dal.snapshot import StateFileError, load_state, save_state
from cronpilot.dal.store import Store


class TargetError(Exception):
    """The target cannot be reached or is not a cronpilot deployment."""


@dataclass
class Target:
    store: Store
    clock: Clock
    description: str


def resolve_stack(stack: str, region: str | None) -> dict[str, str]:
    """Table name and state machine ARN from the CloudFormation stack's outputs."""
    try:
        described = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack)
    except (ClientError, BotoCoreError) as exc:
        raise TargetError(f"cannot read stack {stack!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}
    table = next((v for k, v in outputs.items() if "TableName" in k), None)
    if table is None:
        raise TargetError(f"stack {stack!r} has no TableName output: is it a cronpilot stack?")
    machine = next((v for k, v in outputs.items() if "StateMachineArn" in k and "Express" not in k), "")
    return {"table": table, "state_machine_arn": machine}


@contextmanager
def deployed_target(*, stack: str | None, table: str | None, region: str | None) -> Iterator[Target]:
    if table is None:
        if stack is None:
            raise TargetError("say where to operate: --local, --stack NAME or --table NAME")
        table = resolve_stack(stack, region)["table"]
    client = boto3.client("dynamodb", region_name=region)
    yield Target(Store(table, client), SystemClock(), f"table {table}")


@contextmanager
def local_state_target(path: Path) -> Iterator[Target]:
    """Local mode's jobs and runs, kept in a state file between commands."""
    from moto import mock_aws

    from cronpilot.dal import schema
    from cronpilot.local.cloud import REGION, TABLE_NAME
    from cronpilot.local.moto_patches import serialize_dynamodb_writes

    with mock_aws():
        undo = serialize_dynamodb_writes()
        try:
            client = boto3.client("dynamodb", region_name=REGION)
            client.create_table(**schema.create_table_request(TABLE_NAME))
            try:
                simulated = load_state(path, client, TABLE_NAME)
            except StateFileError as exc:
                raise TargetError(str(exc)) from exc
            now = max(simulated or datetime.now(UTC), datetime.now(UTC)).replace(microsecond=0)
            yield Target(Store(TABLE_NAME, client), FixedClock(now), f"local state {path}")
            save_state(path, client, TABLE_NAME, now)
        finally:
            undo()

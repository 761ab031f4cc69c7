"""Step Functions: starting a run's execution (the run id is the execution name)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from cronpilot.domain.ports import StartFailed

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from cronpilot.models.run import RunRecord


class StepFunctionsStarter:
    def __init__(self, sfn: SFNClient, state_machine_arn: str) -> None:
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn

    def start(self, run: RunRecord) -> Literal["started", "already-started"]:
        payload = {"run_id": run.run_id, "job_id": run.job_id, "epoch": run.epoch}
        try:
            self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=run.run_id, input=json.dumps(payload)
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            if code == "ExecutionAlreadyExists":
                return "already-started"
            raise StartFailed(code) from exc
        return "started"

"""Step Functions: starting a run's execution (the run id is the execution name) on the state machine
its budget fits: Express when the worst case ends well inside 5 minutes, Standard otherwise."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from cronpilot.domain.ports import StartFailed

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from cronpilot.domain.ports import RunBudget
    from cronpilot.models.run import RunRecord


class StepFunctionsStarter:
    def __init__(self, sfn: SFNClient, state_machine_arn: str, express_state_machine_arn: str = "") -> None:
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn
        # Without an Express machine (a deployment from before it existed) every run goes to Standard.
        self.express_state_machine_arn = express_state_machine_arn

    def machine_for(self, budget: RunBudget) -> str:
        if budget.execution_type == "express" and self.express_state_machine_arn:
            return self.express_state_machine_arn
        return self.state_machine_arn

    def start(self, run: RunRecord, budget: RunBudget) -> Literal["started", "already-started"]:
        payload = {
            "run_id": run.run_id,
            "job_id": run.job_id,
            "epoch": run.epoch,
            "limits": budget.limits.as_input(),  # the ASL's task timeouts (TimeoutSecondsPath)
        }
        try:
            self.sfn.start_execution(
                stateMachineArn=self.machine_for(budget), name=run.run_id, input=json.dumps(payload)
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            if code == "ExecutionAlreadyExists":
                return "already-started"
            raise StartFailed(code) from exc
        return "started"

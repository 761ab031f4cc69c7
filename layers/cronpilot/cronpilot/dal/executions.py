"""Step Functions: starting a run's execution (its name derives from the run id) on the state machine
its budget fits: Express when the worst case ends well inside 5 minutes, Standard otherwise."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError

from cronpilot.domain.ports import StartFailed, StartThrottled, StartUnavailable
from cronpilot.models.run import execution_name

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from cronpilot.domain.ports import RunBudget
    from cronpilot.models.run import RunRecord

# Worth trying again: the token bucket refills, the open-executions count falls as runs end.
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ExecutionLimitExceeded"}


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
        """Standard executions are idempotent on (name, input): a repeated start of a running
        execution answers as the first did, one of a closed execution ExecutionAlreadyExists. Express
        does not dedupe names: a second start runs twice, which the epoch fence and the idempotent
        steps make harmless."""
        payload = {
            "run_id": run.run_id,
            "job_id": run.job_id,
            "epoch": run.epoch,
            "limits": budget.limits.as_input(),  # the ASL's task timeouts (TimeoutSecondsPath)
        }
        try:
            self.sfn.start_execution(
                stateMachineArn=self.machine_for(budget),
                name=execution_name(run.run_id),
                input=json.dumps(payload),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            if code == "ExecutionAlreadyExists":
                return "already-started"
            if code in _THROTTLED:
                raise StartThrottled(code) from exc
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise StartUnavailable(code) from exc
            raise StartFailed(code) from exc
        except BotoCoreError as exc:  # no answer at all: connection refused, reset, timed out
            raise StartUnavailable(type(exc).__name__) from exc
        return "started"

"""What `cronpilot doctor` reads about a deployed stack (dal/deployment.py fills it in, the domain's
diagnosis judges it). Kept out of domain/ports.py, which every Lambda handler imports: only doctor uses it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What `cronpilot doctor` learns about a deployed secret: readable by the executor, or why not.
SecretState = Literal["readable", "missing", "customer-key", "no-json-key", "unreadable"]


@dataclass(frozen=True)
class Deployment:
    """A deployed stack as its outputs describe it."""

    stack: str
    table: str
    state_machine_arns: tuple[str, ...]
    alarm_topic_arn: str | None
    anthropic_secret_arn: str | None
    job_secret_prefix: str
    tick_minutes: int
    metrics_service: str

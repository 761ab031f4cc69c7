"""Stack chores the Makefile runs with the project's boto3 (no AWS CLI needed).

`python infra/stack_admin.py unprotect STACK [--profile P] [--region R]` lifts termination protection,
which `make destroy STAGE=prod CONFIRM=cronpilot-prod` needs first. Other arguments (the CDK CLI's,
passed through CDK_ARGS) are ignored.
"""

from __future__ import annotations

import argparse
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def unprotect(stack: str, *, profile: str | None, region: str | None) -> None:
    session = boto3.Session(profile_name=profile, region_name=region)
    session.client("cloudformation").update_termination_protection(
        EnableTerminationProtection=False, StackName=stack
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cronpilot stack chores")
    parser.add_argument("command", choices=["unprotect"])
    parser.add_argument("stack")
    parser.add_argument("--profile")
    parser.add_argument("--region")
    args, _ = parser.parse_known_args(argv)
    try:
        unprotect(args.stack, profile=args.profile, region=args.region)
    except (ClientError, BotoCoreError) as exc:
        print(f"cannot lift termination protection of {args.stack}: {exc}", file=sys.stderr)
        return 1
    print(f"termination protection of {args.stack} lifted")
    return 0


if __name__ == "__main__":
    sys.exit(main())

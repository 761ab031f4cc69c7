"""Stack chores the Makefile runs with the project's boto3 (no AWS CLI needed).

- `unprotect STACK [--profile P] [--region R]` lifts termination protection, which
  `make destroy STAGE=prod CONFIRM=cronpilot-prod` needs first. Other arguments (the CDK CLI's,
  passed through CDK_ARGS) are ignored.
- `import-mapping TEMPLATE OUT` writes the `cdk import --resource-mapping` file for what a destroyed
  stack kept (DeletionPolicy Retain: the prod table and log groups), so `make import-retained` adopts
  them into the new stack instead of failing on "already exists".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# The retained resource types and the property CloudFormation identifies each by on import.
IMPORT_IDENTIFIERS = {"AWS::DynamoDB::Table": "TableName", "AWS::Logs::LogGroup": "LogGroupName"}


def unprotect(stack: str, cloudformation: Any) -> None:
    cloudformation.update_termination_protection(EnableTerminationProtection=False, StackName=stack)


def import_mapping(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Logical id -> identifier of every retained table and log group (their names are literal)."""
    mapping = {}
    for logical_id, resource in template["Resources"].items():
        identifier = IMPORT_IDENTIFIERS.get(resource["Type"])
        if identifier is None or resource.get("DeletionPolicy") != "Retain":
            continue
        name = resource["Properties"].get(identifier)
        if not isinstance(name, str):
            raise ValueError(f"{logical_id}: {identifier} is not a literal name, it cannot be imported")
        mapping[logical_id] = {identifier: name}
    return mapping


def main(argv: list[str] | None = None, cloudformation: Any = None) -> int:
    parser = argparse.ArgumentParser(description="cronpilot stack chores")
    commands = parser.add_subparsers(dest="command", required=True)
    protect = commands.add_parser("unprotect")
    protect.add_argument("stack")
    protect.add_argument("--profile")
    protect.add_argument("--region")
    mapping = commands.add_parser("import-mapping")
    mapping.add_argument("template", type=Path)
    mapping.add_argument("out", type=Path)
    args, _ = parser.parse_known_args(argv)
    if args.command == "import-mapping":
        found = import_mapping(json.loads(args.template.read_text()))
        if not found:
            print(f"{args.template}: nothing is retained (only prod keeps table and logs)", file=sys.stderr)
            return 2
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(found, indent=2))
        print(f"{args.out}: " + ", ".join(v for ids in found.values() for v in ids.values()))
        return 0
    try:
        if cloudformation is None:
            session = boto3.Session(profile_name=args.profile, region_name=args.region)
            cloudformation = session.client("cloudformation")
        unprotect(args.stack, cloudformation)
    except (ClientError, BotoCoreError) as exc:
        print(f"cannot lift termination protection of {args.stack}: {exc}", file=sys.stderr)
        return 1
    print(f"termination protection of {args.stack} lifted")
    return 0


if __name__ == "__main__":
    sys.exit(main())

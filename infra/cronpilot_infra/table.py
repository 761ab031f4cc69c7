"""The single table, built from the shared schema module (the same one local mode and the tests use)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct
from cronpilot.dal import schema

from .access import DELETE_ACTIONS, READ_ACTIONS, WRITE_ACTIONS, TableAccess


class CronpilotTable(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, table_name: str, retain: bool, due_index: bool = True
    ) -> None:
        super().__init__(scope, construct_id)
        s = schema.SCHEMA
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=dynamodb.Attribute(name=s.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=s.sort_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=s.ttl_attribute,
            deletion_protection=retain,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )
        if due_index:  # absent for one deploy only, when upgrading the index's projection
            self.table.add_global_secondary_index(
                index_name=s.due_index,
                partition_key=dynamodb.Attribute(name=s.due_index_pk, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=s.due_index_sk, type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType(s.due_index_projection),
            )
        self.due_index_arn = f"{self.table.table_arn}/index/{s.due_index}"

    def grant_items(self, grantee: iam.IGrantable, access: TableAccess) -> None:
        """Item reads, writes and deletes on the table itself (no Scan, no index), each kind limited to
        the partitions `access` names: every key of the request must match (ForAllValues)."""
        for actions, patterns in (
            (READ_ACTIONS, access.read),
            (WRITE_ACTIONS, access.write),
            (DELETE_ACTIONS, access.delete),
        ):
            if not patterns:
                continue
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=list(actions),
                resource_arns=[self.table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(patterns)}},
            )

    def grant_due_query(self, grantee: iam.IGrantable) -> None:
        """Query on the sparse "due" index only (discovery)."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["dynamodb:Query"], resource_arns=[self.due_index_arn]
        )

"""The single table, built from the shared schema module (the same one local mode and the tests use)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct
from cronpilot.dal import schema

# Item operations the functions use. TransactWriteItems has no IAM action of its own: each item in a
# transaction is authorised as its PutItem / UpdateItem / ConditionCheckItem.
ITEM_READ_WRITE = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
)


class CronpilotTable(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, table_name: str, retain: bool) -> None:
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
        self.table.add_global_secondary_index(
            index_name=s.due_index,
            partition_key=dynamodb.Attribute(name=s.due_index_pk, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=s.due_index_sk, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        self.due_index_arn = f"{self.table.table_arn}/index/{s.due_index}"

    def grant_items(self, grantee: iam.IGrantable) -> None:
        """Item reads and fenced writes on the table itself (no Scan, no DeleteItem, no index)."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(ITEM_READ_WRITE), resource_arns=[self.table.table_arn]
        )

    def grant_idempotency_deletes(self, grantee: iam.IGrantable, partition: str) -> None:
        """DeleteItem, only in one partition: Powertools idempotency deletes its in-progress record when
        the handler raises, so a genuine retry runs again. No other item can be deleted."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:DeleteItem"],
            resource_arns=[self.table.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [partition]}},
        )

    def grant_due_query(self, grantee: iam.IGrantable) -> None:
        """Query on the sparse "due" index only (discovery)."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["dynamodb:Query"], resource_arns=[self.due_index_arn]
        )

"""The executor's network: inside a VPC when it must reach private networks (executor_private_cidrs).

Subnets and security group come from context (the VPC is the operator's); optionally the endpoints the
executor needs when its subnets have no NAT route to AWS. The other functions stay outside any VPC.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .settings import DeploySettings

# What the executor calls besides the endpoints: its items (DynamoDB), header secrets (Secrets Manager,
# SSM) and traces (X-Ray). CloudWatch Logs go through the Lambda service, not the function's network.
INTERFACE_SERVICES = ("secretsmanager", "ssm", "xray")
# The ENI actions Lambda needs to attach a function to subnets (those of AWSLambdaVPCAccessExecutionRole).
ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


class ExecutorNetwork(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploySettings, executor: lambda_.Function
    ) -> None:
        super().__init__(scope, construct_id)
        self.endpoints: dict[str, ec2.CfnVPCEndpoint] = {}
        subnets, group = settings.subnet_ids, settings.executor_security_group_id
        # L1 on purpose: the subnets and group are ids from context; an IVpc would need a lookup (AWS
        # access at synth) or invented availability zones.
        function = executor.node.default_child
        assert isinstance(function, lambda_.CfnFunction)
        function.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
            subnet_ids=subnets, security_group_ids=[group]
        )
        assert executor.role is not None
        # Lambda creates and deletes the ENIs with the function's role; EC2 checks these at create time
        # without resource scoping (the same statement as AWSLambdaVPCAccessExecutionRole).
        self.eni_policy = iam.Policy(
            self,
            "EniPolicy",
            statements=[iam.PolicyStatement(actions=list(ENI_ACTIONS), resources=["*"])],
            roles=[executor.role],
        )
        function.add_resource_dependency(self.eni_policy.node.default_child)  # type: ignore[arg-type]
        if settings.executor_vpc_endpoints:
            self._endpoints(settings)

    def _endpoints(self, settings: DeploySettings) -> None:
        vpc = settings.executor_vpc_id
        # The endpoints accept HTTPS from the executor's security group only.
        endpoint_group = ec2.CfnSecurityGroup(
            self,
            "EndpointsGroup",
            vpc_id=vpc,
            group_description=f"{settings.prefix}: VPC endpoints the executor calls",
            security_group_ingress=[
                ec2.CfnSecurityGroup.IngressProperty(
                    ip_protocol="tcp",
                    from_port=443,
                    to_port=443,
                    source_security_group_id=settings.executor_security_group_id,
                    description="HTTPS from the cronpilot executor",
                )
            ],
        )
        self.endpoints["dynamodb"] = ec2.CfnVPCEndpoint(
            self,
            "DynamoDbEndpoint",
            vpc_id=vpc,
            service_name=f"com.amazonaws.{Aws.REGION}.dynamodb",
            vpc_endpoint_type="Gateway",
            route_table_ids=settings.route_table_ids,
        )
        for service in INTERFACE_SERVICES:
            self.endpoints[service] = ec2.CfnVPCEndpoint(
                self,
                f"{service.title()}Endpoint",
                vpc_id=vpc,
                service_name=f"com.amazonaws.{Aws.REGION}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=settings.subnet_ids,
                security_group_ids=[endpoint_group.attr_group_id],
            )

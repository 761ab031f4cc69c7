"""executor_private_cidrs takes effect: the executor (only) sits in the operator's VPC, with the ENI
permissions Lambda needs and, when asked, the endpoints it calls. Without subnets, synthesis refuses."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import (
    BEDROCK_SETTINGS,
    EXECUTOR_GROUP,
    EXECUTOR_SUBNETS,
    LAMBDA_VPC_ENI,
    functions_by_name,
    grants,
    resources,
    role_statements,
)

ENI = LAMBDA_VPC_ENI


def test_executor_runs_in_the_configured_subnets_and_group(bedrock_json: dict[str, Any]) -> None:
    fns = functions_by_name(bedrock_json)
    executor = fns["executor"]["Properties"]
    assert executor["VpcConfig"] == {"SubnetIds": EXECUTOR_SUBNETS, "SecurityGroupIds": [EXECUTOR_GROUP]}
    assert executor["Environment"]["Variables"]["EGRESS_ALLOWED_CIDRS"] == "10.20.0.0/16,192.168.1.0/24"
    # the other functions call no private network: they stay out of the VPC (no ENIs, no NAT needed)
    for name, fn in fns.items():
        if name != "executor":
            assert "VpcConfig" not in fn["Properties"], name


def test_executor_role_may_manage_its_network_interfaces(bedrock_json: dict[str, Any]) -> None:
    fns = functions_by_name(bedrock_json)
    got = grants(role_statements(bedrock_json, fns["executor"]["Properties"]["Role"]))
    assert set(got) >= ENI
    for name, fn in fns.items():
        if name != "executor":
            assert not ENI & set(grants(role_statements(bedrock_json, fn["Properties"]["Role"]))), name
    # the function is created only after its role may create the interfaces
    (policy_id,) = [
        k
        for k, v in resources(bedrock_json, "AWS::IAM::Policy").items()
        if "ec2:CreateNetworkInterface" in str(v["Properties"]["PolicyDocument"])
    ]
    executor_id = next(k for k, v in bedrock_json["Resources"].items() if v is fns["executor"])
    assert policy_id in bedrock_json["Resources"][executor_id]["DependsOn"]


def test_endpoints_for_what_the_executor_calls(bedrock_json: dict[str, Any]) -> None:
    endpoints = {
        v["Properties"]["ServiceName"]["Fn::Join"][1][-1].removeprefix("."): v["Properties"]
        for v in resources(bedrock_json, "AWS::EC2::VPCEndpoint").values()
    }
    assert set(endpoints) == {"dynamodb", "secretsmanager", "ssm", "xray"}
    assert endpoints["dynamodb"]["VpcEndpointType"] == "Gateway"
    assert endpoints["dynamodb"]["RouteTableIds"] == [BEDROCK_SETTINGS.executor_route_table_ids]
    (group_id,) = resources(bedrock_json, "AWS::EC2::SecurityGroup")
    for service in ("secretsmanager", "ssm", "xray"):
        props = endpoints[service]
        assert (props["VpcEndpointType"], props["PrivateDnsEnabled"]) == ("Interface", True)
        assert props["SubnetIds"] == EXECUTOR_SUBNETS
        assert props["SecurityGroupIds"] == [{"Fn::GetAtt": [group_id, "GroupId"]}]
        assert props["VpcId"] == BEDROCK_SETTINGS.executor_vpc_id
    # the endpoints accept HTTPS from the executor's group and nothing else
    (ingress,) = bedrock_json["Resources"][group_id]["Properties"]["SecurityGroupIngress"]
    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 443, 443)
    assert ingress["SourceSecurityGroupId"] == EXECUTOR_GROUP


def test_default_stack_has_no_network_resources(template_json: dict[str, Any]) -> None:
    assert "VpcConfig" not in functions_by_name(template_json)["executor"]["Properties"]
    assert not resources(template_json, "AWS::EC2::VPCEndpoint")
    assert not resources(template_json, "AWS::EC2::SecurityGroup")

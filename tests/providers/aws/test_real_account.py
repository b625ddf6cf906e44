"""What a real AWS account refuses that plain moto accepts, met by the provider (issue 13).

moto is made to answer as AWS does by :mod:`tests.providers.aws.aws_behaviour` (each rule names its
source there); these tests drive the provider through the contract and assert what the user sees:
the Service's load balancer, its targets, its rules, and the calls made.
"""

from __future__ import annotations

import logging

import boto3
import pytest

from ccm.cloudprovider import Node
from providers.aws.provider import AWSProvider
from tests.providers.aws.conftest import Network, RequestFactory, add_instance

GONE = "i-0123456789abcdef0"  # an instance terminated long ago: DescribeInstances(InstanceIds) → NotFound


def _registered(status_hostname: str) -> dict[int, list[str]]:
    elbv2 = boto3.client("elbv2")
    lb = next(
        lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["DNSName"] == status_hostname
    )
    out: dict[int, list[str]] = {}
    for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
        tg = listener["DefaultActions"][0]["TargetGroupArn"]
        health = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        out[int(listener["Port"])] = sorted(h["Target"]["Id"] for h in health)
    return out


# -- 5. nodes whose instance is gone, stopped or terminated ------------------------------------------


def test_a_node_whose_instance_no_longer_exists_does_not_block_the_service(
    provider: AWSProvider, make_request: RequestFactory, network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    ghost = Node(name="ghost", provider_id=f"aws:///us-east-1a/{GONE}", zone="us-east-1a")
    request = make_request("web", nodes=(*network.nodes(), ghost))
    with caplog.at_level(logging.WARNING, logger="providers.aws"):
        status = provider.ensure_load_balancer(request=request)
    running = sorted(i for i, _ in network.instances)
    assert _registered(status.ingress[0].hostname) == {80: running, 443: running}
    assert GONE in caplog.text


def test_stopped_and_terminated_instances_are_not_registered_and_the_running_ones_are(
    provider: AWSProvider, make_request: RequestFactory, network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    ec2 = boto3.client("ec2")
    stopped, terminated = network.instances[0][0], network.instances[1][0]
    ec2.stop_instances(InstanceIds=[stopped])
    ec2.terminate_instances(InstanceIds=[terminated])
    request = make_request("web")
    with caplog.at_level(logging.WARNING, logger="providers.aws"):
        status = provider.ensure_load_balancer(request=request)
    assert _registered(status.ingress[0].hostname) == {
        80: [network.instances[2][0]],
        443: [network.instances[2][0]],
    }
    assert stopped in caplog.text and terminated in caplog.text
    # the next ensure does not hammer AWS with the same refused registration
    provider.clients.reset_counts()
    provider.ensure_load_balancer(request=request)
    assert "RegisterTargets" not in provider.clients.snapshot()


def test_a_node_added_with_a_stopped_instance_does_not_keep_the_others_out(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    request = make_request("web")
    status = provider.ensure_load_balancer(request=request)
    fresh, _az = add_instance(network)
    stopped, _az = add_instance(network, "us-east-1b")
    boto3.client("ec2").stop_instances(InstanceIds=[stopped])
    provider.update_load_balancer(request=request.with_nodes(network.nodes()))
    want = sorted([*(i for i, _ in network.instances[:3]), fresh])
    assert _registered(status.ingress[0].hostname) == {80: want, 443: want}


# -- 7. the backend rule on the nodes' security group -----------------------------------------------


def _backend_sg(network: Network) -> str:
    """The cluster's shared backend group as the controller finds it (made here, before any Service)."""
    return str(
        boto3.client("ec2").create_security_group(
            GroupName="k8s-traffic-test",
            Description="backend",
            VpcId=network.vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [
                        {"Key": "kubernetes.io/cluster/test", "Value": "owned"},
                        {"Key": "ccm-lb/resource", "Value": "backend-security-group"},
                    ],
                }
            ],
        )["GroupId"]
    )


def _node_rules(network: Network) -> list[tuple[str, int, int]]:
    group = boto3.client("ec2").describe_security_groups(GroupIds=[network.node_sg])["SecurityGroups"][0]
    return sorted((p["IpProtocol"], p["FromPort"], p["ToPort"]) for p in group["IpPermissions"])


def test_a_node_group_with_one_of_the_three_rules_gets_the_other_two(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    backend = _backend_sg(network)
    boto3.client("ec2").authorize_security_group_ingress(
        GroupId=network.node_sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 30000,
                "ToPort": 32767,
                "UserIdGroupPairs": [{"GroupId": backend}],
            }
        ],
    )
    provider.ensure_load_balancer(request=make_request("web"))
    assert _node_rules(network) == [("tcp", 10256, 10256), ("tcp", 30000, 32767), ("udp", 30000, 32767)]


def test_a_restart_with_the_node_rules_in_place_authorizes_nothing(
    make_request: RequestFactory, network: Network
) -> None:
    from tests.providers.aws.conftest import new_provider

    request = make_request("web")
    new_provider().ensure_load_balancer(request=request)
    restarted = new_provider()
    restarted.ensure_load_balancer(request=request)
    assert "AuthorizeSecurityGroupIngress" not in restarted.clients.snapshot()
    assert len(_node_rules(network)) == 3

"""moto seeded like a real cluster's account, and the AWS provider pointed at it over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import boto3
import pytest

from ccm.cloudprovider import LoadBalancerRequest, Node, ServicePort
from providers.aws.config import AWSConfig
from providers.aws.provider import AWSProvider
from tests.providers.aws.aws_behaviour import AWSBehaviour

CLUSTER = "test"
CLUSTER_TAG = f"kubernetes.io/cluster/{CLUSTER}"


@dataclass
class Network:
    vpc_id: str
    subnets: dict[str, str]  # AZ → subnet id
    node_sg: str
    instances: list[tuple[str, str]]  # (instance id, AZ)

    def nodes(self, count: int | None = None) -> tuple[Node, ...]:
        chosen = self.instances if count is None else self.instances[:count]
        return tuple(
            Node(name=f"node-{i}", provider_id=f"aws:///{az}/{iid}", zone=az)
            for i, (iid, az) in enumerate(chosen)
        )


def seed_network(*, instances: int = 3) -> Network:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # public subnets, as a real cluster's elb-role subnets are: the VPC's main route table (which the
    # subnets use, having no table of their own) routes 0.0.0.0/0 to an internet gateway
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    subnets = {}
    for index, az in enumerate(("us-east-1a", "us-east-1b")):
        subnet = ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.0.{index + 1}.0/24",
            AvailabilityZone=az,
            TagSpecifications=[
                {
                    "ResourceType": "subnet",
                    "Tags": [
                        {"Key": CLUSTER_TAG, "Value": "owned"},
                        {"Key": "kubernetes.io/role/elb", "Value": "1"},
                        {"Key": "Name", "Value": f"public-{az}"},
                    ],
                }
            ],
        )["Subnet"]["SubnetId"]
        subnets[az] = subnet
    node_sg = ec2.create_security_group(
        GroupName="nodes",
        Description="nodes",
        VpcId=vpc,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": CLUSTER_TAG, "Value": "owned"}]}
        ],
    )["GroupId"]
    made = []
    for i in range(instances):
        az = ("us-east-1a", "us-east-1b")[i % 2]
        iid = ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnets[az], SecurityGroupIds=[node_sg]
        )["Instances"][0]["InstanceId"]
        made.append((iid, az))
    return Network(vpc_id=vpc, subnets=subnets, node_sg=node_sg, instances=made)


def add_instance(network: Network, az: str = "us-east-1a") -> tuple[str, str]:
    ec2 = boto3.client("ec2")
    iid = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        SubnetId=network.subnets[az],
        SecurityGroupIds=[network.node_sg],
    )["Instances"][0]["InstanceId"]
    network.instances.append((iid, az))
    return iid, az


@pytest.fixture
def network(aws: str) -> Network:
    return seed_network()


RequestFactory = Callable[..., LoadBalancerRequest]


@pytest.fixture
def make_request(network: Network) -> RequestFactory:
    counter = iter(range(1, 10_000))

    def make(
        name: str | None = None,
        *,
        ports: tuple[tuple[int, str], ...] = ((80, "TCP"), (443, "TCP")),
        annotations: dict[str, str] | None = None,
        nodes: tuple[Node, ...] | None = None,
        uid: str | None = None,
        **fields: Any,
    ) -> LoadBalancerRequest:
        n = next(counter)
        return LoadBalancerRequest(
            cluster_name=CLUSTER,
            namespace="default",
            name=name or f"svc-{n}",
            uid=uid or f"00000000-0000-0000-0000-{n:012d}",
            ports=tuple(
                ServicePort(
                    name=f"p{port}-{proto.lower()}",
                    protocol=proto,
                    port=port,
                    node_port=30000 + port + (1 if proto == "UDP" else 0),
                )
                for port, proto in ports
            ),
            nodes=network.nodes() if nodes is None else nodes,
            annotations=MappingProxyType(dict(annotations or {})),
            **fields,
        )

    return make


def new_provider(**config: Any) -> AWSProvider:
    provider = AWSProvider(cluster_name=CLUSTER, config=AWSConfig(**config), orphan_grace_seconds=0.0)
    AWSBehaviour(provider.clients).install()
    return provider


@pytest.fixture
def provider(aws: str, network: Network) -> AWSProvider:
    return new_provider()


def owned(
    types: tuple[str, ...] = (
        "elasticloadbalancing:loadbalancer",
        "elasticloadbalancing:targetgroup",
        "ec2:security-group",
    ),
) -> list[dict[str, Any]]:
    """Everything in the account that carries this cluster's ownership tag."""
    tagging = boto3.client("resourcegroupstaggingapi")
    return list(
        tagging.get_resources(
            TagFilters=[{"Key": CLUSTER_TAG, "Values": ["owned"]}], ResourceTypeFilters=list(types)
        )["ResourceTagMappingList"]
    )


def service_resources() -> list[dict[str, Any]]:
    """Owned resources that belong to some Service (the shared backend SG excluded)."""
    return [r for r in owned() if any(t["Key"] == "ccm-lb/service-uid" for t in r["Tags"])]

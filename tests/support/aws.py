"""The moto account seeded like a real cluster's, what tests read back from it, and the AWS provider on it.

``seed_network`` makes what a cluster's account holds (a VPC with an internet gateway, two public
subnets tagged for the cluster and the ELB role, the nodes' security group, instances); the readers
go through the AWS APIs as a user would (the tagging API, describe calls). :func:`ccm_flags` is how
the tests run ``ccm run --cloud-provider=aws`` on the account (``ccm_run`` fixture).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from kubernetes import client

from ccm.cloudprovider import LoadBalancerRequest, Node
from ccm.envtest.controlplane import ControlPlane
from providers.aws.config import AWSConfig
from providers.aws.provider import AWSProvider
from tests.providers.aws.aws_behaviour import AWSBehaviour
from tests.support import kube

CLUSTER = "test"
CLUSTER_TAG = f"kubernetes.io/cluster/{CLUSTER}"

RequestFactory = Callable[..., LoadBalancerRequest]


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


def new_provider(**config: Any) -> AWSProvider:
    provider = AWSProvider(cluster_name=CLUSTER, config=AWSConfig(**config), orphan_grace_seconds=0.0)
    AWSBehaviour(provider.clients).install()
    return provider


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


def ccm_flags(control_plane: ControlPlane) -> tuple[str, ...]:
    """``ccm run`` on the moto account (reached through AWS_ENDPOINT_URL, set by the ``aws`` fixture)."""
    return (
        "--cloud-provider=aws",
        f"--kubeconfig={control_plane.kubeconfig}",
        f"--cluster-name={CLUSTER}",
        "--leader-elect=false",
        "--secure-port=0",
        "--concurrent-service-syncs=2",
        "--v=2",
    )


def register_node(kube_api: client.ApiClient, instance: tuple[str, str]) -> str:
    """The Node of a seeded instance (``aws:///<az>/<id>`` providerID), Ready; returns its name."""
    iid, az = instance
    name = f"ip-{iid}"
    kube.create_node(kube_api, name, provider_id=f"aws:///{az}/{iid}", zone=az)
    return name


def load_balancer() -> dict[str, Any] | None:
    """The account's load balancer when there is exactly one (the tests that use it make one)."""
    lbs = boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]
    return lbs[0] if len(lbs) == 1 else None


def listeners() -> dict[int, dict[str, Any]]:
    """The listeners of :func:`load_balancer`, by port."""
    lb = load_balancer()
    if lb is None:
        return {}
    return {
        int(x["Port"]): x
        for x in boto3.client("elbv2").describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    }


def targets_of(port: int) -> list[str]:
    """The instance IDs registered in the target group behind the listener of ``port``, sorted."""
    listener = listeners().get(port)
    if listener is None:
        return []
    tg = listener["DefaultActions"][0]["TargetGroupArn"]
    health = boto3.client("elbv2").describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    return sorted(h["Target"]["Id"] for h in health)


MUTATING = (
    "Create",
    "Register",
    "Modify",
    "Delete",
    "Authorize",
    "Revoke",
    "Add",
    "Set",
    "Deregister",
    "Remove",
    # the Classic ELB API's writes: ConfigureHealthCheck, ApplySecurityGroupsToLoadBalancer,
    # AttachLoadBalancerToSubnets, DetachLoadBalancerFromSubnets
    "Configure",
    "Apply",
    "Attach",
    "Detach",
)


class Crash(Exception):
    """The process 'dies' right after a call that AWS already carried out."""


def crash_after(provider: AWSProvider, n: int) -> list[str]:
    """Raise Crash after the n-th mutating call has succeeded; returns the list of mutations seen."""
    seen: list[str] = []

    def after(*, model: Any, **_: Any) -> None:
        if model.name.startswith(MUTATING):
            seen.append(model.name)
            if len(seen) == n:
                raise Crash(f"crashed after {model.name}")

    provider.clients.register("after-call.*.*", after)
    return seen


def ccm_migrate(control_plane: ControlPlane, *flags: str) -> subprocess.CompletedProcess[str]:
    """``ccm migrate --cloud-provider=aws`` on the moto account (the environment's), as a process."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ccm.cli",
            "migrate",
            "--cloud-provider=aws",
            f"--kubeconfig={control_plane.kubeconfig}",
            f"--cluster-name={CLUSTER}",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

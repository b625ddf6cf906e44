"""Requests and network facts for the AWS builders' tests (no AWS): a cluster's VPC with a public and a
private subnet per zone plus distractors, nodes, and a request factory."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

from ccm.cloudprovider import LoadBalancerRequest, Node, ServicePort
from providers.aws.model import ClusterInfo, Subnet

CLUSTER = "prod"
VPC = "vpc-0a"
UID = "6c8a4e1a-3f5b-4c2d-9e7f-0123456789ab"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f6d1c5e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"

OURS = (f"kubernetes.io/cluster/{CLUSTER}", "shared")
PUBLIC = ("kubernetes.io/role/elb", "1")
PRIVATE = ("kubernetes.io/role/internal-elb", "1")


def subnet(subnet_id: str, az: str, cidr: str, *tags: tuple[str, str], public: bool = True) -> Subnet:
    return Subnet(
        subnet_id=subnet_id, vpc_id=VPC, availability_zone=az, cidr_block=cidr, tags=tags, public=public
    )


SUBNETS = (
    subnet("subnet-0a0public", "us-east-1a", "10.0.0.0/20", OURS, PUBLIC, ("Name", "public-a")),
    subnet("subnet-0b0public", "us-east-1b", "10.0.16.0/20", OURS, PUBLIC, ("Name", "public-b")),
    subnet("subnet-1a0private", "us-east-1a", "10.0.64.0/20", OURS, PRIVATE, public=False),
    subnet("subnet-1b0private", "us-east-1b", "10.0.80.0/20", OURS, PRIVATE, public=False),
    subnet("subnet-000untagged", "us-east-1a", "10.0.128.0/24"),
    replace(subnet("subnet-000elsewhere", "us-east-1e", "10.9.0.0/24", OURS, PUBLIC), vpc_id="vpc-0other"),
)
NETWORK = ClusterInfo(cluster_name=CLUSTER, vpc_id=VPC, subnets=SUBNETS)
NODES = (
    Node(name="node-b", provider_id="aws:///us-east-1b/i-0bbbbbbbbbbbbbbbb", labels={"pool": "web"}),
    Node(name="node-a", provider_id="aws:///us-east-1a/i-0aaaaaaaaaaaaaaaa", labels={"pool": "web"}),
    Node(name="no-provider-id", provider_id=""),
)


def tcp(port: int, node_port: int, name: str = "") -> ServicePort:
    return ServicePort(name=name, protocol="TCP", port=port, node_port=node_port)


BASIC_PORTS = (tcp(80, 30080, "http"), tcp(443, 30443, "https"))


def make_request(
    *,
    ports: tuple[ServicePort, ...] = BASIC_PORTS,
    annotations: dict[str, str] | None = None,
    **fields: Any,
) -> LoadBalancerRequest:
    """Service shop/frontend of cluster prod on :data:`NODES`; ``fields`` override the request's."""
    values: dict[str, Any] = {
        "cluster_name": CLUSTER,
        "namespace": "shop",
        "name": "frontend",
        "uid": UID,
        "nodes": NODES,
    }
    values.update(fields)
    return LoadBalancerRequest(ports=ports, annotations=MappingProxyType(dict(annotations or {})), **values)

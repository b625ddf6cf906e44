"""Classic ELB stacks for the deployer's tests, made directly (not by the builder), and readers of what
moto then holds, through the ``elb`` API as a user would read it."""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3

from providers.aws import model
from providers.aws.build.names import frontend_security_group_name, load_balancer_name
from providers.aws.classic.model import (
    RESOURCE_CLASSIC_LOAD_BALANCER,
    ClassicAttributes,
    ClassicHealthCheck,
    ClassicListener,
    ClassicStack,
)
from tests.support.aws import CLUSTER, CLUSTER_TAG, Network

NAMESPACE = "default"


def classic_stack(
    network: Network,
    *,
    name: str,
    uid: str,
    ports: tuple[tuple[int, int], ...] = ((80, 30080), (443, 30443)),
    internal: bool = False,
    adopted: bool = False,
    targets: tuple[str, ...] | None = None,
    **fields: Any,
) -> ClassicStack:
    """A Service's Classic ELB as the builder would make it: TCP listeners on the NodePorts, a TCP
    health check on the first NodePort, a frontend group open on the ports, the Service's tags."""
    key = f"{NAMESPACE}/{name}"
    common = ((CLUSTER_TAG, model.OWNED), (model.SERVICE_NAME_TAG, key), (model.SERVICE_UID_TAG, uid))
    lb_name = (
        ("a" + uid).replace("-", "")[:32]
        if adopted
        else load_balancer_name(
            cluster_name=CLUSTER, namespace=NAMESPACE, name=name, uid=uid, internal=internal
        )
    )
    sg_name = (
        f"k8s-elb-{lb_name}"
        if adopted
        else frontend_security_group_name(cluster_name=CLUSTER, namespace=NAMESPACE, name=name, uid=uid)
    )
    stack = ClassicStack(
        name=lb_name,
        scheme="internal" if internal else "internet-facing",
        subnets=tuple(sorted(network.subnets.values())),
        listeners=tuple(
            ClassicListener(protocol="TCP", load_balancer_port=p, instance_protocol="TCP", instance_port=n)
            for p, n in ports
        ),
        health_check=ClassicHealthCheck(
            target=f"TCP:{ports[0][1]}", interval=10, timeout=5, healthy_threshold=2, unhealthy_threshold=6
        ),
        attributes=ClassicAttributes(),
        frontend_security_group=model.SecurityGroup(
            resource_id=model.RESOURCE_FRONTEND_SG,
            name=sg_name,
            description=f"ccm-lb: clients of Service {key}",
            rules=tuple(
                model.Rule(protocol="tcp", from_port=p, to_port=p, cidr="0.0.0.0/0", description="client")
                for p, _ in ports
            ),
            tags=(*common, (model.RESOURCE_TAG, model.RESOURCE_FRONTEND_SG)),
        ),
        tags=(*common, (model.RESOURCE_TAG, RESOURCE_CLASSIC_LOAD_BALANCER)),
        targets=tuple(i for i, _ in network.instances) if targets is None else targets,
        adopted=adopted,
    )
    return dataclasses.replace(stack, **fields)


def described(name: str) -> dict[str, Any] | None:
    """The Classic ELB ``name`` as DescribeLoadBalancers answers, or None."""
    for lb in boto3.client("elb").describe_load_balancers()["LoadBalancerDescriptions"]:
        if lb["LoadBalancerName"] == name:
            return dict(lb)
    return None


def classic_names() -> list[str]:
    return sorted(
        lb["LoadBalancerName"]
        for lb in boto3.client("elb").describe_load_balancers()["LoadBalancerDescriptions"]
    )


def instances(name: str) -> list[str]:
    lb = described(name)
    return sorted(i["InstanceId"] for i in (lb or {}).get("Instances", []))


def tags(name: str) -> dict[str, str]:
    described_tags = boto3.client("elb").describe_tags(LoadBalancerNames=[name])["TagDescriptions"]
    return {t["Key"]: t["Value"] for t in described_tags[0]["Tags"]}


def attributes(name: str) -> dict[str, Any]:
    return dict(
        boto3.client("elb").describe_load_balancer_attributes(LoadBalancerName=name)["LoadBalancerAttributes"]
    )


def groups_named(name: str) -> list[dict[str, Any]]:
    return list(
        boto3.client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])[
            "SecurityGroups"
        ]
    )

"""End to end: real apiserver + moto server + the real ``ccm run --cloud-provider=aws`` process.

A Service's whole life, with the AWS state checked after each step, and nothing left at the end.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane
from tests.support import kube
from tests.support.aws import (
    Network,
    add_instance,
    ccm_flags,
    listeners,
    load_balancer,
    register_node,
    seed_network,
    service_resources,
    targets_of,
)
from tests.support.ccm_run import CcmProcesses


@pytest.fixture
def network(aws: str) -> Network:
    return seed_network()


def _health_check_of(port: int) -> dict[str, Any]:
    tg_arn = listeners()[port]["DefaultActions"][0]["TargetGroupArn"]
    result: dict[str, Any] = boto3.client("elbv2").describe_target_groups(TargetGroupArns=[tg_arn])[
        "TargetGroups"
    ][0]
    return result


def _frontend_cidrs() -> set[str]:
    lb = load_balancer()
    assert lb is not None
    cidrs: set[str] = set()
    for group in boto3.client("ec2").describe_security_groups(GroupIds=lb["SecurityGroups"])[
        "SecurityGroups"
    ]:
        if any(t["Value"] == "frontend-security-group" for t in group.get("Tags", [])):
            for perm in group["IpPermissions"]:
                if perm["IpProtocol"] == "tcp":
                    cidrs.update(r["CidrIp"] for r in perm.get("IpRanges", []))
    return cidrs


def test_service_lifecycle_with_ccm_run_on_moto(
    kube_api: client.ApiClient,
    namespace: str,
    network: Network,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
) -> None:
    nodes = [register_node(kube_api, inst) for inst in network.instances]
    try:
        ccm_run.start(*ccm_flags(control_plane))
        instances = sorted(i for i, _ in network.instances)
        kube.create_service(
            kube_api,
            namespace,
            "web",
            ports=[
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
            ],
        )

        # 1. created: hostname in status, one NLB with both listeners on all three instances
        points = kube.eventually(
            lambda: kube.ingress(kube.get_service(kube_api, namespace, "web")),
            timeout=60,
            message="an address from the AWS provider",
        )
        lb = load_balancer()
        assert lb is not None and points[0]["hostname"] == lb["DNSName"]
        assert sorted(listeners()) == [80, 443]
        assert targets_of(80) == instances and targets_of(443) == instances

        # 2. scale the nodes up and down: only targets change
        added = add_instance(network)
        nodes.append(register_node(kube_api, added))
        kube.eventually(
            lambda: targets_of(80) == sorted([*instances, added[0]]),
            timeout=60,
            message="the new node as a target",
        )
        kube.delete_node(kube_api, nodes.pop(0))
        remaining = sorted(i for i, _ in network.instances[1:])
        kube.eventually(lambda: targets_of(443) == remaining, timeout=60, message="the removed node gone")

        # 3. change the ports: 443 → 8443
        kube.patch_service(
            kube_api,
            namespace,
            "web",
            {
                "spec": {
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                        {"name": "alt", "port": 8443, "targetPort": 8443, "protocol": "TCP"},
                    ]
                }
            },
        )
        kube.eventually(
            lambda: sorted(listeners()) == [80, 8443], timeout=60, message="listeners 80 and 8443"
        )
        kube.eventually(
            lambda: len(boto3.client("elbv2").describe_target_groups()["TargetGroups"]) == 2,
            timeout=60,
            message="the old target group deleted",
        )

        # 4. source ranges
        kube.patch_service(
            kube_api, namespace, "web", {"spec": {"loadBalancerSourceRanges": ["203.0.113.0/24"]}}
        )
        kube.eventually(lambda: _frontend_cidrs() == {"203.0.113.0/24"}, timeout=60, message="frontend rules")

        # 5. traffic policy Local: HTTP health checks on the healthCheckNodePort
        kube.patch_service(kube_api, namespace, "web", {"spec": {"externalTrafficPolicy": "Local"}})
        svc = kube.eventually(
            lambda: (
                (s := kube.get_service(kube_api, namespace, "web"))
                and s["spec"].get("healthCheckNodePort")
                and s
            )
        )
        port = str(svc["spec"]["healthCheckNodePort"])
        kube.eventually(
            lambda: (
                _health_check_of(80)["HealthCheckProtocol"] == "HTTP"
                and _health_check_of(80)["HealthCheckPort"] == port
            ),
            timeout=60,
            message="HTTP health check",
        )
        assert _health_check_of(80)["HealthCheckPath"] == "/healthz"

        # 6. type ClusterIP: everything of the Service goes, the status is cleared
        kube.patch_service(
            kube_api,
            namespace,
            "web",
            {"spec": {"type": "ClusterIP", "externalTrafficPolicy": None, "loadBalancerSourceRanges": None}},
        )
        kube.eventually(
            lambda: service_resources() == [], timeout=60, message="no AWS resources of the Service"
        )
        kube.eventually(lambda: not kube.ingress(kube.get_service(kube_api, namespace, "web")))

        # 7. back to LoadBalancer, then delete the Service: nothing left
        kube.patch_service(kube_api, namespace, "web", {"spec": {"type": "LoadBalancer"}})
        kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "web")), timeout=60)
        kube.delete_service(kube_api, namespace, "web")
        kube.eventually(lambda: kube.get_service(kube_api, namespace, "web") is None, timeout=60)
        assert service_resources() == []
        assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
    finally:
        for name in nodes:
            kube.delete_node(kube_api, name)

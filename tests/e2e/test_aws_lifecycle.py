"""End to end: real apiserver + moto server + the real ``ccm run --cloud-provider=aws`` process.

A Service's whole life, with the AWS state checked after each step, and nothing left at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane
from tests import kube
from tests.providers.aws.conftest import CLUSTER, Network, add_instance, seed_network, service_resources


@pytest.fixture
def network(aws: str) -> Network:
    return seed_network()


@pytest.fixture
def run_ccm(
    control_plane: ControlPlane, aws: str, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"ccm-{len(procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccm.cli",
                "run",
                "--cloud-provider=aws",
                f"--kubeconfig={control_plane.kubeconfig}",
                f"--cluster-name={CLUSTER}",
                "--leader-elect=false",
                "--secure-port=0",
                "--concurrent-service-syncs=2",
                "--v=2",
                *extra,
            ],
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    for path in sorted(tmp_path.glob("ccm-*.log")):
        sys.stderr.write(
            f"--- {path.name} (last lines)\n" + "\n".join(path.read_text().splitlines()[-30:]) + "\n"
        )


def _lb() -> dict[str, Any] | None:
    lbs = boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]
    return lbs[0] if len(lbs) == 1 else None


def _listeners() -> dict[int, dict[str, Any]]:
    lb = _lb()
    if lb is None:
        return {}
    return {
        int(x["Port"]): x
        for x in boto3.client("elbv2").describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    }


def _targets_of(port: int) -> list[str]:
    listener = _listeners().get(port)
    if listener is None:
        return []
    tg = listener["DefaultActions"][0]["TargetGroupArn"]
    health = boto3.client("elbv2").describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    return sorted(h["Target"]["Id"] for h in health)


def _health_check_of(port: int) -> dict[str, Any]:
    tg_arn = _listeners()[port]["DefaultActions"][0]["TargetGroupArn"]
    result: dict[str, Any] = boto3.client("elbv2").describe_target_groups(TargetGroupArns=[tg_arn])[
        "TargetGroups"
    ][0]
    return result


def _frontend_cidrs() -> set[str]:
    lb = _lb()
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


def _node(kube_api: client.ApiClient, instance: tuple[str, str]) -> str:
    iid, az = instance
    name = f"ip-{iid}"
    kube.create_node(kube_api, name, provider_id=f"aws:///{az}/{iid}", zone=az)
    return name


def test_service_lifecycle_with_ccm_run_on_moto(
    kube_api: client.ApiClient,
    namespace: str,
    network: Network,
    run_ccm: Callable[..., Any],
) -> None:
    nodes = [_node(kube_api, inst) for inst in network.instances]
    try:
        run_ccm()
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
        lb = _lb()
        assert lb is not None and points[0]["hostname"] == lb["DNSName"]
        assert sorted(_listeners()) == [80, 443]
        assert _targets_of(80) == instances and _targets_of(443) == instances

        # 2. scale the nodes up and down: only targets change
        added = add_instance(network)
        nodes.append(_node(kube_api, added))
        kube.eventually(
            lambda: _targets_of(80) == sorted([*instances, added[0]]),
            timeout=60,
            message="the new node as a target",
        )
        kube.delete_node(kube_api, nodes.pop(0))
        remaining = sorted(i for i, _ in network.instances[1:])
        kube.eventually(lambda: _targets_of(443) == remaining, timeout=60, message="the removed node gone")

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
            lambda: sorted(_listeners()) == [80, 8443], timeout=60, message="listeners 80 and 8443"
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

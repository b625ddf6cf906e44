"""End to end: a new leader of ``ccm run --cloud-provider=aws`` on moto, counted at its own /metrics.

The first process builds three load balancers and records the node set in its checkpoint; the second,
started on the unchanged cluster, must reach steady state within ⌈N/100⌉ + 5 AWS calls and no write,
and still give a node added afterwards to every load balancer.
"""

from __future__ import annotations

import math
import re
import uuid

import boto3
import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane, free_port
from tests.support import kube
from tests.support.aws import CLUSTER, Network, add_instance, seed_network
from tests.support.ccm_run import CcmProcess, CcmProcesses, fake_flags

SERVICES = ("web", "api", "db")
WRITE = re.compile(r"^(Create|Delete|Modify|Register|Deregister|Add|Remove|Authorize|Revoke|Set)")


@pytest.fixture
def network(aws: str) -> Network:
    return seed_network()


def _node(kube_api: client.ApiClient, instance: tuple[str, str]) -> str:
    iid, az = instance
    name = f"ip-{iid}"
    kube.create_node(kube_api, name, provider_id=f"aws:///{az}/{iid}", zone=az)
    return name


def _metrics(process: CcmProcess) -> dict[str, float]:
    code, body = process.get("/metrics")
    assert code == 200
    values: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _aws_calls(metrics: dict[str, float]) -> dict[str, int]:
    calls: dict[str, int] = {}
    for name, value in metrics.items():
        match = re.fullmatch(r'cloudprovider_aws_api_requests_total\{operation="(\w+)"\}', name)
        if match and value:
            calls[match.group(1)] = int(value)
    return calls


def _steady(process: CcmProcess) -> bool:
    """Every Service taken and finished, nothing queued (the gauges are refreshed on scrape)."""
    process.assert_running()
    try:
        m = _metrics(process)
    except OSError:  # not serving yet
        return False
    return (
        m.get('workqueue_adds_total{name="service"}', 0) >= len(SERVICES)
        and m.get('workqueue_depth{name="service"}', 1) == 0
        and m.get('workqueue_longest_running_processor_seconds{name="service"}', 1) == 0
        and m.get('workqueue_depth{name="node"}', 1) == 0
        and m.get('workqueue_longest_running_processor_seconds{name="node"}', 1) == 0
    )


def _targets(dns_name: str) -> set[str]:
    elbv2 = boto3.client("elbv2")
    lb = next(lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["DNSName"] == dns_name)
    ids: set[str] = set()
    for tg in elbv2.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]:
        health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
        ids |= {h["Target"]["Id"] for h in health}
    return ids


def test_a_new_leader_on_an_unchanged_cluster_makes_a_handful_of_reads_and_no_write(
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    namespace: str,
    network: Network,
    ccm_run: CcmProcesses,
) -> None:
    flags = (
        "--cloud-provider=aws",
        f"--cluster-name={CLUSTER}",
        f"--leader-elect-resource-name=restart-{uuid.uuid4().hex[:8]}",
        f"--leader-elect-resource-namespace={namespace}",
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=1s",
    )
    nodes = [_node(kube_api, inst) for inst in network.instances]

    def start(name: str) -> CcmProcess:
        port = free_port()
        return ccm_run.start(*fake_flags(control_plane, port=port), *flags, name=name, port=port)

    try:
        first = start("first")
        for name in SERVICES:
            kube.create_service(kube_api, namespace, name)
        hostnames = {
            name: kube.eventually(
                lambda n=name: kube.ingress(kube.get_service(kube_api, namespace, n)),  # type: ignore[misc]
                timeout=60,
                message=f"an address for {name}",
            )[0]["hostname"]
            for name in SERVICES
        }
        kube.eventually(lambda: _steady(first), timeout=60, message="the first leader to settle")
        first.stop()  # SIGTERM: it releases the Lease

        second = start("second")
        kube.eventually(lambda: _steady(second), timeout=60, message="the new leader to settle")
        calls = _aws_calls(_metrics(second))
        assert sum(calls.values()) <= math.ceil(len(SERVICES) / 100) + 5, calls
        assert not [op for op in calls if WRITE.match(op)], calls
        for name in SERVICES:  # nobody was told anything new
            assert kube.ingress(kube.get_service(kube_api, namespace, name))[0]["hostname"] == hostnames[name]

        added = add_instance(network)
        nodes.append(_node(kube_api, added))
        for name in SERVICES:
            kube.eventually(
                lambda n=name: added[0] in _targets(hostnames[n]),  # type: ignore[misc]
                timeout=60,
                message=f"the node added after the restart behind {name}",
            )
    finally:
        ccm_run.stop_all()
        for name in SERVICES:
            kube.patch_service(kube_api, namespace, name, {"metadata": {"finalizers": None}})
            kube.delete_service(kube_api, namespace, name)
        for node in nodes:
            kube.delete_node(kube_api, node)

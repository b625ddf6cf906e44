"""End to end: real apiserver + the fake GCE server + the real ``ccm run --cloud-provider=gce`` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane
from fakegce import FakeCompute
from tests.support import kube
from tests.support.ccm_run import CcmProcesses
from tests.support.gcp import PROJECT, ZONES, ccm_flags, seeded_gce, write_cloud_config


@pytest.fixture
def gce() -> Iterator[FakeCompute]:
    with seeded_gce(prefix="gke-node") as fake:
        yield fake


def _members(gce: FakeCompute) -> list[str]:
    names: list[str] = []
    for group in gce.resources("instanceGroups"):
        zone = group["zone"].rsplit("/", 1)[-1]
        names.extend(m.rsplit("/", 1)[-1] for m in gce.members(zone, group["name"]))
    return sorted(names)


def test_service_lifecycle_with_ccm_run_on_the_fake_gce(
    kube_api: client.ApiClient,
    namespace: str,
    gce: FakeCompute,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
    tmp_path: Path,
) -> None:
    ccm_run.start(*ccm_flags(control_plane, write_cloud_config(tmp_path / "gce.conf", gce)))
    made: list[str] = []

    def node(i: int) -> None:
        name = f"gke-node-{i}"
        kube.create_node(
            kube_api, name, provider_id=f"gce://{PROJECT}/{ZONES[i % 2]}/{name}", zone=ZONES[i % 2]
        )
        made.append(name)

    try:
        node(0)
        kube.create_service(
            kube_api,
            namespace,
            "web",
            ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        )
        points = kube.eventually(
            lambda: kube.ingress(kube.get_service(kube_api, namespace, "web")),
            timeout=60,
            message="an IP from the GCP provider",
        )
        first = gce.resources("forwardingRules")[0]
        assert points[0]["ip"] == first["IPAddress"] and first["loadBalancingScheme"] == "EXTERNAL"
        assert _members(gce) == ["gke-node-0"]

        # nodes across two zones: the shared instance groups follow
        node(1)
        node(2)
        kube.eventually(lambda: _members(gce) == ["gke-node-0", "gke-node-1", "gke-node-2"], timeout=60)
        kube.delete_node(kube_api, made.pop(0))
        kube.eventually(lambda: _members(gce) == ["gke-node-1", "gke-node-2"], timeout=60)

        ip = points[0]["ip"]

        def rule() -> dict[str, object]:
            rules = gce.resources("forwardingRules")
            return rules[0] if len(rules) == 1 else {}

        def status_ip() -> str:
            points = kube.ingress(kube.get_service(kube_api, namespace, "web"))
            return str(points[0].get("ip", "")) if points else ""

        # a port added and source ranges: the forwarding rule is rebuilt on the same IP
        kube.patch_service(
            kube_api,
            namespace,
            "web",
            {
                "spec": {
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                        {"name": "alt", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
                    ],
                    "loadBalancerSourceRanges": ["203.0.113.0/24"],
                }
            },
        )

        def traffic_firewall() -> dict[str, object] | None:
            return next((f for f in gce.resources("firewalls") if f["name"].startswith("k8s-fw-")), None)

        kube.eventually(
            lambda: (
                (fw := traffic_firewall()) is not None
                and fw["sourceRanges"] == ["203.0.113.0/24"]
                and rule().get("ports") == ["80", "8080"]
                and bool(rule().get("labels"))
            ),
            timeout=60,
            message="new port and source range",
        )
        assert rule()["IPAddress"] == ip and status_ip() == ip
        assert gce.resources("addresses") == []  # the IP's temporary reservation was released

        # TCP → UDP: rebuilt again, still the same IP
        kube.patch_service(
            kube_api,
            namespace,
            "web",
            {
                "spec": {
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "UDP"},
                        {"name": "alt", "port": 8080, "targetPort": 8080, "protocol": "UDP"},
                    ]
                }
            },
        )
        kube.eventually(
            lambda: rule().get("IPProtocol") == "UDP" and bool(rule().get("labels")),
            timeout=60,
            message="a UDP forwarding rule",
        )
        assert rule()["IPAddress"] == ip and status_ip() == ip
        assert gce.resources("addresses") == []

        # external → internal
        kube.patch_service(
            kube_api,
            namespace,
            "web",
            {"metadata": {"annotations": {"networking.gke.io/load-balancer-type": "Internal"}}},
        )
        kube.eventually(
            lambda: [r["loadBalancingScheme"] for r in gce.resources("forwardingRules")] == ["INTERNAL"],
            timeout=60,
            message="an internal forwarding rule",
        )
        kube.eventually(
            lambda: (
                (p := kube.ingress(kube.get_service(kube_api, namespace, "web")))
                and p[0]["ip"].startswith("10.128.")
            ),
            timeout=60,
            message="an internal IP in status",
        )
        # a new IP the user did not name: said in a Warning event
        changed = kube.eventually(
            lambda: [
                e for e in kube.events(kube_api, namespace, "web") if e["reason"] == "LoadBalancerIPChanged"
            ],
            timeout=30,
            message="the IP change event",
        )
        assert (
            changed[0]["type"] == "Warning"
            and ip in changed[0]["message"]
            and status_ip() in changed[0]["message"]
        )

        # delete: nothing left
        kube.delete_service(kube_api, namespace, "web")
        kube.eventually(lambda: kube.get_service(kube_api, namespace, "web") is None, timeout=60)
        for kind in (
            "forwardingRules",
            "backendServices",
            "healthChecks",
            "firewalls",
            "instanceGroups",
            "addresses",
        ):
            assert gce.resources(kind) == [], kind
    finally:
        for name in made:
            kube.delete_node(kube_api, name)

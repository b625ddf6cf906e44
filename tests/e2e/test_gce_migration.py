"""End to end: a cluster the upstream GCP provider served, reviewed with ``ccm migrate`` and then taken
over by ``ccm run`` (real apiserver, the fake GCE server, the real processes).

Upstream's external (target pool) and internal (backend service) load balancers are made on the fake as
upstream makes them (:mod:`tests.support.upstream_gce`), and the Services carry what upstream leaves on
them: the IP in status and the cleanup finalizer. The cloud config names upstream's cluster id
(``upstream-cluster-id``), so its instance groups are the cluster's and the internal one is taken over
too; without it, the review says that setting is what the internal one needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane
from fakegce import FakeCompute
from tests.support import kube
from tests.support.ccm_run import CcmProcesses
from tests.support.fakegce import Gce
from tests.support.gcp import (
    PROJECT,
    ZONES,
    ccm_flags,
    ccm_migrate,
    seeded_gce,
    write_cloud_config,
)
from tests.support.upstream_gce import Built, UpstreamCloud

UPSTREAM_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
CID = "5a1b2c3d4e5f6071"  # upstream's cluster id (ConfigMap kube-system/ingress-uid)
INTERNAL = {"networking.gke.io/load-balancer-type": "Internal"}
NODES = tuple((ZONES[i % 2], f"gke-node-{i}") for i in range(3))


@pytest.fixture
def gce() -> Iterator[FakeCompute]:
    with seeded_gce(prefix="gke-node") as fake:
        yield fake


def _served_by_upstream(
    kube_api: client.ApiClient, namespace: str, name: str, gce: FakeCompute, *, internal: bool
) -> Built:
    """A Service as upstream leaves it: its load balancer, its IP in status, its finalizer."""
    service = kube.create_service(kube_api, namespace, name, annotations=INTERNAL if internal else {})
    upstream = UpstreamCloud(Gce.connect(gce), cid=CID)
    key, uid = f"{namespace}/{name}", service["metadata"]["uid"]
    if internal:
        built = upstream.internal(key=key, uid=uid, ports=(80,), instances=NODES)
    else:
        built = upstream.external(key=key, uid=uid, ports=(80,), instances=NODES)
    kube.patch_service(kube_api, namespace, name, {"metadata": {"finalizers": [UPSTREAM_FINALIZER]}})
    kube.raw(
        kube_api,
        "PATCH",
        f"/api/v1/namespaces/{namespace}/services/{name}/status",
        {"status": {"loadBalancer": {"ingress": [{"ip": built.ip}]}}},
        content_type="application/merge-patch+json",
    )
    return built


def _cluster_upstream_served(
    kube_api: client.ApiClient, namespace: str, gce: FakeCompute, node_names: list[str]
) -> tuple[Built, Built]:
    """The Nodes, and the Services ``web`` (external) and ``db`` (internal) upstream served."""
    for zone, name in NODES:
        kube.create_node(kube_api, name, provider_id=f"gce://{PROJECT}/{zone}/{name}", zone=zone)
        node_names.append(name)
    web = _served_by_upstream(kube_api, namespace, "web", gce, internal=False)
    return web, _served_by_upstream(kube_api, namespace, "db", gce, internal=True)


def _rows(result: Any, namespace: str) -> dict[str, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return {
        r["service"].split("/", 1)[1]: r
        for r in json.loads(result.stdout)["services"]
        if r["service"].startswith(f"{namespace}/")
    }


def _upstreams_left(gce: FakeCompute, *built: Built) -> list[str]:
    kinds = (
        "forwardingRules",
        "targetPools",
        "httpHealthChecks",
        "backendServices",
        "healthChecks",
        "firewalls",
        "addresses",
    )
    return sorted(
        f"{kind}/{r['name']}"
        for kind in kinds
        for r in gce.resources(kind)
        if any(b.name in r["name"] for b in built) or CID in r["name"]
    )


def _has_event(api: client.ApiClient, namespace: str, name: str, reason: str) -> Callable[[], bool]:
    return lambda: reason in kube.reasons(api, namespace, name)


def _members(gce: FakeCompute, zone: str) -> list[str]:
    return sorted(m.rsplit("/", 1)[-1] for m in gce.members(zone, f"k8s-ig--{CID}"))


def test_migrate_reviews_then_ccm_run_takes_over_external_and_internal_load_balancers_on_their_ips(
    kube_api: client.ApiClient,
    namespace: str,
    gce: FakeCompute,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
    node_names: list[str],
    tmp_path: Path,
) -> None:
    web, db = _cluster_upstream_served(kube_api, namespace, gce, node_names)
    gce.reset_calls()

    # 1. the review, without and with upstream's cluster id; nothing changes
    plain = write_cloud_config(tmp_path / "plain.conf", gce)
    rows = _rows(ccm_migrate(control_plane, plain, "-o", "json"), namespace)
    assert {n: (r["action"], r["addressChanges"]) for n, r in rows.items()} == {
        "web": ("adopt", False),
        "db": ("refuse", False),
    }
    assert f"upstream-cluster-id = {CID}" in rows["db"]["reason"]
    sharing = write_cloud_config(tmp_path / "gce.conf", gce, upstream_cluster_id=CID)
    rows = _rows(ccm_migrate(control_plane, sharing, "-o", "json"), namespace)
    assert {n: (r["action"], r["address"]) for n, r in rows.items()} == {
        "web": ("adopt", web.ip),
        "db": ("adopt", db.ip),
    }
    assert gce.mutations() == {}  # the review reads only

    # 2. the controller takes both over on their IPs
    ccm_run.start(*ccm_flags(control_plane, sharing))
    for name, built in (("web", web), ("db", db)):
        kube.eventually(
            _has_event(kube_api, namespace, name, "LoadBalancerTakenOver"), timeout=90, message=name
        )
        kube.eventually(_has_event(kube_api, namespace, name, "EnsuredLoadBalancer"), timeout=60)
        points = kube.ingress(kube.get_service(kube_api, namespace, name))
        assert [p["ip"] for p in points] == [built.ip]
    rules = {r["IPAddress"]: r for r in gce.resources("forwardingRules")}
    assert sorted(rules) == sorted([web.ip, db.ip])
    assert all(r["name"].startswith("k8s-") and "backendService" in r for r in rules.values())
    assert _upstreams_left(gce, web, db) == []
    assert gce.resources("addresses") == []  # the reservations were released, the rules keep the IPs

    # 3. a node added afterwards lands in the cluster's (upstream's) instance group of its zone
    kube.create_node(
        kube_api, "gke-node-3", provider_id=f"gce://{PROJECT}/{ZONES[1]}/gke-node-3", zone=ZONES[1]
    )
    node_names.append("gke-node-3")
    kube.eventually(lambda: _members(gce, ZONES[1]) == ["gke-node-1", "gke-node-3"], timeout=60)

    # 4. deleted: nothing is left, the instance groups go with the last load balancer
    kube.delete_service(kube_api, namespace, "web")
    kube.delete_service(kube_api, namespace, "db")
    kube.eventually(lambda: gce.resources("forwardingRules") == [], timeout=60)
    kube.eventually(lambda: gce.resources("backendServices") == [], timeout=60)
    kube.eventually(lambda: kube.get_service(kube_api, namespace, "db") is None, timeout=60)


def test_migrate_dry_run_false_applies_the_plan_under_the_controllers_lease_and_reports_each_service(
    kube_api: client.ApiClient,
    namespace: str,
    gce: FakeCompute,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
    node_names: list[str],
    tmp_path: Path,
) -> None:
    web, db = _cluster_upstream_served(kube_api, namespace, gce, node_names)
    kube.create_service(kube_api, namespace, "fresh")
    sharing = write_cloud_config(tmp_path / "gce.conf", gce, upstream_cluster_id=CID)
    lease = (f"--leader-elect-resource-name=migrate-{namespace}", "--leader-elect-resource-namespace=default")
    timings = (
        "--leader-elect-lease-duration=2s",
        "--leader-elect-renew-deadline=1500ms",
        "--leader-elect-retry-period=1s",
    )

    # 1. a running controller holds the Lease (here one of another class, which leaves these Services
    # alone): applying is refused and nothing changes
    holder = ccm_run.start(
        *ccm_flags(control_plane, sharing),
        "--leader-elect=true",
        *lease,
        *timings,
        "--load-balancer-class=example.com/other",
    )
    kube.eventually(lambda: "became leader" in holder.log(), timeout=30, message="the holder leads")
    gce.reset_calls()
    held = ccm_migrate(control_plane, sharing, "--dry-run=false", *lease, *timings)
    assert held.returncode == 1 and "is held by another holder" in held.stderr, held.stderr
    assert gce.mutations() == {}
    holder.stop()  # releases the Lease

    # 2. applied: each Service synced once, as the controller syncs it, and the result said
    applied = ccm_migrate(control_plane, sharing, "--dry-run=false", "-o", "json", *lease, *timings)
    assert applied.returncode == 0, applied.stderr
    rows = _rows(applied, namespace)
    assert {n: (r["action"], r["result"]) for n, r in rows.items()} == {
        "web": ("adopt", "applied"),
        "db": ("adopt", "applied"),
        "fresh": ("create", "applied"),
    }
    assert (rows["web"]["addressNow"], rows["db"]["addressNow"]) == (web.ip, db.ip)
    assert rows["fresh"]["addressNow"]
    for name in ("web", "db"):
        assert "LoadBalancerTakenOver" in kube.reasons(kube_api, namespace, name)
    assert _upstreams_left(gce, web, db) == []

    # 3. reviewed again: all kept
    again = _rows(ccm_migrate(control_plane, sharing, "-o", "json"), namespace)
    assert {n: r["action"] for n, r in again.items()} == {"web": "keep", "db": "keep", "fresh": "keep"}

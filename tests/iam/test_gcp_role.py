"""The GCP custom role in terraform/gcp grants exactly what the GCP provider uses.

The provider runs a whole lifecycle on the fake Compute server (which maps every call, and what its
body references, to the IAM permissions GCE checks): external and internal load balancers with
``externalTrafficPolicy: Local`` and ``Cluster``, reserved static IPs, ephemeral IPs kept across a
rebuild (promoted and released), global access patched in place, nodes in two zones, a node
added and removed, a controller restart, port, source-range, health-check and affinity changes,
external → internal, the drift check, and deletion; and the upstream provider's load balancers (built
by :mod:`tests.support.upstream_gce` before the count starts): one taken over on its IP, one replaced
on request, and an internal one deleted while refused. Every mutation's operation stays RUNNING for one
poll, as on GCE, so the operation reads are exercised too. The permissions the fake recorded must
equal the role's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import hcl2
import pytest

from ccm.cloudprovider import (
    REPLACE_FOREIGN_ANNOTATION,
    ForeignLoadBalancer,
    LoadBalancerRequest,
    ServicePort,
)
from fakegce import CONDITIONAL_PERMISSIONS, PERMISSIONS, FakeCompute
from tests.support.fakegce import Gce
from tests.support.gcp import NODE_TAG, PROJECT, REGION, ZONES, lb_resources, new_provider, nodes
from tests.support.upstream_gce import Built, UpstreamCloud

ROOT = Path(__file__).resolve().parents[2]
ROLE_FILE = ROOT / "terraform" / "gcp" / "permissions.json"
INTERNAL = {"networking.gke.io/load-balancer-type": "Internal"}
EXTERNAL_IP, INTERNAL_IP = "34.90.0.10", "10.128.0.100"


@dataclasses.dataclass(frozen=True)
class Lifecycle:
    used: set[str]  # every permission the provider's calls needed
    by_route: dict[tuple[str, str], set[str]]  # which call needed which
    left: dict[str, list[str]]  # LB resources left in the project afterwards


def role() -> dict[str, list[str]]:
    """The permission lists of terraform/gcp/permissions.json (the one source main.tf reads)."""
    data: dict[str, Any] = json.loads(ROLE_FILE.read_text())
    return {key: list(value) for key, value in data.items() if isinstance(value, list)}


def granted() -> set[str]:
    return {p for permissions in role().values() for p in permissions}


def service(name: str, uid: str, *ports: int, **fields: Any) -> LoadBalancerRequest:
    annotations = fields.pop("annotations", {})
    return LoadBalancerRequest(
        cluster_name="test",
        namespace="default",
        name=name,
        uid=uid,
        ports=tuple(ServicePort(name=f"p{p}", protocol="TCP", port=p, node_port=30000 + p) for p in ports),
        nodes=nodes(0, 1, 2),
        annotations=MappingProxyType(annotations),
        **fields,
    )


def change(request: LoadBalancerRequest, **fields: Any) -> LoadBalancerRequest:
    if "annotations" in fields:
        fields["annotations"] = MappingProxyType(fields["annotations"])
    return dataclasses.replace(request, **fields)


UPSTREAM_UIDS = {
    "old-web": "a1000000-0000-0000-0000-000000000000",  # taken over
    "old-api": "a2000000-0000-0000-0000-000000000000",  # replaced on request
    "old-db": "a3000000-0000-0000-0000-000000000000",  # internal, another IP asked: refused, then deleted
    "old-cache": "a4000000-0000-0000-0000-000000000000",  # internal: taken over (upstream-cluster-id)
}


def build_upstream(gce: FakeCompute) -> dict[str, Built]:
    """Upstream's load balancers as a cluster moving off upstream's controller has them."""
    cloud = UpstreamCloud(Gce.connect(gce))
    instances = [(ZONES[i % 2], f"node-{i}") for i in range(3)]
    built = {
        name: cloud.external(key=f"default/{name}", uid=UPSTREAM_UIDS[name], ports=(80,), instances=instances)
        for name in ("old-web", "old-api")
    }
    built["old-db"] = cloud.internal(key="default/old-db", uid=UPSTREAM_UIDS["old-db"])
    return built


def build_upstream_internal(gce: FakeCompute) -> Built:
    """Upstream's internal load balancer on the nodes (built once this controller's own lifecycle is
    over: while it serves, the nodes are in upstream's load-balanced instance groups)."""
    instances = [(ZONES[i % 2], f"node-{i}") for i in range(3)]
    cloud = UpstreamCloud(Gce.connect(gce))
    return cloud.internal(key="default/old-cache", uid=UPSTREAM_UIDS["old-cache"], instances=instances)


def run_upstream(gce: FakeCompute, built: dict[str, Built]) -> None:
    """Take over, replace, and delete while refused, each of upstream's load balancers."""
    # upstream's cluster id in the cloud config from the switch on: its instance groups are the cluster's
    provider = new_provider(gce, upstream_cluster_id=UpstreamCloud(Gce.connect(gce)).cid)
    old_web = service("old-web", UPSTREAM_UIDS["old-web"], 80, status_addresses=(built["old-web"].ip,))
    assert provider.ensure_load_balancer(request=old_web).ingress[0].ip == built["old-web"].ip
    old_api = service(
        "old-api",
        UPSTREAM_UIDS["old-api"],
        80,
        status_addresses=(built["old-api"].ip,),
        annotations={REPLACE_FOREIGN_ANNOTATION: "true"},
    )
    assert provider.ensure_load_balancer(request=old_api).ingress[0].ip != built["old-api"].ip
    old_db = service(  # asks for another IP: refused
        "old-db",
        UPSTREAM_UIDS["old-db"],
        80,
        status_addresses=(built["old-db"].ip,),
        annotations=INTERNAL,
        load_balancer_ip="10.128.0.99",
    )
    with pytest.raises(ForeignLoadBalancer):
        provider.ensure_load_balancer(request=old_db)
    old_cache = service(
        "old-cache",
        UPSTREAM_UIDS["old-cache"],
        80,
        status_addresses=(built["old-cache"].ip,),
        annotations=INTERNAL,
    )
    assert provider.ensure_load_balancer(request=old_cache).ingress[0].ip == built["old-cache"].ip
    for request in (old_web, old_api):  # a node joins: in the groups of upstream's name, for every LB
        provider.update_load_balancer(request=request.with_nodes(nodes(0, 1, 2, 3)))
    provider.ensure_load_balancer_deleted(request=old_cache)
    for request in (old_web, old_api, old_db):
        provider.ensure_load_balancer_deleted(request=request)
    assert gce.resources("targetPools") == [] and gce.resources("httpHealthChecks") == []


def run(gce: FakeCompute) -> None:
    """Create, change and delete load balancers the ways a cluster does."""
    provider = new_provider(gce)
    web = service(
        "web",
        "00000000-0000-0000-0000-000000000001",
        80,
        443,
        external_traffic_policy="Local",
        health_check_node_port=31001,
        load_balancer_ip=EXTERNAL_IP,
    )
    api = service(
        "api",
        "00000000-0000-0000-0000-000000000002",
        8080,
        annotations=INTERNAL,
        load_balancer_ip=INTERNAL_IP,
    )
    assert provider.ensure_load_balancer(request=web).ingress[0].ip == EXTERNAL_IP
    assert provider.ensure_load_balancer(request=api).ingress[0].ip == INTERNAL_IP

    provider.update_load_balancer(request=web.with_nodes(nodes(0, 1, 2, 3)))  # a node joins
    provider.update_load_balancer(request=web.with_nodes(nodes(1, 2, 3)))  # a node leaves
    provider = new_provider(gce)  # the controller restarts: instance group members are listed again
    web = change(web, nodes=nodes(1, 2, 3), ports=service("web", web.uid, 80, 8443).ports)
    provider.ensure_load_balancer(request=web)  # new port: the rule is recreated, the firewall patched
    web = change(web, load_balancer_source_ranges=("203.0.113.0/24",), health_check_node_port=31002)
    provider.ensure_load_balancer(request=web)  # firewall sources and the health check patched
    web = change(web, session_affinity="ClientIP")
    provider.ensure_load_balancer(request=web)  # the backend service updated
    api = change(api, external_traffic_policy="Local", health_check_node_port=31003)
    provider.ensure_load_balancer(request=api)  # Cluster → Local: its own health check
    web = change(web, annotations=INTERNAL, load_balancer_ip="")
    assert (
        provider.ensure_load_balancer(request=web).ingress[0].ip.startswith("10.128.")
    )  # external → internal

    # ephemeral IPs kept across rebuilds: promoted to a reservation, released after (external, internal)
    for name, uid, extra in (("eph", "3", {}), ("ieph", "4", INTERNAL)):
        lb = service(name, f"00000000-0000-0000-0000-00000000000{uid}", 80, annotations=extra)
        ip = provider.ensure_load_balancer(request=lb).ingress[0].ip
        lb = change(lb, ports=service(name, lb.uid, 80, 81).ports)
        assert provider.ensure_load_balancer(request=lb).ingress[0].ip == ip
        if extra:  # global access is patched in place
            global_access = {
                **INTERNAL,
                "networking.gke.io/internal-load-balancer-allow-global-access": "true",
            }
            provider.ensure_load_balancer(request=change(lb, annotations=global_access))
        provider.ensure_load_balancer_deleted(request=lb)

    assert provider.drifted_load_balancers(requests=[web, api]) == frozenset()
    provider.ensure_load_balancer_deleted(request=web)
    provider.ensure_load_balancer_deleted(request=api)


@pytest.fixture(scope="module")
def lifecycle() -> Iterator[Lifecycle]:
    with FakeCompute(project=PROJECT, region=REGION) as gce:
        gce.seed_network("default")
        gce.seed_subnetwork("nodes", "default", "10.128.0.0/20")
        for i in range(4):
            gce.seed_instance(ZONES[i % 2], f"node-{i}", tags=(NODE_TAG,), subnetwork="nodes")
        gce.seed_address("web-ip", EXTERNAL_IP)
        gce.seed_address("api-ip", INTERNAL_IP, "INTERNAL", subnetwork="nodes")
        built = build_upstream(gce)
        gce.reset_calls()  # upstream's calls are not the provider's
        gce.operations_stay_running(polls=1)
        run(gce)
        used, by_route = gce.permissions_used(), gce.permissions_by_route()
        built["old-cache"] = build_upstream_internal(gce)
        gce.reset_calls()  # upstream's calls again
        run_upstream(gce, built)
        for key, permissions in gce.permissions_by_route().items():
            by_route[key] = by_route.get(key, set()) | permissions
        yield Lifecycle(used | gce.permissions_used(), by_route, lb_resources(gce))


def _needed_by(by_route: dict[tuple[str, str], set[str]], permissions: set[str]) -> str:
    return "; ".join(
        f"{p} by {', '.join(f'{m} {t}' for (m, t), used in sorted(by_route.items()) if p in used)}"
        for p in sorted(permissions)
    )


def test_the_lifecycle_ran_to_the_end_and_left_only_the_reserved_addresses(lifecycle: Lifecycle) -> None:
    assert lifecycle.left == {"addresses": ["api-ip", "web-ip"]}


def test_every_permission_the_provider_uses_is_granted_by_the_role(lifecycle: Lifecycle) -> None:
    missing = lifecycle.used - granted()
    assert not missing, f"terraform/gcp/permissions.json lacks {sorted(missing)}, needed by: " + _needed_by(
        lifecycle.by_route, missing
    )


def test_every_permission_in_the_role_is_used_by_the_provider(lifecycle: Lifecycle) -> None:
    unused = granted() - lifecycle.used
    assert not unused, f"terraform/gcp/permissions.json grants {sorted(unused)}, which no call needed"


def test_the_role_lists_are_sorted_disjoint_and_name_compute_permissions() -> None:
    lists = role()
    assert set(lists) == {"project", "network_project"}
    for name, permissions in lists.items():
        assert permissions == sorted(set(permissions)), f"{name}: keep it sorted, without duplicates"
    assert not set(lists["project"]) & set(lists["network_project"])
    assert all(p.startswith("compute.") and p.count(".") == 2 for p in granted())


def test_every_route_the_fake_serves_has_its_iam_permissions() -> None:
    served = FakeCompute().routes()
    unmapped = [key for key in served if not PERMISSIONS.get(key)]
    assert not unmapped, f"routes without an IAM permission: {unmapped}"
    assert set(CONDITIONAL_PERMISSIONS) <= set(served)


def test_the_readme_says_what_each_permission_is_for_and_where_it_was_verified() -> None:
    readme = (ROOT / "terraform" / "gcp" / "README.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in readme.splitlines()
        if line.startswith("| `compute.")
    }
    assert sorted(rows) == sorted(granted())
    undocumented = [p for p, row in rows.items() if len([c for c in row.split("|") if c.strip()]) < 3]
    assert not undocumented, f"permissions without a purpose and a source: {undocumented}"


def _main_tf() -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    """(locals, resources by (type, name)) of terraform/gcp/main.tf, without python-hcl2's quotes."""
    with (ROOT / "terraform" / "gcp" / "main.tf").open() as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    local_values = {key: value for block in parsed["locals"] for key, value in block.items()}
    resources = {
        (kind.strip('"'), name.strip('"')): body
        for block in parsed["resource"]
        for kind, named in block.items()
        for name, body in named.items()
    }
    return local_values, resources


def test_the_custom_roles_take_their_permissions_from_permissions_json_only() -> None:
    local_values, resources = _main_tf()
    assert local_values["permissions"] == '${jsondecode(file("${path.module}/permissions.json"))}'
    assert (
        "concat(local.permissions.project, local.permissions.network_project)"
        in (local_values["project_permissions"])
    )
    roles = {
        name: body for (kind, name), body in resources.items() if kind == "google_project_iam_custom_role"
    }
    assert {name: body["permissions"] for name, body in roles.items()} == {
        "controller": "${local.project_permissions}",
        "network": "${local.permissions.network_project}",
    }


def test_the_kubernetes_service_account_may_act_as_the_google_one_through_workload_identity() -> None:
    _, resources = _main_tf()
    binding = resources[("google_service_account_iam_member", "workload_identity")]
    assert binding["role"] == '"roles/iam.workloadIdentityUser"'
    assert binding["member"] == (
        '"serviceAccount:${local.cluster_project}.svc.id.goog[${var.namespace}/${var.kubernetes_service_account}]"'
    )
    grant = resources[("google_project_iam_member", "controller")]
    assert grant["role"] == "${google_project_iam_custom_role.controller.id}"
    assert grant["member"] == '"serviceAccount:${google_service_account.controller.email}"'

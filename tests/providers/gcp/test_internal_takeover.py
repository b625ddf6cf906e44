"""Upstream's internal load balancer is taken over and the Service keeps its IP.

A Service the upstream GCP provider served with an internal load balancer (forwarding rule ``a<uid>`` →
regional backend service ``a<uid>`` → the cluster's instance groups ``k8s-ig--<cid>``, global health
check ``k8s-<cid>-node``) keeps its IP once the cloud config names upstream's cluster id
(``upstream-cluster-id``): the instance groups are then the cluster's (a node can be in one
load-balanced group only; the fake enforces it as GCE does), the provider reserves the rule's internal
IP, builds its own backend service on those groups, replaces upstream's rule by its own on the IP and
deletes upstream's per-Service parts, and the shared health check once no backend service uses it. A
crash after any of those calls converges on the next sync, on the same IP, with nothing of upstream's
left. Upstream's resources are made by :mod:`tests.support.upstream_gce` as upstream makes them
(cloud-provider-gcp ``gce_loadbalancer_internal.go``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest

from ccm.cloudprovider import ForeignLoadBalancer, LoadBalancerRequest
from fakegce import FakeCompute
from providers.gcp.provider import TAKEN_OVER, GCEProvider
from tests.support.fakegce import Gce
from tests.support.gcp import ZONES, Crash, RequestFactory, crash_after, new_provider, nodes
from tests.support.upstream_gce import Built, UpstreamCloud, left_of

CID = "0123456789abcdef"
GROUP = f"k8s-ig--{CID}"
NODES = ((ZONES[0], "node-0"), (ZONES[1], "node-1"), (ZONES[0], "node-2"))
INTERNAL = {"networking.gke.io/load-balancer-type": "Internal"}
UID_DB = "6f1c2a9e-1111-4a2b-9c3d-0123456789ab"
UID_CACHE = "7a2d3b0f-2222-4b3c-8d4e-123456789abc"
UPSTREAM_KINDS = ("forwardingRules", "backendServices", "healthChecks", "firewalls", "addresses")


@pytest.fixture
def upstream(gce: FakeCompute) -> UpstreamCloud:
    return UpstreamCloud(Gce.connect(gce), cid=CID)


@pytest.fixture
def shared(gce: FakeCompute) -> GCEProvider:
    """The provider with ``upstream-cluster-id`` set: upstream's instance groups are the cluster's."""
    return new_provider(gce, upstream_cluster_id=CID)


def _internal_service(
    make_request: RequestFactory, upstream: UpstreamCloud, name: str, *, uid: str, **fields: Any
) -> tuple[Built, LoadBalancerRequest]:
    built = upstream.internal(key=f"default/{name}", uid=uid, ports=(80, 443), instances=NODES)
    request = make_request(name, uid=uid, annotations=INTERNAL, status_addresses=(built.ip,), **fields)
    return built, request


def _upstreams(gce: FakeCompute, built: Built) -> dict[str, list[str]]:
    """Upstream's resources of one load balancer (by its name) still in the project."""
    return left_of(gce, built, UPSTREAM_KINDS)


def _names(gce: FakeCompute, kind: str) -> list[str]:
    return sorted(r["name"] for r in gce.resources(kind))


def _upstream_checks(gce: FakeCompute) -> list[str]:
    """Upstream's health checks left (the fake lists ours, regional, in the same collection)."""
    return [n for n in _names(gce, "healthChecks") if CID in n or n.startswith("a")]


def _members(gce: FakeCompute, zone: str) -> list[str]:
    client = Gce.connect(gce)
    listed = client.instance_groups.list_instances(project="test-project", zone=zone, instance_group=GROUP)
    return sorted(item.instance.rsplit("/", 1)[-1] for item in listed)


def test_an_internal_service_keeps_its_ip_upstreams_parts_go_and_the_instance_groups_stay(
    shared: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    db, request = _internal_service(make_request, upstream, "db", uid=UID_DB)
    status = shared.ensure_load_balancer(request=request)
    assert status.ingress[0].ip == db.ip
    ours = shared.get_load_balancer_name(request=request)
    (rule,) = gce.resources("forwardingRules")
    assert (rule["name"], rule["IPAddress"], rule["loadBalancingScheme"]) == (ours, db.ip, "INTERNAL")
    (service,) = gce.resources("backendServices")
    assert service["name"] == ours
    assert sorted(b["group"].rsplit("/", 1)[-1] for b in service["backends"]) == [GROUP, GROUP]
    assert _upstreams(gce, db) == {}
    assert _upstream_checks(gce) == []  # upstream's shared global check: no longer used, deleted
    assert not [n for n in _names(gce, "firewalls") if CID in n or db.name in n]
    assert _names(gce, "instanceGroups") == [GROUP, GROUP]  # the cluster's now: kept, with the nodes
    assert (_members(gce, ZONES[0]), _members(gce, ZONES[1])) == (["node-0", "node-2"], ["node-1"])
    assert gce.resources("addresses") == []  # our reservation released: the rule keeps the IP
    (event,) = [e for e in status.events if e.reason == TAKEN_OVER]
    assert db.ip in event.message and "refused between the deletion" in event.message
    assert f"backend service {db.name}" in event.message and f"k8s-{CID}-node" in event.message
    mutations = shared.clients.mutations()
    assert mutations["addresses.insert"] == 1 and mutations["addresses.delete"] == 1
    assert "instanceGroups.insert" not in mutations and "instanceGroups.delete" not in mutations


def test_a_local_traffic_internal_service_is_taken_over_with_its_own_health_check(
    shared: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    db = upstream.internal(key="default/db", uid=UID_DB, instances=NODES, local_port=31234)
    request = make_request(
        "db",
        uid=UID_DB,
        annotations=INTERNAL,
        status_addresses=(db.ip,),
        external_traffic_policy="Local",
        health_check_node_port=31234,
    )
    assert _names(gce, "healthChecks") == [db.name] and f"{db.name}-hc" in _names(gce, "firewalls")
    status = shared.ensure_load_balancer(request=request)
    assert status.ingress[0].ip == db.ip
    assert _upstreams(gce, db) == {} and _upstream_checks(gce) == []
    (event,) = [e for e in status.events if e.reason == TAKEN_OVER]
    assert f"health check {db.name}" in event.message and f"firewall rule {db.name}-hc" in event.message


def test_the_shared_health_check_stays_while_another_upstream_backend_service_uses_it(
    shared: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    _db, db_request = _internal_service(make_request, upstream, "db", uid=UID_DB)
    cache, cache_request = _internal_service(make_request, upstream, "cache", uid=UID_CACHE)
    status = shared.ensure_load_balancer(request=db_request)
    (event,) = [e for e in status.events if e.reason == TAKEN_OVER]
    assert f"k8s-{CID}-node" in event.message.split("kept", 1)[1]
    assert _upstream_checks(gce) == [f"k8s-{CID}-node"]
    assert _upstreams(gce, cache)["backendServices"] == [cache.name]
    assert shared.ensure_load_balancer(request=cache_request).ingress[0].ip == cache.ip
    assert _upstream_checks(gce) == [] and _upstreams(gce, cache) == {}
    assert not [n for n in _names(gce, "firewalls") if CID in n]


def test_a_node_added_after_the_takeover_lands_in_the_shared_instance_group(
    shared: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    _db, request = _internal_service(make_request, upstream, "db", uid=UID_DB)
    shared.ensure_load_balancer(request=request)
    shared.update_load_balancer(request=dataclasses.replace(request, nodes=nodes(0, 1, 2, 3)))
    assert _members(gce, ZONES[1]) == ["node-1", "node-3"]
    shared.clients.reset_counts()
    shared.update_load_balancer(request=dataclasses.replace(request, nodes=nodes(0, 1, 2)))
    assert shared.clients.mutations() == {"instanceGroups.removeInstances": 1}
    assert _members(gce, ZONES[1]) == ["node-1"]


def test_the_instance_groups_upstream_made_go_with_the_last_load_balancer_as_upstreams_do(
    shared: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    _db, db_request = _internal_service(make_request, upstream, "db", uid=UID_DB)
    _cache, cache_request = _internal_service(make_request, upstream, "cache", uid=UID_CACHE)
    shared.ensure_load_balancer(request=db_request)
    shared.ensure_load_balancer_deleted(request=db_request)
    assert _names(gce, "instanceGroups") == [GROUP, GROUP]  # upstream's cache still sends to them
    shared.ensure_load_balancer(request=cache_request)
    shared.ensure_load_balancer_deleted(request=cache_request)
    assert gce.resources("forwardingRules") == [] and gce.resources("backendServices") == []
    assert gce.resources("instanceGroups") == []


def test_a_service_that_asks_for_another_subnetwork_is_refused_and_nothing_changes(
    shared: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    gce.seed_subnetwork("other", "default", "10.129.0.0/20")
    db, request = _internal_service(make_request, upstream, "db", uid=UID_DB)
    other = {**INTERNAL, "networking.gke.io/internal-load-balancer-subnet": "other"}
    request = dataclasses.replace(request, annotations=other)
    with pytest.raises(ForeignLoadBalancer) as refused:
        shared.ensure_load_balancer(request=request)
    assert "subnetwork other" in refused.value.reason and "nodes" in refused.value.reason
    assert refused.value.address == db.ip and shared.clients.mutations() == {}


def test_plan_migration_says_adopt_only_with_the_setting(
    provider: GCEProvider,
    shared: GCEProvider,
    gce: FakeCompute,
    upstream: UpstreamCloud,
    make_request: RequestFactory,
) -> None:
    db, request = _internal_service(make_request, upstream, "db", uid=UID_DB)
    refuse = provider.plan_migration(request=request)
    assert (refuse.action, refuse.address, refuse.address_changes) == ("refuse", db.ip, False)
    assert f"upstream-cluster-id = {CID}" in refuse.reason
    adopt = shared.plan_migration(request=request)
    assert (adopt.action, adopt.address, adopt.address_changes) == ("adopt", db.ip, False)
    assert "internal load balancer is taken over" in adopt.reason
    assert ("instance group", GROUP) not in {(p.kind, p.name) for p in adopt.foreign}
    assert shared.clients.mutations() == {} and provider.clients.mutations() == {}


# The internal takeover's mutations, in order (asserted below, so that every one is a crash point).
TAKEOVER = [
    "regionHealthChecks.insert",  # the cluster's shared parts first, as for any Service
    "firewalls.insert",  # the shared health-check firewall
    "addresses.insert",  # reserve upstream's ephemeral internal IP under our name
    "regionBackendServices.insert",  # on upstream's instance groups, now the cluster's
    "forwardingRules.delete",  # upstream's: the interruption starts
    "forwardingRules.insert",  # ours on the IP: it ends
    "firewalls.insert",  # the traffic firewall
    "regionBackendServices.delete",
    "firewalls.delete",  # upstream's traffic firewall
    "healthChecks.delete",  # upstream's shared global check, no longer used
    "firewalls.delete",  # its firewall
    "addresses.delete",  # the reservation released
    "forwardingRules.setLabels",  # ours complete
]


def test_the_crash_points_cover_every_mutation_of_an_internal_takeover(
    gce: FakeCompute, make_request: RequestFactory
) -> None:
    upstream = UpstreamCloud(Gce.connect(gce), cid=CID)
    _db, request = _internal_service(make_request, upstream, "db", uid=UID_DB)
    provider = new_provider(gce, upstream_cluster_id=CID)
    seen = crash_after(provider, 10_000)
    provider.ensure_load_balancer(request=request)
    assert seen == TAKEOVER, repr(seen)[:2000]


@pytest.mark.parametrize(
    "crash_point", range(1, len(TAKEOVER) + 1), ids=lambda n: f"after-{n}-{TAKEOVER[n - 1]}"
)
def test_a_crash_anywhere_in_an_internal_takeover_keeps_the_ip_and_the_next_sync_finishes_it(
    gce: FakeCompute, make_request: RequestFactory, crash_point: int
) -> None:
    upstream = UpstreamCloud(Gce.connect(gce), cid=CID)
    db, request = _internal_service(make_request, upstream, "db", uid=UID_DB)
    doomed = new_provider(gce, upstream_cluster_id=CID)
    crash_after(doomed, crash_point)
    with contextlib.suppress(Crash):
        doomed.ensure_load_balancer(request=request)
    held = {a["address"] for a in gce.resources("addresses")} | {
        r["IPAddress"] for r in gce.resources("forwardingRules")
    }
    assert db.ip in held  # the IP is always a rule's or a reservation's: never back in GCE's pool
    restarted = new_provider(gce, upstream_cluster_id=CID)
    status = restarted.ensure_load_balancer(request=request)
    assert status.ingress[0].ip == db.ip
    (rule,) = gce.resources("forwardingRules")
    assert rule["IPAddress"] == db.ip and rule["labels"]["ccm-lb-spec-hash"]
    assert _upstreams(gce, db) == {} and gce.resources("addresses") == []
    assert _upstream_checks(gce) == [] and not [n for n in _names(gce, "firewalls") if CID in n]
    restarted.clients.reset_counts()
    restarted.ensure_load_balancer(request=request)
    assert restarted.clients.snapshot() == {"forwardingRules.get": 1}
    restarted.ensure_load_balancer_deleted(request=request)
    left = {k: _names(gce, k) for k in UPSTREAM_KINDS if gce.resources(k)}
    assert left in ({}, {"healthChecks": ["k8s-test-node"]}), left  # ours, shared: the sweep's

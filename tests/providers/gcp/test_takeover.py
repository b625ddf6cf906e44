"""Upstream's external load balancer is taken over and the Service keeps its IP.

A Service the upstream GCP provider served (forwarding rule ``a<uid>`` → target pool) needs no
annotation: the provider reserves the rule's IP, builds its own backend service, health check, instance
groups and firewalls, deletes upstream's rule, creates its own on the IP, deletes upstream's other parts
(the cluster's shared health check only once no other target pool uses it) and releases the
reservation. A Warning ``LoadBalancerTakenOver`` names the interruption between the two rules. A crash
after any of those calls converges on the next sync, on the same IP, with nothing left of upstream's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest
from google.cloud import compute_v1

from ccm.cloudprovider import LoadBalancerRequest
from fakegce import FakeCompute
from providers.gcp.provider import TAKEN_OVER, GCEProvider
from tests.support.fakegce import PROJECT, REGION, Gce
from tests.support.gcp import ZONES, Crash, RequestFactory, crash_after, new_provider
from tests.support.upstream_gce import Built, UpstreamCloud, left_of

CID = "0123456789abcdef"
NODES = ((ZONES[0], "node-0"), (ZONES[1], "node-1"), (ZONES[0], "node-2"))
UID_WEB = "6f1c2a9e-1111-4a2b-9c3d-0123456789ab"
UID_API = "7a2d3b0f-2222-4b3c-8d4e-123456789abc"
UPSTREAM_KINDS = ("forwardingRules", "targetPools", "httpHealthChecks", "firewalls", "addresses")


@pytest.fixture
def upstream(gce: FakeCompute) -> UpstreamCloud:
    return UpstreamCloud(Gce.connect(gce), cid=CID)


def _upstream_service(
    make_request: RequestFactory, upstream: UpstreamCloud, name: str, *, uid: str, local_port: int = 0
) -> tuple[Built, LoadBalancerRequest]:
    built = upstream.external(key=f"default/{name}", uid=uid, instances=NODES, local_port=local_port)
    extra: dict[str, Any] = (
        {"external_traffic_policy": "Local", "health_check_node_port": local_port} if local_port else {}
    )
    return built, make_request(name, uid=uid, status_addresses=(built.ip,), **extra)


def _upstreams(gce: FakeCompute, built: Built) -> dict[str, list[str]]:
    """Upstream's resources of one load balancer (by its name) still in the project."""
    return left_of(gce, built, UPSTREAM_KINDS)


def _names(gce: FakeCompute, kind: str) -> list[str]:
    return sorted(r["name"] for r in gce.resources(kind))


def test_the_service_keeps_its_ip_upstreams_parts_go_and_an_event_names_the_interruption(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    web, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB)
    status = provider.ensure_load_balancer(request=request)
    assert status.ingress[0].ip == web.ip
    ours = provider.get_load_balancer_name(request=request)
    (rule,) = gce.resources("forwardingRules")
    assert (rule["name"], rule["IPAddress"]) == (ours, web.ip) and "backendService" in rule
    assert _upstreams(gce, web) == {}
    assert gce.resources("targetPools") == [] and gce.resources("httpHealthChecks") == []
    assert gce.resources("addresses") == []  # the reservation was ours: released, the rule keeps the IP
    (event,) = [e for e in status.events if e.reason == TAKEN_OVER]
    assert web.ip in event.message and "refused between the deletion" in event.message
    assert f"target pool {web.name}" in event.message and f"k8s-{CID}-node" in event.message
    mutations = provider.clients.mutations()
    assert mutations["addresses.insert"] == 1 and mutations["addresses.delete"] == 1


def test_the_shared_health_check_stays_while_another_upstream_pool_uses_it(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    _web, web_request = _upstream_service(make_request, upstream, "web", uid=UID_WEB)
    api, api_request = _upstream_service(make_request, upstream, "api", uid=UID_API)
    status = provider.ensure_load_balancer(request=web_request)
    (event,) = [e for e in status.events if e.reason == TAKEN_OVER]
    assert f"k8s-{CID}-node" in event.message.split("kept", 1)[1]
    assert _names(gce, "httpHealthChecks") == [f"k8s-{CID}-node"]
    assert f"k8s-{CID}-node-http-hc" in _names(gce, "firewalls")
    assert _upstreams(gce, api)["targetPools"] == [api.name]
    assert provider.ensure_load_balancer(request=api_request).ingress[0].ip == api.ip
    assert gce.resources("httpHealthChecks") == [] and gce.resources("targetPools") == []
    assert not [n for n in _names(gce, "firewalls") if CID in n]


def test_a_local_traffic_service_is_taken_over_with_its_own_legacy_check(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    web, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB, local_port=31234)
    assert provider.ensure_load_balancer(request=request).ingress[0].ip == web.ip
    assert _upstreams(gce, web) == {} and gce.resources("httpHealthChecks") == []


def test_an_ip_the_user_reserved_is_used_and_never_released(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    web = upstream.external(key="default/web", uid=UID_WEB, instances=NODES)
    gce_client = Gce.connect(gce)
    mine = compute_v1.Address(name="mine", address=web.ip, network_tier="PREMIUM")
    gce_client.wait(gce_client.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=mine))
    request = make_request("web", uid=UID_WEB, status_addresses=(web.ip,), load_balancer_ip=web.ip)
    assert provider.ensure_load_balancer(request=request).ingress[0].ip == web.ip
    assert [(a["name"], a["status"]) for a in gce.resources("addresses")] == [("mine", "IN_USE")]
    assert "addresses.delete" not in provider.clients.mutations()
    provider.ensure_load_balancer_deleted(request=request)
    assert [(a["name"], a["status"]) for a in gce.resources("addresses")] == [("mine", "RESERVED")]


def test_a_steady_ensure_after_the_takeover_costs_what_any_service_of_ours_costs(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    _web, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB)
    provider.ensure_load_balancer(request=request)
    ours = make_request("ours")
    ours_ip = provider.ensure_load_balancer(request=ours).ingress[0].ip
    ours = dataclasses.replace(ours, status_addresses=(ours_ip,))
    counts = []
    for each in (request, ours):
        provider.clients.reset_counts()
        provider.ensure_load_balancer(request=each)
        counts.append(provider.clients.snapshot())
        provider.clients.reset_counts()
        provider.update_load_balancer(request=each)
        counts.append(provider.clients.snapshot())
    assert counts[0] == counts[2] == {"forwardingRules.get": 1}
    assert counts[1] == counts[3]
    fresh = new_provider(gce)  # after a restart too
    fresh.ensure_load_balancer(request=request)
    assert fresh.clients.mutations() == {}


def _takeover_mutations(gce: FakeCompute, make_request: RequestFactory) -> list[str]:
    upstream = UpstreamCloud(Gce.connect(gce), cid=CID)
    _web, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB)
    provider = new_provider(gce)
    seen = crash_after(provider, 10_000)
    provider.ensure_load_balancer(request=request)
    return seen


# The takeover's mutations, in order (asserted below, so that every one is a crash point).
TAKEOVER = [
    "instanceGroups.insert",  # the cluster's shared parts first, as for any Service
    "instanceGroups.addInstances",
    "instanceGroups.insert",
    "instanceGroups.addInstances",
    "regionHealthChecks.insert",
    "firewalls.insert",  # the shared health-check firewall
    "addresses.insert",  # reserve upstream's ephemeral IP under our name
    "regionBackendServices.insert",
    "forwardingRules.delete",  # upstream's: the interruption starts
    "forwardingRules.insert",  # ours on the IP: it ends
    "firewalls.insert",  # the traffic firewall
    "targetPools.delete",
    "firewalls.delete",
    "httpHealthChecks.delete",
    "firewalls.delete",
    "addresses.delete",  # the reservation released
    "forwardingRules.setLabels",  # ours complete
]


SHARED_CHECK_GAP = {"targetPools.delete", "httpHealthChecks.delete"}
SHARED_CHECK_GAP |= {"firewalls.delete"}  # the traffic firewall's deletion, between the two above


@pytest.mark.parametrize("crash_point", [12, 14], ids=lambda n: f"after-{n}-{TAKEOVER[n - 1]}")
def test_with_the_upstream_cluster_id_the_shared_check_left_by_a_crash_is_deleted(
    gce: FakeCompute, make_request: RequestFactory, crash_point: int
) -> None:
    """Once upstream's target pool (or the check itself) is gone, only upstream's cluster id names the
    shared legacy check and its firewall: with the cloud config's ``upstream-cluster-id`` the next sync
    deletes them (without it they are left: the gap of the test below)."""
    upstream = UpstreamCloud(Gce.connect(gce), cid=CID)
    _web, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB)
    doomed = new_provider(gce, upstream_cluster_id=CID)
    crash_after(doomed, crash_point)
    with contextlib.suppress(Crash):
        doomed.ensure_load_balancer(request=request)
    new_provider(gce, upstream_cluster_id=CID).ensure_load_balancer(request=request)
    assert [n for n in _names(gce, "httpHealthChecks") + _names(gce, "firewalls") if CID in n] == []


def test_the_crash_points_cover_every_mutation_of_a_takeover(
    gce: FakeCompute, make_request: RequestFactory
) -> None:
    seen = _takeover_mutations(gce, make_request)
    assert seen == TAKEOVER, repr(seen)[:2000]


@pytest.mark.parametrize(
    "crash_point", range(1, len(TAKEOVER) + 1), ids=lambda n: f"after-{n}-{TAKEOVER[n - 1]}"
)
def test_a_crash_anywhere_in_a_takeover_keeps_the_ip_and_the_next_sync_finishes_it(
    gce: FakeCompute, make_request: RequestFactory, crash_point: int
) -> None:
    upstream = UpstreamCloud(Gce.connect(gce), cid=CID)
    web, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB)
    doomed = new_provider(gce)
    crash_after(doomed, crash_point)
    with contextlib.suppress(Crash):
        doomed.ensure_load_balancer(request=request)
    held = {a["address"] for a in gce.resources("addresses")} | {
        r["IPAddress"] for r in gce.resources("forwardingRules")
    }
    assert web.ip in held  # the IP is always a rule's or a reservation's: never back in GCE's pool
    restarted = new_provider(gce)
    status = restarted.ensure_load_balancer(request=request)
    assert status.ingress[0].ip == web.ip
    (rule,) = gce.resources("forwardingRules")
    assert rule["IPAddress"] == web.ip and rule["labels"]["ccm-lb-spec-hash"]
    assert _upstreams(gce, web) == {}
    assert gce.resources("targetPools") == [] and gce.resources("addresses") == []
    restarted.clients.reset_counts()
    restarted.ensure_load_balancer(request=request)
    assert restarted.clients.snapshot() == {"forwardingRules.get": 1}
    restarted.ensure_load_balancer_deleted(request=request)
    left = {k: _names(gce, k) for k in (*UPSTREAM_KINDS, "backendServices") if gce.resources(k)}
    if TAKEOVER[crash_point - 1] in SHARED_CHECK_GAP:
        # Known gap: once upstream's target pool is gone, nothing names the cluster's shared legacy
        # check any more (its cluster id is upstream's), so a crash here can leave it and its firewall.
        shared = {f"k8s-{CID}-node", f"k8s-{CID}-node-http-hc"}
        left = {k: [n for n in v if n not in shared] for k, v in left.items()}
        left = {k: v for k, v in left.items() if v}
    assert left == {}

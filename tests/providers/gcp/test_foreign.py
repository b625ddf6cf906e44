"""A Service the upstream GCP cloud provider built a load balancer for keeps its address until it asks.

The cluster moved from upstream's cloud-controller-manager to this controller: its Services carry
upstream's address in their status, served by upstream's target pool (or internal backend service).
Upstream's external load balancer is taken over on its IP (``test_takeover.py``); what cannot keep the IP
(another network tier; an internal load balancer while the cloud config does not share upstream's
instance groups, ``test_internal_takeover.py``) is refused (:class:`ForeignLoadBalancer`) and
nothing changes, unless the Service asks for a new address with
``ccm-lb.io/replace-foreign-load-balancer: "true"``; then it builds its own and deletes upstream's
per-Service parts, and the cluster's shared ones only once nothing uses them.
Upstream's resources are made by :mod:`tests.support.upstream_gce` exactly as upstream makes them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ccm.cloudprovider import (
    REPLACE_FOREIGN_ANNOTATION,
    ForeignLoadBalancer,
    InvalidSpec,
    LoadBalancerRequest,
)
from fakegce import FakeCompute
from providers.gcp.provider import FOREIGN_REPLACED, GCEProvider
from tests.support.fakegce import Gce
from tests.support.gcp import ZONES, RequestFactory, lb_resources, new_provider
from tests.support.upstream_gce import Built, UpstreamCloud

REPLACE = {REPLACE_FOREIGN_ANNOTATION: "true"}
STANDARD = {"cloud.google.com/network-tier": "Standard"}  # upstream's IP is PREMIUM: not taken over
INTERNAL = {"networking.gke.io/load-balancer-type": "Internal"}
CID = "0123456789abcdef"
NODES = ((ZONES[0], "node-0"), (ZONES[1], "node-1"), (ZONES[0], "node-2"))
KINDS = ("forwardingRules", "targetPools", "httpHealthChecks", "backendServices", "firewalls", "addresses")


@pytest.fixture
def upstream(gce: FakeCompute) -> UpstreamCloud:
    return UpstreamCloud(Gce.connect(gce), cid=CID)


def _everything(gce: FakeCompute) -> dict[str, list[dict[str, Any]]]:
    kinds = (*KINDS, "healthChecks", "instanceGroups")
    return {kind: gce.resources(kind) for kind in kinds}


def _names(gce: FakeCompute, kind: str) -> list[str]:
    return sorted(r["name"] for r in gce.resources(kind))


def _upstream_service(
    make_request: RequestFactory,
    upstream: UpstreamCloud,
    name: str,
    *,
    uid: str,
    local_port: int = 0,
    **fields: Any,
) -> tuple[Built, LoadBalancerRequest]:
    built = upstream.external(key=f"default/{name}", uid=uid, instances=NODES, local_port=local_port)
    extra = {"external_traffic_policy": "Local", "health_check_node_port": local_port} if local_port else {}
    request = make_request(name, uid=uid, status_addresses=(built.ip,), **extra, **fields)
    return built, request


UID_WEB = "6f1c2a9e-1111-4a2b-9c3d-0123456789ab"
UID_API = "7a2d3b0f-2222-4b3c-8d4e-123456789abc"


def test_a_service_that_now_asks_for_another_tier_is_refused_with_the_reason_and_nothing_changes(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    built, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB, annotations=STANDARD)
    assert built.name == "a6f1c2a9e11114a2b9c3d0123456789a"  # "a" + UID without dashes, 32 characters
    before = _everything(gce)
    with pytest.raises(ForeignLoadBalancer) as refused:
        provider.ensure_load_balancer(request=request)
    assert refused.value.address == built.ip
    parts = refused.value.parts
    assert (parts[0].kind, parts[0].name) == ("forwarding rule", built.name) and built.ip in parts[0].detail
    assert {(p.kind, p.name) for p in parts} == {
        ("forwarding rule", built.name),
        ("target pool", built.name),
        ("firewall rule", f"k8s-fw-{built.name}"),
        ("legacy HTTP health check", f"k8s-{CID}-node"),
        ("firewall rule", f"k8s-{CID}-node-http-hc"),
    }
    assert "replace-foreign-load-balancer" in str(refused.value)
    assert "network tier STANDARD" in refused.value.reason and refused.value.reason in str(refused.value)
    assert provider.clients.mutations() == {}
    assert _everything(gce) == before  # upstream's load balancer is exactly as it was
    with pytest.raises(ForeignLoadBalancer):  # the node sync leaves it alone too, at no cost
        provider.clients.reset_counts()
        provider.update_load_balancer(request=request)
    assert provider.clients.snapshot() == {}
    assert _everything(gce) == before


def test_a_new_process_refuses_the_node_sync_of_a_service_upstream_serves_before_any_ensure(
    gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    _built, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB, annotations=STANDARD)
    fresh = new_provider(gce)
    before = _everything(gce)
    with pytest.raises(ForeignLoadBalancer):
        fresh.update_load_balancer(request=request)
    assert fresh.clients.mutations() == {} and _everything(gce) == before


def test_with_the_annotation_ours_replaces_upstreams_and_a_shared_check_another_pool_uses_is_kept(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    web, web_request = _upstream_service(make_request, upstream, "web", uid=UID_WEB, annotations=REPLACE)
    api, api_request = _upstream_service(make_request, upstream, "api", uid=UID_API, annotations=REPLACE)
    status = provider.ensure_load_balancer(request=web_request)
    new_ip = status.ingress[0].ip
    assert new_ip and new_ip != web.ip
    (event,) = [e for e in status.events if e.reason == FOREIGN_REPLACED]
    assert f"from {web.ip} to {new_ip}" in event.message and f"target pool {web.name}" in event.message
    assert f"k8s-{CID}-node" in event.message.split("kept", 1)[1]  # named as kept: api's pool uses it
    ours = provider.get_load_balancer_name(request=web_request)
    assert ours in _names(gce, "forwardingRules")
    assert web.name not in _names(gce, "forwardingRules") + _names(gce, "targetPools")
    assert f"k8s-fw-{web.name}" not in _names(gce, "firewalls")
    # the cluster's shared check and its firewall stay while upstream's other load balancer uses them
    assert _names(gce, "httpHealthChecks") == [f"k8s-{CID}-node"]
    assert f"k8s-{CID}-node-http-hc" in _names(gce, "firewalls")
    assert api.name in _names(gce, "forwardingRules") and api.name in _names(gce, "targetPools")

    provider.ensure_load_balancer(request=api_request)  # the last one: the shared parts go too
    assert gce.resources("targetPools") == [] and gce.resources("httpHealthChecks") == []
    assert not [n for n in _names(gce, "firewalls") if CID in n or n.startswith("k8s-fw-a")]
    assert not [n for n in _names(gce, "forwardingRules") if n.startswith("a")]

    provider.clients.reset_counts()  # and ours is a Service like any other now
    provider.ensure_load_balancer(request=dataclasses.replace(web_request, status_addresses=(new_ip,)))
    assert provider.clients.snapshot() == {"forwardingRules.get": 1}


def test_replacing_a_local_traffic_service_deletes_its_own_legacy_check_and_firewall(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    built, request = _upstream_service(
        make_request, upstream, "web", uid=UID_WEB, local_port=31234, annotations=REPLACE
    )
    assert _names(gce, "httpHealthChecks") == [built.name]
    provider.ensure_load_balancer(request=request)
    assert gce.resources("httpHealthChecks") == [] and gce.resources("targetPools") == []
    assert not [n for n in _names(gce, "firewalls") if built.name in n]


def test_an_annotation_value_other_than_true_or_false_is_an_invalid_spec_before_any_call(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    _built, request = _upstream_service(
        make_request, upstream, "web", uid=UID_WEB, annotations={REPLACE_FOREIGN_ANNOTATION: "yes"}
    )
    before = _everything(gce)
    with pytest.raises(InvalidSpec, match=REPLACE_FOREIGN_ANNOTATION):
        provider.ensure_load_balancer(request=request)
    assert provider.clients.snapshot() == {} and _everything(gce) == before
    plan = provider.plan_migration(request=request)
    assert plan.action == "invalid" and REPLACE_FOREIGN_ANNOTATION in plan.reason


def test_the_annotation_false_is_the_default_a_takeover_that_keeps_the_ip(
    provider: GCEProvider, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    built, request = _upstream_service(
        make_request, upstream, "web", uid=UID_WEB, annotations={REPLACE_FOREIGN_ANNOTATION: "false"}
    )
    assert provider.ensure_load_balancer(request=request).ingress[0].ip == built.ip


def test_deleting_a_refused_service_deletes_upstreams_parts_and_keeps_what_another_pool_uses(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    web, web_request = _upstream_service(make_request, upstream, "web", uid=UID_WEB, annotations=STANDARD)
    api, _api_request = _upstream_service(make_request, upstream, "api", uid=UID_API)
    with pytest.raises(ForeignLoadBalancer):
        provider.ensure_load_balancer(request=web_request)
    provider.ensure_load_balancer_deleted(request=web_request)
    assert web.name not in _names(gce, "forwardingRules") + _names(gce, "targetPools")
    assert f"k8s-fw-{web.name}" not in _names(gce, "firewalls")
    assert _names(gce, "httpHealthChecks") == [f"k8s-{CID}-node"]  # api's pool still uses it
    assert api.name in _names(gce, "forwardingRules")
    assert not [n for n in _names(gce, "forwardingRules") if n.startswith("k8s-")]  # nothing of ours made


def test_a_rule_with_upstreams_name_that_names_another_service_is_not_the_services_and_is_never_touched(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    built = upstream.external(key="default/someone-else", uid=UID_WEB, instances=NODES)
    request = make_request("web", uid=UID_WEB, status_addresses=(built.ip,), annotations=REPLACE)
    upstreams = {k: [r for r in v if built.name in r["name"]] for k, v in _everything(gce).items()}
    plan = provider.plan_migration(request=request)
    assert (plan.action, plan.address_changes, plan.foreign) == ("create", True, ())
    status = provider.ensure_load_balancer(request=request)
    assert status.ingress[0].ip != built.ip and not [e for e in status.events if e.reason == FOREIGN_REPLACED]
    provider.ensure_load_balancer_deleted(request=request)
    assert {k: [r for r in v if built.name in r["name"]] for k, v in _everything(gce).items()} == upstreams


def test_an_internal_service_is_refused_naming_the_setting_that_shares_upstreams_instance_groups(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    built = upstream.internal(key="default/db", uid=UID_WEB, instances=NODES)
    request = make_request("db", uid=UID_WEB, annotations=INTERNAL, status_addresses=(built.ip,))
    before = _everything(gce)
    with pytest.raises(ForeignLoadBalancer) as refused:
        provider.ensure_load_balancer(request=request)
    kinds = {(p.kind, p.name) for p in refused.value.parts}
    assert refused.value.parts[0].name == built.name and built.ip in refused.value.parts[0].detail
    assert {("backend service", built.name), ("health check", f"k8s-{CID}-node")} <= kinds
    assert ("firewall rule", f"k8s-fw-{built.name}") in kinds
    assert (
        f"upstream-cluster-id = {CID}" in refused.value.reason
        and "kube-system/ingress-uid" in refused.value.reason
    )
    assert provider.clients.mutations() == {} and _everything(gce) == before


def test_plan_migration_says_keep_adopt_refuse_replace_create_or_elsewhere_and_changes_nothing(
    provider: GCEProvider, gce: FakeCompute, upstream: UpstreamCloud, make_request: RequestFactory
) -> None:
    built, request = _upstream_service(make_request, upstream, "web", uid=UID_WEB)
    adopt = provider.plan_migration(request=request)
    assert (adopt.action, adopt.address, adopt.address_changes) == ("adopt", built.ip, False)
    assert adopt.foreign[0].kind == "forwarding rule" and len(adopt.foreign) == 5
    assert "taken over" in adopt.reason and "refused between the deletion" in adopt.reason
    refuse = provider.plan_migration(request=dataclasses.replace(request, annotations=STANDARD))
    assert (refuse.action, refuse.address, refuse.address_changes) == ("refuse", built.ip, False)
    assert "network tier" in refuse.reason and refuse.foreign == adopt.foreign
    rbs = dataclasses.replace(request, annotations={"cloud.google.com/l4-rbs": "enabled"})
    assert provider.plan_migration(request=rbs).action == "elsewhere"
    replacing = dataclasses.replace(request, annotations=REPLACE)
    replace = provider.plan_migration(request=replacing)
    assert (replace.action, replace.address_changes, replace.foreign) == ("replace", True, refuse.foreign)
    fresh = make_request("new")
    assert provider.plan_migration(request=fresh) == provider.plan_migration(request=fresh)
    assert provider.plan_migration(request=fresh).action == "create"
    assert provider.plan_migration(request=fresh).address_changes is False
    lost = make_request("lost", status_addresses=("203.0.113.7",))  # an address nothing serves any more
    assert (
        provider.plan_migration(request=lost).action,
        provider.plan_migration(request=lost).address_changes,
    ) == (
        "create",
        True,
    )
    assert provider.clients.mutations() == {}
    ip = provider.ensure_load_balancer(request=fresh).ingress[0].ip
    kept = dataclasses.replace(fresh, status_addresses=(ip,))
    assert provider.plan_migration(request=kept).action == "keep"
    assert provider.plan_migration(request=fresh).action == "keep"


def test_an_address_upstreams_rule_no_longer_serves_gets_a_load_balancer_of_ours_as_today(
    provider: GCEProvider, gce: FakeCompute, make_request: RequestFactory
) -> None:
    request = make_request("web", status_addresses=("203.0.113.7", "lb.example.com"))
    status = provider.ensure_load_balancer(request=request)
    assert status.ingress[0].ip and status.events == ()
    assert lb_resources(gce)["forwardingRules"] == [provider.get_load_balancer_name(request=request)]


def test_a_service_whose_address_is_ours_costs_no_extra_call_to_ensure_or_to_update(
    provider: GCEProvider, make_request: RequestFactory
) -> None:
    request = make_request("web")
    ip = provider.ensure_load_balancer(request=request).ingress[0].ip
    with_status = dataclasses.replace(request, status_addresses=(ip,))
    provider.clients.reset_counts()
    provider.ensure_load_balancer(request=with_status)
    assert provider.clients.snapshot() == {"forwardingRules.get": 1}  # the one read, reused
    provider.clients.reset_counts()
    provider.update_load_balancer(request=with_status)
    assert "forwardingRules.get" not in provider.clients.snapshot()

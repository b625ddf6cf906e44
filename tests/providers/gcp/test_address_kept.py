"""A Service's IP survives every rebuild of its forwarding rule that GCE lets keep it (issue 11, part 2).

GCE cannot change a forwarding rule's ports or protocol in place: the rule is deleted and created again.
Like upstream (cloud-provider-gcp ``ensureStaticIP``, ingress-gce ``pkg/l4/address``), the provider
first promotes the rule's ephemeral IP to a reserved address named after the load balancer, creates
the new rule on it, and releases the reservation afterwards. What GCE cannot keep (external ↔
internal, another network tier, another subnetwork) changes the IP and says so in an event.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest

from ccm.cloudprovider import InvalidSpec
from fakegce import FakeCompute
from providers.gcp.provider import GCEProvider
from tests.support.gcp import Crash, RequestFactory, crash_after, gce_config, lb_resources, new_provider

INTERNAL = {"networking.gke.io/load-balancer-type": "Internal"}


def _rule(gce: FakeCompute) -> dict[str, Any]:
    (rule,) = gce.resources("forwardingRules")
    return rule


def _mutations(provider: GCEProvider) -> dict[str, int]:
    return provider.clients.mutations()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"ports": ((80, "TCP"), (443, "TCP"))}, {"ports": ((80, "TCP"), (443, "TCP"), (8080, "TCP"))}),
        ({"ports": ((53, "TCP"),)}, {"ports": ((53, "UDP"),)}),
        ({"ports": ((80, "TCP"),)}, {"ports": tuple((p, "TCP") for p in range(8000, 8006))}),  # → allPorts
        (
            {"ports": ((80, "TCP"),), "annotations": INTERNAL},
            {"ports": ((80, "TCP"), (81, "TCP")), "annotations": INTERNAL},
        ),
        (
            {"ports": ((53, "TCP"),), "annotations": INTERNAL},
            {"ports": ((53, "UDP"),), "annotations": INTERNAL},
        ),
    ],
    ids=[
        "external-add-port",
        "external-tcp-to-udp",
        "external-all-ports",
        "internal-add-port",
        "internal-udp",
    ],
)
def test_a_rebuild_of_the_forwarding_rule_keeps_the_ip_and_releases_the_temporary_reservation(
    provider: GCEProvider,
    gce: FakeCompute,
    make_request: RequestFactory,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    request = make_request("kept", **before)
    ip = provider.ensure_load_balancer(request=request).ingress[0].ip
    changed = make_request("kept", uid=request.uid, **after)
    status = provider.ensure_load_balancer(request=changed)
    assert status.ingress[0].ip == ip and status.events == ()
    rule = _rule(gce)
    assert rule["IPAddress"] == ip and rule["IPProtocol"] == after["ports"][0][1]
    assert gce.resources("addresses") == []  # the temporary reservation is gone: no address leak
    assert _mutations(provider)["addresses.insert"] == 1 and _mutations(provider)["addresses.delete"] == 1
    provider.clients.reset_counts()
    assert provider.ensure_load_balancer(request=changed).ingress[0].ip == ip
    assert provider.clients.snapshot() == {"forwardingRules.get": 1}


def test_global_access_is_patched_in_place_and_keeps_the_ip(
    provider: GCEProvider,
    gce: FakeCompute,
    make_request: RequestFactory,
) -> None:
    request = make_request("ilb", annotations=INTERNAL)
    ip = provider.ensure_load_balancer(request=request).ingress[0].ip
    rule_id = _rule(gce)["id"]
    for allow in ("true", "false"):
        provider.clients.reset_counts()
        annotations = {**INTERNAL, "networking.gke.io/internal-load-balancer-allow-global-access": allow}
        changed = make_request("ilb", uid=request.uid, annotations=annotations)
        assert provider.ensure_load_balancer(request=changed).ingress[0].ip == ip
        assert _mutations(provider).get("forwardingRules.patch") == 1, _mutations(provider)
        assert "forwardingRules.delete" not in _mutations(provider)
        rule = _rule(gce)
        assert rule["id"] == rule_id and rule.get("allowGlobalAccess", False) == (allow == "true")


def test_a_users_reserved_ip_is_kept_across_a_rebuild_and_never_released(
    provider: GCEProvider,
    gce: FakeCompute,
    make_request: RequestFactory,
) -> None:
    gce.seed_address("mine", "34.1.2.3")
    request = make_request("static", load_balancer_ip="34.1.2.3")
    provider.ensure_load_balancer(request=request)
    changed = make_request("static", uid=request.uid, load_balancer_ip="34.1.2.3", ports=((8443, "TCP"),))
    assert provider.ensure_load_balancer(request=changed).ingress[0].ip == "34.1.2.3"
    assert "addresses.insert" not in _mutations(provider) and "addresses.delete" not in _mutations(provider)
    assert [(a["name"], a["status"]) for a in gce.resources("addresses")] == [("mine", "IN_USE")]
    # the user drops loadBalancerIP and changes ports: the IP stays, the user's address is left alone
    dropped = make_request("static", uid=request.uid, ports=((9443, "TCP"),))
    assert provider.ensure_load_balancer(request=dropped).ingress[0].ip == "34.1.2.3"
    provider.ensure_load_balancer_deleted(request=dropped)
    assert [(a["name"], a["status"]) for a in gce.resources("addresses")] == [("mine", "RESERVED")]


@pytest.mark.parametrize(
    ("before", "after", "says"),
    [
        ({}, {"annotations": INTERNAL}, "external to internal"),
        ({"annotations": INTERNAL}, {}, "internal to external"),
        ({}, {"annotations": {"cloud.google.com/network-tier": "Standard"}}, "network tier"),
    ],
    ids=["to-internal", "to-external", "network-tier"],
)
def test_a_change_gce_cannot_make_on_the_same_ip_changes_it_and_says_so(
    provider: GCEProvider,
    gce: FakeCompute,
    make_request: RequestFactory,
    before: dict[str, Any],
    after: dict[str, Any],
    says: str,
) -> None:
    request = make_request("moved", **before)
    old = provider.ensure_load_balancer(request=request).ingress[0].ip
    status = provider.ensure_load_balancer(request=make_request("moved", uid=request.uid, **after))
    new = status.ingress[0].ip
    assert new != old and _rule(gce)["IPAddress"] == new
    (event,) = status.events
    assert event.reason == "LoadBalancerIPChanged"
    assert old in event.message and new in event.message and says in event.message
    assert gce.resources("addresses") == []


# reserve, delete the rule, update the backend service, insert the rule, patch the firewall, release,
# setLabels: counted by the test below
REBUILD_MUTATIONS = 7


def _port_and_protocol_change(make_request: RequestFactory, **fields: Any) -> tuple[Any, Any]:
    request = make_request("moving", ports=((53, "TCP"),), **fields)
    return request, dataclasses.replace(
        request, ports=make_request("x", ports=((53, "UDP"), (5353, "UDP"))).ports
    )


@pytest.mark.parametrize("fields", [{}, {"annotations": INTERNAL}], ids=["external", "internal"])
def test_the_crash_points_cover_every_mutation_of_a_rebuild(
    provider: GCEProvider, make_request: RequestFactory, fields: dict[str, Any]
) -> None:
    request, changed = _port_and_protocol_change(make_request, **fields)
    provider.ensure_load_balancer(request=request)
    provider.clients.reset_counts()
    provider.ensure_load_balancer(request=changed)
    assert sum(_mutations(provider).values()) == REBUILD_MUTATIONS, _mutations(provider)


@pytest.mark.parametrize("fields", [{}, {"annotations": INTERNAL}], ids=["external", "internal"])
@pytest.mark.parametrize("crash_point", range(1, REBUILD_MUTATIONS + 1))
def test_a_crash_anywhere_in_a_rebuild_keeps_the_ip_held_and_the_next_sync_finishes_the_move(
    gce: FakeCompute,
    make_request: RequestFactory,
    crash_point: int,
    fields: dict[str, Any],
) -> None:
    request, changed = _port_and_protocol_change(make_request, **fields)
    ip = new_provider(gce).ensure_load_balancer(request=request).ingress[0].ip
    doomed = new_provider(gce)
    crash_after(doomed, crash_point)
    with contextlib.suppress(Crash):
        doomed.ensure_load_balancer(request=changed)
    held = {a["address"] for a in gce.resources("addresses")} | {
        r["IPAddress"] for r in gce.resources("forwardingRules")
    }
    assert ip in held  # between reserve and release, the IP is always the rule's or the reservation's
    restarted = new_provider(gce)
    assert restarted.ensure_load_balancer(request=changed).ingress[0].ip == ip
    rule = _rule(gce)
    assert rule["IPAddress"] == ip and rule["IPProtocol"] == "UDP" and rule["labels"]["ccm-lb-spec-hash"]
    assert gce.resources("addresses") == []
    restarted.ensure_load_balancer_deleted(request=changed)
    assert lb_resources(gce) == {}


def test_a_reservation_left_by_a_crash_goes_with_the_service(
    gce: FakeCompute,
    make_request: RequestFactory,
) -> None:
    request, changed = _port_and_protocol_change(make_request)
    new_provider(gce).ensure_load_balancer(request=request)
    doomed = new_provider(gce)
    crash_after(doomed, 1)  # right after the IP was reserved
    with pytest.raises(Crash):
        doomed.ensure_load_balancer(request=changed)
    assert len(gce.resources("addresses")) == 1
    new_provider(gce).ensure_load_balancer_deleted(request=request)
    assert lb_resources(gce) == {}


def test_a_reservation_left_by_a_crash_of_a_classed_instance_goes_with_the_service(
    gce: FakeCompute,
    make_request: RequestFactory,
) -> None:
    """The hold carries the instance's scope, as everything else it makes: a classed instance's delete
    reads reservations of its own scope only, and used to leave its crash-left hold behind."""
    cls = "example.com/second"

    def classed() -> GCEProvider:
        return GCEProvider(
            cluster_name="test", config=gce_config(gce.url), orphan_grace_seconds=0.0, load_balancer_class=cls
        )

    request, changed = _port_and_protocol_change(make_request, load_balancer_class=cls)
    classed().ensure_load_balancer(request=request)
    doomed = classed()
    crash_after(doomed, 1)  # right after the IP was reserved
    with pytest.raises(Crash):
        doomed.ensure_load_balancer(request=changed)
    assert len(gce.resources("addresses")) == 1
    classed().ensure_load_balancer_deleted(request=request)
    assert lb_resources(gce) == {}


# -- an internal spec.loadBalancerIP nobody reserved (issue 12) -------------------------------------


def test_a_free_internal_ip_is_reserved_for_the_service_and_released_with_it(
    provider: GCEProvider, gce: FakeCompute, make_request: RequestFactory
) -> None:
    """GCE and upstream accept an unreserved internal loadBalancerIP (cloud-provider-gcp reserves it:
    gce_loadbalancer_internal.go, addrMgr.HoldAddress); the reservation is ours and goes with the LB."""
    request = make_request("pinned", annotations=INTERNAL, load_balancer_ip="10.128.0.50")
    assert provider.ensure_load_balancer(request=request).ingress[0].ip == "10.128.0.50"
    (address,) = gce.resources("addresses")
    assert address["address"] == "10.128.0.50" and address["addressType"] == "INTERNAL"

    provider.ensure_load_balancer_deleted(request=request)
    assert gce.resources("addresses") == [] and lb_resources(gce) == {}


def test_another_internal_ip_moves_the_rule_and_releases_the_first_reservation(
    provider: GCEProvider, gce: FakeCompute, make_request: RequestFactory
) -> None:
    first = make_request("pinned", annotations=INTERNAL, load_balancer_ip="10.128.0.50")
    provider.ensure_load_balancer(request=first)
    moved = make_request("pinned", uid=first.uid, annotations=INTERNAL, load_balancer_ip="10.128.0.60")

    assert provider.ensure_load_balancer(request=moved).ingress[0].ip == "10.128.0.60"
    assert [a["address"] for a in gce.resources("addresses")] == ["10.128.0.60"]
    assert _rule(gce)["IPAddress"] == "10.128.0.60"


def test_an_internal_ip_outside_the_subnetwork_is_an_invalid_spec_naming_it(
    provider: GCEProvider, gce: FakeCompute, make_request: RequestFactory
) -> None:
    request = make_request("pinned", annotations=INTERNAL, load_balancer_ip="192.168.7.7")
    with pytest.raises(InvalidSpec, match=r"spec\.loadBalancerIP") as caught:
        provider.ensure_load_balancer(request=request)
    assert "192.168.7.7" in str(caught.value)
    assert gce.resources("forwardingRules") == [] and gce.resources("addresses") == []

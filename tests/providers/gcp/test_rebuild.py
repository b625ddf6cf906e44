"""The pure rules of :mod:`providers.gcp.rebuild`: patch, rebuild on the same IP, or a new IP (and why)."""

from __future__ import annotations

import dataclasses

from google.cloud import compute_v1

from providers.gcp import model, rebuild

SUBNETS = "https://www.googleapis.com/compute/v1/projects/p/regions/r/subnetworks"

INTERNAL = model.ForwardingRule(
    name="lb",
    scheme="INTERNAL",
    protocol="TCP",
    ports=(80,),
    all_ports=False,
    backend_service="lb",
    subnetwork="nodes",
)
EXTERNAL = dataclasses.replace(INTERNAL, scheme="EXTERNAL", subnetwork="")


def internal_rule(**fields: object) -> compute_v1.ForwardingRule:
    values: dict[str, object] = {
        "load_balancing_scheme": "INTERNAL",
        "I_p_protocol": "TCP",
        "ports": ["80"],
        "I_p_address": "10.0.0.5",
        "subnetwork": f"{SUBNETS}/nodes",
        "network_tier": "PREMIUM",
    }
    values.update(fields)
    return compute_v1.ForwardingRule(**values)


def test_a_matching_rule_has_no_differences_and_global_access_alone_is_patched() -> None:
    assert rebuild.differences(internal_rule(), INTERNAL) == frozenset()
    diffs = rebuild.differences(internal_rule(), dataclasses.replace(INTERNAL, allow_global_access=True))
    assert rebuild.patchable(diffs)
    both = rebuild.differences(
        internal_rule(), dataclasses.replace(INTERNAL, allow_global_access=True, ports=(81,))
    )
    assert both == {"global access", "ports"} and not rebuild.patchable(both)


def test_ports_and_protocol_rebuild_on_the_same_ip_held_by_us() -> None:
    want = dataclasses.replace(INTERNAL, protocol="UDP", ports=(53,))
    assert rebuild.differences(internal_rule(), want) == {"protocol", "ports"}
    assert rebuild.plan(internal_rule(), want) == rebuild.Plan(keep=True, hold=True)


def test_another_subnetwork_needs_another_internal_ip_and_says_why() -> None:
    want = dataclasses.replace(INTERNAL, subnetwork="other")
    assert "subnetwork" in rebuild.differences(internal_rule(), want)
    plan = rebuild.plan(internal_rule(), want)
    assert not plan.keep and not plan.hold and "from nodes to other" in plan.why_new


def test_a_scheme_or_tier_change_needs_another_ip_and_a_user_named_ip_is_the_users_choice() -> None:
    assert (
        "external to internal"
        in rebuild.plan(internal_rule(load_balancing_scheme="EXTERNAL"), INTERNAL).why_new
    )
    standard = dataclasses.replace(EXTERNAL, network_tier="STANDARD")
    external = internal_rule(load_balancing_scheme="EXTERNAL", subnetwork="")
    assert "network tier" in rebuild.plan(external, standard).why_new
    named = dataclasses.replace(INTERNAL, ip_address="10.0.0.9", ports=(81,))
    assert rebuild.plan(internal_rule(), named) == rebuild.Plan(keep=False, hold=False)
    same = dataclasses.replace(INTERNAL, ip_address="10.0.0.5", ports=(81,))
    assert rebuild.plan(internal_rule(), same) == rebuild.Plan(keep=True, hold=False)


def test_a_hold_fits_a_rule_of_its_type_tier_and_subnetwork_only() -> None:
    internal = compute_v1.Address(address_type="INTERNAL", subnetwork=f"{SUBNETS}/nodes")
    external = compute_v1.Address(address_type="EXTERNAL", network_tier="PREMIUM")
    assert rebuild.hold_fits(internal, INTERNAL)
    assert not rebuild.hold_fits(internal, dataclasses.replace(INTERNAL, subnetwork="other"))
    assert not rebuild.hold_fits(internal, EXTERNAL)
    assert rebuild.hold_fits(external, EXTERNAL)
    assert not rebuild.hold_fits(external, dataclasses.replace(EXTERNAL, network_tier="STANDARD"))

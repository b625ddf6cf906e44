"""What a change to a Service costs its forwarding rule: nothing, a patch, a rebuild on the same IP, a new IP.

GCE changes a forwarding rule in place only for ``allowGlobalAccess`` (``forwardingRules.patch``; ingress-gce
``pkg/forwardingrules/patchable.go`` does the same). Ports, protocol, scheme, network tier, subnetwork or
the IP need a new rule. A new rule keeps the Service's IP when GCE can hold it meanwhile: the old rule's
ephemeral IP is promoted to a reserved address (upstream: cloud-provider-gcp ``ensureStaticIP``, ingress-gce
``pkg/l4/address``), the new rule is created on it, and the reservation is released. It cannot when the
address itself must differ: external ↔ internal, another network tier (an external address belongs to one
tier; upstream tears the rule and address down on a tier mismatch, ingress-gce ``hold.go``), or another
subnetwork (an internal address belongs to its subnetwork). Those changes change the IP, and the user is told.

Pure functions of the current rule (a ``compute_v1.ForwardingRule`` or ``Address``) and the desired
:class:`~providers.gcp.model.ForwardingRule`, so that every case is tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers.gcp import model

GLOBAL_ACCESS = "global access"


def differences(rule: Any, want: model.ForwardingRule) -> frozenset[str]:
    """What differs between an existing rule and the desired one ({} when it already matches)."""
    diffs: set[str] = set()
    if rule.load_balancing_scheme != want.scheme:
        diffs.add("scheme")
    if rule.I_p_protocol != want.protocol:
        diffs.add("protocol")
    ports = sorted(int(p) for p in rule.ports) if rule.ports else []
    if bool(rule.all_ports) != want.all_ports or (not want.all_ports and ports != sorted(want.ports)):
        diffs.add("ports")
    if want.ip_address and rule.I_p_address != want.ip_address:
        diffs.add("ip")
    if want.scheme == "EXTERNAL" and want.network_tier and rule.network_tier != want.network_tier:
        diffs.add("network tier")
    if want.scheme == "INTERNAL" and rule.load_balancing_scheme == "INTERNAL":
        if not str(rule.subnetwork).endswith(f"/{want.subnetwork}"):
            diffs.add("subnetwork")
        if bool(rule.allow_global_access) != want.allow_global_access:
            diffs.add(GLOBAL_ACCESS)
    return frozenset(diffs)


def patchable(diffs: frozenset[str]) -> bool:
    """Whether ``forwardingRules.patch`` makes the change (only global access differs)."""
    return diffs == frozenset({GLOBAL_ACCESS})


@dataclass(frozen=True)
class Plan:
    """How a rebuild treats the IP: keep it (held by us or by the user's address) or not, and why not."""

    keep: bool
    hold: bool  # promote the ephemeral IP to a temporary reservation of ours
    why_new: str = ""  # why the IP must change although the user did not ask for another one


def plan(rule: Any, want: model.ForwardingRule) -> Plan:
    """The IP plan for rebuilding ``rule`` as ``want``."""
    old_scheme, new_scheme = str(rule.load_balancing_scheme), want.scheme
    if want.ip_address:  # the user names the IP: theirs (reserved), kept or changed as they asked
        return Plan(keep=rule.I_p_address == want.ip_address, hold=False)
    if old_scheme != new_scheme:
        return Plan(
            keep=False,
            hold=False,
            why_new=f"the Service changed from {old_scheme.lower()} to {new_scheme.lower()}, and GCE cannot "
            "move an IP address between external and internal load balancers",
        )
    if new_scheme == "EXTERNAL" and want.network_tier and rule.network_tier != want.network_tier:
        return Plan(
            keep=False,
            hold=False,
            why_new=f"the network tier changed from {rule.network_tier} to {want.network_tier}, and an "
            "external IP address belongs to one network tier",
        )
    if new_scheme == "INTERNAL" and not str(rule.subnetwork).endswith(f"/{want.subnetwork}"):
        old_subnet = str(rule.subnetwork).rsplit("/", 1)[-1]
        return Plan(
            keep=False,
            hold=False,
            why_new=f"the subnetwork changed from {old_subnet} to {want.subnetwork}, and an internal IP "
            "address belongs to its subnetwork",
        )
    return Plan(keep=True, hold=True)


def hold_fits(address: Any, want: model.ForwardingRule) -> bool:
    """Whether a reservation we hold can carry the desired rule (else the IP must change anyway)."""
    if address.address_type != want.scheme:
        return False
    if want.scheme == "EXTERNAL":
        return bool(address.network_tier == (want.network_tier or "PREMIUM"))
    return str(address.subnetwork).endswith(f"/{want.subnetwork}")


def ip_changed_message(*, old: str, new: str, why: str) -> str:
    return (
        f"The load balancer's IP changed from {old} to {new}: {why}. Update DNS records and allowlists "
        "that name the old IP."
    )

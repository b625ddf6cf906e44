"""Service status: the ingress we write, compared after the apiserver's defaulting, and our condition.

Upstream compares ingress lists verbatim, so a provider that returns an IP without ``ipMode`` gets a
no-op status patch on every sync (the apiserver defaults ``ipMode: VIP``). We normalise first.
Upstream writes no condition; we keep the outcome of the last sync in ``LoadBalancerSynced`` so a
failure stays visible after its events have expired.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from ccm.cloudprovider import LoadBalancerStatus

CONDITION_TYPE = "LoadBalancerSynced"


def ingress_to_json(status: LoadBalancerStatus) -> list[dict[str, Any]]:
    """The provider's status as ``status.loadBalancer.ingress`` JSON, with the apiserver's defaults."""
    out: list[dict[str, Any]] = []
    for point in status.ingress:
        entry: dict[str, Any] = {}
        if point.ip:
            entry["ip"] = point.ip
            entry["ipMode"] = point.ip_mode or "VIP"
        if point.hostname:
            entry["hostname"] = point.hostname
        if point.ports:
            entry["ports"] = [
                {"port": p.port, "protocol": p.protocol, **({"error": p.error} if p.error else {})}
                for p in point.ports
            ]
        out.append(entry)
    return out


def normalise_ingress(ingress: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Ingress JSON with empty fields dropped and ``ipMode`` defaulted, for comparison."""
    out: list[dict[str, Any]] = []
    for raw in ingress or ():
        entry = {k: v for k, v in raw.items() if v not in (None, "", [])}
        if entry.get("ip") and not entry.get("ipMode"):
            entry["ipMode"] = "VIP"
        out.append(entry)
    return out


def current_ingress(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    return normalise_ingress(((service.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


def current_condition(service: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (service.get("status") or {}).get("conditions") or ():
        if cond.get("type") == CONDITION_TYPE:
            return dict(cond)
    return None


def condition(*, ok: bool, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": CONDITION_TYPE,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def condition_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    if old is None:
        return True
    return any(old.get(k) != new.get(k) for k in ("status", "reason", "message", "observedGeneration"))

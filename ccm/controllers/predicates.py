"""Pure decisions of the service controller, on the API's JSON objects (dicts).

Which Services we handle, when one needs a cloud call, which Nodes take traffic. Upstream's
semantics (``controllers/service/controller.go``), plus the node exclusions its users asked for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

Obj = Mapping[str, Any]

LOAD_BALANCER_CLEANUP_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
CLASS_FINALIZER_PREFIX = "ccm-lb.io/cleanup-"
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"
SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"

_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def key_of(obj: Obj) -> str:
    m = meta(obj)
    return f"{m.get('namespace', '')}/{m.get('name', '')}" if m.get("namespace") else str(m.get("name", ""))


def cleanup_finalizer(*, load_balancer_class: str = "") -> str:
    """The finalizer of the instance serving ``load_balancer_class`` ('' = the default instance).

    The default instance keeps upstream's ``service.kubernetes.io/load-balancer-cleanup``. A classed
    instance uses ``ccm-lb.io/cleanup-<class, sanitised, at most 38 characters>-<10 hex digits of the
    class's SHA-256>``: a valid qualified name (name part at most 63 characters) that is unique per
    class, so each instance knows exactly which Services it must clean up (as the
    aws-load-balancer-controller, which uses its own ``service.k8s.aws/resources``).
    """
    if not load_balancer_class:
        return LOAD_BALANCER_CLEANUP_FINALIZER
    readable = re.sub(r"[^a-z0-9.-]+", "-", load_balancer_class.lower())[:38].strip("-.") or "class"
    digest = hashlib.sha256(load_balancer_class.encode()).hexdigest()[:10]
    return f"{CLASS_FINALIZER_PREFIX}{readable}-{digest}"


def _finalizers(service: Obj) -> Sequence[str]:
    return meta(service).get("finalizers") or ()


def _class_of(service: Obj) -> str:
    return str(spec(service).get("loadBalancerClass") or "")


def has_finalizer(service: Obj, *, load_balancer_class: str = "") -> bool:
    """The instance's own cleanup finalizer is on the Service (see :func:`owned_finalizers`)."""
    return bool(owned_finalizers(service, load_balancer_class=load_balancer_class))


def owned_finalizers(service: Obj, *, load_balancer_class: str = "") -> tuple[str, ...]:
    """The cleanup finalizers on ``service`` that the instance serving ``load_balancer_class`` owns.

    Its own (:func:`cleanup_finalizer`); for a classed instance also upstream's on a Service of its
    class, which an earlier release put there (it is migrated to the class's finalizer). The default
    instance owns upstream's only on a Service without a class: on a Service of another class that
    finalizer belongs to that class's instance, and the default never touches it.
    """
    present = _finalizers(service)
    own = cleanup_finalizer(load_balancer_class=load_balancer_class)
    owned = [own] if own in present else []
    if not load_balancer_class:
        return tuple(owned) if not _class_of(service) else ()
    if LOAD_BALANCER_CLEANUP_FINALIZER in present and _class_of(service) == load_balancer_class:
        owned.append(LOAD_BALANCER_CLEANUP_FINALIZER)
    return tuple(owned)


def wants_load_balancer(service: Obj, *, load_balancer_class: str = "") -> bool:
    """``type: LoadBalancer`` with our class (no class when ``--load-balancer-class`` is empty)."""
    s = spec(service)
    if s.get("type") != "LoadBalancer":
        return False
    return (s.get("loadBalancerClass") or "") == load_balancer_class


def needs_cleanup(service: Obj, *, load_balancer_class: str = "") -> bool:
    """Our finalizer is on it and it is being deleted or no longer wants our LB.

    Upstream only checks the type; a Service whose class changed away from ours (possible only
    through a type change, which clears the class) is covered by checking the class too. "Our"
    finalizer is the instance's own (:func:`owned_finalizers`), so the default instance never cleans
    up a Service of another class, whatever finalizer it carries.
    """
    if not has_finalizer(service, load_balancer_class=load_balancer_class):
        return False
    if meta(service).get("deletionTimestamp"):
        return True
    return not wants_load_balancer(service, load_balancer_class=load_balancer_class)


_PORT_FIELDS = ("name", "protocol", "port", "nodePort", "targetPort", "appProtocol")


def needs_update(old: Obj, new: Obj, *, load_balancer_class: str = "") -> bool:
    """Whether a Service change needs a sync (upstream ``needsUpdate``), including label changes."""
    old_wants = wants_load_balancer(old, load_balancer_class=load_balancer_class)
    new_wants = wants_load_balancer(new, load_balancer_class=load_balancer_class)
    if not old_wants and not new_wants:
        return False
    if old_wants != new_wants:
        return True
    o, n = spec(old), spec(new)
    if o.get("loadBalancerSourceRanges") != n.get("loadBalancerSourceRanges"):
        return True
    old_ports, new_ports = o.get("ports") or [], n.get("ports") or []
    if len(old_ports) != len(new_ports):
        return True
    for op, np_ in zip(old_ports, new_ports, strict=True):
        if any(op.get(f) != np_.get(f) for f in _PORT_FIELDS):
            return True
    for field in (
        "sessionAffinity",
        "sessionAffinityConfig",
        "loadBalancerIP",
        "externalTrafficPolicy",
        "healthCheckNodePort",
    ):
        if o.get(field) != n.get(field):
            return True
    if (o.get("externalIPs") or []) != (n.get("externalIPs") or []):
        return True
    if len(o.get("ipFamilies") or []) != len(n.get("ipFamilies") or []):
        return True
    om, nm = meta(old), meta(new)
    if (om.get("annotations") or {}) != (nm.get("annotations") or {}):
        return True
    if om.get("uid") != nm.get("uid"):
        return True
    # Upstream ignores labels (cloud-provider#54); providers tag resources from them, so we do not.
    return (om.get("labels") or {}) != (nm.get("labels") or {})


# -- nodes ----------------------------------------------------------------------------------------


def _taint_keys(node: Obj) -> set[str]:
    return {t.get("key", "") for t in spec(node).get("taints") or ()}


def node_included(node: Obj) -> bool:
    """The exclude label absent or parsing as false (upstream since 1.34: '' or junk excludes)."""
    labels = meta(node).get("labels") or {}
    if EXCLUDE_LB_LABEL not in labels:
        return True
    value = labels[EXCLUDE_LB_LABEL]
    return value in _FALSE  # "true", "" and anything unparseable exclude


def is_load_balancer_target(node: Obj) -> bool:
    """The stable node set: upstream's predicates plus uninitialised and shut-down nodes excluded.

    Readiness is deliberately not considered (upstream's StableLoadBalancerNodeSet): the LB's own
    health checks take unready nodes out, and flapping readiness must not reconfigure every LB.
    """
    if meta(node).get("deletionTimestamp"):
        return False
    if not node_included(node):
        return False
    taints = _taint_keys(node)
    return not taints & {TO_BE_DELETED_TAINT, UNINITIALIZED_TAINT, SHUTDOWN_TAINT}


def node_is_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def should_sync_updated_node(old: Obj, new: Obj) -> bool:
    """A node update that can change some LB's host set: target verdict or providerID changed."""
    if is_load_balancer_target(old) != is_load_balancer_target(new):
        return True
    return (spec(old).get("providerID") or "") != (spec(new).get("providerID") or "")


def node_fingerprint(nodes: Sequence[Obj]) -> frozenset[tuple[str, str]]:
    """What makes two host sets 'sufficiently equal' (upstream): the name → providerID pairs."""
    return frozenset((str(meta(n).get("name", "")), str(spec(n).get("providerID") or "")) for n in nodes)

"""Build the desired GCE resources of one Service: request + cluster network → :class:`~model.Stack`.

Why a pure function: every decision the GCP provider makes about a Service (scheme, names, ports,
health check, firewall rules, labels, backends) happens here without one API call, so it is pinned
by golden JSON, and a malformed Service is refused with :class:`InvalidSpec` before anything exists.
The deployer then only compares this model with what GCE has.

What a GCE passthrough LB needs differs from AWS: packets reach the node with the LB's address and the
*service* port as destination (kube-proxy matches the VIP), so the forwarding rule and the traffic
firewall use ``spec.ports[].port``; NodePorts are not used. Health checks probe kube-proxy (``10256``,
shared by every ``externalTrafficPolicy: Cluster`` LB) or ``healthCheckNodePort`` (``Local``).

Names are ``k8s-{cluster id}-{namespace}-{name}-{hash8}`` (≤ 55 characters, so the firewall names built
from them stay ≤ 63): the hash covers cluster, namespace, name and UID, so two clusters in one project
never share a name and a re-created Service gets new resources. The cluster's shared parts are named
after the cluster id alone, as upstream does (``k8s-ig--{cid}``, ``k8s-{cid}-node``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

from ccm.cloudprovider import ImplementedElsewhere, InvalidSpec, LoadBalancerRequest, source_ranges
from providers.common import names
from providers.gcp import annotations as ann
from providers.gcp.model import (
    CLUSTER_LABEL,
    HEALTH_CHECK_RANGES,
    NODE_HEALTH_CHECK_PATH,
    NODE_HEALTH_CHECK_PORT,
    SERVICE_UID_LABEL,
    BackendService,
    ClusterNetwork,
    Firewall,
    ForwardingRule,
    HealthCheck,
    Stack,
)

SCHEME_EXTERNAL: Final = "EXTERNAL"
SCHEME_INTERNAL: Final = "INTERNAL"
TIER_PREMIUM: Final = "PREMIUM"
TIER_STANDARD: Final = "STANDARD"
PROTOCOLS: Final = ("TCP", "UDP")
MAX_LISTED_PORTS: Final = 5  # a forwarding rule lists at most 5 ports; more → allPorts
MAX_NAME: Final = 63  # GCE resource names
MAX_LB_NAME: Final = MAX_NAME - len("k8s-fw-")  # room for the firewall names built from it
LOCAL_HEALTH_CHECK_PATH: Final = "/healthz"  # kube-proxy's healthCheckNodePort server
SESSION_AFFINITY: Final[Mapping[str, str]] = {"None": "NONE", "": "NONE", "ClientIP": "CLIENT_IP"}

_NAME: Final = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_PROVIDER_ID: Final = re.compile(r"gce://(?P<project>[^/]+)/(?P<zone>[^/]+)/(?P<name>[^/]+)")
_ZONE: Final = re.compile(r"[a-z]+(?:-[a-z]+)*[0-9]+-[a-z0-9]+")
_CID_LENGTH: Final = 12
_NAMESPACE_LENGTH: Final = 12
_SERVICE_LENGTH: Final = 16
_HASH_LENGTH: Final = 8


# -- names --------------------------------------------------------------------------------------------


def _sanitise(value: str, *, limit: int) -> str:
    return names.sanitise(value, limit=limit, order=names.Order.COLLAPSE_THEN_CUT)


def _cid(cluster_id: str) -> str:
    cid = _sanitise(cluster_id, limit=_CID_LENGTH)
    if not cid:
        raise ValueError(f"cluster id {cluster_id!r} has no letter or digit")
    return cid


def load_balancer_name(*, cluster_id: str, namespace: str, name: str, uid: str) -> str:
    """``k8s-{cid:12}-{namespace:12}-{name:16}-{hash8}`` (≤ 55 characters, RFC 1035).

    The hash covers cluster id, namespace, name and UID: unique per cluster and per Service
    incarnation. The forwarding rule, the backend service and (``Local``) the health check carry it.
    """
    digest = hashlib.sha256(json.dumps([cluster_id, namespace, name, uid]).encode()).hexdigest()
    parts = [
        "k8s",
        _cid(cluster_id),
        _sanitise(namespace, limit=_NAMESPACE_LENGTH),
        _sanitise(name, limit=_SERVICE_LENGTH),
        digest[:_HASH_LENGTH],
    ]
    return "-".join(p for p in parts if p)


def ip_address_name(*, lb_name: str) -> str:
    """``<lb>-ip`` (≤ 58): the internal address reserved for a ``spec.loadBalancerIP`` nobody had reserved."""
    return f"{lb_name}-ip"


def name_prefix(*, cluster_id: str) -> str:
    """What every load balancer name of the cluster starts with (for list filters; labels decide)."""
    return f"k8s-{_cid(cluster_id)}-"


def instance_group_name(*, cluster_id: str, upstream_cluster_id: str = "") -> str:
    """``k8s-ig--{cid}``: one unmanaged instance group per zone, shared by all of the cluster's LBs.

    With the upstream provider's cluster id (cloud config ``upstream-cluster-id``), upstream's own name,
    ``MakeInstanceGroupName``'s ``k8s-ig--{id}`` uncut (the id is checked when the config is read)."""
    if upstream_cluster_id:
        return f"k8s-ig--{upstream_cluster_id}"
    return f"k8s-ig--{_cid(cluster_id)}"


def node_health_check_name(*, cluster_id: str) -> str:
    """``k8s-{cid}-node``: the shared kube-proxy health check of ``externalTrafficPolicy: Cluster`` LBs."""
    return f"k8s-{_cid(cluster_id)}-node"


def node_health_check_firewall_name(*, cluster_id: str) -> str:
    """``k8s-{cid}-node-hc``: lets Google's probes reach kube-proxy on every node (shared)."""
    return f"k8s-{_cid(cluster_id)}-node-hc"


def health_check_name(*, lb_name: str) -> str:
    """The per-LB health check of an ``externalTrafficPolicy: Local`` LB: the LB's own name, as upstream.

    Health checks live in their own collection, so the name is shared with the forwarding rule and the
    backend service without conflict.
    """
    return lb_name


def health_check_firewall_name(*, lb_name: str) -> str:
    """``k8s-{lb}-hc``: lets Google's probes reach ``healthCheckNodePort`` (``Local`` only)."""
    return f"k8s-{lb_name}-hc"


def traffic_firewall_name(*, lb_name: str) -> str:
    """``k8s-fw-{lb}``: lets clients (the source ranges) reach the service ports, as upstream."""
    return f"k8s-fw-{lb_name}"


def instance_ref(provider_id: str) -> tuple[str, str, str]:
    """``(project, zone, instance)`` of a node's ``gce://project/zone/instance`` providerID.

    Raises :class:`ValueError` for anything else (an empty ID, another cloud, a malformed zone).
    """
    match = _PROVIDER_ID.fullmatch(provider_id.strip())
    if match is None or not _ZONE.fullmatch(match["zone"]):
        raise ValueError(f"not a GCE providerID (gce://<project>/<zone>/<instance>): {provider_id!r}")
    return match["project"], match["zone"], match["name"]


def label_value(value: str) -> str:
    """``value`` as a GCE label value: lower-case ``[a-z0-9_-]``, at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "_", value.lower())[:MAX_NAME]


# -- the builder --------------------------------------------------------------------------------------


def build_stack(*, request: LoadBalancerRequest, network: ClusterNetwork) -> Stack:
    """The desired stack for ``request``; pure and deterministic.

    Raises :class:`ImplementedElsewhere` for a load-balancer class or ``l4-rbs`` that another controller
    handles (checked first, so that controller's annotations are never judged here),
    :class:`InvalidSpec` for a Service that cannot be built, and :class:`ValueError` when the cloud
    config lacks ``node-tags`` (every Service would fail the same way: a configuration problem).
    """
    annotations = request.annotations
    internal = _internal(request)
    if not network.node_tags:
        raise ValueError(
            "the cloud config has no node-tags: [global] node-tags = <the network tag of the cluster's "
            "nodes> is needed for the load balancers' firewall rules"
        )
    _check_ip_families(request)
    protocol, ports = _ports(request)
    ip_address = _ip_address(request)
    affinity = _session_affinity(request)
    tier = _network_tier(annotations, internal)
    subnetwork, global_access = _internal_options(annotations, network, internal)
    ranges = _source_ranges(request)

    lb = load_balancer_name(
        cluster_id=network.cluster_id, namespace=request.namespace, name=request.name, uid=request.uid
    )
    scheme = SCHEME_INTERNAL if internal else SCHEME_EXTERNAL
    health_check, health_firewall = _health_check(request, network, lb)
    instances = _instances(request, network)
    traffic = Firewall(
        name=traffic_firewall_name(lb_name=lb),
        protocol_ports=((protocol.lower(), _port_ranges(ports)),),
        source_ranges=ranges,
        target_tags=network.node_tags,
    )
    all_ports = len(ports) > MAX_LISTED_PORTS
    return Stack(
        name=lb,
        scheme=scheme,
        forwarding_rule=ForwardingRule(
            name=lb,
            scheme=scheme,
            protocol=protocol,
            ports=() if all_ports else ports,
            all_ports=all_ports,
            backend_service=lb,
            ip_address=ip_address,
            network_tier=tier,
            subnetwork=subnetwork,
            allow_global_access=global_access,
            labels=(
                (CLUSTER_LABEL, label_value(network.cluster_id)),
                (SERVICE_UID_LABEL, label_value(request.uid)),
            ),
        ),
        backend_service=BackendService(
            name=lb,
            scheme=scheme,
            protocol=protocol,
            health_check=health_check.name,
            session_affinity=affinity,
            zones=tuple(sorted({zone for zone, _ in instances})),
        ),
        health_check=health_check,
        firewalls=(traffic, health_firewall),
        instances=instances,
    )


# -- scheme -------------------------------------------------------------------------------------------


def _type(annotations: Mapping[str, str]) -> tuple[str, str] | None:
    """``(key, value)`` of the load-balancer type annotation in force; the new key wins."""
    for key in (ann.LOAD_BALANCER_TYPE, ann.DEPRECATED_LOAD_BALANCER_TYPE):
        value = ann.text(annotations=annotations, key=key)
        if value is not None:
            return key, value
    return None


def _internal(request: LoadBalancerRequest) -> bool:
    """Internal or external, from a legacy class or the type annotation; GKE's RBS Services raise
    :class:`ImplementedElsewhere` before anything else is looked at."""
    annotations = request.annotations
    cls = request.load_balancer_class or ""
    if ann.text(annotations=annotations, key=ann.L4_RBS) == ann.RBS_ENABLED:
        raise ImplementedElsewhere(f"{ann.L4_RBS}={ann.RBS_ENABLED}: left to GKE's L4 RBS controller")
    found = _type(annotations)
    annotated: bool | None = None
    if found is not None:
        key, value = found
        if value in ann.TYPE_INTERNAL:
            annotated = True
        elif value in ann.TYPE_EXTERNAL:
            annotated = False
        else:
            raise ann.invalid(key=key, value=annotations[key], reason="unknown load balancer type")
    if cls not in ann.LOAD_BALANCER_CLASSES:  # no class, or the controller's own --load-balancer-class
        return bool(annotated)
    by_class = cls == ann.CLASS_INTERNAL
    if annotated is not None and annotated != by_class:
        key = found[0] if found else ann.LOAD_BALANCER_TYPE
        wanted = ann.TYPE_INTERNAL[0] if by_class else ann.TYPE_EXTERNAL[0]
        raise ann.invalid(
            key=key,
            value=annotations[key],
            reason=f"conflicts with spec.loadBalancerClass={cls}",
            accepted=f"{wanted} (what the class says), or remove the annotation",
        )
    return by_class


def _network_tier(annotations: Mapping[str, str], internal: bool) -> str:
    value = ann.text(annotations=annotations, key=ann.NETWORK_TIER)
    if value is None:
        return "" if internal else TIER_PREMIUM
    if internal:
        raise ann.invalid(
            key=ann.NETWORK_TIER,
            value=annotations[ann.NETWORK_TIER],
            reason="internal load balancers have no network tier",
            accepted="no network tier on an internal LB (the annotation applies to external LBs only)",
        )
    if value not in ann.TIERS:
        raise ann.invalid(key=ann.NETWORK_TIER, value=annotations[ann.NETWORK_TIER], reason="unknown tier")
    return TIER_STANDARD if value == ann.TIER_STANDARD else TIER_PREMIUM


def _internal_options(
    annotations: Mapping[str, str], network: ClusterNetwork, internal: bool
) -> tuple[str, bool]:
    """(subnetwork, allow global access) of an internal LB; ("", False) for an external one."""
    subnet = ann.text(annotations=annotations, key=ann.INTERNAL_SUBNET)
    if not internal:
        for key in (ann.INTERNAL_SUBNET, ann.ALLOW_GLOBAL_ACCESS):
            if ann.text(annotations=annotations, key=key) is not None:
                raise ann.invalid(
                    key=key,
                    value=annotations[key],
                    reason="this is an external load balancer",
                    accepted=(
                        f"internal LBs only: set {ann.LOAD_BALANCER_TYPE}: Internal, or remove the annotation"
                    ),
                )
        return "", False
    if subnet is not None and (len(subnet) > MAX_NAME or not _NAME.fullmatch(subnet)):
        raise ann.invalid(
            key=ann.INTERNAL_SUBNET, value=annotations[ann.INTERNAL_SUBNET], reason="not a subnetwork name"
        )
    chosen = subnet or network.subnetwork
    if not chosen:
        raise ann.invalid(
            key=ann.INTERNAL_SUBNET,
            value="",
            reason="an internal LB needs a subnetwork and the cloud config names none",
            accepted=(
                f"a subnetwork name in {ann.INTERNAL_SUBNET}, or subnetwork-name in the cloud config's "
                "[global] section"
            ),
        )
    global_access = ann.parse_bool(annotations=annotations, key=ann.ALLOW_GLOBAL_ACCESS)
    return chosen, bool(global_access)


# -- spec ---------------------------------------------------------------------------------------------


def _check_ip_families(request: LoadBalancerRequest) -> None:
    if request.ip_families and "IPv4" not in request.ip_families:
        raise InvalidSpec(
            field="spec.ipFamilies",
            value=list(request.ip_families),
            accepted="[IPv4], or a dual-stack Service (only its IPv4 frontend is built)",
            reason="GCE IPv6 passthrough load balancers are not supported yet",
        )


def _ports(request: LoadBalancerRequest) -> tuple[str, tuple[int, ...]]:
    """The one protocol and the sorted service ports (NodePorts are not used by GCE passthrough LBs)."""
    if not request.ports:
        raise InvalidSpec(
            field="spec.ports", value=[], accepted="one or more TCP or UDP ports", reason="no ports"
        )
    for index, port in enumerate(request.ports):
        if port.protocol not in PROTOCOLS:
            raise InvalidSpec(
                field=f"spec.ports[{index}].protocol",
                value=port.protocol,
                accepted="TCP or UDP",
                reason="GCE passthrough load balancers forward only TCP and UDP",
            )
    protocols = sorted({p.protocol for p in request.ports})
    if len(protocols) > 1:
        raise InvalidSpec(
            field="spec.ports",
            value=", ".join(f"{p.port}/{p.protocol}" for p in request.ports),
            accepted="ports that are all TCP or all UDP (use two Services for both protocols)",
            reason="a regional backend service has one protocol, so TCP and UDP cannot be mixed",
        )
    seen: dict[int, int] = {}
    for index, port in enumerate(request.ports):
        if port.port in seen:
            raise InvalidSpec(
                field=f"spec.ports[{index}].port",
                value=port.port,
                accepted="each port number once",
                reason=f"spec.ports[{seen[port.port]}] has the same port",
            )
        seen[port.port] = index
    return protocols[0], tuple(sorted(seen))


def _port_ranges(ports: Sequence[int]) -> tuple[str, ...]:
    """Sorted ports as firewall entries, runs of consecutive ports merged: (80, 81, 82, 443) → 80-82, 443."""
    entries: list[str] = []
    start = previous = ports[0]
    for port in (*ports[1:], None):
        if port is not None and port == previous + 1:
            previous = port
            continue
        entries.append(str(start) if start == previous else f"{start}-{previous}")
        if port is not None:
            start = previous = port
    return tuple(entries)


def _ip_address(request: LoadBalancerRequest) -> str:
    value = request.load_balancer_ip.strip()
    if not value:
        return ""
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise InvalidSpec(
            field="spec.loadBalancerIP",
            value=request.load_balancer_ip,
            accepted="an IPv4 address reserved in the project (or empty for an ephemeral address)",
            reason="not an IPv4 address",
        ) from None


def _session_affinity(request: LoadBalancerRequest) -> str:
    affinity = SESSION_AFFINITY.get(request.session_affinity)
    if affinity is None:
        raise InvalidSpec(
            field="spec.sessionAffinity",
            value=request.session_affinity,
            accepted="None or ClientIP",
            reason="unknown session affinity",
        )
    return affinity


def _source_ranges(request: LoadBalancerRequest) -> tuple[str, ...]:
    """IPv4 client ranges; IPv6 ones are an error on an IPv4 Service and dropped on a dual-stack one."""
    ranges = source_ranges(request)
    v4 = tuple(r for r in ranges if ipaddress.ip_network(r).version == 4)
    if len(v4) == len(ranges):
        return v4
    where = (
        "spec.loadBalancerSourceRanges"
        if request.load_balancer_source_ranges
        else f"annotation {ann.SOURCE_RANGES}"
    )
    v6 = [r for r in ranges if r not in v4]
    if "IPv6" not in request.ip_families:
        raise InvalidSpec(
            field=where,
            value=", ".join(v6),
            accepted="IPv4 CIDRs such as 203.0.113.0/24",
            reason=(
                "IPv6 ranges on an IPv4 Service (GCE IPv6 passthrough load balancers are not supported yet)"
            ),
        )
    if not v4:
        raise InvalidSpec(
            field=where,
            value=", ".join(v6),
            accepted="at least one IPv4 CIDR (only the IPv4 frontend of a dual-stack Service is built)",
            reason="no IPv4 range: the IPv4 frontend would admit no client",
        )
    return v4


# -- health check -------------------------------------------------------------------------------------


def _health_check(
    request: LoadBalancerRequest, network: ClusterNetwork, lb: str
) -> tuple[HealthCheck, Firewall]:
    """``Local``: the LB's own HTTP check on healthCheckNodePort; ``Cluster``: the shared kube-proxy one."""
    policy = request.external_traffic_policy or "Cluster"
    if policy == "Local":
        port = request.health_check_node_port
        if not 1 <= port <= 65535:
            raise InvalidSpec(
                field="spec.healthCheckNodePort",
                value=port,
                accepted="a port from 1 to 65535 (allocated by the apiserver for eTP Local)",
                reason="externalTrafficPolicy Local needs a health-check NodePort",
            )
        return (
            HealthCheck(name=health_check_name(lb_name=lb), port=port, path=LOCAL_HEALTH_CHECK_PATH),
            Firewall(
                name=health_check_firewall_name(lb_name=lb),
                protocol_ports=(("tcp", (str(port),)),),
                source_ranges=HEALTH_CHECK_RANGES,
                target_tags=network.node_tags,
            ),
        )
    if policy != "Cluster":
        raise InvalidSpec(
            field="spec.externalTrafficPolicy",
            value=request.external_traffic_policy,
            accepted="Cluster or Local",
            reason="unknown traffic policy",
        )
    return (
        HealthCheck(
            name=node_health_check_name(cluster_id=network.cluster_id),
            port=NODE_HEALTH_CHECK_PORT,
            path=NODE_HEALTH_CHECK_PATH,
            shared=True,
        ),
        Firewall(
            name=node_health_check_firewall_name(cluster_id=network.cluster_id),
            protocol_ports=(("tcp", (str(NODE_HEALTH_CHECK_PORT),)),),
            source_ranges=HEALTH_CHECK_RANGES,
            target_tags=network.node_tags,
            shared=True,
        ),
    )


# -- targets ------------------------------------------------------------------------------------------


def _instances(request: LoadBalancerRequest, network: ClusterNetwork) -> tuple[tuple[str, str], ...]:
    """Sorted ``(zone, instance)`` of the nodes; nodes without a GCE providerID, or in a zone outside the
    cluster's region (a regional backend service cannot reach them), are skipped."""
    found: set[tuple[str, str]] = set()
    for node in request.nodes:
        try:
            _project, zone, name = instance_ref(node.provider_id)
        except ValueError:
            continue
        if not network.region or zone.startswith(f"{network.region}-"):
            found.add((zone, name))
    return tuple(sorted(found))

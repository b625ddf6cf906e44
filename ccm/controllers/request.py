"""Turning a Service and the target Nodes (JSON dicts) into the provider's frozen request. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ccm.cloudprovider import LoadBalancerRequest, Node, NodeAddress, ServicePort
from ccm.controllers.predicates import meta, spec

ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")


def node_from_object(node: Mapping[str, Any]) -> Node:
    labels = meta(node).get("labels") or {}
    zone = next((labels[k] for k in ZONE_LABELS if labels.get(k)), "")
    addresses = tuple(
        NodeAddress(type=a.get("type", ""), address=a.get("address", ""))
        for a in (node.get("status") or {}).get("addresses") or ()
    )
    return Node(
        name=str(meta(node).get("name", "")),
        provider_id=str(spec(node).get("providerID") or ""),
        zone=zone,
        addresses=addresses,
        labels=MappingProxyType(dict(labels)),
    )


def _port(raw: Mapping[str, Any]) -> ServicePort:
    return ServicePort(
        name=str(raw.get("name") or ""),
        protocol=str(raw.get("protocol") or "TCP"),
        port=int(raw.get("port") or 0),
        node_port=int(raw.get("nodePort") or 0),
        target_port=raw.get("targetPort"),
        app_protocol=raw.get("appProtocol"),
    )


def build_request(
    *, service: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], cluster_name: str
) -> LoadBalancerRequest:
    """The request for ``service`` fronting ``nodes`` (already filtered by the node predicates)."""
    m, s = meta(service), spec(service)
    affinity_timeout = ((s.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    return LoadBalancerRequest(
        cluster_name=cluster_name,
        namespace=str(m.get("namespace", "")),
        name=str(m.get("name", "")),
        uid=str(m.get("uid", "")),
        ports=tuple(_port(p) for p in s.get("ports") or ()),
        nodes=tuple(sorted((node_from_object(n) for n in nodes), key=lambda n: n.name)),
        annotations=MappingProxyType(dict(m.get("annotations") or {})),
        load_balancer_source_ranges=tuple(s.get("loadBalancerSourceRanges") or ()),
        external_traffic_policy=str(s.get("externalTrafficPolicy") or "Cluster"),
        health_check_node_port=int(s.get("healthCheckNodePort") or 0),
        session_affinity=str(s.get("sessionAffinity") or "None"),
        session_affinity_timeout_seconds=int(affinity_timeout) if affinity_timeout is not None else None,
        load_balancer_ip=str(s.get("loadBalancerIP") or ""),
        ip_families=tuple(s.get("ipFamilies") or ("IPv4",)),
        ip_family_policy=str(s.get("ipFamilyPolicy") or "SingleStack"),
        load_balancer_class=s.get("loadBalancerClass"),
        allocate_load_balancer_node_ports=bool(s.get("allocateLoadBalancerNodePorts", True)),
        status_addresses=tuple(
            str(point.get("hostname") or point.get("ip") or "")
            for point in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
        ),
    )

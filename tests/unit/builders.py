"""Builders for Kubernetes-shaped JSON objects (plain dicts), as the controller sees them."""

from __future__ import annotations

from typing import Any

from ccm.cloudprovider import LoadBalancerRequest, ServicePort
from ccm.controllers.predicates import LOAD_BALANCER_CLEANUP_FINALIZER

Json = dict[str, Any]

DELETION_TIME = "2024-01-01T00:00:00Z"


def port(
    *,
    port: int = 80,
    protocol: str = "TCP",
    name: str | None = None,
    node_port: int | None = 30080,
    target_port: int | str | None = None,
    app_protocol: str | None = None,
) -> Json:
    """One ``spec.ports`` entry; fields left as ``None`` are omitted, as the API omits them."""
    out: Json = {"port": port, "protocol": protocol}
    if name is not None:
        out["name"] = name
    if node_port is not None:
        out["nodePort"] = node_port
    if target_port is not None:
        out["targetPort"] = target_port
    if app_protocol is not None:
        out["appProtocol"] = app_protocol
    return out


def service(
    name: str = "svc",
    *,
    namespace: str = "default",
    uid: str = "11111111-2222-3333-4444-555555555555",
    type: str = "LoadBalancer",
    ports: list[Json] | None = None,
    load_balancer_class: str | None = None,
    finalizer: bool = False,
    deleting: bool = False,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Json:
    """A Service. Extra keyword arguments are copied into ``spec`` verbatim (camelCase keys)."""
    metadata: Json = {"name": name, "namespace": namespace, "uid": uid}
    if finalizer:
        metadata["finalizers"] = [LOAD_BALANCER_CLEANUP_FINALIZER]
    if deleting:
        metadata["deletionTimestamp"] = DELETION_TIME
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    if labels is not None:
        metadata["labels"] = dict(labels)
    body: Json = {"type": type, "ports": ports if ports is not None else [port()]}
    if load_balancer_class is not None:
        body["loadBalancerClass"] = load_balancer_class
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body, "status": {}}


def taint(key: str, *, value: str | None = None, effect: str = "NoSchedule") -> Json:
    out: Json = {"key": key, "effect": effect}
    if value is not None:
        out["value"] = value
    return out


def node(
    name: str = "node-1",
    *,
    provider_id: str | None = None,
    labels: dict[str, str] | None = None,
    taints: list[Json] | None = None,
    ready: bool | None = None,
    deleting: bool = False,
    addresses: list[Json] | None = None,
    conditions: list[Json] | None = None,
) -> Json:
    """A Node; ``ready=None`` means no Ready condition at all (an 'empty' node)."""
    metadata: Json = {"name": name}
    if labels is not None:
        metadata["labels"] = dict(labels)
    if deleting:
        metadata["deletionTimestamp"] = DELETION_TIME
    spec: Json = {}
    if provider_id is not None:
        spec["providerID"] = provider_id
    if taints is not None:
        spec["taints"] = list(taints)
    conds: list[Json] = list(conditions or [])
    if ready is not None:
        conds.append({"type": "Ready", "status": "True" if ready else "False"})
    status: Json = {"conditions": conds}
    if addresses is not None:
        status["addresses"] = list(addresses)
    return {"apiVersion": "v1", "kind": "Node", "metadata": metadata, "spec": spec, "status": status}


def request(
    name: str = "svc",
    *,
    namespace: str = "default",
    uid: str = "11111111-2222-3333-4444-555555555555",
    ports: tuple[ServicePort, ...] | None = None,
    **changes: Any,
) -> LoadBalancerRequest:
    """A provider request built directly (for provider-side tests)."""
    return LoadBalancerRequest(
        cluster_name=changes.pop("cluster_name", "kubernetes"),
        namespace=namespace,
        name=name,
        uid=uid,
        ports=ports
        if ports is not None
        else (ServicePort(name="http", protocol="TCP", port=80, node_port=30080),),
        **changes,
    )

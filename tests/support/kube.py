"""Helpers for tests that talk to the real API server: builders, waiting, reading events."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")


def eventually(
    fn: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"
) -> T:
    """Poll ``fn`` until it returns something truthy; fail with ``message`` after ``timeout``.

    The timeout is a bound for a hung test, not a performance threshold.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")


def request(
    api: client.ApiClient, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, bytes]:
    """A request as ``api``'s identity, returning its status and body whatever the status.

    ``call_api`` alone adds no credentials: a bearer token (a token kubeconfig) is added here; a client
    certificate is presented by the TLS layer.
    """
    headers = {"Accept": "application/json", "Content-Type": content_type}
    for auth in api.configuration.auth_settings().values():
        if auth.get("in") == "header" and auth.get("value"):
            headers[auth["key"]] = auth["value"]
    resp = api.call_api(method, api.configuration.host + path, header_params=headers, body=body)
    resp.read()
    return int(resp.status), resp.data or b""


def raw(
    api: client.ApiClient, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> Any:
    """A plain JSON request (dicts in, dicts out), bypassing the generated models."""
    status, data = request(api, method, path, body, content_type)
    if not 200 <= status <= 299:
        exc = ApiException(status=status, reason=f"{method} {path}")
        exc.body = data.decode(errors="replace")
        raise exc
    return json.loads(data) if data else None


def service_body(
    name: str,
    *,
    type_: str = "LoadBalancer",
    ports: Iterable[Mapping[str, Any]] | None = None,
    annotations: Mapping[str, str] | None = None,
    load_balancer_class: str | None = None,
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": dict(annotations or {}), "labels": dict(labels or {})},
        "spec": {
            "type": type_,
            "selector": {"app": name},
            "ports": list(ports or [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]),
            **spec,
        },
    }
    if load_balancer_class is not None:
        body["spec"]["loadBalancerClass"] = load_balancer_class
    return body


def create_service(api: client.ApiClient, namespace: str, name: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = raw(
        api, "POST", f"/api/v1/namespaces/{namespace}/services", service_body(name, **kwargs)
    )
    return result


def get_service(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = raw(api, "GET", f"/api/v1/namespaces/{namespace}/services/{name}")
        return result
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def patch_service(
    api: client.ApiClient, namespace: str, name: str, patch: Mapping[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = raw(
        api,
        "PATCH",
        f"/api/v1/namespaces/{namespace}/services/{name}",
        dict(patch),
        content_type="application/merge-patch+json",
    )
    return result


def delete_service(api: client.ApiClient, namespace: str, name: str) -> None:
    raw(api, "DELETE", f"/api/v1/namespaces/{namespace}/services/{name}")


def ingress(service: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not service:
        return []
    return list(((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


def condition(service: Mapping[str, Any] | None, type_: str = "LoadBalancerSynced") -> dict[str, Any] | None:
    for cond in ((service or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


def events(api: client.ApiClient, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
    items = raw(api, "GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in items if name is None or e["involvedObject"].get("name") == name]


def reasons(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(api, namespace, name)]


def node_name(prefix: str = "node") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_node(
    api: client.ApiClient,
    name: str,
    *,
    provider_id: str | None = None,
    zone: str = "zone-a",
    labels: Mapping[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone, **(labels or {})}},
        "spec": {"taints": taints or []},
    }
    if provider_id != "":  # "" means: not initialised by a cloud yet
        body["spec"]["providerID"] = provider_id or f"fake://{zone}/{name}"
    node: dict[str, Any] = raw(api, "POST", "/api/v1/nodes", body)
    set_node_ready(api, name, ready)
    return node


def set_node_ready(api: client.ApiClient, name: str, ready: bool) -> None:
    stamp = "2026-01-01T00:00:00Z"
    raw(
        api,
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "reason": "Test",
                        "message": "test",
                        "lastHeartbeatTime": stamp,
                        "lastTransitionTime": stamp,
                    }
                ]
            }
        },
        content_type="application/strategic-merge-patch+json",
    )


def patch_node(api: client.ApiClient, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = raw(
        api, "PATCH", f"/api/v1/nodes/{name}", dict(patch), content_type="application/merge-patch+json"
    )
    return result


def delete_node(api: client.ApiClient, name: str) -> None:
    try:
        raw(api, "DELETE", f"/api/v1/nodes/{name}")
    except ApiException as exc:
        if exc.status != 404:
            raise


def make_namespace(api: client.ApiClient) -> str:
    """A namespace of a random name, for a module of tests (the ``namespace`` fixture is per test)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    raw(api, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def delete_services(api: client.ApiClient, namespace: str) -> None:
    """Every Service of the namespace, stripped of its finalizers and deleted."""
    items = raw(api, "GET", f"/api/v1/namespaces/{namespace}/services")["items"]
    for item in items:
        name = item["metadata"]["name"]
        with contextlib.suppress(ApiException):
            patch_service(api, namespace, name, {"metadata": {"finalizers": None}})
            delete_service(api, namespace, name)


def lb_hostname(api: client.ApiClient, namespace: str, name: str) -> str | None:
    """The hostname of the Service's first load-balancer ingress point, None while it has none."""
    points = ingress(get_service(api, namespace, name))
    return str(points[0].get("hostname")) if points else None

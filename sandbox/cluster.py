"""The sandbox's side of the API server: registering Nodes, creating objects, reading Services.

There is no kubelet and no cloud-node controller in the embedded control plane, so the sandbox plays
both: it registers one Node per seeded instance with ``spec.providerID`` set (what the providers
map to targets), the zone labels, and a Ready condition written through ``nodes/status``.
Plain JSON requests keep the Services as the API server returns them (no model round-trip).
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, utils
from kubernetes.client.exceptions import ApiException

from sandbox.cloud import Machine
from sandbox.manifests import Document

logger = logging.getLogger(__name__)

CONDITION_TYPE = "LoadBalancerSynced"  # the controller's condition on each Service


class ApplyError(RuntimeError):
    """The API server refused an object of a manifest; the message names it and says why."""


@dataclass(frozen=True)
class ServiceInfo:
    """A ``type: LoadBalancer`` Service as the table shows it."""

    namespace: str
    name: str
    ports: str
    address: str  # hostnames or IPs of status.loadBalancer.ingress; empty while pending
    status: str
    handled: bool  # False when it has a loadBalancerClass (another controller's)
    failed: bool  # the controller's last sync of it failed (it retries)


def _api_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(message or exc.reason or exc).split())


def _service_info(svc: dict[str, Any]) -> ServiceInfo:
    meta, spec, status = svc["metadata"], svc.get("spec") or {}, svc.get("status") or {}
    ports = ",".join(
        f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p['port']}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or ()
    )
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(str(i.get("hostname") or i.get("ip") or "") for i in ingress)
    cond = next((c for c in status.get("conditions") or () if c.get("type") == CONDITION_TYPE), None)
    handled = not spec.get("loadBalancerClass")
    if not handled:
        text = f"loadBalancerClass {spec['loadBalancerClass']}: not this controller's"
    elif cond is None:
        text = "waiting for the controller"
    elif cond.get("status") == "True":
        text = "synced"
    else:
        text = f"{cond.get('reason', 'failed')}: {' '.join(str(cond.get('message', '')).split())}"
    return ServiceInfo(
        namespace=meta["namespace"],
        name=meta["name"],
        ports=ports,
        address=address,
        status=text,
        handled=handled,
        failed=handled and cond is not None and cond.get("status") == "False",
    )


class Cluster:
    """An admin client for the embedded API server."""

    def __init__(self, *, kubeconfig: Path) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        self.api = client.ApiClient(configuration)

    def close(self) -> None:
        self.api.close()

    def _request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        resp = self.api.call_api(
            method, self.api.configuration.host + path, header_params=headers, body=body, _request_timeout=30
        )
        resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(
                http_resp=resp, body=(resp.data or b"").decode(errors="replace"), data=None
            )
        return json.loads(resp.data) if resp.data else None

    def wait_for_namespace(self, *, name: str = "default", timeout: float = 30.0) -> None:
        """The API server creates ``default`` shortly after it is ready; wait for it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._request("GET", f"/api/v1/namespaces/{name}")
                return
            except ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def register_node(self, *, machine: Machine) -> str:
        """A Node for ``machine`` as the kubelet and the cloud-node controller would leave it."""
        name = machine.node_name
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": machine.instance_type,
                    "topology.kubernetes.io/region": machine.region,
                    "topology.kubernetes.io/zone": machine.zone,
                },
            },
            "spec": {"providerID": machine.provider_id},
        }
        self._request("POST", "/api/v1/nodes", body)
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        addresses = [{"type": "InternalIP", "address": machine.private_ip}]
        if machine.internal_dns:
            addresses.append({"type": "InternalDNS", "address": machine.internal_dns})
        addresses.append({"type": "Hostname", "address": name})
        status = {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "registered by ccm sandbox",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "addresses": addresses,
            }
        }
        self._request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            status,
            content_type="application/strategic-merge-patch+json",
        )
        return name

    def apply(self, *, document: Document) -> str:
        """Create the object (in ``default`` when it names no namespace); ``created`` or ``unchanged``.

        Raises :class:`ApplyError` when the API server refuses it.
        """
        try:
            utils.create_from_dict(self.api, copy.deepcopy(document.body), namespace="default")
        except utils.FailToCreateError as exc:
            first = exc.api_exceptions[0]
            if first.status == 409:
                return "unchanged (it already exists)"
            raise ApplyError(
                f"{document.source}: the API server refused {document.describe()}: {_api_message(first)}"
            ) from None
        except AttributeError:  # create_from_dict has no typed API for the kind (a custom resource)
            raise ApplyError(
                f"{document.source}: {document.kind} ({document.body['apiVersion']}) cannot be created by "
                "the sandbox, which knows only built-in kinds; apply it with kubectl instead"
            ) from None
        except ApiException as exc:
            raise ApplyError(f"{document.source}: {document.describe()}: {_api_message(exc)}") from None
        return "created"

    def load_balancer_services(self) -> list[ServiceInfo]:
        items = self._request("GET", "/api/v1/services")["items"]
        services = [_service_info(s) for s in items if (s.get("spec") or {}).get("type") == "LoadBalancer"]
        return sorted(services, key=lambda s: (s.namespace, s.name))

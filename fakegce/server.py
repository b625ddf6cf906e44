"""The HTTP side of the fake: routing, call counting, IAM permissions, fault injection, seeding."""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from fakegce import errors as err
from fakegce.compute import (
    GOOGLE,
    Compute,
    Mutation,
    OperationFailure,
    Request,
    new_fingerprint,
    public,
    timestamp,
)
from fakegce.errors import ApiError
from fakegce.validate import parse_filter

Handler = Callable[[Request], Any]
Key = tuple[str, str]  # (HTTP method, path template)

_STANDARD_QUERY = frozenset({"$alt", "alt", "prettyPrint"})
_LIST_QUERY = frozenset({"filter", "maxResults", "pageToken", "orderBy", "returnPartialSuccess"})
_PREFIX_RE = re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/(?P<rest>.*)$")


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # relative to /compute/v1/projects/{project}/, discovery-style parameter names
    permissions: tuple[str, ...]  # what every call of the route needs
    handler: Handler
    mutation: bool = False  # the handler returns a Mutation; the route answers with an Operation
    list_call: bool = False  # accepts filter / maxResults / pageToken
    body: bool = False
    # What some calls need on top, depending on the body and on what it references (labels given, a
    # subnetwork, a reserved address, health checks, instance groups). The handler records the ones a
    # call needs in ``Compute.used``; ``Compute.base_permission`` (also listed here) replaces
    # ``permissions[0]`` for INTERNAL addresses.
    conditional: tuple[str, ...] = ()

    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


def _routes(c: Compute) -> list[Route]:
    def get(collection: str) -> Handler:
        return lambda r: c.get(collection, r)

    def lst(collection: str, kind: str) -> Handler:
        return lambda r: c.list_collection(collection, kind, r)

    def ins(collection: str, message: str, builder: Any) -> Handler:
        return lambda r: c.insert_with(collection, message, builder, r)

    def upd(collection: str, message: str, builder: Any, key: str) -> Handler:
        return lambda r: c.update_with(collection, message, builder, r, key)

    def dele(collection: str, kind: str, key: str) -> Handler:
        return lambda r: c.delete_with(collection, kind, r, key)

    r = "regions/{region}"
    z = "zones/{zone}"
    bs, hc = c.build_backend_service, c.build_health_check
    fw, ig = c.build_firewall, c.build_instance_group
    tp, hhc = c.build_target_pool, c.build_http_health_check
    # Permissions: the Compute REST reference's "IAM Permissions" of each method (terraform/gcp/README.md
    # names the page per permission). A body field that references another resource adds that
    # resource's ``use`` permission: recorded by the handler, declared in ``conditional``.
    bs_refs = (
        "compute.regionHealthChecks.useReadOnly",
        "compute.healthChecks.useReadOnly",
        "compute.instanceGroups.use",
    )
    policy = "compute.networks.updatePolicy"  # every change to a network's firewall rules
    routes = [
        # addresses
        Route(
            "POST",
            f"{r}/addresses",
            ("compute.addresses.create",),
            c.insert_address,
            mutation=True,
            body=True,
            conditional=(
                "compute.addresses.createInternal",
                "compute.subnetworks.use",
                "compute.addresses.setLabels",
            ),
        ),
        Route(
            "GET",
            f"{r}/addresses",
            ("compute.addresses.list",),
            lst("addresses", "compute#addressList"),
            list_call=True,
        ),
        Route("GET", f"{r}/addresses/{{address}}", ("compute.addresses.get",), get("addresses")),
        Route(
            "DELETE",
            f"{r}/addresses/{{address}}",
            ("compute.addresses.delete",),
            c.delete_address,
            mutation=True,
            conditional=("compute.addresses.deleteInternal",),
        ),
        # forwarding rules
        Route(
            "POST",
            f"{r}/forwardingRules",
            ("compute.forwardingRules.create", "compute.regionBackendServices.use"),
            c.insert_forwarding_rule,
            mutation=True,
            body=True,
            conditional=(
                "compute.subnetworks.use",
                "compute.networks.use",
                "compute.addresses.use",
                "compute.addresses.useInternal",
                "compute.targetPools.use",
            ),
        ),
        Route(
            "GET",
            f"{r}/forwardingRules",
            ("compute.forwardingRules.list",),
            lst("forwardingRules", "compute#forwardingRuleList"),
            list_call=True,
        ),
        Route(
            "GET",
            f"{r}/forwardingRules/{{forwardingRule}}",
            ("compute.forwardingRules.get",),
            get("forwardingRules"),
        ),
        Route(
            "DELETE",
            f"{r}/forwardingRules/{{forwardingRule}}",
            ("compute.forwardingRules.delete",),
            c.delete_forwarding_rule,
            mutation=True,
        ),
        Route(
            "PATCH",
            f"{r}/forwardingRules/{{forwardingRule}}",
            ("compute.forwardingRules.update",),
            c.patch_forwarding_rule,
            mutation=True,
            body=True,
        ),
        Route(
            "POST",
            f"{r}/forwardingRules/{{resource}}/setLabels",
            ("compute.forwardingRules.setLabels",),
            c.set_forwarding_rule_labels,
            mutation=True,
            body=True,
        ),
        # regional backend services
        Route(
            "POST",
            f"{r}/backendServices",
            ("compute.regionBackendServices.create",),
            ins("backendServices", "BackendService", bs),
            mutation=True,
            body=True,
            conditional=bs_refs,
        ),
        Route(
            "GET",
            f"{r}/backendServices",
            ("compute.regionBackendServices.list",),
            lst("backendServices", "compute#backendServiceList"),
            list_call=True,
        ),
        Route(
            "GET",
            f"{r}/backendServices/{{backendService}}",
            ("compute.regionBackendServices.get",),
            get("backendServices"),
        ),
        Route(
            "PATCH",
            f"{r}/backendServices/{{backendService}}",
            ("compute.regionBackendServices.update", "compute.regionBackendServices.get"),
            upd("backendServices", "BackendService", bs, "backendService"),
            mutation=True,
            body=True,
            conditional=bs_refs,
        ),
        Route(
            "PUT",
            f"{r}/backendServices/{{backendService}}",
            ("compute.regionBackendServices.update",),
            upd("backendServices", "BackendService", bs, "backendService"),
            mutation=True,
            body=True,
            conditional=bs_refs,
        ),
        Route(
            "DELETE",
            f"{r}/backendServices/{{backendService}}",
            ("compute.regionBackendServices.delete",),
            dele("backendServices", "backend service", "backendService"),
            mutation=True,
        ),
        # regional health checks
        Route(
            "POST",
            f"{r}/healthChecks",
            ("compute.regionHealthChecks.create",),
            ins("healthChecks", "HealthCheck", hc),
            mutation=True,
            body=True,
        ),
        Route(
            "GET",
            f"{r}/healthChecks",
            ("compute.regionHealthChecks.list",),
            lst("healthChecks", "compute#healthCheckList"),
            list_call=True,
        ),
        Route(
            "GET",
            f"{r}/healthChecks/{{healthCheck}}",
            ("compute.regionHealthChecks.get",),
            get("healthChecks"),
        ),
        Route(
            "PATCH",
            f"{r}/healthChecks/{{healthCheck}}",
            ("compute.regionHealthChecks.update", "compute.regionHealthChecks.get"),
            upd("healthChecks", "HealthCheck", hc, "healthCheck"),
            mutation=True,
            body=True,
        ),
        Route(
            "PUT",
            f"{r}/healthChecks/{{healthCheck}}",
            ("compute.regionHealthChecks.update",),
            upd("healthChecks", "HealthCheck", hc, "healthCheck"),
            mutation=True,
            body=True,
        ),
        Route(
            "DELETE",
            f"{r}/healthChecks/{{healthCheck}}",
            ("compute.regionHealthChecks.delete",),
            dele("healthChecks", "health check", "healthCheck"),
            mutation=True,
        ),
        # global health checks (an internal passthrough backend service may use one)
        Route(
            "POST",
            "global/healthChecks",
            ("compute.healthChecks.create",),
            ins("healthChecks", "HealthCheck", hc),
            mutation=True,
            body=True,
        ),
        Route("GET", "global/healthChecks/{healthCheck}", ("compute.healthChecks.get",), get("healthChecks")),
        Route(
            "DELETE",
            "global/healthChecks/{healthCheck}",
            ("compute.healthChecks.delete",),
            dele("healthChecks", "health check", "healthCheck"),
            mutation=True,
        ),
        # target pools and legacy HTTP health checks: the upstream provider's external load balancer
        # (permissions: the Compute REST reference's IAM block of each method, as above)
        Route(
            "POST",
            f"{r}/targetPools",
            ("compute.targetPools.create",),
            ins("targetPools", "TargetPool", tp),
            mutation=True,
            body=True,
            conditional=("compute.httpHealthChecks.useReadOnly", "compute.instances.use"),
        ),
        Route(
            "GET",
            f"{r}/targetPools",
            ("compute.targetPools.list",),
            lst("targetPools", "compute#targetPoolList"),
            list_call=True,
        ),
        Route("GET", f"{r}/targetPools/{{targetPool}}", ("compute.targetPools.get",), get("targetPools")),
        Route(
            "DELETE",
            f"{r}/targetPools/{{targetPool}}",
            ("compute.targetPools.delete",),
            dele("targetPools", "target pool", "targetPool"),
            mutation=True,
        ),
        Route(
            "POST",
            f"{r}/targetPools/{{targetPool}}/addInstance",
            ("compute.targetPools.addInstance",),
            c.add_pool_instance,
            mutation=True,
            body=True,
            conditional=("compute.instances.use",),
        ),
        Route(
            "POST",
            f"{r}/targetPools/{{targetPool}}/removeInstance",
            ("compute.targetPools.removeInstance",),
            c.remove_pool_instance,
            mutation=True,
            body=True,
            conditional=("compute.instances.use",),
        ),
        Route(
            "POST",
            "global/httpHealthChecks",
            ("compute.httpHealthChecks.create",),
            ins("httpHealthChecks", "HttpHealthCheck", hhc),
            mutation=True,
            body=True,
        ),
        Route(
            "GET",
            "global/httpHealthChecks",
            ("compute.httpHealthChecks.list",),
            lst("httpHealthChecks", "compute#httpHealthCheckList"),
            list_call=True,
        ),
        Route(
            "GET",
            "global/httpHealthChecks/{httpHealthCheck}",
            ("compute.httpHealthChecks.get",),
            get("httpHealthChecks"),
        ),
        Route(
            "PUT",
            "global/httpHealthChecks/{httpHealthCheck}",
            ("compute.httpHealthChecks.update",),
            upd("httpHealthChecks", "HttpHealthCheck", hhc, "httpHealthCheck"),
            mutation=True,
            body=True,
        ),
        Route(
            "DELETE",
            "global/httpHealthChecks/{httpHealthCheck}",
            ("compute.httpHealthChecks.delete",),
            dele("httpHealthChecks", "http health check", "httpHealthCheck"),
            mutation=True,
        ),
        # firewalls
        Route(
            "POST",
            "global/firewalls",
            ("compute.firewalls.create", policy),
            ins("firewalls", "Firewall", fw),
            mutation=True,
            body=True,
        ),
        Route(
            "GET",
            "global/firewalls",
            ("compute.firewalls.list",),
            lst("firewalls", "compute#firewallList"),
            list_call=True,
        ),
        Route("GET", "global/firewalls/{firewall}", ("compute.firewalls.get",), get("firewalls")),
        Route(
            "PATCH",
            "global/firewalls/{firewall}",
            ("compute.firewalls.update", "compute.firewalls.get", policy),
            upd("firewalls", "Firewall", fw, "firewall"),
            mutation=True,
            body=True,
        ),
        Route(
            "PUT",
            "global/firewalls/{firewall}",
            ("compute.firewalls.update", policy),
            upd("firewalls", "Firewall", fw, "firewall"),
            mutation=True,
            body=True,
        ),
        Route(
            "DELETE",
            "global/firewalls/{firewall}",
            ("compute.firewalls.delete", policy),
            c.delete_firewall,
            mutation=True,
        ),
        # instance groups
        Route(
            "POST",
            f"{z}/instanceGroups",
            ("compute.instanceGroups.create",),
            ins("instanceGroups", "InstanceGroup", ig),
            mutation=True,
            body=True,
        ),
        Route(
            "GET",
            f"{z}/instanceGroups",
            ("compute.instanceGroups.list",),
            lst("instanceGroups", "compute#instanceGroupList"),
            list_call=True,
        ),
        Route(
            "GET",
            f"{z}/instanceGroups/{{instanceGroup}}",
            ("compute.instanceGroups.get",),
            get("instanceGroups"),
        ),
        Route(
            "DELETE",
            f"{z}/instanceGroups/{{instanceGroup}}",
            ("compute.instanceGroups.delete",),
            dele("instanceGroups", "instance group", "instanceGroup"),
            mutation=True,
        ),
        Route(
            "POST",
            f"{z}/instanceGroups/{{instanceGroup}}/addInstances",
            ("compute.instanceGroups.update", "compute.instances.use"),
            c.add_instances,
            mutation=True,
            body=True,
        ),
        Route(
            "POST",
            f"{z}/instanceGroups/{{instanceGroup}}/removeInstances",
            ("compute.instanceGroups.update",),
            c.remove_instances,
            mutation=True,
            body=True,
        ),
        Route(
            "POST",
            f"{z}/instanceGroups/{{instanceGroup}}/listInstances",
            # The REST page's "Authorization requires ... on the specified resource instanceGroup"
            # (iann0036/iam-dataset crawl of instanceGroups/listInstances): get, not list.
            ("compute.instanceGroups.get",),
            c.list_instances,
            list_call=True,
            body=True,
        ),
        # instances, networks, subnetworks (read-only; seeded by tests)
        Route(
            "GET",
            f"{z}/instances",
            ("compute.instances.list",),
            lst("instances", "compute#instanceList"),
            list_call=True,
        ),
        Route("GET", f"{z}/instances/{{instance}}", ("compute.instances.get",), get("instances")),
        Route(
            "GET",
            "global/networks",
            ("compute.networks.list",),
            lst("networks", "compute#networkList"),
            list_call=True,
        ),
        Route("GET", "global/networks/{network}", ("compute.networks.get",), get("networks")),
        Route(
            "GET",
            f"{r}/subnetworks",
            ("compute.subnetworks.list",),
            lst("subnetworks", "compute#subnetworkList"),
            list_call=True,
        ),
        Route("GET", f"{r}/subnetworks/{{subnetwork}}", ("compute.subnetworks.get",), get("subnetworks")),
        # regions and zones
        Route(
            "GET",
            "regions",
            ("compute.regions.list",),
            lambda q: _static_list(c, q, [c.region_resource()], "region"),
            list_call=True,
        ),
        Route(
            "GET",
            "regions/{region}",
            ("compute.regions.get",),
            lambda q: (c.check_region(q.params["region"]), c.region_resource())[1],
        ),
        Route(
            "GET",
            "zones",
            ("compute.zones.list",),
            lambda q: _static_list(c, q, [c.zone_resource(zone) for zone in c.zones], "zone"),
            list_call=True,
        ),
        Route(
            "GET",
            "zones/{zone}",
            ("compute.zones.get",),
            lambda q: (c.check_zone(q.params["zone"]), c.zone_resource(q.params["zone"]))[1],
        ),
    ]
    # Waiting on an operation (``…/wait``) needs the same permission as reading it.
    for scope, service in ((r, "regionOperations"), ("global", "globalOperations"), (z, "zoneOperations")):
        permission = (f"compute.{service}.get",)
        routes.append(Route("GET", f"{scope}/operations/{{operation}}", permission, c.poll))
        routes.append(Route("POST", f"{scope}/operations/{{operation}}/wait", permission, c.poll))
    return routes


def _static_list(c: Compute, request: Request, items: list[dict[str, Any]], kind: str) -> Any:
    keep = parse_filter(request.query.get("filter", ""))
    collection = f"{kind}s"
    return c.page(
        [i for i in items if keep(i)], request.query, f"compute#{kind}List", c.scope_link(collection)
    )


_ROUTES = _routes(Compute("p", "r", ("r-a",)))

PERMISSIONS: dict[Key, tuple[str, ...]] = {
    (route.method, route.template): route.permissions for route in _ROUTES
}
"""The IAM permissions every call of (HTTP method, path template) needs.

``permissions_used`` also records what a particular call needs on top, depending on its body and on
what it references (:data:`CONDITIONAL_PERMISSIONS`): ``compute.addresses.setLabels`` for labels given
to an address at insert (a forwarding rule's are dropped), ``compute.subnetworks.use`` /
``compute.networks.use`` for an internal forwarding rule or address, ``compute.addresses.use`` /
``useInternal`` for a reserved IP, and the health checks' ``useReadOnly`` and instance groups' ``use``
of a backend service. An INTERNAL address is created and deleted with ``createInternal`` /
``deleteInternal`` instead of ``create`` / ``delete``."""

CONDITIONAL_PERMISSIONS: dict[Key, tuple[str, ...]] = {
    (route.method, route.template): route.conditional for route in _ROUTES if route.conditional
}
"""The permissions a call of (HTTP method, path template) may need on top of :data:`PERMISSIONS`."""


@dataclass
class _Fault:
    method: str
    template: str
    status: int
    remaining: int
    reason: str
    message: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeCompute


class _HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, body = self.server.fake.dispatch(method, self.path, raw)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class FakeCompute:
    """A strict fake of the Compute Engine v1 REST API for L4 load balancers, on a loopback port.

    Use ``ClientOptions(api_endpoint=fake.start())`` and ``AnonymousCredentials()`` with the real
    google-cloud-compute clients (``*_unary`` mutations, then the operations clients' ``wait``).
    """

    PERMISSIONS = PERMISSIONS
    CONDITIONAL_PERMISSIONS = CONDITIONAL_PERMISSIONS

    def __init__(
        self, project: str = "test-project", region: str = "us-central1", zones: Iterable[str] | None = None
    ) -> None:
        self.project = project
        self.region = region
        zone_names = tuple(zones) if zones is not None else tuple(f"{region}-{s}" for s in "abcf")
        self.compute = Compute(project, region, zone_names)
        self.calls: Counter[Key] = Counter()
        self.requests: list[dict[str, Any]] = []  # method, path, template, query, body of every call
        self._lock = threading.RLock()
        self._routes = [(route, route.pattern()) for route in _routes(self.compute)]
        self._permissions: defaultdict[Key, set[str]] = defaultdict(set)
        self._faults: list[_Fault] = []
        self._operation_faults: list[_Fault] = []
        self._delays: dict[Key | None, float] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free loopback port; returns the base URL (``http://127.0.0.1:PORT``)."""
        if self._server is None:
            server = _Server(("127.0.0.1", 0), _HttpHandler)
            server.fake = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fakegce", daemon=True
            )
            self._thread.start()
            self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- seeding -----------------------------------------------------------------------------------

    def seed_network(self, name: str) -> dict[str, Any]:
        c = self.compute
        with self._lock:
            rel = c.rel("global", "networks", name)
            c.store["networks"][rel] = {
                "kind": "compute#network",
                "id": c.new_id(),
                "creationTimestamp": timestamp(),
                "name": name,
                "autoCreateSubnetworks": False,
                "subnetworks": [],
                "routingConfig": {"routingMode": "REGIONAL"},
                "mtu": 1460,
                "selfLink": c.link(rel),
            }
            return public(c.store["networks"][rel])

    def seed_subnetwork(self, name: str, network: str, cidr: str) -> dict[str, Any]:
        c = self.compute
        with self._lock:
            parent = self._seeded("networks", c.rel("global", "networks", network))
            net = ipaddress.IPv4Network(cidr)
            rel = c.rel(f"regions/{self.region}", "subnetworks", name)
            c.store["subnetworks"][rel] = {
                "kind": "compute#subnetwork",
                "id": c.new_id(),
                "creationTimestamp": timestamp(),
                "name": name,
                "network": parent["selfLink"],
                "ipCidrRange": str(net),
                "gatewayAddress": str(net.network_address + 1),
                "region": c.scope_link(f"regions/{self.region}"),
                "fingerprint": new_fingerprint(),
                "purpose": "PRIVATE",
                "stackType": "IPV4_ONLY",
                "privateIpGoogleAccess": False,
                "selfLink": c.link(rel),
            }
            parent["subnetworks"].append(c.link(rel))
            return public(c.store["subnetworks"][rel])

    def seed_instance(
        self,
        zone: str,
        name: str,
        tags: Iterable[str] = (),
        network: str = "default",
        *,
        subnetwork: str | None = None,
        labels: dict[str, str] | None = None,
        status: str = "RUNNING",
    ) -> dict[str, Any]:
        """A VM (a node); it gets an internal IP from its network's subnetwork in the region."""
        c = self.compute
        with self._lock:
            if zone not in c.zones:
                raise ValueError(f"zone {zone!r} is not one of {c.zones}")
            net = self._seeded("networks", c.rel("global", "networks", network))
            subnet = self._subnet(net, subnetwork)
            rel = c.rel(f"zones/{zone}", "instances", name)
            c.store["instances"][rel] = {
                "kind": "compute#instance",
                "id": c.new_id(),
                "creationTimestamp": timestamp(),
                "name": name,
                "zone": c.scope_link(f"zones/{zone}"),
                "machineType": c.scope_link(f"zones/{zone}/machineTypes/e2-standard-2"),
                "status": status,
                "tags": {"items": list(tags), "fingerprint": new_fingerprint()},
                "labels": dict(labels or {}),
                "networkInterfaces": [
                    {
                        "kind": "compute#networkInterface",
                        "name": "nic0",
                        "network": net["selfLink"],
                        "subnetwork": subnet["selfLink"],
                        "networkIP": c.allocate_internal(subnet),
                        "stackType": "IPV4_ONLY",
                    }
                ],
                "selfLink": c.link(rel),
            }
            return public(c.store["instances"][rel])

    def seed_address(
        self,
        name: str,
        ip: str,
        address_type: str = "EXTERNAL",
        network_tier: str = "PREMIUM",
        *,
        subnetwork: str | None = None,
        purpose: str = "GCE_ENDPOINT",
    ) -> dict[str, Any]:
        """A static IP the user reserved (e.g. for ``spec.loadBalancerIP``)."""
        c = self.compute
        with self._lock:
            if ip in c.used_ips():
                raise ValueError(f"{ip} is already in use")
            scope = f"regions/{self.region}"
            rel = c.rel(scope, "addresses", name)
            resource: dict[str, Any] = {
                "kind": "compute#address",
                "id": c.new_id(),
                "creationTimestamp": timestamp(),
                "name": name,
                "description": "",
                "address": ip,
                "status": "RESERVED",
                "region": c.scope_link(scope),
                "selfLink": c.link(rel),
                "networkTier": network_tier,
                "addressType": address_type,
                "labelFingerprint": "42WmSpB8rSM=",
            }
            if address_type == "INTERNAL":
                subnets = [
                    s
                    for s in c.store["subnetworks"].values()
                    if (s["name"] == subnetwork)
                    or (
                        subnetwork is None
                        and ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(s["ipCidrRange"])
                    )
                ]
                if not subnets:
                    raise ValueError(f"no seeded subnetwork for internal address {ip}")
                resource.update(
                    purpose=purpose, subnetwork=subnets[0]["selfLink"], network=subnets[0]["network"]
                )
            c.store["addresses"][rel] = resource
            return public(resource)

    def _seeded(self, collection: str, rel: str) -> dict[str, Any]:
        found = self.compute.store[collection].get(rel)
        if found is None:
            raise ValueError(f"seed {rel} first")
        return found

    def _subnet(self, network: dict[str, Any], name: str | None) -> dict[str, Any]:
        c = self.compute
        for subnet in c.store["subnetworks"].values():
            if subnet["network"] == network["selfLink"] and name in (None, subnet["name"]):
                return subnet
        raise ValueError(f"seed a subnetwork of network {network['name']!r} first")

    # --- inspection --------------------------------------------------------------------------------

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """Current resources of a collection ("forwardingRules", "addresses", ..., "operations")."""
        with self._lock:
            if kind == "operations":
                return [public(op) for op in self.compute.operations.values()]
            if kind not in self.compute.store:
                raise KeyError(f"unknown kind {kind!r}; one of {sorted(self.compute.store)}")
            return [public(r) for _, r in sorted(self.compute.store[kind].items())]

    def delete_instance(self, zone: str, name: str) -> None:
        """A VM deleted outside the controller (a node pool scaled down, a preemption).

        It leaves the instance groups it was in (unverified belief: GCE lists no member that no longer
        exists), and later references to it are 404, removeInstances included (issue 12's review of the
        instance-group sync).
        """
        c = self.compute
        with self._lock:
            rel = c.rel(f"zones/{zone}", "instances", name)
            link = c.store["instances"].pop(rel)["selfLink"]
            for group_rel, members in c.members.items():
                if link in members:
                    members.remove(link)
                    group = c.store["instanceGroups"].get(group_rel)
                    if group is not None:
                        group.update(size=len(members), fingerprint=new_fingerprint())

    def members(self, zone: str, group: str) -> list[str]:
        """The instance selfLinks of an instance group."""
        with self._lock:
            return list(
                self.compute.members.get(self.compute.rel(f"zones/{zone}", "instanceGroups", group), ())
            )

    def mutations(self) -> Counter[Key]:
        """The calls that changed (or tried to change) something."""
        keys = {(r.method, r.template) for r, _ in self._routes if r.mutation}
        with self._lock:
            return Counter({k: n for k, n in self.calls.items() if k in keys})

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()
            self._permissions.clear()

    def permissions_used(self) -> set[str]:
        """Every IAM permission the calls since the last ``reset_calls`` needed."""
        with self._lock:
            return set().union(*self._permissions.values())

    def permissions_by_route(self) -> dict[Key, set[str]]:
        """The same, per (HTTP method, path template): which call needed what."""
        with self._lock:
            return {key: set(used) for key, used in self._permissions.items()}

    def routes(self) -> list[Key]:
        """The (HTTP method, path template) of every route the fake serves."""
        return [(route.method, route.template) for route, _ in self._routes]

    # --- fault injection ---------------------------------------------------------------------------

    def _check_key(self, method: str, template: str, *, mutation: bool = False) -> None:
        for route, _ in self._routes:
            if (route.method, route.template) == (method, template) and (route.mutation or not mutation):
                return
        raise ValueError(f"no {'mutating ' if mutation else ''}route {method} {template}")

    def fail(
        self,
        method: str,
        template: str,
        status: int = 503,
        times: int = 1,
        *,
        reason: str = "",
        message: str = "",
    ) -> None:
        """The next ``times`` calls of (method, template) fail synchronously with ``status``."""
        self._check_key(method, template)
        with self._lock:
            self._faults.append(
                _Fault(
                    method,
                    template,
                    status,
                    times,
                    reason or err.DEFAULT_REASONS.get(status, "error"),
                    message or err.DEFAULT_MESSAGES.get(status, f"Injected error {status}"),
                )
            )

    def fail_operation(
        self,
        method: str,
        template: str,
        status: int = 400,
        message: str = "Injected operation failure",
        times: int = 1,
        *,
        reason: str = "",
    ) -> None:
        """The next ``times`` mutations of (method, template) are accepted but their Operation ends DONE with
        ``error``, ``httpErrorStatusCode`` and ``httpErrorMessage``; the change is not applied."""
        self._check_key(method, template, mutation=True)
        with self._lock:
            code = reason or err.OPERATION_CODES.get(status, "ERROR")
            self._operation_faults.append(_Fault(method, template, status, times, code, message))

    def delay(self, seconds: float, method: str | None = None, template: str | None = None) -> None:
        """Wait ``seconds`` before answering every call (or only (method, template)); 0 removes it."""
        key: Key | None = None
        if method is not None and template is not None:
            self._check_key(method, template)
            key = (method, template)
        with self._lock:
            self._delays[key] = seconds

    def operations_stay_running(self, polls: int = 1) -> None:
        """Mutations answer a RUNNING Operation, DONE on its ``polls``-th GET or wait (0: DONE at once)."""
        with self._lock:
            self.compute.running_polls = polls

    def clear_faults(self) -> None:
        """Back to a well-behaved API: armed failures dropped, no delay, operations DONE on first read."""
        with self._lock:
            self._faults.clear()
            self._operation_faults.clear()
            self._delays.clear()
            self.compute.running_polls = 1

    def total_calls(self) -> int:
        """Every call answered so far (all routes, failures included)."""
        with self._lock:
            return sum(self.calls.values())

    @staticmethod
    def _take(faults: list[_Fault], key: Key) -> _Fault | None:
        for fault in faults:
            if (fault.method, fault.template) == key and fault.remaining > 0:
                fault.remaining -= 1
                return fault
        return None

    # --- dispatch ----------------------------------------------------------------------------------

    def _route(self, method: str, rest: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route, pattern in self._routes:
            match = pattern.match(rest)
            if match is None:
                continue
            if route.method == method:
                return route, match.groupdict()
            allowed = True
        if allowed:
            raise ApiError(405, "httpMethodNotAllowed", f"Method {method} is not allowed on this resource.")
        raise err.not_found(f"projects/{self.project}/{rest}")

    def dispatch(self, method: str, raw_path: str, raw_body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        prefix = _PREFIX_RE.match(path)
        if prefix is None:
            with self._lock:
                self.calls[(method, path)] += 1
            return 404, err.not_found(path).body()
        rest = prefix["rest"]
        try:
            route, params = self._route(method, rest)
        except ApiError as exc:
            with self._lock:
                self.calls[(method, rest)] += 1
            return exc.code, exc.body()
        key = (method, route.template)
        body: Any = None
        with self._lock:
            self.calls[key] += 1
            try:
                body = json.loads(raw_body) if raw_body else None
            except ValueError:
                body = raw_body.decode(errors="replace")
            self.requests.append(
                {"method": method, "path": path, "template": route.template, "query": query, "body": body}
            )
            pause = self._delays.get(key, self._delays.get(None, 0.0))
        if pause:
            time.sleep(pause)
        with self._lock:
            fault = self._take(self._faults, key)
            if fault is not None:
                self._permissions[key].update(route.permissions)
                return fault.status, ApiError(fault.status, fault.reason, fault.message).body()
            status, answer = 200, None
            try:
                answer = self._handle(route, params, query, body, prefix["project"])
            except ApiError as exc:
                status, answer = exc.code, exc.body()
            needed = self._needed(route)
            self._permissions[key].update(needed)
            undeclared = needed - set(route.permissions) - set(route.conditional)
            if undeclared:  # a handler records a permission its route does not declare: fix the route
                message = f"fakegce: {method} {route.template} needs undeclared {sorted(undeclared)}"
                return 500, ApiError(500, "internalError", message).body()
            return status, answer

    def _needed(self, route: Route) -> set[str]:
        """The permissions the call just handled needed (the handler's choices are in ``compute``)."""
        c = self.compute
        base = (c.base_permission or route.permissions[0],) if route.permissions else ()
        return {*base, *route.permissions[1:], *c.used}

    def _handle(
        self, route: Route, params: dict[str, str], query: dict[str, str], body: Any, project: str
    ) -> Any:
        c = self.compute
        c.used = set()
        c.base_permission = None
        if project != self.project:
            raise err.not_found(f"projects/{project}")
        allowed = (
            _STANDARD_QUERY
            | (_LIST_QUERY if route.list_call else set())
            | ({"requestId"} if route.mutation else set())
        )
        for name in query:
            if name not in allowed:
                raise err.invalid(
                    f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter.'
                )
        if query.get("orderBy") not in (None, "name"):
            raise err.invalid_field("orderBy", query["orderBy"], "fakegce only orders by name.")
        if isinstance(body, str):
            raise err.invalid("Invalid JSON payload received. Unexpected token.")
        if route.body:
            if body is None and route.mutation:
                raise err.required("resource")
            if body is not None and not isinstance(body, dict):
                raise err.invalid("Invalid JSON payload received. Expected an object.")
        request = Request(route.method, route.template, params, query, body if body is not None else {})
        if not route.mutation:
            return route.handler(request)

        def failure() -> OperationFailure | None:
            fault = self._take(self._operation_faults, (route.method, route.template))
            return None if fault is None else OperationFailure(fault.status, fault.message, fault.reason)

        def mutation(r: Request) -> Mutation:
            result: Mutation = route.handler(r)
            return result

        return c.mutate(request, mutation, failure)


__all__ = ["CONDITIONAL_PERMISSIONS", "GOOGLE", "PERMISSIONS", "FakeCompute"]

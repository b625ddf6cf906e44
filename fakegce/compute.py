"""The state and semantics of the fake: resources, references, operations, validation per resource.

Everything here runs under one lock, called by :mod:`fakegce.server` with an already-routed request.
Mutations are applied when the request is accepted (an Operation kept RUNNING for polls reports the
progress of a change that is already visible), except those a test makes fail asynchronously, which are
never applied.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import itertools
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fakegce import errors as err
from fakegce.errors import ApiError
from fakegce.validate import (
    check_cidr,
    check_ip,
    check_labels,
    check_message,
    check_name,
    check_port,
    check_port_range,
    int_field,
    parse_filter,
)

GOOGLE = "https://www.googleapis.com/compute/v1/"
EMPTY_LABELS_FINGERPRINT = "42WmSpB8rSM="
PASSTHROUGH = ("EXTERNAL", "INTERNAL")
OUTPUT_ONLY = frozenset(
    {
        "kind",
        "id",
        "creationTimestamp",
        "selfLink",
        "selfLinkWithId",
        "region",
        "zone",
        "status",
        "users",
        "size",
    }
)
_REF_RE = re.compile(
    r"^(?:https?://[^/]+/compute/(?:v1|beta|alpha)/)?/?(?:projects/(?P<project>[^/]+)/)?"
    r"(?P<scope>global|regions/[^/]+|zones/[^/]+)/(?P<collection>[A-Za-z]+)/(?P<name>[^/]+)$"
)
_FW_PROTOCOLS = ("tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip", "all")
_HC_TYPES = {
    "TCP": "tcpHealthCheck",
    "SSL": "sslHealthCheck",
    "HTTP": "httpHealthCheck",
    "HTTPS": "httpsHealthCheck",
    "HTTP2": "http2HealthCheck",
    "GRPC": "grpcHealthCheck",
    "GRPC_WITH_TLS": "grpcTlsHealthCheck",
}
_HC_DEFAULT_PORTS = {"HTTPS": 443, "SSL": 443}
_PASSTHROUGH_AFFINITIES = (
    "NONE",
    "CLIENT_IP",
    "CLIENT_IP_PROTO",
    "CLIENT_IP_PORT_PROTO",
    "CLIENT_IP_NO_DESTINATION",
)


@dataclass
class Request:
    """One routed API request."""

    method: str
    template: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any


@dataclass
class OperationFailure:
    status: int
    message: str
    reason: str


@dataclass
class Mutation:
    """What a mutating handler validated: the operation to report and the change to apply."""

    operation_type: str
    target: str  # relative path of the target resource
    scope: str  # "global" | "regions/R" | "zones/Z"
    apply: Callable[[], str]  # applies the change, returns the target's id


@dataclass
class Supported:
    """The top-level fields the fake models for one resource (other known GCE fields are refused)."""

    fields: frozenset[str]
    output_only: frozenset[str] = field(default=OUTPUT_ONLY)


SUPPORTED = {
    "Address": Supported(
        frozenset(
            {
                "name",
                "description",
                "address",
                "addressType",
                "networkTier",
                "subnetwork",
                "network",
                "purpose",
            }
            | {"labels", "labelFingerprint", "ipVersion"}
        )
    ),
    "ForwardingRule": Supported(
        frozenset(
            {
                "name",
                "description",
                "IPAddress",
                "IPProtocol",
                "ports",
                "portRange",
                "allPorts",
                "backendService",
            }
            | {"target", "loadBalancingScheme", "networkTier", "network", "subnetwork", "allowGlobalAccess"}
            | {"labels", "labelFingerprint", "fingerprint", "ipVersion", "sourceIpRanges"}
        ),
        OUTPUT_ONLY | {"pscConnectionId", "pscConnectionStatus", "serviceName"},
    ),
    "BackendService": Supported(
        frozenset(
            {"name", "description", "loadBalancingScheme", "protocol", "healthChecks", "backends"}
            | {
                "sessionAffinity",
                "connectionDraining",
                "timeoutSec",
                "network",
                "failoverPolicy",
                "logConfig",
            }
            | {"connectionTrackingPolicy", "fingerprint"}
        )
    ),
    "HealthCheck": Supported(
        frozenset(
            {"name", "description", "type", "checkIntervalSec", "timeoutSec", "healthyThreshold"}
            | {"unhealthyThreshold", "logConfig", *(_HC_TYPES.values())}
        )
    ),
    "Firewall": Supported(
        frozenset(
            {"name", "description", "network", "priority", "sourceRanges", "destinationRanges", "sourceTags"}
            | {"targetTags", "sourceServiceAccounts", "targetServiceAccounts", "allowed", "denied"}
            | {"direction", "disabled", "logConfig"}
        )
    ),
    "InstanceGroup": Supported(
        frozenset({"name", "description", "network", "subnetwork", "namedPorts", "fingerprint"})
    ),
    # failoverRatio, backupPool and securityPolicy are not modelled: refused
    "TargetPool": Supported(
        frozenset({"name", "description", "healthChecks", "instances", "sessionAffinity"})
    ),
    "HttpHealthCheck": Supported(
        frozenset({"name", "description", "host", "requestPath", "port", "checkIntervalSec", "timeoutSec"})
        | {"healthyThreshold", "unhealthyThreshold"},
        OUTPUT_ONLY | {"proxyHeader"},
    ),
}
# A target pool's session affinity: "must be one of NONE, CLIENT_IP, CLIENT_IP_PROTO" (Compute REST
# reference, targetPools resource, field sessionAffinity); the other SessionAffinity values are backend
# services'.
_TARGET_POOL_AFFINITIES = ("NONE", "CLIENT_IP", "CLIENT_IP_PROTO")


def timestamp() -> str:
    """``creationTimestamp`` and operation times as GCE writes them (RFC 3339, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_fingerprint() -> str:
    """A fresh ``fingerprint`` for a resource that changed (GCE's are opaque base64 strings)."""
    return base64.b64encode(random.randbytes(8)).decode()


def label_fingerprint(labels: dict[str, str]) -> str:
    if not labels:
        return EMPTY_LABELS_FINGERPRINT
    digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def public(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in resource.items() if not k.startswith("_")}


def described(body: dict[str, Any]) -> dict[str, Any]:
    """``description`` as GCE answers with it: present when the request gave one (even empty), absent
    otherwise; backend services always have one (recorded real traffic, tests/fakegce/conformance)."""
    return {"description": body["description"]} if body.get("description") is not None else {}


class Compute:
    """The resources of one project in one region (and its zones)."""

    def __init__(self, project: str, region: str, zones: tuple[str, ...]) -> None:
        self.project = project
        self.region = region
        self.zones = zones
        self.drop_unmodelled = False
        self.store: dict[str, dict[str, dict[str, Any]]] = {
            kind: {}
            for kind in (
                "addresses",
                "forwardingRules",
                "backendServices",
                "healthChecks",
                "firewalls",
                "instanceGroups",
                "instances",
                "networks",
                "subnetworks",
                "targetPools",
                "httpHealthChecks",
            )
        }
        self.members: dict[str, list[str]] = {}  # instance group path -> instance selfLinks
        self.operations: dict[str, dict[str, Any]] = {}
        self.request_ids: dict[str, str] = {}
        # A mutation answers a RUNNING operation that is DONE on the next GET or wait, as GCE's do in
        # recorded real traffic (tests/fakegce/conformance): a client must wait for every mutation.
        self.running_polls = 1
        self.used: set[str] = set()  # the request's permissions beyond its route's (its conditional ones)
        self.base_permission: str | None = None  # replaces the route's first permission (internal addresses)
        self._ids = itertools.count(random.randrange(10**17, 9 * 10**17))
        self._external_pool = (int(ipaddress.IPv4Address(f"34.{100 + i}.0.0")) for i in range(100))
        self._external = itertools.chain.from_iterable(
            range(base + 10, base + 65000) for base in self._external_pool
        )

    # --- helpers ----------------------------------------------------------------------------------

    def new_id(self) -> str:
        return str(next(self._ids))

    def rel(self, scope: str, collection: str, name: str) -> str:
        return f"projects/{self.project}/{scope}/{collection}/{name}"

    def link(self, rel: str) -> str:
        return GOOGLE + rel

    def scope_link(self, scope: str) -> str:
        return GOOGLE + f"projects/{self.project}/{scope}"

    def check_region(self, region: str) -> str:
        if region != self.region:
            raise err.not_found(f"projects/{self.project}/regions/{region}")
        return f"regions/{region}"

    def check_zone(self, zone: str) -> str:
        if zone not in self.zones:
            raise err.not_found(f"projects/{self.project}/zones/{zone}")
        return f"zones/{zone}"

    def scope_of(self, params: dict[str, str]) -> str:
        if "region" in params:
            return self.check_region(params["region"])
        if "zone" in params:
            return self.check_zone(params["zone"])
        return "global"

    def find(self, collection: str, rel: str) -> dict[str, Any]:
        resource = self.store[collection].get(rel)
        if resource is None:
            raise err.not_found(rel)
        return resource

    def resolve(self, ref: Any, collection: str, field_name: str) -> dict[str, Any]:
        """A reference (URL or partial path ``regions/R/backendServices/N``) to an existing resource."""
        match = _REF_RE.match(ref) if isinstance(ref, str) else None
        if match is None or match["collection"] != collection:
            raise err.invalid_field(field_name, ref, "The URL is malformed.")
        rel = f"projects/{match['project'] or self.project}/{match['scope']}/{collection}/{match['name']}"
        return self.find(collection, rel)

    def all_links(self, collection: str) -> dict[str, dict[str, Any]]:
        return {r["selfLink"]: r for r in self.store[collection].values()}

    def check_supported(self, message: str, body: dict[str, Any]) -> None:
        """A field GCE knows but the fake does not model is refused, so a provider test can never send
        one unnoticed; ``drop_unmodelled`` (the conformance replay of recorded real traffic) drops it
        instead, and the recording shows what GCE would have answered with it."""
        check_message(message, body)
        supported = SUPPORTED[message]
        for name in list(body):
            if name not in supported.fields and name not in supported.output_only:
                if self.drop_unmodelled:
                    del body[name]
                    continue
                raise err.invalid(f"Field 'resource.{name}' is not modelled by fakegce; the fake refuses it.")

    def get(self, collection: str, request: Request) -> dict[str, Any]:
        scope = self.scope_of(request.params)
        name = next(v for k, v in request.params.items() if k not in ("region", "zone"))
        return public(self.find(collection, self.rel(scope, collection, name)))

    def list_collection(
        self, collection: str, kind: str, request: Request, items: list[dict[str, Any]] | None = None
    ) -> Any:
        scope = self.scope_of(request.params)
        prefix = f"projects/{self.project}/{scope}/{collection}/"
        if items is None:
            items = [public(r) for rel, r in self.store[collection].items() if rel.startswith(prefix)]
        items.sort(key=lambda r: str(r.get("name", r.get("instance", ""))))
        keep = parse_filter(request.query.get("filter", ""))
        items = [item for item in items if keep(item)]
        return self.page(items, request.query, kind, self.link(prefix.rstrip("/")))

    def page(self, items: list[dict[str, Any]], query: dict[str, str], kind: str, self_link: str) -> Any:
        size = int_field(dict(query), "maxResults", 500, 0, 500, where="query")
        size = size or 500
        start = 0
        token = query.get("pageToken")
        if token:
            try:
                start = int(base64.urlsafe_b64decode(token.encode()).decode())
            except ValueError:
                raise err.invalid_field("pageToken", token, "Invalid page token.") from None
        result: dict[str, Any] = {"kind": kind, "id": self_link.removeprefix(GOOGLE), "selfLink": self_link}
        chunk = items[start : start + size]
        if chunk:
            result["items"] = chunk
        if start + size < len(items):
            result["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return result

    def used_ips(self, exclude_rel: str | None = None) -> dict[str, str]:
        """IP -> relative path of what holds it (addresses, forwarding rules, instances)."""
        used: dict[str, str] = {}
        for collection in ("forwardingRules", "instances", "addresses"):
            for rel, res in self.store[collection].items():
                if rel == exclude_rel:
                    continue
                ip = res.get("address") or res.get("IPAddress")
                for nic in res.get("networkInterfaces", ()):
                    used[nic["networkIP"]] = rel
                if ip:
                    used[ip] = rel
        return used

    def allocate_external(self) -> str:
        used = self.used_ips()
        while True:
            ip = str(ipaddress.IPv4Address(next(self._external)))
            if ip not in used:
                return ip

    def allocate_internal(self, subnet: dict[str, Any]) -> str:
        network = ipaddress.IPv4Network(subnet["ipCidrRange"])
        used = self.used_ips()
        hosts = list(itertools.islice(network.hosts(), 1, None))[
            :-1
        ]  # .1 is the gateway, the last is reserved
        for host in hosts:
            if str(host) not in used:
                return str(host)
        raise ApiError(
            400, "ipSpaceExhausted", f"IP space of '{subnet['selfLink'].removeprefix(GOOGLE)}' is exhausted."
        )

    def usable_in_subnet(self, ip: str, subnet: dict[str, Any], field_name: str) -> None:
        network = ipaddress.IPv4Network(subnet["ipCidrRange"])
        address = check_ip(ip, field_name)
        reserved = {network.network_address, network.network_address + 1, network.broadcast_address}
        reserved.add(network.broadcast_address - 1)
        if address not in network or address in reserved:
            raise err.invalid_field(
                field_name,
                ip,
                f"IP address is not within the usable range of subnetwork '{subnet['name']}' ({network}).",
            )

    def subnet_for(self, body: dict[str, Any], scope: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(network, subnetwork) of an internal resource: the given subnetwork, or the network's only one."""
        if body.get("subnetwork"):
            subnet = self.resolve(body["subnetwork"], "subnetworks", "resource.subnetwork")
            if not subnet["selfLink"].startswith(self.scope_link(scope) + "/"):
                raise err.invalid_field(
                    "resource.subnetwork", body["subnetwork"], "Must be in the same region."
                )
            network = self.all_links("networks")[subnet["network"]]
            if body.get("network"):
                given = self.resolve(body["network"], "networks", "resource.network")
                if given["selfLink"] != network["selfLink"]:
                    raise err.invalid_field(
                        "resource.subnetwork",
                        body["subnetwork"],
                        "Subnetwork must belong to the given network.",
                    )
            self.used.add("compute.subnetworks.use")
            return network, subnet
        network = self.resolve(
            body.get("network") or "global/networks/default", "networks", "resource.network"
        )
        subnets = [
            s
            for s in self.store["subnetworks"].values()
            if s["network"] == network["selfLink"] and s["region"] == self.scope_link(scope)
        ]
        if len(subnets) != 1:
            raise err.invalid_field(
                "resource.subnetwork",
                "",
                f"A subnetwork must be specified: network '{network['name']}' has "
                f"{len(subnets)} subnetworks in this region.",
            )
        self.used.add("compute.subnetworks.use")
        return network, subnets[0]

    # --- operations -------------------------------------------------------------------------------

    def mutate(
        self,
        request: Request,
        mutation: Callable[[Request], Mutation],
        take_failure: Callable[[], OperationFailure | None],
    ) -> Any:
        """Validate, then apply (unless the test made this operation fail), and answer the Operation."""
        request_id = request.query.get("requestId")
        if request_id:
            try:
                parsed = uuid.UUID(request_id)
            except ValueError:
                parsed = None
            if parsed is None or parsed.int == 0:
                raise err.invalid_field(
                    "requestId", request_id, "The request ID must be a valid non-zero UUID."
                )
            if request_id in self.request_ids:
                return public(self.operations[self.request_ids[request_id]])
        change = mutation(request)
        failure = take_failure()
        target_id = self.new_id() if failure else change.apply()
        operation = self.new_operation(change, target_id, failure)
        if request_id:
            self.request_ids[request_id] = operation["name"]
        return public(operation)

    def new_operation(
        self, change: Mutation, target_id: str, failure: OperationFailure | None
    ) -> dict[str, Any]:
        name = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:13]}-{uuid.uuid4().hex[:8]}"
        now = timestamp()
        # setLabels answers DONE at once (recorded real traffic: regionalcomputeforwardingrulefull-direct)
        polls = 0 if change.operation_type == "setLabels" else self.running_polls
        operation: dict[str, Any] = {
            "kind": "compute#operation",
            "id": self.new_id(),
            "name": name,
            "operationType": change.operation_type,
            "targetLink": self.link(change.target),
            "targetId": target_id,
            "status": "RUNNING",
            "user": f"fakegce@{self.project}.iam.gserviceaccount.com",
            "progress": 0,
            "insertTime": now,
            "startTime": now,
            "selfLink": self.link(f"projects/{self.project}/{change.scope}/operations/{name}"),
            "_scope": change.scope,
            "_polls_left": polls,
            "_failure": failure,
        }
        if change.scope.startswith("regions/"):
            operation["region"] = self.scope_link(change.scope)
        elif change.scope.startswith("zones/"):
            operation["zone"] = self.scope_link(change.scope)
        if polls <= 0:
            self.finish(operation)
        self.operations[name] = operation
        return operation

    def finish(self, operation: dict[str, Any]) -> None:
        operation.update(status="DONE", progress=100, endTime=timestamp())
        failure: OperationFailure | None = operation["_failure"]
        if failure is not None:
            operation["error"] = {"errors": [{"code": failure.reason, "message": failure.message}]}
            operation["httpErrorStatusCode"] = failure.status
            operation["httpErrorMessage"] = err.HTTP_STATUS_TEXT.get(failure.status, "ERROR")

    def poll(self, request: Request) -> Any:
        scope = self.scope_of(request.params)
        name = request.params["operation"]
        operation = self.operations.get(name)
        if operation is None or operation["_scope"] != scope:
            raise err.not_found(f"projects/{self.project}/{scope}/operations/{name}")
        if operation["status"] != "DONE":
            operation["_polls_left"] -= 1
            if operation["_polls_left"] <= 0:
                self.finish(operation)
        return public(operation)

    # --- addresses --------------------------------------------------------------------------------

    def insert_address(self, request: Request) -> Mutation:
        scope = self.check_region(request.params["region"])
        body = request.body
        self.check_supported("Address", body)
        name = check_name(body.get("name"))
        rel = self.rel(scope, "addresses", name)
        if rel in self.store["addresses"]:
            raise err.already_exists(rel)
        if body.get("ipVersion", "IPV4") != "IPV4":
            raise err.invalid_field(
                "resource.ipVersion", body["ipVersion"], "Only IPV4 is modelled by fakegce."
            )
        address_type = body.get("addressType") or "EXTERNAL"
        if address_type not in ("EXTERNAL", "INTERNAL"):
            raise err.invalid_field("resource.addressType", address_type)
        tier = body.get("networkTier") or "PREMIUM"
        if tier not in ("PREMIUM", "STANDARD") or (address_type == "INTERNAL" and tier != "PREMIUM"):
            raise err.invalid_field(
                "resource.networkTier", tier, "Must be PREMIUM or STANDARD (PREMIUM if INTERNAL)."
            )
        labels = check_labels(body.get("labels"))
        resource: dict[str, Any] = {
            "kind": "compute#address",
            "id": self.new_id(),
            "creationTimestamp": timestamp(),
            "name": name,
            **described(body),
            "status": "RESERVED",
            "region": self.scope_link(scope),
            "selfLink": self.link(rel),
            "networkTier": tier,
            "addressType": address_type,
            "labelFingerprint": label_fingerprint(labels),
        }
        if labels:
            resource["labels"] = labels
            self.used.add("compute.addresses.setLabels")
        ip = body.get("address") or ""
        user: dict[str, Any] | None = None
        if address_type == "EXTERNAL":
            if body.get("subnetwork") or body.get("network"):
                raise err.invalid_field(
                    "resource.subnetwork",
                    body.get("subnetwork") or body.get("network"),
                    "A network or subnetwork may only be given for INTERNAL addresses.",
                )
            if body.get("purpose"):
                raise err.invalid_field(
                    "resource.purpose", body["purpose"], "Not modelled for EXTERNAL addresses."
                )
            if ip:
                user = self._claim_ip(ip, rel)
                if user is None or user["loadBalancingScheme"] != "EXTERNAL":
                    raise err.invalid_field(
                        "resource.address",
                        ip,
                        "Specified IP address is not available to this project: only the ephemeral IP of one "
                        "of its resources can be promoted to a static one.",
                    )
                if user["networkTier"] != tier:
                    raise err.invalid_field(
                        "resource.networkTier", tier, "Must match the tier of the IP's user."
                    )
            else:
                ip = self.allocate_external()
        else:
            self.base_permission = "compute.addresses.createInternal"
            network, subnet = self.subnet_for(body, scope)
            purpose = body.get("purpose") or "GCE_ENDPOINT"
            if purpose not in ("GCE_ENDPOINT", "SHARED_LOADBALANCER_VIP"):
                raise err.invalid_field("resource.purpose", purpose, "Not modelled for INTERNAL addresses.")
            # an internal address answers with its subnetwork, and its network only when one was given
            # (recorded real traffic: regionalcomputeaddress-direct)
            resource.update(purpose=purpose, subnetwork=subnet["selfLink"])
            if body.get("network"):
                resource["network"] = network["selfLink"]
            if ip:
                self.usable_in_subnet(ip, subnet, "resource.address")
                user = self._claim_ip(ip, rel)
                if user is not None and user.get("subnetwork") != subnet["selfLink"]:
                    raise err.invalid_field(
                        "resource.address", ip, "IP address is in use by another resource."
                    )
            else:
                ip = self.allocate_internal(subnet)
        resource["address"] = ip

        def apply() -> str:
            if user is not None:
                resource.update(status="IN_USE", users=[user["selfLink"]])
                user["_address"] = rel
            self.store["addresses"][rel] = resource
            return str(resource["id"])

        return Mutation("insert", rel, scope, apply)

    def _claim_ip(self, ip: str, rel: str) -> dict[str, Any] | None:
        """The forwarding rule holding ``ip`` as an ephemeral IP (promotion), None if free, or 400.

        An address inserted with ``address`` set to the ephemeral IP of one of the project's resources
        promotes that IP to a static one, which the resource keeps using: Google's "Promote an ephemeral
        external IP address" (``gcloud compute addresses create NAME --addresses=IP``), and upstream's
        ``ensureStaticIP`` (cloud-provider-gcp gce_loadbalancer_external.go: "If the existingIP exists but
        is ephemeral, this will promote it to static") and ingress-gce pkg/l4/address/manager.go for
        internal rules. Deleting the address later leaves the resource its IP, as ephemeral again
        (delete_address): upstream releases the reservation while the new rule uses it.
        """
        holder = self.used_ips().get(ip)
        if holder is None:
            return None
        rule = self.store["forwardingRules"].get(holder)
        if rule is None or rule.get("_address"):
            raise err.invalid_field("resource.address", ip, f"IP address is in use by '{holder}'.")
        return rule

    def delete_address(self, request: Request) -> Mutation:
        scope = self.check_region(request.params["region"])
        rel = self.rel(scope, "addresses", request.params["address"])
        resource = self.find("addresses", rel)
        if resource["addressType"] == "INTERNAL":
            self.base_permission = "compute.addresses.deleteInternal"

        def apply() -> str:
            for user in resource.get("users", ()):
                for rule in self.store["forwardingRules"].values():
                    if rule["selfLink"] == user:
                        rule["_address"] = None  # the rule keeps its IP, now ephemeral
            del self.store["addresses"][rel]
            return str(resource["id"])

        return Mutation("delete", rel, scope, apply)

    # --- forwarding rules -------------------------------------------------------------------------

    def insert_forwarding_rule(self, request: Request) -> Mutation:
        scope = self.check_region(request.params["region"])
        body = request.body
        self.check_supported("ForwardingRule", body)
        name = check_name(body.get("name"))
        rel = self.rel(scope, "forwardingRules", name)
        if rel in self.store["forwardingRules"]:
            raise err.already_exists(rel)
        # GCE fills in EXTERNAL and TCP when loadBalancingScheme / IPProtocol are left out (gcloud
        # compute forwarding-rules create documents both defaults; Google's mock in k8s-config-connector,
        # mockgcp/mockcompute/regionalforwardingrulev1.go, "appears to default by GCP": IPProtocol TCP).
        scheme = body.get("loadBalancingScheme") or "EXTERNAL"
        if body.get("ipVersion", "IPV4") != "IPV4":
            raise err.invalid_field(
                "resource.ipVersion", body["ipVersion"], "Only IPV4 is modelled by fakegce."
            )
        if body.get("target"):
            return self._insert_target_pool_rule(body, scope, name, rel, scheme)
        if not body.get("backendService"):
            raise err.invalid_field("resource.target", "", "A target or a backend service must be specified.")
        if scheme not in PASSTHROUGH:
            raise err.invalid_field(
                "resource.loadBalancingScheme",
                scheme,
                "A backend service can only be the target of an EXTERNAL or "
                "INTERNAL forwarding rule; managed load balancers need a target proxy.",
            )
        backend = self.resolve(body["backendService"], "backendServices", "resource.backendService")
        if backend["region"] != self.scope_link(scope):
            raise err.invalid_field(
                "resource.backendService", body["backendService"], "Must be in the same region."
            )
        if backend["loadBalancingScheme"] != scheme:
            raise err.invalid_field(
                "resource.loadBalancingScheme",
                scheme,
                f"The load balancing scheme of the backend service is {backend['loadBalancingScheme']}.",
            )
        protocol = body.get("IPProtocol") or "TCP"
        expected = {"TCP": "TCP", "UDP": "UDP", "UNSPECIFIED": "L3_DEFAULT", "": "TCP"}.get(
            backend.get("protocol", "")
        )
        if protocol != expected:
            raise err.invalid_field(
                "resource.IPProtocol",
                protocol,
                f"Must match the protocol of the backend service ({backend['protocol']} needs {expected}).",
            )
        resource: dict[str, Any] = {
            "kind": "compute#forwardingRule",
            "id": self.new_id(),
            "creationTimestamp": timestamp(),
            "name": name,
            **described(body),
            "region": self.scope_link(scope),
            "IPProtocol": protocol,
            "backendService": backend["selfLink"],
            "loadBalancingScheme": scheme,
            "selfLink": self.link(rel),
            "fingerprint": new_fingerprint(),
            "_address": None,
        }
        self._forwarding_rule_ports(body, scheme, protocol, resource)
        # GCE ignores `labels` given to forwardingRules.insert; only setLabels sets them. Recorded real
        # traffic: k8s-config-connector pkg/test/resourcefixture/testdata/basic/compute/v1beta1/
        # computeforwardingrule/regionalcomputeforwardingruletcp-direct/_http.log (the POST carries
        # labels, the GET after it only a labelFingerprint); Google's mock in the same repository,
        # mockgcp/mockcompute/regionalforwardingrulev1.go ("labels will be added separately with
        # setLabels"). Addresses keep theirs (regionalcomputeaddress/_http.log), see insert_address.
        resource["labelFingerprint"] = label_fingerprint({})
        if body.get("ipVersion"):  # echoed when given (recorded real traffic: ...forwardingrulefull-direct)
            resource["ipVersion"] = body["ipVersion"]
        if body.get("sourceIpRanges"):
            for i, cidr in enumerate(body["sourceIpRanges"]):
                check_cidr(cidr, f"resource.sourceIpRanges[{i}]")
            resource["sourceIpRanges"] = list(body["sourceIpRanges"])
        tier = body.get("networkTier") or "PREMIUM"
        ip = body.get("IPAddress") or ""
        address: dict[str, Any] | None = None
        if scheme == "EXTERNAL":
            for key in ("network", "subnetwork", "allowGlobalAccess"):
                if body.get(key):
                    raise err.invalid_field(
                        f"resource.{key}", body[key], "Not allowed for an EXTERNAL forwarding rule."
                    )
            if tier not in ("PREMIUM", "STANDARD"):
                raise err.invalid_field("resource.networkTier", tier, "Must be PREMIUM or STANDARD.")
            resource["networkTier"] = tier
            if ip:
                address = self._reserved_address(ip, scope, "EXTERNAL")
                if address["networkTier"] != tier:
                    raise err.invalid_field(
                        "resource.networkTier",
                        tier,
                        f"The network tier of the forwarding rule must match that of its address "
                        f"({address['networkTier']}).",
                    )
            else:
                ip = self.allocate_external()
        else:
            if tier != "PREMIUM":
                raise err.invalid_field(
                    "resource.networkTier", tier, "INTERNAL forwarding rules are PREMIUM."
                )
            network, subnet = self.subnet_for(body, scope)
            if body.get("network"):
                self.used.add("compute.networks.use")
            if backend.get("network") and backend["network"] != network["selfLink"]:
                raise err.invalid_field(
                    "resource.network", network["selfLink"], "Must be the backend service's."
                )
            resource.update(network=network["selfLink"], subnetwork=subnet["selfLink"], networkTier="PREMIUM")
            if body.get("allowGlobalAccess"):
                resource["allowGlobalAccess"] = True
            if ip:
                holder = self.used_ips().get(ip)
                if holder is not None and holder.split("/")[-2] == "addresses":
                    address = self._reserved_address(ip, scope, "INTERNAL")
                    if address["subnetwork"] != subnet["selfLink"]:
                        raise err.invalid_field(
                            "resource.IPAddress", ip, "The address is in another subnetwork."
                        )
                else:
                    self.usable_in_subnet(ip, subnet, "resource.IPAddress")
                    if holder is not None:
                        raise err.invalid_field(
                            "resource.IPAddress", ip, f"IP address is in use by '{holder}'."
                        )
            else:
                ip = self.allocate_internal(subnet)
        resource["IPAddress"] = ip

        def apply() -> str:
            if address is not None:
                address.update(status="IN_USE", users=[*address.get("users", ()), resource["selfLink"]])
                resource["_address"] = address["selfLink"].removeprefix(GOOGLE)
            self.store["forwardingRules"][rel] = resource
            return str(resource["id"])

        return Mutation("insert", rel, scope, apply)

    def _insert_target_pool_rule(
        self, body: dict[str, Any], scope: str, name: str, rel: str, scheme: str
    ) -> Mutation:
        """An external passthrough rule whose target is a target pool (the upstream provider's LB).

        The Compute REST reference (forwardingRules, field ``target``; "Using target pools"): a target
        pool serves an EXTERNAL regional rule of protocol TCP or UDP, in its region, with a ``portRange``
        (or every port). Only target pools are modelled as targets; target instances are refused.
        """
        pool = self.resolve(body["target"], "targetPools", "resource.target")
        self.used.add("compute.targetPools.use")
        if body.get("backendService"):
            raise err.invalid_field(
                "resource.backendService",
                body["backendService"],
                "A target and a backend service exclude each other.",
            )
        if pool["region"] != self.scope_link(scope):
            raise err.invalid_field("resource.target", body["target"], "Must be in the same region.")
        if scheme != "EXTERNAL":
            raise err.invalid_field(
                "resource.loadBalancingScheme", scheme, "A target pool serves EXTERNAL forwarding rules only."
            )
        protocol = body.get("IPProtocol") or "TCP"
        if protocol not in ("TCP", "UDP"):
            raise err.invalid_field("resource.IPProtocol", protocol, "A target pool serves TCP or UDP.")
        for key in ("network", "subnetwork", "allowGlobalAccess", "ports", "allPorts", "sourceIpRanges"):
            if body.get(key):
                raise err.invalid_field(f"resource.{key}", body[key], "Not modelled for a target-pool rule.")
        tier = body.get("networkTier") or "PREMIUM"
        if tier not in ("PREMIUM", "STANDARD"):
            raise err.invalid_field("resource.networkTier", tier, "Must be PREMIUM or STANDARD.")
        resource: dict[str, Any] = {
            "kind": "compute#forwardingRule",
            "id": self.new_id(),
            "creationTimestamp": timestamp(),
            "name": name,
            **described(body),
            "region": self.scope_link(scope),
            "IPProtocol": protocol,
            "target": pool["selfLink"],
            "loadBalancingScheme": scheme,
            "networkTier": tier,
            "selfLink": self.link(rel),
            "fingerprint": new_fingerprint(),
            "labelFingerprint": label_fingerprint({}),  # labels are ignored at insert, as for any rule
            "_address": None,
        }
        port_range = body.get("portRange") or "1-65535"
        first, last = check_port_range(port_range, "resource.portRange")
        resource["portRange"] = f"{first}-{last}"
        ip = body.get("IPAddress") or ""
        address: dict[str, Any] | None = None
        if ip:
            address = self._reserved_address(ip, scope, "EXTERNAL")
            if address["networkTier"] != tier:
                raise err.invalid_field("resource.networkTier", tier, "Must match the tier of its address.")
        else:
            ip = self.allocate_external()
        resource["IPAddress"] = ip

        def apply() -> str:
            if address is not None:
                address.update(status="IN_USE", users=[*address.get("users", ()), resource["selfLink"]])
                resource["_address"] = address["selfLink"].removeprefix(GOOGLE)
            self.store["forwardingRules"][rel] = resource
            return str(resource["id"])

        return Mutation("insert", rel, scope, apply)

    def _forwarding_rule_ports(
        self, body: dict[str, Any], scheme: str, protocol: str, out: dict[str, Any]
    ) -> None:
        ports = body.get("ports") or []
        port_range = body.get("portRange") or ""
        all_ports = bool(body.get("allPorts"))
        if sum((bool(ports), bool(port_range), all_ports)) > 1:
            raise err.invalid_field(
                "resource.ports",
                ",".join(ports) or port_range,
                "ports, portRange and allPorts are mutually exclusive.",
            )
        if protocol == "L3_DEFAULT" and not all_ports:
            raise err.invalid_field(
                "resource.allPorts", all_ports, "An L3_DEFAULT forwarding rule needs allPorts."
            )
        if ports:
            if len(ports) > 5:
                raise err.invalid_field(
                    "resource.ports", ",".join(ports), "At most 5 ports may be listed; use allPorts for more."
                )
            numbers = [check_port(p, f"resource.ports[{i}]") for i, p in enumerate(ports)]
            if len(set(numbers)) != len(numbers):
                raise err.invalid_field("resource.ports", ",".join(ports), "Ports must be unique.")
            out["ports"] = [str(n) for n in numbers]
        elif port_range:
            first, last = check_port_range(port_range, "resource.portRange")
            out["portRange"] = f"{first}-{last}"
        elif all_ports:
            out["allPorts"] = True
        elif scheme == "INTERNAL":
            raise err.invalid_field(
                "resource.ports", "", "An INTERNAL forwarding rule needs ports or allPorts."
            )
        else:
            out["portRange"] = "1-65535"

    def _reserved_address(self, ref: str, scope: str, address_type: str) -> dict[str, Any]:
        if "/" in ref:
            address = self.resolve(ref, "addresses", "resource.IPAddress")
        else:
            check_ip(ref, "resource.IPAddress")
            found = [a for a in self.store["addresses"].values() if a["address"] == ref]
            if not found or found[0]["region"] != self.scope_link(scope):
                raise err.invalid_field(
                    "resource.IPAddress",
                    ref,
                    "The IP address must be a static address reserved in the project "
                    "and region (or left empty for an ephemeral one).",
                )
            address = found[0]
        if address["addressType"] != address_type:
            raise err.invalid_field("resource.IPAddress", ref, f"The address must be {address_type}.")
        # An internal address with purpose SHARED_LOADBALANCER_VIP may serve up to ten forwarding rules
        # (Google's "Internal passthrough Network Load Balancer forwarding rules that use a common IP
        # address"); any other address serves one.
        limit = 10 if address.get("purpose") == "SHARED_LOADBALANCER_VIP" else 1
        if len(address.get("users", ())) >= limit:
            raise err.invalid_field(
                "resource.IPAddress", ref, f"IP address is in use by '{address['users'][0]}'."
            )
        self.used.add(
            "compute.addresses.use" if address_type == "EXTERNAL" else "compute.addresses.useInternal"
        )
        return address

    def delete_forwarding_rule(self, request: Request) -> Mutation:
        scope = self.check_region(request.params["region"])
        rel = self.rel(scope, "forwardingRules", request.params["forwardingRule"])
        resource = self.find("forwardingRules", rel)

        def apply() -> str:
            address = self.store["addresses"].get(resource.get("_address") or "")
            if address is not None:
                users = [u for u in address.get("users", ()) if u != resource["selfLink"]]
                address.pop("users", None)
                address["status"] = "IN_USE" if users else "RESERVED"
                if users:
                    address["users"] = users
            del self.store["forwardingRules"][rel]
            return str(resource["id"])

        return Mutation("delete", rel, scope, apply)

    def patch_forwarding_rule(self, request: Request) -> Mutation:
        """forwardingRules.patch: only ``allowGlobalAccess`` of an INTERNAL rule changes in place.

        The REST reference's text ("you can only patch the network_tier field") is older than the API:
        ``gcloud compute forwarding-rules update --allow-global-access`` changes an existing rule, Google's
        mock (k8s-config-connector mockgcp/mockcompute/regionalforwardingrulev1.go Patch: "checked GCP log,
        when AllowGlobalAccess is false, the field will be ignored") and ingress-gce
        (pkg/forwardingrules/patchable.go: AllowGlobalAccess and NetworkTier) patch it. Any other field
        still needs a new rule, so the fake refuses it rather than pretend.
        """
        scope = self.check_region(request.params["region"])
        rel = self.rel(scope, "forwardingRules", request.params["forwardingRule"])
        resource = self.find("forwardingRules", rel)
        body = request.body
        self.check_supported("ForwardingRule", body)
        given = body.get("fingerprint")
        if given is not None and given != resource["fingerprint"]:
            raise err.precondition("Supplied fingerprint does not match current metadata fingerprint.")
        for key, value in body.items():
            if key in ("fingerprint", "allowGlobalAccess") or (key == "name" and value == resource["name"]):
                continue
            if key in resource and resource[key] == value:
                continue
            raise err.invalid_field(
                f"resource.{key}", value, "This field cannot be patched; create a new rule."
            )
        allow = body.get("allowGlobalAccess")
        if allow and resource["loadBalancingScheme"] != "INTERNAL":
            raise err.invalid_field(
                "resource.allowGlobalAccess", allow, "Only for INTERNAL forwarding rules."
            )

        def apply() -> str:
            if allow is not None:
                resource.pop("allowGlobalAccess", None)  # false is not shown, as on GCE (the mock's note)
                if allow:
                    resource["allowGlobalAccess"] = True
            resource["fingerprint"] = new_fingerprint()
            return str(resource["id"])

        return Mutation("patch", rel, scope, apply)

    def set_forwarding_rule_labels(self, request: Request) -> Mutation:
        scope = self.check_region(request.params["region"])
        rel = self.rel(scope, "forwardingRules", request.params["resource"])
        resource = self.find("forwardingRules", rel)
        check_message("RegionSetLabelsRequest", request.body)
        labels = check_labels(request.body.get("labels"))
        if request.body.get("labelFingerprint") != resource["labelFingerprint"]:
            raise err.precondition("Labels fingerprint either invalid or resource labels have changed")

        def apply() -> str:
            resource["labelFingerprint"] = label_fingerprint(labels)
            resource.pop("labels", None)
            if labels:
                resource["labels"] = labels
            return str(resource["id"])

        return Mutation("setLabels", rel, scope, apply)

    # --- health checks ----------------------------------------------------------------------------

    def build_health_check(
        self, body: dict[str, Any], scope: str, name: str, existing: dict[str, Any] | None
    ) -> Any:
        kind = body.get("type")
        if not kind:
            raise err.required("resource.type")
        key = _HC_TYPES[kind]
        for other in _HC_TYPES.values():
            if other != key and body.get(other):
                raise err.invalid_field(f"resource.{other}", "...", f"Only {key} may be set for type {kind}.")
        spec = dict(body.get(key) or {})
        spec["port"] = int_field(
            spec, "port", _HC_DEFAULT_PORTS.get(kind, 80), 1, 65535, where=f"resource.{key}"
        )
        # no portSpecification unless given (recorded real traffic: regionalcomputehealthcheck)
        if kind in ("HTTP", "HTTPS", "HTTP2"):
            spec.setdefault("requestPath", "/")
            if not str(spec["requestPath"]).startswith("/"):
                raise err.invalid_field(
                    f"resource.{key}.requestPath", spec["requestPath"], "Must start with '/'."
                )
        if kind in ("HTTP", "HTTPS", "HTTP2", "TCP", "SSL"):
            spec.setdefault("proxyHeader", "NONE")
        interval = int_field(body, "checkIntervalSec", 5, 1, 300)
        timeout = int_field(body, "timeoutSec", 5, 1, 300)
        if timeout > interval:
            raise err.invalid_field(
                "resource.timeoutSec", timeout, "timeoutSec must be less than or equal to checkIntervalSec."
            )
        rel = self.rel(scope, "healthChecks", name)
        resource = {
            "kind": "compute#healthCheck",
            "id": existing["id"] if existing else self.new_id(),
            "creationTimestamp": existing["creationTimestamp"] if existing else timestamp(),
            "name": name,
            **described(body),
            "checkIntervalSec": interval,
            "timeoutSec": timeout,
            "unhealthyThreshold": int_field(body, "unhealthyThreshold", 2, 1, 10),
            "healthyThreshold": int_field(body, "healthyThreshold", 2, 1, 10),
            "type": kind,
            key: spec,
            "selfLink": self.link(rel),
        }
        if scope != "global":
            resource["region"] = self.scope_link(scope)
        if body.get("logConfig"):
            resource["logConfig"] = dict(body["logConfig"])
        return resource

    # --- backend services -------------------------------------------------------------------------

    def build_backend_service(
        self, body: dict[str, Any], scope: str, name: str, existing: dict[str, Any] | None
    ) -> Any:
        # EXTERNAL when left out, as for forwarding rules (gcloud compute backend-services create
        # documents --load-balancing-scheme default EXTERNAL).
        scheme = body.get("loadBalancingScheme") or "EXTERNAL"
        if existing and existing["loadBalancingScheme"] != scheme:
            raise err.invalid_field("resource.loadBalancingScheme", scheme, "The scheme cannot be changed.")
        passthrough = scheme in PASSTHROUGH
        # Recorded real traffic (tests/fakegce/conformance, regionalcomputeforwardingrulefull-direct): an
        # INTERNAL backend service inserted without protocol or health checks is accepted, answers with
        # no protocol field, and serves a TCP forwarding rule. Others default to HTTP (the REST
        # reference; unverified by a recording for EXTERNAL, where it makes a passthrough service invalid).
        protocol = body.get("protocol") or ("" if scheme == "INTERNAL" else "HTTP")
        if passthrough and protocol not in ("", "TCP", "UDP", "UNSPECIFIED"):
            raise err.invalid_field(
                "resource.protocol",
                protocol,
                f"A backend service with scheme {scheme} needs TCP, UDP or UNSPECIFIED.",
            )
        checks = body.get("healthChecks") or []
        if passthrough and scheme != "INTERNAL" and not checks:  # INTERNAL: accepted without (recorded)
            raise err.required("resource.healthChecks")
        if len(checks) > 1:
            raise err.invalid_field("resource.healthChecks", ",".join(checks), "At most one health check.")
        check_links = []
        for i, ref in enumerate(checks):
            check = self.resolve(ref, "healthChecks", f"resource.healthChecks[{i}]")
            if "region" not in check:
                # A global health check serves an internal passthrough backend service, not an external
                # one (Google's "Health checks overview", the load balancer guide table: internal
                # passthrough Network Load Balancer "global or regional", external passthrough
                # "regional").
                if scheme != "INTERNAL":
                    raise err.invalid_field(
                        f"resource.healthChecks[{i}]",
                        ref,
                        f"A {scheme} backend service needs a regional health check.",
                    )
                self.used.add("compute.healthChecks.useReadOnly")
            elif check["region"] != self.scope_link(scope):
                raise err.invalid_field(f"resource.healthChecks[{i}]", ref, "Must be in the same region.")
            else:
                self.used.add("compute.regionHealthChecks.useReadOnly")
            check_links.append(check["selfLink"])
        affinity = body.get("sessionAffinity") or "NONE"
        if passthrough and affinity not in _PASSTHROUGH_AFFINITIES[: 5 if scheme == "INTERNAL" else 4]:
            raise err.invalid_field(
                "resource.sessionAffinity", affinity, f"Not supported by {scheme} passthrough load balancing."
            )
        backends = []
        groups: set[str] = set()
        for i, backend in enumerate(body.get("backends") or []):
            if not backend.get("group"):
                raise err.required(f"resource.backends[{i}].group")
            group = self.resolve(backend["group"], "instanceGroups", f"resource.backends[{i}].group")
            self.used.add("compute.instanceGroups.use")
            if group["selfLink"] in groups:
                raise err.invalid_field(
                    f"resource.backends[{i}].group", backend["group"], "Duplicate backend group."
                )
            groups.add(group["selfLink"])
            mode = backend.get("balancingMode") or ("CONNECTION" if passthrough else "UTILIZATION")
            if passthrough and mode != "CONNECTION":
                raise err.invalid_field(
                    f"resource.backends[{i}].balancingMode",
                    mode,
                    "Passthrough load balancing needs CONNECTION.",
                )
            out = {k: copy.deepcopy(v) for k, v in backend.items() if v is not None}
            out.update(group=group["selfLink"], balancingMode=mode)
            backends.append(out)
        rel = self.rel(scope, "backendServices", name)
        self.check_load_balanced_membership(extra=(rel, groups))
        draining = body.get("connectionDraining") or {}
        resource: dict[str, Any] = {
            "kind": "compute#backendService",
            "id": existing["id"] if existing else self.new_id(),
            "creationTimestamp": existing["creationTimestamp"] if existing else timestamp(),
            "name": name,
            "description": body.get("description", ""),
            "selfLink": self.link(rel),
            "region": self.scope_link(scope),
            "loadBalancingScheme": scheme,
            "protocol": protocol,
            "sessionAffinity": affinity,
            "healthChecks": check_links,
            "timeoutSec": int_field(body, "timeoutSec", 30, 1, 2**31 - 1),
            "connectionDraining": {
                "drainingTimeoutSec": int_field(
                    draining, "drainingTimeoutSec", 0, 0, 3600, where="resource.connectionDraining"
                )
            },
            "fingerprint": new_fingerprint(),
        }
        if not check_links:
            del resource["healthChecks"]
        if not protocol:
            del resource["protocol"]
        if backends:
            resource["backends"] = backends
        if body.get("network"):
            resource["network"] = self.resolve(body["network"], "networks", "resource.network")["selfLink"]
        for key in ("failoverPolicy", "logConfig", "connectionTrackingPolicy"):
            if body.get(key):
                resource[key] = copy.deepcopy(body[key])
        return resource

    def check_load_balanced_membership(self, extra: tuple[str, set[str]] | None = None) -> None:
        """GCE: an instance may belong to at most one load-balanced instance group."""
        balanced: set[str] = set()
        for rel, service in self.store["backendServices"].items():
            if extra is None or rel != extra[0]:
                balanced.update(b["group"] for b in service.get("backends", ()))
        if extra is not None:
            balanced.update(extra[1])
        seen: dict[str, str] = {}
        for group in sorted(balanced):
            for instance in self.members.get(group.removeprefix(GOOGLE), ()):
                if instance in seen:
                    raise err.invalid(
                        f"Validation failed for instance '{instance.removeprefix(GOOGLE)}': instance may "
                        "belong to at most one load-balanced instance group "
                        f"(it is in '{seen[instance]}' and '{group}')."
                    )
                seen[instance] = group

    # --- generic insert / update / delete for BS, HC, firewalls -------------------------------------

    def insert_with(self, collection: str, message: str, builder: Any, request: Request) -> Mutation:
        scope = self.scope_of(request.params)
        body = request.body
        self.check_supported(message, body)
        name = check_name(body.get("name"))
        rel = self.rel(scope, collection, name)
        if rel in self.store[collection]:
            raise err.already_exists(rel)
        resource = builder(body, scope, name, None)

        def apply() -> str:
            self.store[collection][rel] = resource
            return str(resource["id"])

        return Mutation("insert", rel, scope, apply)

    def update_with(
        self, collection: str, message: str, builder: Any, request: Request, key: str
    ) -> Mutation:
        scope = self.scope_of(request.params)
        name = request.params[key]
        rel = self.rel(scope, collection, name)
        existing = self.find(collection, rel)
        body = request.body
        self.check_supported(message, body)
        if "fingerprint" in existing:
            given = body.get("fingerprint")
            if given is None and request.method == "PUT":
                raise err.precondition("An up-to-date fingerprint must be provided to update the resource.")
            if given is not None and given != existing["fingerprint"]:
                raise err.precondition("Supplied fingerprint does not match current metadata fingerprint.")
        if body.get("name") not in (None, name):
            raise err.invalid_field(
                "resource.name", body["name"], "The name of a resource cannot be changed."
            )
        if request.method == "PATCH":
            merged = {
                k: v for k, v in public(existing).items() if k not in OUTPUT_ONLY and k != "fingerprint"
            }
            for k, v in body.items():
                if v is None:
                    merged.pop(k, None)
                elif k not in OUTPUT_ONLY:
                    merged[k] = v
            body = merged
        resource = builder(body, scope, name, existing)

        def apply() -> str:
            self.store[collection][rel] = resource
            return str(resource["id"])

        if request.method == "PATCH":
            # GCE names a firewall patch's operation "compute.firewalls.patch", other patches "patch"
            # (recorded real traffic: computefirewall, regionalcomputeforwardingrulefull-direct)
            kind = "compute.firewalls.patch" if collection == "firewalls" else "patch"
        else:
            kind = "update"
        return Mutation(kind, rel, scope, apply)

    def delete_with(self, collection: str, kind: str, request: Request, key: str) -> Mutation:
        scope = self.scope_of(request.params)
        rel = self.rel(scope, collection, request.params[key])
        resource = self.find(collection, rel)
        user = self.user_of(resource["selfLink"])
        if user is not None:
            raise err.in_use(kind, rel, user)

        def apply() -> str:
            del self.store[collection][rel]
            self.members.pop(rel, None)
            return str(resource["id"])

        return Mutation("delete", rel, scope, apply)

    def user_of(self, link: str) -> str | None:
        """The first resource referencing ``link`` (forwarding rule → backend service or target pool →
        health check / group).

        A target pool used by a forwarding rule, and a legacy health check used by a target pool, are
        refused deletion like the others: upstream deletes the rule first because "the forwarding rule
        must be deleted before either the target pool can", and expects the shared node health check's
        delete to fail while "any other target pool is using it" (cloud-provider-gcp
        gce_loadbalancer_external.go, ensureExternalLoadBalancerDeleted and
        DeleteExternalTargetPoolAndChecks, which treat the refusal as isInUsedByError).
        """
        for rel, rule in self.store["forwardingRules"].items():
            if link in (rule.get("backendService"), rule.get("target")):
                return rel
        for rel, pool in self.store["targetPools"].items():
            if link in pool.get("healthChecks", ()):
                return rel
        for rel, service in self.store["backendServices"].items():
            if link in service.get("healthChecks", ()) or any(
                b["group"] == link for b in service.get("backends", ())
            ):
                return rel
        return None

    # --- firewalls --------------------------------------------------------------------------------

    def build_firewall(
        self, body: dict[str, Any], scope: str, name: str, existing: dict[str, Any] | None
    ) -> Any:
        network = self.resolve(
            body.get("network") or "global/networks/default", "networks", "resource.network"
        )
        direction = body.get("direction") or "INGRESS"
        allowed, denied = body.get("allowed") or [], body.get("denied") or []
        if bool(allowed) == bool(denied):
            raise err.invalid_field("resource.allowed", "", "Exactly one of allowed or denied must be given.")
        rules_key, rules = ("allowed", allowed) if allowed else ("denied", denied)
        out_rules = []
        for i, rule in enumerate(rules):
            where = f"resource.{rules_key}[{i}]"
            protocol = rule.get("IPProtocol")
            if not protocol:
                raise err.required(f"{where}.IPProtocol")
            numeric = protocol.isdigit() and int(protocol) <= 255
            if protocol not in _FW_PROTOCOLS and not numeric:
                raise err.invalid_field(
                    f"{where}.IPProtocol", protocol, f"Must be one of {_FW_PROTOCOLS} or 0-255."
                )
            out = {"IPProtocol": protocol}
            if rule.get("ports"):
                if protocol not in ("tcp", "udp", "sctp", "all", "6", "17", "132"):
                    raise err.invalid_field(f"{where}.ports", rule["ports"], "Ports need tcp, udp or sctp.")
                for j, port in enumerate(rule["ports"]):
                    check_port_range(port, f"{where}.ports[{j}]")
                out["ports"] = list(rule["ports"])
            out_rules.append(out)
        for key in ("sourceRanges", "destinationRanges"):
            for i, cidr in enumerate(body.get(key) or []):
                check_cidr(cidr, f"resource.{key}[{i}]")
        for a, b in (("targetTags", "targetServiceAccounts"), ("sourceTags", "sourceServiceAccounts")):
            if body.get(a) and body.get(b):
                raise err.invalid_field(f"resource.{a}", body[a], f"{a} and {b} are mutually exclusive.")
        rel = self.rel(scope, "firewalls", name)
        resource: dict[str, Any] = {
            "kind": "compute#firewall",
            "id": existing["id"] if existing else self.new_id(),
            "creationTimestamp": existing["creationTimestamp"] if existing else timestamp(),
            "name": name,
            **described(body),
            "network": network["selfLink"],
            "priority": int_field(body, "priority", 1000, 0, 65535),
            "direction": direction,
            rules_key: out_rules,
            "disabled": bool(body.get("disabled")),
            "selfLink": self.link(rel),
        }
        if body.get("logConfig"):  # left out unless given (recorded real traffic: computefirewall)
            resource["logConfig"] = copy.deepcopy(body["logConfig"])
        if direction == "INGRESS":
            if body.get("destinationRanges"):
                resource["destinationRanges"] = list(body["destinationRanges"])
            # an ingress rule without sources answers without sourceRanges (recorded real traffic:
            # computefirewall); it is not filled in with 0.0.0.0/0
            if body.get("sourceRanges"):
                resource["sourceRanges"] = list(body["sourceRanges"])
        else:
            if body.get("sourceTags") or body.get("sourceServiceAccounts"):
                raise err.invalid_field(
                    "resource.sourceTags", body.get("sourceTags"), "Not allowed for EGRESS."
                )
            resource["destinationRanges"] = list(body.get("destinationRanges") or ["0.0.0.0/0"])
            if body.get("sourceRanges"):
                resource["sourceRanges"] = list(body["sourceRanges"])
        for key in ("sourceTags", "targetTags", "sourceServiceAccounts", "targetServiceAccounts"):
            if body.get(key):
                resource[key] = list(body[key])
        return resource

    def delete_firewall(self, request: Request) -> Mutation:
        return self.delete_with("firewalls", "firewall", request, "firewall")

    # --- instance groups --------------------------------------------------------------------------

    def build_instance_group(self, body: dict[str, Any], scope: str, name: str, existing: Any) -> Any:
        rel = self.rel(scope, "instanceGroups", name)
        resource: dict[str, Any] = {
            "kind": "compute#instanceGroup",
            "id": self.new_id(),
            "creationTimestamp": timestamp(),
            "name": name,
            **described(body),
            "zone": self.scope_link(scope),
            "size": 0,
            "fingerprint": new_fingerprint(),
            "selfLink": self.link(rel),
        }
        if body.get("network"):
            resource["network"] = self.resolve(body["network"], "networks", "resource.network")["selfLink"]
        if body.get("subnetwork"):
            subnet = self.resolve(body["subnetwork"], "subnetworks", "resource.subnetwork")
            resource["subnetwork"] = subnet["selfLink"]
            resource.setdefault("network", subnet["network"])
        ports = []
        for i, port in enumerate(body.get("namedPorts") or []):
            check_name(port.get("name"), f"resource.namedPorts[{i}].name")
            number = int_field(port, "port", 0, 1, 65535, where=f"resource.namedPorts[{i}]")
            ports.append({"name": port["name"], "port": number})
        if ports:
            resource["namedPorts"] = ports
        return resource

    def _group(self, request: Request) -> tuple[str, str, dict[str, Any]]:
        scope = self.check_zone(request.params["zone"])
        rel = self.rel(scope, "instanceGroups", request.params["instanceGroup"])
        return scope, rel, self.find("instanceGroups", rel)

    def _instance_refs(self, request: Request, message: str, group: dict[str, Any]) -> list[dict[str, Any]]:
        check_message(message, request.body)
        refs = request.body.get("instances") or []
        if not refs:
            raise err.required("resource.instances")
        found: list[dict[str, Any]] = []
        for i, ref in enumerate(refs):
            instance = self.resolve(ref.get("instance"), "instances", f"resource.instances[{i}].instance")
            if instance["zone"] != group["zone"]:
                raise err.invalid_field(
                    f"resource.instances[{i}].instance",
                    ref["instance"],
                    "The instance must be in the group's zone.",
                )
            if instance in found:
                raise err.invalid_field(
                    f"resource.instances[{i}].instance", ref["instance"], "Duplicate instance."
                )
            found.append(instance)
        return found

    def add_instances(self, request: Request) -> Mutation:
        scope, rel, group = self._group(request)
        instances = self._instance_refs(request, "InstanceGroupsAddInstancesRequest", group)
        members = self.members.setdefault(rel, [])
        network = group.get("network")
        subnet_seen = ""
        for instance in instances:
            link = instance["selfLink"]
            if link in members:
                message = f"Resource '{link.removeprefix(GOOGLE)}' is already a member of '{rel}'."
                raise ApiError(400, "memberAlreadyExists", message)
            nic_network = instance["networkInterfaces"][0]["network"]
            if network and nic_network != network:
                raise err.invalid_field(
                    "resource.instances",
                    link,
                    f"All instances of a group must be in its network ({network}).",
                )
            network = nic_network
            # Google Cloud's unmanaged instance group rules: the VMs of one group are in the same zone,
            # VPC network and subnet ("Creating groups of unmanaged instances", restrictions)
            nic_subnet = instance["networkInterfaces"][0].get("subnetwork", "")
            first = self._group_subnet(members) or subnet_seen
            if first and nic_subnet and nic_subnet != first:
                raise err.invalid_field(
                    "resource.instances",
                    link,
                    f"All instances of a group must be in one subnetwork ({first}).",
                )
            subnet_seen = subnet_seen or nic_subnet
        balanced = {b["group"] for s in self.store["backendServices"].values() for b in s.get("backends", ())}
        if group["selfLink"] in balanced:
            for instance in instances:
                for other_rel, other in self.members.items():
                    if (
                        other_rel != rel
                        and self.link(other_rel) in balanced
                        and instance["selfLink"] in other
                    ):
                        member = instance["selfLink"].removeprefix(GOOGLE)
                        message = f"Resource '{member}' is already a member of '{other_rel}'."
                        raise ApiError(400, "memberAlreadyExists", message)

        def apply() -> str:
            members.extend(i["selfLink"] for i in instances)
            group.update(size=len(members), fingerprint=new_fingerprint())
            if network:
                group["network"] = network
            return str(group["id"])

        return Mutation("addInstances", rel, scope, apply)

    def _group_subnet(self, members: list[str]) -> str:
        """The subnetwork of a group's current members ('' for an empty group)."""
        instances = self.all_links("instances")
        for link in members:
            member = instances.get(link)
            if member is not None:
                return str(member["networkInterfaces"][0].get("subnetwork", ""))
        return ""

    def remove_instances(self, request: Request) -> Mutation:
        scope, rel, group = self._group(request)
        instances = self._instance_refs(request, "InstanceGroupsRemoveInstancesRequest", group)

        def apply() -> str:
            members = self.members.setdefault(rel, [])
            for instance in instances:  # removing a non-member is a no-op
                if instance["selfLink"] in members:
                    members.remove(instance["selfLink"])
            group.update(size=len(members), fingerprint=new_fingerprint())
            return str(group["id"])

        return Mutation("removeInstances", rel, scope, apply)

    def list_instances(self, request: Request) -> Any:
        _scope, rel, _group = self._group(request)
        check_message("InstanceGroupsListInstancesRequest", request.body or {})
        state = (request.body or {}).get("instanceState") or "ALL"
        items = []
        for link in self.members.get(rel, ()):
            instance = self.store["instances"][link.removeprefix(GOOGLE)]
            if state == "ALL" or instance["status"] == "RUNNING":
                items.append({"instance": link, "status": instance["status"]})
        keep = parse_filter(request.query.get("filter", ""))
        items = [item for item in items if keep(item)]
        return self.page(items, request.query, "compute#instanceGroupsListInstances", self.link(rel))

    # --- legacy HTTP health checks and target pools (the upstream provider's external LB) ---------------

    def build_http_health_check(
        self, body: dict[str, Any], scope: str, name: str, existing: dict[str, Any] | None
    ) -> Any:
        """A legacy ``global/httpHealthChecks`` check, the only kind a target pool accepts.

        Defaults and shape from the Compute REST reference (httpHealthChecks: port 80, requestPath "/",
        checkIntervalSec 5, timeoutSec 5, healthyThreshold 2, unhealthyThreshold 2) and recorded real
        traffic (k8s-config-connector computehttphealthcheck/_http_old_controller.log: insert and update
        answer an Operation, a GET answers ``kind: compute#httpHealthCheck`` with ``proxyHeader: NONE``
        and no ``host`` when none was given; update is a PUT of the whole resource).
        """
        interval = int_field(body, "checkIntervalSec", 5, 1, 300)
        timeout = int_field(body, "timeoutSec", 5, 1, 300)
        if timeout > interval:
            raise err.invalid_field(
                "resource.timeoutSec", timeout, "timeoutSec must be less than or equal to checkIntervalSec."
            )
        path = body.get("requestPath") or "/"
        if not str(path).startswith("/"):
            raise err.invalid_field("resource.requestPath", path, "Must start with '/'.")
        rel = self.rel(scope, "httpHealthChecks", name)
        resource: dict[str, Any] = {
            "kind": "compute#httpHealthCheck",
            "id": existing["id"] if existing else self.new_id(),
            "creationTimestamp": existing["creationTimestamp"] if existing else timestamp(),
            "name": name,
            **described(body),
            "port": int_field(body, "port", 80, 1, 65535),
            "requestPath": path,
            "checkIntervalSec": interval,
            "timeoutSec": timeout,
            "healthyThreshold": int_field(body, "healthyThreshold", 2, 1, 10),
            "unhealthyThreshold": int_field(body, "unhealthyThreshold", 2, 1, 10),
            "proxyHeader": "NONE",
            "selfLink": self.link(rel),
        }
        if body.get("host"):
            resource["host"] = body["host"]
        return resource

    def build_target_pool(
        self, body: dict[str, Any], scope: str, name: str, existing: dict[str, Any] | None
    ) -> Any:
        """A target pool (Compute REST reference, targetPools): at most one health check, and only a
        legacy HttpHealthCheck ("Only legacy HttpHealthChecks are supported. Only one health check may
        be specified."); instances of the region's zones; sessionAffinity NONE by default. Instances
        may be named by a path with a leading slash, as upstream does (cloud-provider-gcp
        gce_loadbalancer_external.go ``makeComparableHostPath``: ``/zones/Z/instances/N``); GCE answers
        with full URLs."""
        checks = body.get("healthChecks") or []
        if len(checks) > 1:
            raise err.invalid_field(
                "resource.healthChecks", ",".join(checks), "Only one health check may be specified."
            )
        check_links = []
        for i, ref in enumerate(checks):
            check = self.resolve(ref, "httpHealthChecks", f"resource.healthChecks[{i}]")
            self.used.add("compute.httpHealthChecks.useReadOnly")
            check_links.append(check["selfLink"])
        affinity = body.get("sessionAffinity") or "NONE"
        if affinity not in _TARGET_POOL_AFFINITIES:
            raise err.invalid_field(
                "resource.sessionAffinity", affinity, f"A target pool takes one of {_TARGET_POOL_AFFINITIES}."
            )
        instances = self._pool_instances(body.get("instances") or [], "resource.instances")
        rel = self.rel(scope, "targetPools", name)
        resource: dict[str, Any] = {
            "kind": "compute#targetPool",
            "id": self.new_id(),
            "creationTimestamp": timestamp(),
            "name": name,
            **described(body),
            "region": self.scope_link(scope),
            "sessionAffinity": affinity,
            "selfLink": self.link(rel),
        }
        if check_links:
            resource["healthChecks"] = check_links
        if instances:
            resource["instances"] = instances
        return resource

    def _pool_instances(self, refs: list[Any], where: str) -> list[str]:
        links: list[str] = []
        for i, ref in enumerate(refs):
            instance = self.resolve(ref, "instances", f"{where}[{i}]")
            if instance["zone"].rsplit("/", 1)[-1] not in self.zones:
                raise err.invalid_field(f"{where}[{i}]", ref, "The instance must be in the pool's region.")
            if instance["selfLink"] in links:
                raise err.invalid_field(f"{where}[{i}]", ref, "Duplicate instance.")
            self.used.add("compute.instances.use")
            links.append(instance["selfLink"])
        return links

    def _pool(self, request: Request) -> tuple[str, str, dict[str, Any]]:
        scope = self.check_region(request.params["region"])
        rel = self.rel(scope, "targetPools", request.params["targetPool"])
        return scope, rel, self.find("targetPools", rel)

    def add_pool_instance(self, request: Request) -> Mutation:
        """targetPools.addInstance (``{"instances": [{"instance": URL}]}``). An instance that is already
        a member is left as it is: no recording or reference says GCE refuses it (unverified)."""
        scope, rel, pool = self._pool(request)
        check_message("TargetPoolsAddInstanceRequest", request.body)
        refs = [r.get("instance") for r in request.body.get("instances") or []]
        if not refs:
            raise err.required("resource.instances")
        links = self._pool_instances(refs, "resource.instances")

        def apply() -> str:
            members = list(pool.get("instances", ()))
            members.extend(link for link in links if link not in members)
            pool["instances"] = members
            return str(pool["id"])

        return Mutation("addInstance", rel, scope, apply)

    def remove_pool_instance(self, request: Request) -> Mutation:
        """targetPools.removeInstance; removing a non-member changes nothing (unverified, as above)."""
        scope, rel, pool = self._pool(request)
        check_message("TargetPoolsRemoveInstanceRequest", request.body)
        refs = [r.get("instance") for r in request.body.get("instances") or []]
        if not refs:
            raise err.required("resource.instances")
        links = self._pool_instances(refs, "resource.instances")

        def apply() -> str:
            members = [m for m in pool.get("instances", ()) if m not in links]
            pool.pop("instances", None)
            if members:
                pool["instances"] = members
            return str(pool["id"])

        return Mutation("removeInstance", rel, scope, apply)

    # --- regions and zones ------------------------------------------------------------------------

    def region_resource(self) -> dict[str, Any]:
        return {
            "kind": "compute#region",
            "id": "1000",
            "name": self.region,
            "description": self.region,
            "status": "UP",
            "zones": [self.scope_link(f"zones/{z}") for z in self.zones],
            "selfLink": self.scope_link(f"regions/{self.region}"),
        }

    def zone_resource(self, zone: str) -> dict[str, Any]:
        return {
            "kind": "compute#zone",
            "id": str(2000 + self.zones.index(zone)),
            "name": zone,
            "description": zone,
            "status": "UP",
            "region": self.scope_link(f"regions/{self.region}"),
            "selfLink": self.scope_link(f"zones/{zone}"),
        }

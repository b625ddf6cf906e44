"""The load balancer the upstream GCP cloud provider built for a Service: found, proven, deleted on request.

Why it exists: a cluster that moves from the upstream cloud-controller-manager to this controller has
Services whose address is served by upstream's load balancer. Building ours beside it would give the
Service a new address without its asking (the trust contract: never change an address unless the Service
asked), and leave upstream's parts behind. So the provider first looks for upstream's load balancer; it
refuses (:class:`ccm.cloudprovider.ForeignLoadBalancer`) unless the Service asks for replacement, and then
deletes upstream's per-Service parts once its own load balancer is complete.

Names are upstream's (kubernetes/cloud-provider-gcp ``providers/gce/gce_loadbalancer_naming.go`` and
k8s.io/cloud-provider ``DefaultLoadBalancerName``): the load balancer ``lb`` is ``"a"`` + the Service UID
without dashes, cut to 32 characters.

* external (``gce_loadbalancer_external.go``): regional forwarding rule ``lb`` → target pool ``lb``; traffic
  firewall ``k8s-fw-{lb}`` (and ``k8s-fw-{lb}-deny`` with the opt-in deny rule); legacy HTTP health check
  ``lb`` with firewall ``k8s-{lb}-http-hc`` (``externalTrafficPolicy: Local``), or the cluster's shared
  ``k8s-{cid}-node`` with ``k8s-{cid}-node-http-hc``;
* internal (``gce_loadbalancer_internal.go``): forwarding rule ``lb`` → regional backend service ``lb``
  (or a shared ``k8s-{cid}-internal-…``); global health check ``lb`` or shared ``k8s-{cid}-node``, each
  with the firewall ``{hc}-hc``; traffic firewall ``k8s-fw-{lb}`` and its legacy name ``{lb}``; the
  cluster's instance groups ``k8s-ig--{cid}``;
* both: the transient address ``lb`` (normally released at the end of each of upstream's syncs).

Ownership evidence: the forwarding rule's description ``{"kubernetes.io/service-name":"ns/name"}`` must
name the Service; nothing is read further for a rule that does not. Every per-Service part must carry
upstream's marker naming the Service as well (the legacy health check names itself, as upstream writes
it). The cluster's shared parts (upstream's ``cid`` is read from the names the rule's target refers to)
are deleted only when GCE says nothing else uses them: it refuses with 400 "being used by", as
upstream's own delete expects (``DeleteExternalTargetPoolAndChecks``).

Cost: finding costs one GET of the forwarding rule when there is none; listing the parts of a rule that
names the Service costs a GET per part. The provider looks only for a Service with an address in its
status that no load balancer of ours serves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from ccm.cloudprovider import ForeignPart, LoadBalancerRequest
from providers.gcp.client import DeleteHttpHealthCheckRequest, GCEClients, OperationFailed
from providers.gcp.ownership import is_in_use

logger = logging.getLogger(__name__)

SERVICE_KEY = "kubernetes.io/service-name"
CLUSTER_ID_KEY = "kubernetes.io/cluster-id"
NAME_LENGTH = 32  # k8s.io/cloud-provider DefaultLoadBalancerName: "Shorten the name to 32 characters"
_SHARED_HEALTH_CHECK = re.compile(r"k8s-(?P<cid>[a-z0-9]*)-node")
_SHARED_BACKEND = re.compile(r"k8s-[a-z0-9]*-internal-(tcp|udp)-nmv1-[0-9a-f]{16}")


def load_balancer_name(*, uid: str) -> str:
    """Upstream's name of a Service's load balancer (``cloudprovider.DefaultLoadBalancerName``)."""
    return ("a" + uid.replace("-", ""))[:NAME_LENGTH]


def traffic_firewall_name(*, lb_name: str) -> str:
    """``MakeFirewallName``."""
    return f"k8s-fw-{lb_name}"


def deny_firewall_name(*, lb_name: str) -> str:
    """``MakeFirewallDenyName`` (only with upstream's opt-in ``--enable-l4-deny-firewall``)."""
    return f"k8s-fw-{lb_name}-deny"


def nodes_health_check_name(*, cluster_id: str) -> str:
    """``MakeNodesHealthCheckName``: the cluster's shared health check ``k8s-{cid}-node``."""
    return f"k8s-{cluster_id}-node"


def external_health_check_firewall_name(*, health_check: str) -> str:
    """``MakeHealthCheckFirewallName``: ``k8s-{cid}-node-http-hc`` (shared) or ``k8s-{lb}-http-hc``."""
    if _SHARED_HEALTH_CHECK.fullmatch(health_check):
        return f"{health_check}-http-hc"
    return f"k8s-{health_check}-http-hc"


def internal_health_check_firewall_name(*, health_check: str) -> str:
    """``makeHealthCheckFirewallNameFromHC``: ``k8s-{cid}-node-hc`` (shared) or ``{lb}-hc``."""
    return f"{health_check}-hc"


def service_ips(request: LoadBalancerRequest) -> tuple[str, ...]:
    """The IPs among the Service's status addresses (hostnames are never a GCE load balancer's)."""
    ips = []
    for value in request.status_addresses:
        with contextlib.suppress(ValueError):
            ips.append(str(ipaddress.ip_address(value)))
    return tuple(ips)


def marker(description: str | None) -> dict[str, str]:
    """Upstream's JSON description ({} for anything else)."""
    try:
        data = json.loads(description or "")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def last_segment(link: str) -> str:
    """A resource's name from its compute URL (or the name itself)."""
    return link.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Part:
    """One of upstream's resources, and how to delete it."""

    kind: str  # forwardingRules | addresses | targetPools | backendServices | firewalls |
    #            httpHealthChecks | healthChecks | instanceGroups
    name: str
    label: str  # what the user reads (ForeignPart.kind)
    detail: str = ""
    shared: bool = False  # the cluster's, used by upstream's other LBs: deleted only when GCE lets it go
    needs: str = ""  # deleted only once this part (a health check, for its firewall) is gone
    zone: str = ""  # instance groups

    def public(self) -> ForeignPart:
        return ForeignPart(kind=self.label, name=self.name, detail=self.detail)


@dataclass(frozen=True)
class UpstreamLoadBalancer:
    """Upstream's load balancer of one Service; ``parts`` in deletion order, the forwarding rule first."""

    name: str
    address: str
    scheme: str  # EXTERNAL | INTERNAL
    parts: tuple[Part, ...]
    network_tier: str = ""  # the rule's (external)
    target_pool: bool = False  # the rule's target is a target pool (upstream's external LB)
    subnetwork: str = ""  # the rule's subnetwork name (internal: its IP belongs to it)
    instance_groups: tuple[str, ...] = ()  # names of upstream's k8s-ig groups its backend service uses
    rule: Any = field(default=None, compare=False, repr=False)  # upstream's rule as read (None: gone)

    def foreign_parts(self) -> tuple[ForeignPart, ...]:
        return tuple(part.public() for part in self.parts)

    def without(self, *kinds: str) -> UpstreamLoadBalancer:
        """The same load balancer without the parts of ``kinds`` (already deleted by the takeover)."""
        return dataclasses.replace(self, parts=tuple(p for p in self.parts if p.kind not in kinds))


@dataclass(frozen=True)
class Removal:
    """What :meth:`Upstream.delete` did: parts deleted, and shared ones kept because others use them."""

    deleted: tuple[Part, ...]
    kept: tuple[Part, ...]


class Upstream:
    """Reads (and on request deletes) upstream's load balancer of a Service, with the provider's clients."""

    def __init__(
        self, *, clients: GCEClients, network_project: str, instance_group: str = "", cluster_id: str = ""
    ) -> None:
        """``instance_group``: the name of this controller's instance groups; upstream's groups of that
        name (shared through the cloud config's ``upstream-cluster-id``) are the cluster's, never
        upstream's parts to delete. ``cluster_id``: upstream's cluster id when the config names it, so
        that the shared health check of an interrupted takeover is still found by its name."""
        self.c = clients
        self.project, self.region = clients.project, clients.region
        self.network_project = network_project
        self.instance_group = instance_group
        self.cluster_id = cluster_id

    # -- reading ----------------------------------------------------------------------------------------

    def find(self, *, request: LoadBalancerRequest) -> UpstreamLoadBalancer | None:
        """Upstream's load balancer of ``request``'s Service, or None (one GET when there is none).

        A rule of upstream's name whose marker names another Service (or none) is not this Service's:
        None, and nothing more is read.
        """
        name = load_balancer_name(uid=request.uid)
        rule = self._read(
            "forwardingRules.get",
            self.c.forwarding_rules.get,
            project=self.project,
            region=self.region,
            forwarding_rule=name,
        )
        if rule is None:
            return None
        if marker(rule.description).get(SERVICE_KEY) != request.key:
            logger.info(
                "%s: forwarding rule %s has upstream's name but its description does not name the Service; "
                "it is not the Service's and is left alone",
                request.key,
                name,
            )
            return None
        ip = str(rule.I_p_address)
        scheme = str(rule.load_balancing_scheme or "EXTERNAL")
        ports = str(rule.port_range) or ",".join(rule.ports) or ("all" if rule.all_ports else "")
        parts = [
            Part(
                kind="forwardingRules",
                name=name,
                label="forwarding rule",
                detail=f"{ip} ({scheme.lower()}, {rule.I_p_protocol} {ports})".strip(),
            )
        ]
        parts += self._address(name, request.key)
        groups: list[str] = []
        if rule.target and "/targetPools/" in str(rule.target):
            parts += self._external(name, request.key, last_segment(str(rule.target)))
        elif rule.backend_service:
            parts += self._internal(name, request.key, last_segment(str(rule.backend_service)), groups=groups)
        else:
            parts += self._firewalls(name, request.key, internal=False)
        return UpstreamLoadBalancer(
            name=name,
            address=ip,
            scheme=scheme,
            parts=tuple(parts),
            network_tier=str(rule.network_tier or "PREMIUM") if scheme == "EXTERNAL" else "",
            target_pool=bool(rule.target and "/targetPools/" in str(rule.target)),
            subnetwork=last_segment(str(rule.subnetwork)) if rule.subnetwork else "",
            instance_groups=tuple(sorted(set(groups))),
            rule=rule,
        )

    def remains(
        self, *, request: LoadBalancerRequest, scheme: str = "EXTERNAL"
    ) -> UpstreamLoadBalancer | None:
        """What is left of upstream's load balancer of the Service (of ``scheme``) once its forwarding rule
        is gone (a takeover that stopped between deleting upstream's rule and deleting its last part), or
        None when nothing is left.

        Each part is read by upstream's name, as :meth:`find` reads it, so that a part whose holder was
        deleted first (the firewalls, once the target pool or backend service is gone) is still found.
        Costs five GETs (external) or seven (internal) when nothing is left, two more when the cloud
        config names upstream's cluster id (its shared health check and firewall); the provider asks only
        while its own forwarding rule is not complete yet.
        """
        name = load_balancer_name(uid=request.uid)
        parts = self._address(name, request.key)
        if scheme == "INTERNAL":
            parts += self._internal_remains(name, request.key)
            if not parts:
                return None
            return UpstreamLoadBalancer(name=name, address="", scheme=scheme, parts=tuple(parts))
        pool = self._read(
            "targetPools.get",
            self.c.target_pools.get,
            project=self.project,
            region=self.region,
            target_pool=name,
        )
        if pool is not None:
            parts += self._external(name, request.key, name, pool=pool)
        else:
            parts += self._firewalls(name, request.key, internal=False)
            parts += self._legacy_health_check(name, name=name, key=request.key)
            if self.cluster_id:  # the shared check: deleted only when no target pool uses it
                shared = nodes_health_check_name(cluster_id=self.cluster_id)
                parts += self._legacy_health_check(shared, name=name, key=request.key)
        if not parts:
            return None
        return UpstreamLoadBalancer(name=name, address="", scheme="EXTERNAL", parts=tuple(parts))

    def _internal_remains(self, name: str, key: str) -> list[Part]:
        service = self._read(
            "regionBackendServices.get",
            self.c.backend_services.get,
            project=self.project,
            region=self.region,
            backend_service=name,
        )
        if service is not None:
            return self._internal(name, key, name, service=service)
        parts = self._firewalls(name, key, internal=True)
        parts += self._health_check(name, name=name, key=key)
        if self.cluster_id:  # the shared check: deleted only when no backend service uses it
            parts += self._health_check(
                nodes_health_check_name(cluster_id=self.cluster_id), name=name, key=key
            )
        return parts

    def _read(self, operation: str, fn: Any, /, **kwargs: Any) -> Any | None:
        try:
            return self.c.call(operation, fn, **kwargs)
        except gexc.NotFound:
            return None

    def _address(self, name: str, key: str) -> list[Part]:
        address = self._read(
            "addresses.get", self.c.addresses.get, project=self.project, region=self.region, address=name
        )
        if address is None or marker(address.description).get(SERVICE_KEY) != key:
            return []
        return [Part(kind="addresses", name=name, label="address", detail=str(address.address))]

    def _external(self, name: str, key: str, pool_name: str, *, pool: Any = None) -> list[Part]:
        """The target pool's parts; ``pool`` when the caller has just read it (else it is read here)."""
        parts: list[Part] = []
        if pool is None:
            pool = self._read(
                "targetPools.get",
                self.c.target_pools.get,
                project=self.project,
                region=self.region,
                target_pool=pool_name,
            )
        checks: list[str] = []
        if pool is not None:
            if pool_name != name or marker(pool.description).get(SERVICE_KEY) != key:
                logger.info("%s: target pool %s is not the Service's; left alone", key, pool_name)
            else:
                affinity = str(pool.session_affinity or "NONE")
                parts.append(
                    Part(
                        kind="targetPools",
                        name=pool_name,
                        label="target pool",
                        detail=f"{len(pool.instances)} instances, session affinity {affinity}",
                    )
                )
                checks = [last_segment(str(link)) for link in pool.health_checks]
        parts += self._firewalls(name, key, internal=False)
        for check in checks:
            parts += self._legacy_health_check(check, name=name, key=key)
        return parts

    def _legacy_health_check(self, check: str, *, name: str, key: str) -> list[Part]:
        found = self._read(
            "httpHealthChecks.get",
            self.c.http_health_checks.get,
            project=self.project,
            http_health_check=check,
        )
        firewall = external_health_check_firewall_name(health_check=check)
        shared = _SHARED_HEALTH_CHECK.fullmatch(check)
        # makeHTTPHealthCheck: the shared check's description names the check itself (sic); its firewall
        # carries the cluster id, a per-LB one the Service
        owner = (CLUSTER_ID_KEY, shared["cid"]) if shared else (SERVICE_KEY, key)
        if found is None:  # a takeover stopped right after deleting it: its firewall is left
            if not shared and check != name:
                return []
            return self._probe_firewall(firewall, check="", shared=bool(shared), owner=owner)
        if marker(found.get("description")).get(SERVICE_KEY) != (check if shared else name):
            return []
        if not shared and check != name:
            return []
        detail = f"port {found.get('port', 80)} {found.get('requestPath', '/')}"
        if shared:
            detail += "; shared by the cluster's target pools, deleted only when none uses it"
        parts = [
            Part(
                kind="httpHealthChecks",
                name=check,
                label="legacy HTTP health check",
                detail=detail,
                shared=bool(shared),
            )
        ]
        return parts + self._probe_firewall(firewall, check=check, shared=bool(shared), owner=owner)

    def _probe_firewall(
        self, firewall: str, *, check: str, shared: bool, owner: tuple[str, str]
    ) -> list[Part]:
        """The firewall letting a health check's probes in, when its description has ``owner`` (a marker
        key and value; no key: the name is the proof). ``check``: deleted only once that check is gone
        ('' when it already is)."""
        fw = self._firewall(firewall)
        if fw is None or (owner[0] and marker(fw.description).get(owner[0]) != owner[1]):
            return []
        detail = (
            "health-check probes; shared, deleted with its health check" if shared else "health-check probes"
        )
        return [
            Part(
                kind="firewalls",
                name=firewall,
                label="firewall rule",
                detail=detail,
                shared=shared,
                needs=check,
            )
        ]

    def _internal(
        self, name: str, key: str, service_name: str, *, service: Any = None, groups: list[str] | None = None
    ) -> list[Part]:
        """The backend service's parts; ``service`` when the caller has just read it. The names of the
        cluster's instance groups it uses are added to ``groups``."""
        parts: list[Part] = []
        if service is None:
            service = self._read(
                "regionBackendServices.get",
                self.c.backend_services.get,
                project=self.project,
                region=self.region,
                backend_service=service_name,
            )
        checks: list[str] = []
        backends: list[str] = []
        if service is not None:
            shared = bool(_SHARED_BACKEND.fullmatch(service_name))
            if shared or (service_name == name and marker(service.description).get(SERVICE_KEY) == key):
                parts.append(
                    Part(
                        kind="backendServices",
                        name=service_name,
                        label="backend service",
                        detail="shared, deleted only when no rule uses it" if shared else "internal",
                        shared=shared,
                    )
                )
                checks = [last_segment(str(link)) for link in service.health_checks]
                backends = [str(backend.group) for backend in service.backends]
            else:
                logger.info("%s: backend service %s is not the Service's; left alone", key, service_name)
        parts += self._firewalls(name, key, internal=True)
        for check in checks:
            parts += self._health_check(check, name=name, key=key)
        for group in backends:
            zone = group.split("/zones/", 1)[-1].split("/", 1)[0]
            group_name = last_segment(group)
            if group_name.startswith("k8s-ig") and groups is not None:
                groups.append(group_name)
            if group_name.startswith("k8s-ig") and group_name != self.instance_group:
                parts.append(
                    Part(
                        kind="instanceGroups",
                        name=group_name,
                        label="instance group",
                        detail=f"{zone}; shared, deleted only when no backend service uses it",
                        shared=True,
                        zone=zone,
                    )
                )
        return parts

    def _health_check(self, check: str, *, name: str, key: str) -> list[Part]:
        found = self._read(
            "healthChecks.get", self.c.global_health_checks.get, project=self.project, health_check=check
        )
        firewall = internal_health_check_firewall_name(health_check=check)
        shared = bool(_SHARED_HEALTH_CHECK.fullmatch(check))
        # newInternalLBHealthCheck: the shared check has no description; its firewall is found by name
        owner = ("", "") if shared else (SERVICE_KEY, key)
        if not shared and check != name:
            return []
        if found is None:  # a takeover stopped right after deleting it: its firewall is left
            return self._probe_firewall(firewall, check="", shared=shared, owner=owner)
        if not shared and marker(found.description).get(SERVICE_KEY) != key:
            return []
        detail = "shared, deleted only when nothing uses it" if shared else ""
        parts = [Part(kind="healthChecks", name=check, label="health check", detail=detail, shared=shared)]
        return parts + self._probe_firewall(firewall, check=check, shared=shared, owner=owner)

    def _firewalls(self, name: str, key: str, *, internal: bool) -> list[Part]:
        names = [traffic_firewall_name(lb_name=name), deny_firewall_name(lb_name=name)]
        if internal:
            names.append(name)  # ensureInternalFirewall's legacy name
        parts = []
        for fw_name in names:
            fw = self._firewall(fw_name)
            if fw is not None and marker(fw.description).get(SERVICE_KEY) == key:
                ranges = ",".join(fw.source_ranges)
                parts.append(
                    Part(kind="firewalls", name=fw_name, label="firewall rule", detail=f"from {ranges}")
                )
        return parts

    def _firewall(self, name: str) -> Any | None:
        return self._read("firewalls.get", self.c.firewalls.get, project=self.network_project, firewall=name)

    # -- deleting ---------------------------------------------------------------------------------------

    def delete(self, lb: UpstreamLoadBalancer) -> Removal:
        """Delete ``lb``'s parts in order; a shared part GCE says is still used is kept (and what needs
        it gone, its firewall, too). Parts already gone count as deleted."""
        deleted: list[Part] = []
        kept: list[Part] = []
        gone: set[str] = set()
        for part in lb.parts:
            if part.needs and part.needs not in gone:
                kept.append(part)
                continue
            if self._delete(part):
                deleted.append(part)
                gone.add(part.name)
            else:
                kept.append(part)
        logger.info(
            "deleted upstream's load balancer %s: %s; kept (still used): %s",
            lb.name,
            ", ".join(f"{p.label} {p.name}" for p in deleted) or "nothing",
            ", ".join(f"{p.label} {p.name}" for p in kept) or "nothing",
        )
        return Removal(deleted=tuple(deleted), kept=tuple(kept))

    def _delete(self, part: Part) -> bool:
        regional = {"project": self.project, "region": self.region}
        calls: dict[str, tuple[Any, Any, str, str]] = {
            "forwardingRules": (
                self.c.forwarding_rules.delete_unary,
                compute_v1.DeleteForwardingRuleRequest(**regional, forwarding_rule=part.name),
                "region",
                "",
            ),
            "addresses": (
                self.c.addresses.delete_unary,
                compute_v1.DeleteAddressRequest(**regional, address=part.name),
                "region",
                "",
            ),
            "targetPools": (
                self.c.target_pools.delete_unary,
                compute_v1.DeleteTargetPoolRequest(**regional, target_pool=part.name),
                "region",
                "",
            ),
            "backendServices": (
                self.c.backend_services.delete_unary,
                compute_v1.DeleteRegionBackendServiceRequest(**regional, backend_service=part.name),
                "region",
                "",
            ),
            "firewalls": (
                self.c.firewalls.delete_unary,
                compute_v1.DeleteFirewallRequest(project=self.network_project, firewall=part.name),
                "global",
                "",
            ),
            "httpHealthChecks": (
                self.c.http_health_checks.delete_unary,
                DeleteHttpHealthCheckRequest(project=self.project, http_health_check=part.name),
                "global",
                "",
            ),
            "healthChecks": (
                self.c.global_health_checks.delete_unary,
                compute_v1.DeleteHealthCheckRequest(project=self.project, health_check=part.name),
                "global",
                "",
            ),
            "instanceGroups": (
                self.c.instance_groups.delete_unary,
                compute_v1.DeleteInstanceGroupRequest(
                    project=self.project, zone=part.zone, instance_group=part.name
                ),
                "zone",
                part.zone,
            ),
        }
        fn, request, scope, location = calls[part.kind]
        operation = f"{'regionBackendServices' if part.kind == 'backendServices' else part.kind}.delete"
        try:
            self.c.mutate(operation, fn, request, scope=scope, location=location)
        except gexc.NotFound:
            return True
        except (gexc.BadRequest, OperationFailed) as exc:
            if is_in_use(exc):
                logger.info("upstream's %s %s is still in use; kept", part.label, part.name)
                return False
            raise
        return True


def taken_over_message(*, ip: str, removal: Removal, reserved_by_user: bool) -> str:
    """The Warning event of a takeover: the IP kept, the interruption, what of upstream's went or stayed."""
    deleted = ", ".join(f"{p.label} {p.name}" for p in removal.deleted) or "nothing"
    held = (
        "it stays reserved as the Service asks"
        if reserved_by_user
        else "it was reserved meanwhile and released once this controller's rule held it"
    )
    text = (
        f"the load balancer of the upstream cloud provider was taken over and the Service keeps its IP {ip} "
        f"({held}). {INTERRUPTION} Deleted: {deleted}"
    )
    if removal.kept:
        kept = ", ".join(f"{p.label} {p.name}" for p in removal.kept)
        text += f"; kept, as other load balancers still use them: {kept}"
    return text


INTERRUPTION = (
    "New connections to the IP were refused between the deletion of upstream's forwarding rule and the "
    "creation of this controller's (usually a few seconds, two GCE operations): GCE cannot move a "
    "forwarding rule from upstream's target pool or backend service to this controller's backend service, "
    "nor let two rules share an IP and port, "
    "and connections open at that moment may be reset."
)


def replaced_message(*, old: str, new: str, removal: Removal) -> str:
    """The Warning event of a replacement: the address change, and what of upstream's went or stayed."""
    deleted = ", ".join(f"{p.label} {p.name}" for p in removal.deleted) or "nothing"
    text = (
        f"the Service's address changed from {old} to {new}, as it asked (annotation "
        f"ccm-lb.io/replace-foreign-load-balancer): the load balancer of the upstream cloud provider was "
        f"replaced; deleted: {deleted}"
    )
    if removal.kept:
        kept = ", ".join(f"{p.label} {p.name}" for p in removal.kept)
        text += f"; kept, as other load balancers still use them: {kept}"
    return text

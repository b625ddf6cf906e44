"""Deploying a GCP :class:`~providers.gcp.model.Stack`: read back, then create, update or delete.

* Shared per cluster: the zones' unmanaged instance groups (membership changes are one call per
  zone, whatever the number of Services), the node health check and its firewall. They are created
  on first use and deleted only when GCE says nothing uses them any more ("in use", at once or from the
  operation, keeps them).
* Per Service: the forwarding rule carries the spec hash in a label, so an unchanged Service costs one
  GET; the drift check lists forwarding rules by name prefix, 500 per call. GCE ignores labels at
  insert, so they are set with ``setLabels`` last; the description written at insert marks the rule
  ours until then.
* A rule GCE cannot change in place is rebuilt on the same IP (:mod:`providers.gcp.rebuild`): the IP is
  reserved under the LB's name first and released once the new rule holds it.
* Before changing or deleting anything, the resource is read and its ownership marker (labels, or the
  JSON description) must name this cluster; anything else is left alone, whatever its name.
* A per-Service resource must also be of this instance's scope (its ``--load-balancer-class``: the
  ``ccm-lb-scope`` label or ``ccm-lb/scope`` description key, absent for the default instance); the
  cluster's shared parts (instance groups, node health check and its firewall) belong to no scope and
  are deleted only when GCE says nothing uses them.
* A takeover of the upstream provider's load balancer (:class:`Takeover`) is a rebuild on the same IP
  whose old rule is upstream's: the IP is reserved, everything but the rule is built, upstream's rule is
  deleted, ours is created on the IP, upstream's remaining parts go, then the reservation is released.
* Every mutation waits for its operation, carries a request id, and treats 409 "already exists" on
  create as "read it back and reconcile", so a crash between two calls converges on the next try.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from ccm.cloudprovider import InvalidSpec, scope_digest
from providers.common.errors import NotOwned
from providers.common.spec_hash import spec_hash
from providers.gcp import builder, model, rebuild
from providers.gcp.client import GCEClients, OperationFailed
from providers.gcp.instance_groups import InstanceGroups
from providers.gcp.ownership import is_in_use, owned_description
from providers.gcp.urls import Urls

logger = logging.getLogger(__name__)


UNREAD: Any = object()  # ``ensure``'s rule argument when the caller has not read the forwarding rule


@dataclass(frozen=True)
class Ensured:
    """What :meth:`Deployer.ensure` did: the LB's IP, and a message per IP change the user did not ask for."""

    ip: str
    ip_changes: tuple[str, ...] = ()
    refused_nodes: tuple[str, ...] = ()  # a message per node GCE would not put in the instance group


@dataclass(frozen=True)
class Takeover:
    """The upstream provider's load balancer that :meth:`Deployer.ensure` takes over, keeping its IP.

    ``rule`` is upstream's forwarding rule as just read (None once it is gone: a takeover that stopped
    after deleting it, whose IP our reservation holds). ``delete_rule`` deletes it, right before ours is
    created (GCE cannot repoint a rule from a target pool to a backend service, nor give two rules one
    IP and port); ``finish`` deletes upstream's remaining parts once our rule and firewalls exist and
    before the reservation is released. Both are idempotent.
    """

    rule: Any
    delete_rule: Callable[[], None]
    finish: Callable[[], None]


@dataclass(frozen=True)
class _Kind:
    client: Any
    where: Mapping[str, str]
    arg: str  # the name parameter of get/patch/delete
    body: str  # the resource parameter of insert/patch
    insert: Any
    patch: Any
    delete: Any
    scope: str


@dataclass
class ClusterState:
    shared_health_check: bool = False
    shared_firewall: bool = False


class Deployer:
    """Thread-safe across Services; the shared instance groups are guarded by one lock."""

    def __init__(self, *, clients: GCEClients, network: model.ClusterNetwork, scope: str = "") -> None:
        self.c = clients
        self.net = network
        self.scope = scope
        self.scope_label = scope_digest(scope)
        self.cid = network.cluster_id
        self.project, self.region = clients.project, clients.region
        self._lock = threading.Lock()
        self._state = ClusterState()
        self.urls = Urls(
            project=self.project,
            region=self.region,
            network_project=network.network_project,
            network=network.network,
            cluster_id=self.cid,
            upstream_cluster_id=network.upstream_cluster_id,
        )
        self.instance_groups = InstanceGroups(
            clients=clients, urls=self.urls, upstreams=bool(network.upstream_cluster_id)
        )

    # -- shared: node health check and its firewall -------------------------------------------------

    def _kind(self, kind: str) -> _Kind:
        """How to read, create, patch and delete one kind of description-marked resource."""
        regional = {"project": self.project, "region": self.region}
        kinds = {
            "regionHealthChecks": _Kind(
                client=self.c.health_checks,
                where=regional,
                arg="health_check",
                body="health_check_resource",
                insert=compute_v1.InsertRegionHealthCheckRequest,
                patch=compute_v1.PatchRegionHealthCheckRequest,
                delete=compute_v1.DeleteRegionHealthCheckRequest,
                scope="region",
            ),
            "regionBackendServices": _Kind(
                client=self.c.backend_services,
                where=regional,
                arg="backend_service",
                body="backend_service_resource",
                insert=compute_v1.InsertRegionBackendServiceRequest,
                patch=compute_v1.UpdateRegionBackendServiceRequest,
                delete=compute_v1.DeleteRegionBackendServiceRequest,
                scope="region",
            ),
            "addresses": _Kind(  # only our temporary IP holds (named after the LB); never a user's
                client=self.c.addresses,
                where=regional,
                arg="address",
                body="address_resource",
                insert=compute_v1.InsertAddressRequest,
                patch=None,
                delete=compute_v1.DeleteAddressRequest,
                scope="region",
            ),
            "firewalls": _Kind(
                client=self.c.firewalls,
                where={"project": self.net.network_project},
                arg="firewall",
                body="firewall_resource",
                insert=compute_v1.InsertFirewallRequest,
                patch=compute_v1.PatchFirewallRequest,
                delete=compute_v1.DeleteFirewallRequest,
                scope="global",
            ),
        }
        return kinds[kind]

    def _get(self, kind: str, name: str) -> Any | None:
        k = self._kind(kind)
        try:
            return self.c.call(f"{kind}.get", k.client.get, **k.where, **{k.arg: name})
        except gexc.NotFound:
            return None

    def _converge(
        self, kind: str, *, name: str, resource: Any, want_hash: str, uid: str = "", shared: bool = False
    ) -> None:
        """Create the resource, or bring an owned one to ``want_hash``; refuse a foreign one."""
        k = self._kind(kind)
        existing = self._get(kind, name)
        if existing is None:
            try:
                self.c.mutate(
                    f"{kind}.insert",
                    k.client.insert_unary,
                    k.insert(**k.where, **{k.body: resource}),
                    scope=k.scope,
                )
                return
            except gexc.Conflict:  # made meanwhile (an earlier attempt): read it back
                existing = self._get(kind, name)
                if existing is None:
                    raise
        marker = owned_description(existing, self.cid, scope=None if shared else self.scope)
        if not marker or (uid and marker.get(model.SERVICE_UID_KEY, uid) != uid):
            raise NotOwned(
                f"{kind} {name} exists but is not owned by this Service of cluster {self.cid}"
                f"{self._scope_hint()}; refusing to touch it"
            )
        if marker.get(model.SPEC_HASH_KEY) != want_hash:
            request_type = k.patch
            if kind == "regionBackendServices":
                resource.fingerprint = existing.fingerprint  # a full update needs the current fingerprint
                verb, call = "update", k.client.update_unary
            elif kind == "firewalls" and existing.destination_ranges and not resource.destination_ranges:
                # A patch cannot clear a list (the client omits an empty one): replace the whole rule.
                verb, call = "update", k.client.update_unary
                request_type = compute_v1.UpdateFirewallRequest
            else:
                verb, call = "patch", k.client.patch_unary
            self.c.mutate(
                f"{kind}.{verb}",
                call,
                request_type(**k.where, **{k.arg: name, k.body: resource}),
                scope=k.scope,
            )

    def _scope_hint(self) -> str:
        return f" in scope {self.scope!r}" if self.scope else " in the default scope"

    def _ensure_health_check(self, hc: model.HealthCheck) -> None:
        if hc.shared and self._state.shared_health_check:
            return
        want_hash = spec_hash(hc)
        resource = compute_v1.HealthCheck(
            name=hc.name,
            type_="HTTP",
            description=model.description(
                cluster=self.cid, spec_hash=want_hash, scope="" if hc.shared else self.scope
            ),
            check_interval_sec=hc.check_interval_sec,
            timeout_sec=hc.timeout_sec,
            healthy_threshold=hc.healthy_threshold,
            unhealthy_threshold=hc.unhealthy_threshold,
            http_health_check=compute_v1.HTTPHealthCheck(port=hc.port, request_path=hc.path),
        )
        self._converge(
            "regionHealthChecks", name=hc.name, resource=resource, want_hash=want_hash, shared=hc.shared
        )
        if hc.shared:
            self._state.shared_health_check = True

    def _ensure_firewall(self, fw: model.Firewall, *, service: str = "", uid: str = "") -> None:
        if fw.shared and self._state.shared_firewall:
            return
        want_hash = spec_hash(fw)
        resource = compute_v1.Firewall(
            name=fw.name,
            network=self.urls.network_url(),
            direction="INGRESS",
            priority=fw.priority,
            description=model.description(
                cluster=self.cid,
                service=service,
                uid=uid,
                spec_hash=want_hash,
                scope="" if fw.shared else self.scope,
            ),
            allowed=[
                compute_v1.Allowed(I_p_protocol=proto, ports=list(ports))
                for proto, ports in fw.protocol_ports
            ],
            source_ranges=list(fw.source_ranges),
            target_tags=list(fw.target_tags),
            destination_ranges=list(fw.destination_ranges),
        )
        self._converge("firewalls", name=fw.name, resource=resource, want_hash=want_hash, shared=fw.shared)
        if fw.shared:
            self._state.shared_firewall = True

    # -- per Service --------------------------------------------------------------------------------

    def get_forwarding_rule(self, name: str) -> Any | None:
        try:
            rule = self.c.call(
                "forwardingRules.get",
                self.c.forwarding_rules.get,
                project=self.project,
                region=self.region,
                forwarding_rule=name,
            )
        except gexc.NotFound:
            return None
        if not self._owns_rule(rule):
            raise NotOwned(
                f"forwarding rule {name} exists but is not owned by cluster {self.cid}{self._scope_hint()} "
                f"(no {model.CLUSTER_LABEL}={self.cid} label, or another {model.SCOPE_LABEL} label); "
                "refusing to touch it"
            )
        return rule

    def _owns_rule(self, rule: Any) -> bool:
        """This cluster's and this scope's: by its labels, or by the description written at insert.

        GCE ignores labels in ``forwardingRules.insert`` (recorded real traffic: k8s-config-connector
        ``regionalcomputeforwardingruletcp-direct/_http.log``); they are set by ``setLabels`` afterwards.
        Between the two calls the description marker (with the scope) is the only proof of ownership.
        """
        labels = dict(rule.labels)
        if labels.get(model.CLUSTER_LABEL) == self.cid:
            return bool(labels.get(model.SCOPE_LABEL, "") == self.scope_label)
        return bool(owned_description(rule, self.cid, scope=self.scope))

    def ensure(
        self, *, key: str, uid: str, stack: model.Stack, rule: Any = UNREAD, takeover: Takeover | None = None
    ) -> Ensured:
        """Make GCE match ``stack``; returns the load balancer's IP address and what the user must know.

        ``rule`` is the forwarding rule as the caller has just read it (``None``: absent), which saves
        reading it again; by default it is read here. ``takeover``: upstream's load balancer whose IP
        the new rule keeps (see :class:`Takeover`).

        After a failure the cluster-wide cache (instance groups, shared health check and firewall) is
        forgotten: another instance of the cluster (another ``--load-balancer-class``) may have deleted
        the shared parts with its last load balancer, and the retry must read and recreate them.
        """
        try:
            return self._ensure(key=key, uid=uid, stack=stack, rule=rule, takeover=takeover)
        except InvalidSpec:
            raise  # the user's mistake, found before anything shared was used
        except Exception:
            with self._lock:
                self._state = ClusterState()
            self.instance_groups.forget()
            raise

    def _ensure(
        self, *, key: str, uid: str, stack: model.Stack, rule: Any, takeover: Takeover | None = None
    ) -> Ensured:
        refused = self.instance_groups.sync(instances=stack.instances)
        want_hash = stack.spec_hash()
        fr = stack.forwarding_rule
        if rule is UNREAD:
            rule = self.get_forwarding_rule(fr.name)
        if rule is not None and dict(rule.labels).get(model.SPEC_HASH_LABEL) == want_hash:
            return Ensured(ip=str(rule.I_p_address), refused_nodes=refused)

        self._ensure_health_check(stack.health_check)
        for fw in stack.firewalls:
            if fw.shared:
                self._ensure_firewall(fw)
        # A reservation of ours named after the LB holds the IP while its rule is rebuilt; one left by a
        # crash is picked up here, so that the move finishes on the same IP.
        hold = self._get("addresses", fr.name)
        if hold is not None and not owned_description(hold, self.cid):
            hold = None  # someone else's address with our name: neither used nor released
        keep_ip, old_ip, why_new = "", "", ""
        if takeover is not None and takeover.rule is not None and rule is not None:
            # ours on another IP (a replacement the Service no longer asks for): it keeps upstream's
            self._delete_forwarding_rule(fr.name)
            rule = None
        if rule is not None:
            diffs = rebuild.differences(rule, fr)
            if rebuild.patchable(diffs):
                self._patch_global_access(rule, fr)
            elif diffs:
                ip_plan = rebuild.plan(rule, fr)
                old_ip, why_new = str(rule.I_p_address), ip_plan.why_new
                if ip_plan.keep:
                    keep_ip = old_ip
                    if ip_plan.hold and hold is None:
                        hold = self._hold_ip(rule, fr, key=key, uid=uid)
                self._delete_forwarding_rule(fr.name)
                if "scheme" in diffs:
                    self._delete_backend_service(stack.backend_service.name)
                rule = None
        elif takeover is not None and takeover.rule is not None:
            # Upstream's rule serves the IP: promote it to our reservation (None: already reserved, by the
            # user, and then never ours to release) before anything of upstream's is touched.
            keep_ip = str(takeover.rule.I_p_address)
            if hold is None:
                hold = self._hold_ip(takeover.rule, fr, key=key, uid=uid)
        try:
            self._ensure_backend_service(stack, key=key, uid=uid)
        except gexc.BadRequest as exc:
            if not self.instance_groups.leave_out_nodes_in_other_groups(exc):
                raise
            self._ensure_backend_service(stack, key=key, uid=uid)
            refused = self.instance_groups.refused_notices(stack.instances)
        if rule is None and takeover is not None and takeover.rule is not None:
            takeover.delete_rule()  # from here until ours exists, the IP serves nothing
        if rule is None:
            if hold is not None and not fr.ip_address:
                if rebuild.hold_fits(hold, fr):
                    keep_ip = str(hold.address)
                else:  # the user changed what the IP cannot follow (scheme, tier, subnetwork) meanwhile
                    self._release_hold(fr.name)
                    hold = None
            rule = self._create_forwarding_rule(stack, key=key, uid=uid, ip=fr.ip_address or keep_ip)
            if old_ip:  # a rebuilt rule: our reservation of an earlier loadBalancerIP may be unused
                self._release_unused_ip(stack)
        ip = str(rule.I_p_address)
        traffic = builder.traffic_firewall_name(lb_name=stack.name)
        for fw in stack.firewalls:
            if not fw.shared:
                # Only the traffic rule is narrowed to the LB's IP: health-check probes are not documented
                # to target it, and ingress-gce's health-check rule has no destination
                # (pkg/healthchecksl4/healthchecksl4.go ensureIPv4Firewall).
                own = _with_destination(fw, ip) if fw.name == traffic else fw
                self._ensure_firewall(own, service=key, uid=uid)
        self._delete_stale_health_check(stack)
        if takeover is not None:
            takeover.finish()
        if hold is not None and hold.address != fr.ip_address:
            # the new rule has the IP now, and keeps it as its (ephemeral) IP; a reservation of the IP the
            # Service asks for (spec.loadBalancerIP) stays, and goes with the Service
            self._release_hold(fr.name)
        if dict(rule.labels).get(model.SPEC_HASH_LABEL) != want_hash:
            # All our labels at once (GCE dropped any given at insert), keeping labels others added.
            # Last, so that a rule without the current hash means "not finished" to the next sync.
            labels = {**dict(rule.labels), **dict(fr.labels), model.SPEC_HASH_LABEL: want_hash}
            if self.scope_label:
                labels[model.SCOPE_LABEL] = self.scope_label
            self.c.mutate(
                "forwardingRules.setLabels",
                self.c.forwarding_rules.set_labels_unary,
                compute_v1.SetLabelsForwardingRuleRequest(
                    project=self.project,
                    region=self.region,
                    resource=fr.name,
                    region_set_labels_request_resource=compute_v1.RegionSetLabelsRequest(
                        labels=labels, label_fingerprint=rule.label_fingerprint
                    ),
                ),
                scope="region",
            )
        changes: tuple[str, ...] = ()
        if why_new and old_ip and old_ip != ip:
            logger.warning("%s: load balancer IP changed from %s to %s: %s", key, old_ip, ip, why_new)
            changes = (rebuild.ip_changed_message(old=old_ip, new=ip, why=why_new),)
        return Ensured(ip=ip, ip_changes=changes, refused_nodes=refused)

    def _patch_global_access(self, rule: Any, want: model.ForwardingRule) -> None:
        """``allowGlobalAccess`` is the one field GCE changes on a live rule: no rebuild, same IP."""
        self.c.mutate(
            "forwardingRules.patch",
            self.c.forwarding_rules.patch_unary,
            compute_v1.PatchForwardingRuleRequest(
                project=self.project,
                region=self.region,
                forwarding_rule=want.name,
                forwarding_rule_resource=compute_v1.ForwardingRule(
                    allow_global_access=want.allow_global_access, fingerprint=rule.fingerprint
                ),
            ),
            scope="region",
        )

    def _hold_ip(self, rule: Any, want: model.ForwardingRule, *, key: str, uid: str) -> Any | None:
        """Promote the rule's ephemeral IP to a reservation of ours (named after the LB) before the rebuild.

        Returns the reservation, or None when a reserved address (the user's) already holds the IP: it
        keeps holding it, and is never ours to release.
        """
        address = compute_v1.Address(
            name=want.name,
            address=str(rule.I_p_address),
            description=model.description(cluster=self.cid, service=key, uid=uid, scope=self.scope),
        )
        if rule.load_balancing_scheme == "EXTERNAL":
            address.address_type = "EXTERNAL"
            address.network_tier = rule.network_tier or "PREMIUM"
        else:
            address.address_type = "INTERNAL"
            address.subnetwork = str(rule.subnetwork)
        try:
            self._insert_address(address)
            return address
        except gexc.Conflict:
            pass  # made by an earlier attempt: read it back below
        except gexc.BadRequest:
            if self._reserved_by_ip(str(rule.I_p_address)):
                return None
            raise
        hold = self._get("addresses", want.name)
        if hold is None or not owned_description(hold, self.cid):
            raise NotOwned(
                f"address {want.name} exists but is not owned by cluster {self.cid}; refusing to use it"
            )
        return hold

    def _insert_address(self, address: Any) -> None:
        self.c.mutate(
            "addresses.insert",
            self.c.addresses.insert_unary,
            compute_v1.InsertAddressRequest(
                project=self.project, region=self.region, address_resource=address
            ),
            scope="region",
        )

    def _list_addresses(self, list_filter: str) -> list[Any]:
        return self.c.list_all(
            "addresses.list",
            self.c.addresses.list,
            request=compute_v1.ListAddressesRequest(
                project=self.project, region=self.region, filter=list_filter
            ),
        )

    def _release_hold(self, name: str) -> None:
        """Delete our reservation (already read or made, so known to be ours); the IP stays the rule's."""
        with contextlib.suppress(gexc.NotFound):
            self.c.mutate(
                "addresses.delete",
                self.c.addresses.delete_unary,
                compute_v1.DeleteAddressRequest(project=self.project, region=self.region, address=name),
                scope="region",
            )

    def _reserved_by_ip(self, ip: str) -> bool:
        """Whether a reserved address (of anyone) holds ``ip``."""
        return any(a.address == ip for a in self._list_addresses(f'address eq "{ip}"'))

    def _ensure_backend_service(self, stack: model.Stack, *, key: str, uid: str) -> None:
        bs = stack.backend_service
        want_hash = spec_hash(bs)
        resource = compute_v1.BackendService(
            name=bs.name,
            load_balancing_scheme=bs.scheme,
            protocol=bs.protocol,
            session_affinity=bs.session_affinity,
            health_checks=[self.urls.regional("healthChecks", bs.health_check)],
            backends=[
                compute_v1.Backend(group=self.urls.instance_group(zone), balancing_mode="CONNECTION")
                for zone in bs.zones
            ],
            description=model.description(
                cluster=self.cid, service=key, uid=uid, spec_hash=want_hash, scope=self.scope
            ),
        )
        if bs.scheme == "INTERNAL":
            resource.network = self.urls.network_url()
        self._converge("regionBackendServices", name=bs.name, resource=resource, want_hash=want_hash, uid=uid)

    def _create_forwarding_rule(self, stack: model.Stack, *, key: str, uid: str, ip: str) -> Any:
        """Insert the rule (on ``ip``: the user's reserved address, or the one kept across a rebuild)."""
        fr = stack.forwarding_rule
        if fr.ip_address and not self._reserved_by_ip(fr.ip_address):
            if fr.scheme != "INTERNAL":
                raise InvalidSpec(
                    field="spec.loadBalancerIP",
                    value=fr.ip_address,
                    accepted=f"an external address reserved in project {self.project}, region "
                    f"{self.region}, or empty for an ephemeral one",
                    reason="no such reserved address",
                )
            self._reserve_internal_ip(stack, key=key, uid=uid)
        # No labels: GCE ignores them at insert. The description marks the rule ours until setLabels,
        # which comes last, once the firewalls exist, so that a crash in between leaves a rule that the
        # next ensure recognises as ours and does not mistake for complete.
        resource = compute_v1.ForwardingRule(
            name=fr.name,
            load_balancing_scheme=fr.scheme,
            I_p_protocol=fr.protocol,
            backend_service=self.urls.regional("backendServices", fr.backend_service),
            description=model.description(cluster=self.cid, service=key, uid=uid, scope=self.scope),
        )
        if fr.all_ports:
            resource.all_ports = True
        else:
            resource.ports = [str(p) for p in fr.ports]
        if ip:
            resource.I_p_address = ip
        if fr.scheme == "EXTERNAL":
            if fr.network_tier:
                resource.network_tier = fr.network_tier
        else:
            resource.network = self.urls.network_url()
            resource.subnetwork = self.urls.subnetwork(fr.subnetwork)
            resource.allow_global_access = fr.allow_global_access
        with contextlib.suppress(gexc.Conflict):  # an earlier attempt made it; read back below
            self.c.mutate(
                "forwardingRules.insert",
                self.c.forwarding_rules.insert_unary,
                compute_v1.InsertForwardingRuleRequest(
                    project=self.project, region=self.region, forwarding_rule_resource=resource
                ),
                scope="region",
            )
        rule = self.get_forwarding_rule(fr.name)
        if rule is None:
            raise RuntimeError(f"forwarding rule {fr.name} was created but cannot be read back")
        return rule

    def _reserve_internal_ip(self, stack: model.Stack, *, key: str, uid: str) -> None:
        """A free internal IP the user asked for is reserved for the LB (``<lb>-ip``), as upstream does
        (cloud-provider-gcp ``gce_loadbalancer_internal.go``: ``addrMgr.HoldAddress`` for an unreserved
        ``loadBalancerIP``); it is ours, released when the Service no longer asks for it or is deleted."""
        fr = stack.forwarding_rule
        name = builder.ip_address_name(lb_name=stack.name)
        address = compute_v1.Address(
            name=name,
            address=fr.ip_address,
            address_type="INTERNAL",
            subnetwork=self.urls.subnetwork(fr.subnetwork),
            description=model.description(cluster=self.cid, service=key, uid=uid, scope=self.scope),
        )
        try:
            self._insert_address(address)
        except gexc.Conflict:
            held = self._get("addresses", name)  # an earlier attempt's, or another IP the user asked before
            if held is None or not owned_description(held, self.cid):
                raise NotOwned(f"address {name} exists but is not owned by cluster {self.cid}") from None
            if held.address != fr.ip_address:
                self._release_hold(name)
                self._reserve_internal_ip(stack, key=key, uid=uid)
        except gexc.BadRequest as exc:
            raise InvalidSpec(
                field="spec.loadBalancerIP",
                value=fr.ip_address,
                accepted=f"a free address of subnetwork {fr.subnetwork}, or one reserved in project "
                f"{self.project}, region {self.region}, or empty for an ephemeral one",
                reason=f"GCE cannot reserve it: {exc.message}",
            ) from exc

    def _delete_addresses_of(self, lb_name: str) -> None:
        """Our reservations of one LB, in one listing: the IP hold a crash left between reserve and
        release (``<lb>``), and the ``spec.loadBalancerIP`` reserved for it (``<lb>-ip``)."""
        for address in self._list_addresses(f'name eq "{lb_name}(-ip)?"'):
            if not owned_description(address, self.cid, scope=self.scope):
                logger.warning(
                    "not deleting address %s: it is not owned by cluster %s", address.name, self.cid
                )
                continue
            self._release_hold(str(address.name))

    def _release_unused_ip(self, stack: model.Stack) -> None:
        """Our reservation of an earlier ``spec.loadBalancerIP`` goes once the rule no longer uses it."""
        name = builder.ip_address_name(lb_name=stack.name)
        held = self._get("addresses", name)
        if held is not None and held.address != stack.forwarding_rule.ip_address:
            self._delete_if_owned("addresses", name)

    def _delete_stale_health_check(self, stack: model.Stack) -> None:
        """After a Local → Cluster switch, the Service's own health check and firewall go."""
        if stack.health_check.shared:
            own = builder.health_check_name(lb_name=stack.name)
            self._delete_if_owned("regionHealthChecks", own)
            self._delete_if_owned("firewalls", builder.health_check_firewall_name(lb_name=stack.name))

    # -- delete -------------------------------------------------------------------------------------

    def delete(self, *, lb_name: str) -> str:
        """Delete every part of one LB that this cluster owns; shared parts only when unused.

        Returns the IP of the forwarding rule it deleted ('' when there was none).
        """
        ip = self._delete_forwarding_rule(lb_name)
        self._delete_addresses_of(lb_name)
        self._delete_backend_service(lb_name)
        self._delete_if_owned("firewalls", builder.traffic_firewall_name(lb_name=lb_name))
        self._delete_if_owned("regionHealthChecks", builder.health_check_name(lb_name=lb_name))
        self._delete_if_owned("firewalls", builder.health_check_firewall_name(lb_name=lb_name))
        self._delete_shared_if_unused()
        return ip

    def _delete_shared_if_unused(self) -> None:
        """The cluster's shared parts go with the last LB that uses them.

        GCE refuses (400 "in use") to delete a health check that a backend service references, or an
        instance group that is a backend, so a refusal means "still needed". The node health check's
        firewall goes only after the health check itself. Once the node health check is gone (no LB
        with externalTrafficPolicy Cluster is left), each zone of the region is tried for an instance
        group; one read of the region gives the zones.
        """
        if not self._delete_if_owned(
            "regionHealthChecks", builder.node_health_check_name(cluster_id=self.cid), shared=True
        ):
            return
        self._delete_if_owned(
            "firewalls", builder.node_health_check_firewall_name(cluster_id=self.cid), shared=True
        )
        region = self.c.call("regions.get", self.c.regions.get, project=self.project, region=self.region)
        zones = sorted(z.rsplit("/", 1)[-1] for z in region.zones)
        with self._lock:
            self._state.shared_health_check = self._state.shared_firewall = False
        self.instance_groups.delete_unused(zones)

    def _delete_forwarding_rule(self, name: str) -> str:
        """Delete our rule; returns its IP ('' when there was none)."""
        rule = self.get_forwarding_rule(name)
        if rule is None:
            return ""
        with contextlib.suppress(gexc.NotFound):
            self.c.mutate(
                "forwardingRules.delete",
                self.c.forwarding_rules.delete_unary,
                compute_v1.DeleteForwardingRuleRequest(
                    project=self.project, region=self.region, forwarding_rule=name
                ),
                scope="region",
            )
        return str(rule.I_p_address)

    def _delete_backend_service(self, name: str) -> None:
        self._delete_if_owned("regionBackendServices", name)

    def _delete_if_owned(self, kind: str, name: str, *, shared: bool = False) -> bool:
        """GET, check the marker, DELETE. Returns False when it stays (absent counts as deleted)."""
        k = self._kind(kind)
        resource = self._get(kind, name)
        if resource is None:
            return True
        if not owned_description(resource, self.cid, scope=None if shared else self.scope):
            logger.warning(
                "not deleting %s %s: it is not owned by cluster %s%s",
                kind,
                name,
                self.cid,
                self._scope_hint(),
            )
            return False
        try:
            self.c.mutate(
                f"{kind}.delete", k.client.delete_unary, k.delete(**k.where, **{k.arg: name}), scope=k.scope
            )
        except gexc.NotFound:
            return True
        except (gexc.BadRequest, OperationFailed) as exc:
            if is_in_use(exc):
                logger.info("%s %s is still in use; kept", kind, name)
                return False
            raise
        return True

    # -- drift --------------------------------------------------------------------------------------

    def list_forwarding_rules(self) -> list[Any]:
        """This cluster's and scope's forwarding rules: one list call per 500."""
        rules = self.c.list_all(
            "forwardingRules.list",
            self.c.forwarding_rules.list,
            request=compute_v1.ListForwardingRulesRequest(
                project=self.project,
                region=self.region,
                max_results=500,
                filter=f'name eq "{builder.name_prefix(cluster_id=self.cid)}.*"',
            ),
        )
        return [r for r in rules if self._owns_rule(r)]

    def drifted(
        self, *, stacks: Mapping[str, tuple[str, model.Stack]], live_uids: frozenset[str] | None
    ) -> tuple[frozenset[str], list[str], dict[str, str]]:
        """(keys whose LB is missing or differs, names of this scope's orphaned LBs, the IP of each
        other key's rule).

        A load balancer is an orphan when the Service UID its forwarding rule carries is not in
        ``live_uids`` (every Service of the cluster), read from its UID label or, before ``setLabels``
        ran, from the description written at insert. A rule with neither is never one, and
        ``live_uids=None`` finds none.
        """
        rules = {r.name: r for r in self.list_forwarding_rules()}
        drifted = {
            key
            for key, (_uid, stack) in stacks.items()
            if stack.forwarding_rule.name not in rules
            or dict(rules[stack.forwarding_rule.name].labels).get(model.SPEC_HASH_LABEL) != stack.spec_hash()
        }
        served = {
            key: str(rules[stack.forwarding_rule.name].I_p_address)
            for key, (_uid, stack) in stacks.items()
            if key not in drifted
        }
        if live_uids is None:
            return frozenset(drifted), [], served
        live = {builder.label_value(uid) for uid in live_uids} | {
            builder.label_value(uid) for uid, _stack in stacks.values()
        }
        orphans = []
        for name, rule in rules.items():
            uid = dict(rule.labels).get(model.SERVICE_UID_LABEL, "")
            if not uid:  # a crash between insert and setLabels: the UID is in the description
                marker = model.parse_description(rule.description)
                uid = builder.label_value(marker.get(model.SERVICE_UID_KEY, ""))
            if uid and uid not in live:
                orphans.append(name)
        return frozenset(drifted), sorted(orphans), served


def _with_destination(fw: model.Firewall, ip: str) -> model.Firewall:
    return dataclasses.replace(fw, destination_ranges=(ip,)) if ip else fw

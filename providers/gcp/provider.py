"""The GCP provider: the contract of :mod:`ccm.cloudprovider` on regional backend-service L4 LBs.

``ensure`` builds the desired stack (pure) and deploys it; ``update`` only syncs the shared instance
groups (one call per changed zone for the whole cluster); ``delete`` removes every owned part; the
bulk drift check lists the cluster's forwarding rules once and deletes orphaned load balancers after
a grace period.

A Service whose status address is served by the load balancer the upstream cloud provider built
(:mod:`providers.gcp.foreign`) keeps it: an external target-pool load balancer is taken over on the same
IP (the IP is reserved, our backend service is built, upstream's rule is deleted and ours created on
the IP, upstream's other parts deleted, the reservation released; a Warning ``LoadBalancerTakenOver``
names the short interruption between the two rules); an internal one the same way, once the cloud
config's ``upstream-cluster-id`` makes upstream's instance groups the cluster's (a node can be in one
load-balanced group only). What GCE cannot keep the IP for (another scheme, tier or subnetwork, another
``loadBalancerIP``, upstream's instance groups without that setting) is refused with
:class:`ForeignLoadBalancer` before anything changes. A Service that asks for a new address
(:data:`REPLACE_FOREIGN_ANNOTATION`) gets ours on a new IP, and upstream's per-Service parts are deleted
once it is complete. Upstream's load balancer is looked for only when the Service has an IP in its
status that no load balancer of ours serves, so a Service without a status address costs no extra call,
and a Service of ours none either.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ccm.cloudprovider import (
    DEFAULT_ORPHAN_GRACE_SECONDS,
    ForeignLoadBalancer,
    ImplementedElsewhere,
    IngressPoint,
    InvalidSpec,
    LoadBalancerRequest,
    LoadBalancerStatus,
    MigrationPlan,
    ProviderEvent,
    asks_replace_foreign,
)
from providers.common.drift import build_stacks
from providers.common.orphans import OrphanClock
from providers.gcp import annotations as ann
from providers.gcp import builder, model
from providers.gcp.client import GCEClients
from providers.gcp.config import GCEConfig, cluster_network
from providers.gcp.config import load as load_config
from providers.gcp.deployer import UNREAD, Deployer, Takeover
from providers.gcp.foreign import (
    INTERRUPTION,
    Removal,
    Upstream,
    UpstreamLoadBalancer,
    last_segment,
    replaced_message,
    service_ips,
    taken_over_message,
)

logger = logging.getLogger(__name__)

NODE_REFUSED = "LoadBalancerNodeRefused"  # a node GCE would not put in the LB's instance group
IP_CHANGED = "LoadBalancerIPChanged"  # the Warning event of a change that could not keep the Service's IP
FOREIGN_REPLACED = "LoadBalancerReplaced"  # the Service's new address, upstream's LB deleted (as on AWS)
TAKEN_OVER = "LoadBalancerTakenOver"  # upstream's LB taken over on the same IP, with a short interruption


class GCEProvider:
    """``--cloud-provider=gce`` (alias ``gcp``)."""

    def __init__(
        self,
        *,
        cluster_name: str,
        config: GCEConfig,
        clients: GCEClients | None = None,
        orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
        load_balancer_class: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.network = cluster_network(config=config, cluster_name=cluster_name)
        self.clients = clients or GCEClients(
            project=config.project_id,
            region=config.region,
            api_endpoint=config.api_endpoint,
            anonymous=config.anonymous,
        )
        self.load_balancer_class = load_balancer_class
        self.deployer = Deployer(clients=self.clients, network=self.network, scope=load_balancer_class)
        self.orphan_grace_seconds = orphan_grace_seconds
        self.clock = clock
        self._orphans = OrphanClock(grace=orphan_grace_seconds)
        self._sweep_lock = threading.Lock()  # one sweep at a time
        self.upstream = Upstream(
            clients=self.clients,
            network_project=self.network.network_project,
            instance_group=self.deployer.urls.instance_group_name,
            cluster_id=self.network.upstream_cluster_id,
        )
        # What the last ensure of a Service found, so that the node sync (update) costs no extra call:
        # the Services served by upstream's load balancer (refused), and those known to be ours.
        self._foreign_lock = threading.Lock()
        self._refused: dict[str, ForeignLoadBalancer] = {}
        self._ours: set[str] = set()

    def _stack(self, request: LoadBalancerRequest) -> model.Stack:
        return builder.build_stack(request=request, network=self.network)

    def unsupported_annotations(
        self, *, annotations: Mapping[str, str], status_addresses: Sequence[str] = ()
    ) -> tuple[str, ...]:
        """GKE load-balancer keys this provider does not implement (:class:`AnnotationChecker`)."""
        if annotations.get(ann.L4_RBS, "").strip() == ann.RBS_ENABLED:
            return ()  # GKE's own L4 controller's Service: its annotations are that controller's
        return ann.unsupported(annotations=annotations)

    def get_load_balancer_name(self, *, request: LoadBalancerRequest) -> str:
        return builder.load_balancer_name(
            cluster_id=self.network.cluster_id,
            namespace=request.namespace,
            name=request.name,
            uid=request.uid,
        )

    def get_load_balancer(self, *, request: LoadBalancerRequest) -> tuple[LoadBalancerStatus | None, bool]:
        rule = self.deployer.get_forwarding_rule(self.get_load_balancer_name(request=request))
        if rule is None:
            return None, False
        return LoadBalancerStatus(ingress=(IngressPoint(ip=str(rule.I_p_address)),)), True

    def _foreign(
        self, request: LoadBalancerRequest, stack: model.Stack
    ) -> tuple[UpstreamLoadBalancer | None, Any]:
        """(upstream's load balancer serving the Service's status address or None, our rule as read).

        No call for a Service without an IP in its status; one GET (of our rule, which the deploy then
        reuses) for a Service whose address our rule serves; one more GET (upstream's rule) otherwise,
        and a GET per part when upstream's rule names the Service.
        """
        ips = service_ips(request)
        if not ips:
            return None, UNREAD
        rule = self.deployer.get_forwarding_rule(stack.forwarding_rule.name)
        if rule is not None and str(rule.I_p_address) in ips:
            return None, rule
        found = self.upstream.find(request=request)
        if found is None or found.address not in ips:
            return None, rule  # the address is served by nothing: a new one, as for any new Service
        return found, rule

    def _refuse(
        self, request: LoadBalancerRequest, found: UpstreamLoadBalancer, reason: str = ""
    ) -> ForeignLoadBalancer:
        refusal = ForeignLoadBalancer(address=found.address, parts=found.foreign_parts(), reason=reason)
        with self._foreign_lock:
            self._refused[request.key] = refusal
            self._ours.discard(request.key)
        return refusal

    def _settled(self, key: str, *, ours: bool) -> None:
        with self._foreign_lock:
            self._refused.pop(key, None)
            if ours:
                self._ours.add(key)
            else:
                self._ours.discard(key)

    def _cannot_take_over(self, found: UpstreamLoadBalancer, stack: model.Stack) -> str:
        """Why upstream's load balancer cannot be taken over on its IP ('' when it can)."""
        fr = stack.forwarding_rule
        if fr.scheme != found.scheme:
            return (
                f"the Service asks for an {fr.scheme.lower()} load balancer and upstream's is "
                f"{found.scheme.lower()}; GCE cannot move an IP address between external and internal "
                "load balancers"
            )
        if found.scheme == "INTERNAL":
            return self._cannot_take_over_internal(found, stack)
        if not found.target_pool:
            return (
                "upstream's external load balancer has no target pool; only target-pool ones are taken over"
            )
        if (fr.network_tier or "PREMIUM") != found.network_tier:
            return (
                f"the Service asks for network tier {fr.network_tier or 'PREMIUM'} and upstream's IP is "
                f"{found.network_tier}; an external IP address belongs to one network tier"
            )
        return _other_ip(fr, found)

    def _cannot_take_over_internal(self, found: UpstreamLoadBalancer, stack: model.Stack) -> str:
        """Why upstream's internal load balancer cannot be taken over on its IP ('' when it can)."""
        fr = stack.forwarding_rule
        ours = self.deployer.urls.instance_group_name
        others = [g for g in found.instance_groups if g != ours]
        if others:
            upstream_id = others[0].removeprefix("k8s-ig--")
            return (
                f"upstream's internal load balancer sends to the instance groups {', '.join(others)}, and a "
                "node can be in one load-balanced instance group only, so this controller's groups "
                f"({ours}) cannot take the nodes while upstream's serve. Set upstream-cluster-id = "
                f"{upstream_id} in the cloud config's [global] section (upstream's cluster id, the uid of "
                "ConfigMap kube-system/ingress-uid): this controller then uses those groups, and the "
                "Service is taken over on its IP"
            )
        if found.subnetwork and fr.subnetwork and found.subnetwork != last_segment(fr.subnetwork):
            return (
                f"the Service asks for subnetwork {last_segment(fr.subnetwork)} and upstream's IP "
                f"{found.address} is in {found.subnetwork}; an internal IP address belongs to its subnetwork"
            )
        return _other_ip(fr, found)

    def _takeover(
        self, request: LoadBalancerRequest, stack: model.Stack, found: UpstreamLoadBalancer | None, rule: Any
    ) -> tuple[Takeover | None, list[Removal]]:
        """The takeover of ``found`` for the deployer, and the list its steps fill with what they deleted.

        With ``found`` None, the takeover of a Service whose upstream rule an earlier, interrupted
        takeover already deleted: asked only while our rule is not complete (no spec-hash label), for
        a Service with a status IP, so that upstream's remaining parts still go.
        """
        removals: list[Removal] = []
        if found is None:
            if rule is UNREAD:
                return None, removals
            if rule is not None and model.SPEC_HASH_LABEL in dict(rule.labels):
                return None, removals  # ours is complete: any takeover of it finished

            def finish_remains() -> None:
                left = self.upstream.remains(request=request, scheme=stack.forwarding_rule.scheme)
                if left is not None:
                    removals.append(self.upstream.delete(left))

            return Takeover(rule=None, delete_rule=lambda: None, finish=finish_remains), removals
        # Upstream's transient address (left by a sync of upstream's that stopped half-way) goes first:
        # its rule keeps the IP as ephemeral, which ours then reserves under our name.
        address = found.without("forwardingRules")
        address = dataclasses.replace(address, parts=tuple(p for p in address.parts if p.kind == "addresses"))
        if address.parts:
            removals.append(self.upstream.delete(address))
        rule_only = dataclasses.replace(found, parts=found.parts[:1])

        def delete_rule() -> None:
            removals.append(self.upstream.delete(rule_only))

        def finish() -> None:
            removals.append(self.upstream.delete(found.without("forwardingRules", "addresses")))

        return Takeover(rule=found.rule, delete_rule=delete_rule, finish=finish), removals

    def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
        stack = self._stack(request)
        replace = asks_replace_foreign(request.annotations)
        found, rule = self._foreign(request, stack)
        taking = None
        if found is not None and not replace:
            why = self._cannot_take_over(found, stack)
            if why:
                raise self._refuse(request, found, why)
            taking = found
        takeover, removals = (None, []) if replace else self._takeover(request, stack, taking, rule)
        ensured = self.deployer.ensure(
            key=request.key, uid=request.uid, stack=stack, rule=rule, takeover=takeover
        )
        events = tuple(ProviderEvent(reason=IP_CHANGED, message=message) for message in ensured.ip_changes)
        events += tuple(
            ProviderEvent(reason=NODE_REFUSED, message=message) for message in ensured.refused_nodes
        )
        if removals and (taking is not None or any(r.deleted for r in removals)):
            removal = Removal(
                deleted=tuple(p for r in removals for p in r.deleted),
                kept=tuple(p for r in removals for p in r.kept),
            )
            message = taken_over_message(
                ip=ensured.ip, removal=removal, reserved_by_user=bool(stack.forwarding_rule.ip_address)
            )
            logger.warning("%s: %s", request.key, message)
            events += (ProviderEvent(reason=TAKEN_OVER, message=message),)
        if found is not None and replace:  # ours is complete: upstream's goes
            removal = self.upstream.delete(found)
            message = replaced_message(old=found.address, new=ensured.ip, removal=removal)
            logger.warning("%s: %s", request.key, message)
            events += (ProviderEvent(reason=FOREIGN_REPLACED, message=message),)
        self._settled(request.key, ours=True)
        return LoadBalancerStatus(ingress=(IngressPoint(ip=ensured.ip),), events=events)

    def update_load_balancer(self, *, request: LoadBalancerRequest) -> None:
        """Sync the shared instance groups; a Service upstream's load balancer serves is refused.

        The refusal is remembered from the Service's last ensure; a Service this process has not
        ensured yet is checked as ensure checks it (no call without a status address).
        """
        stack = self._stack(request)
        with self._foreign_lock:
            refusal = self._refused.get(request.key)
            known = request.key in self._ours
        if refusal is not None:
            raise refusal
        if not known:
            found, _rule = self._foreign(request, stack)
            if found is not None:
                raise self._refuse(request, found)
            if service_ips(request):
                self._settled(request.key, ours=True)
        self.deployer.instance_groups.sync(instances=stack.instances)

    def ensure_load_balancer_deleted(self, *, request: LoadBalancerRequest) -> None:
        """Delete ours; and upstream's per-Service parts when upstream's rule serves the Service's
        status address (a Service deleted while refused leaks nothing)."""
        ip = self.deployer.delete(lb_name=self.get_load_balancer_name(request=request))
        ips = service_ips(request)
        if ips and ip not in ips:
            found = self.upstream.find(request=request)
            if found is not None and found.address in ips:
                self.upstream.delete(found)
        self._settled(request.key, ours=False)

    def plan_migration(self, *, request: LoadBalancerRequest) -> MigrationPlan:
        """What ``ensure_load_balancer`` would do (a :class:`~ccm.cloudprovider.MigrationPlanner`)."""
        ips = service_ips(request)
        address = ips[0] if ips else (request.status_addresses[0] if request.status_addresses else "")
        try:
            stack = self._stack(request)
            replace = asks_replace_foreign(request.annotations)
        except InvalidSpec as exc:
            return MigrationPlan(action="invalid", address=address, address_changes=False, reason=str(exc))
        except ImplementedElsewhere as exc:
            return MigrationPlan(action="elsewhere", address=address, address_changes=False, reason=str(exc))
        rule = self.deployer.get_forwarding_rule(stack.forwarding_rule.name)
        if rule is not None and (not ips or str(rule.I_p_address) in ips):
            return MigrationPlan(action="keep", address=address, address_changes=False)
        found = self.upstream.find(request=request) if ips else None
        if found is not None and found.address in ips:
            why = "" if replace else self._cannot_take_over(found, stack)
            if replace or why:
                return MigrationPlan(
                    action="replace" if replace else "refuse",
                    address=found.address,
                    address_changes=replace,
                    foreign=found.foreign_parts(),
                    reason=why,
                )
            return MigrationPlan(
                action="adopt",
                address=found.address,
                address_changes=False,
                foreign=found.foreign_parts(),
                reason=(
                    f"upstream's {'target pool' if found.target_pool else 'internal'} load balancer is taken "
                    f"over and the Service keeps its IP {found.address}: the IP is reserved, this "
                    "controller's backend service, health check, instance groups and firewall rules are "
                    "built, upstream's forwarding rule is deleted and this controller's created on the IP, "
                    "then upstream's other parts listed here are deleted (shared ones only when nothing "
                    "else uses them) and the reservation is released. " + INTERRUPTION
                ),
            )
        wanted = stack.forwarding_rule.ip_address
        return MigrationPlan(
            action="create", address=address, address_changes=bool(address) and wanted != address
        )

    def drifted_load_balancers(
        self, *, requests: Sequence[LoadBalancerRequest], live_uids: frozenset[str] | None = None
    ) -> frozenset[str]:
        """The bulk drift check and the orphan sweep (rule: :class:`ccm.cloudprovider.DriftChecker`).

        A request that cannot be built is reported as drifted (the full ensure shows the user why)
        and its load balancer is kept: its UID is live. A Service whose status IP its unchanged rule
        serves is ours, as after an ensure: its next update looks for no upstream load balancer.
        """
        built = build_stacks(requests=requests, build=self._stack, live_uids=live_uids)
        with self._sweep_lock:
            drifted, orphans, served = self.deployer.drifted(stacks=built.stacks, live_uids=built.live_uids)
            for request in requests:
                if served.get(request.key) in service_ips(request):
                    self._settled(request.key, ours=True)
            for name in self._orphans.observe(orphans, now=self.clock()):
                logger.info("deleting orphaned load balancer %s: no Service with its UID exists", name)
                try:
                    self.deployer.delete(lb_name=name)
                    self._orphans.forget(name)
                except Exception as exc:  # the next sweep tries again
                    logger.warning("could not delete orphaned load balancer %s yet: %s", name, exc)
        return drifted | built.unbuildable


def new(
    *,
    cluster_name: str,
    cloud_config: str | None = None,
    load_balancer_class: str = "",
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
) -> GCEProvider:
    """Entry point for ``--cloud-provider=gce``."""
    return GCEProvider(
        cluster_name=cluster_name,
        config=load_config(cloud_config),
        load_balancer_class=load_balancer_class,
        orphan_grace_seconds=orphan_grace_seconds,
    )


def _other_ip(fr: model.ForwardingRule, found: UpstreamLoadBalancer) -> str:
    """Why ``found`` cannot be taken over when the Service asks for another IP ('' when it does not)."""
    if fr.ip_address and fr.ip_address != found.address:
        return f"the Service asks for spec.loadBalancerIP {fr.ip_address}, not the IP upstream's rule serves"
    return ""

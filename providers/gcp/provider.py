"""The GCP provider: the contract of :mod:`ccm.cloudprovider` on regional backend-service L4 LBs.

``ensure`` builds the desired stack (pure) and deploys it; ``update`` only syncs the shared instance
groups (one call per changed zone for the whole cluster); ``delete`` removes every owned part; the
bulk drift check lists the cluster's forwarding rules once and deletes orphaned load balancers after
a grace period.

A Service whose status address is served by the load balancer the upstream cloud provider built
(:mod:`providers.gcp.foreign`) keeps it: ``ensure`` and ``update`` raise :class:`ForeignLoadBalancer`
before changing anything, unless the Service asks for a new address (:data:`REPLACE_FOREIGN_ANNOTATION`);
then ours is built and upstream's per-Service parts are deleted once it is complete. Upstream's load
balancer is looked for only when the Service has an IP in its status that no load balancer of ours
serves, so a Service without a status address costs no extra call, and a Service of ours none either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ccm.cloudprovider import (
    DEFAULT_ORPHAN_GRACE_SECONDS,
    ForeignLoadBalancer,
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
from providers.gcp.deployer import UNREAD, Deployer
from providers.gcp.foreign import Upstream, UpstreamLoadBalancer, replaced_message, service_ips

logger = logging.getLogger(__name__)

NODE_REFUSED = "LoadBalancerNodeRefused"  # a node GCE would not put in the LB's instance group
IP_CHANGED = "LoadBalancerIPChanged"  # the Warning event of a change that could not keep the Service's IP
FOREIGN_REPLACED = "ForeignLoadBalancerReplaced"  # the Service's new address, upstream's LB deleted


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
        self.upstream = Upstream(clients=self.clients, network_project=self.network.network_project)
        # What the last ensure of a Service found, so that the node sync (update) costs no extra call:
        # the Services served by upstream's load balancer (refused), and those known to be ours.
        self._foreign_lock = threading.Lock()
        self._refused: dict[str, ForeignLoadBalancer] = {}
        self._ours: set[str] = set()

    def _stack(self, request: LoadBalancerRequest) -> model.Stack:
        return builder.build_stack(request=request, network=self.network)

    def unsupported_annotations(self, *, annotations: Mapping[str, str]) -> tuple[str, ...]:
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

    def _refuse(self, request: LoadBalancerRequest, found: UpstreamLoadBalancer) -> ForeignLoadBalancer:
        refusal = ForeignLoadBalancer(address=found.address, parts=found.foreign_parts())
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

    def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
        stack = self._stack(request)
        replace = asks_replace_foreign(request.annotations)
        found, rule = self._foreign(request, stack)
        if found is not None and not replace:
            raise self._refuse(request, found)
        ensured = self.deployer.ensure(key=request.key, uid=request.uid, stack=stack, rule=rule)
        events = tuple(ProviderEvent(reason=IP_CHANGED, message=message) for message in ensured.ip_changes)
        events += tuple(
            ProviderEvent(reason=NODE_REFUSED, message=message) for message in ensured.refused_nodes
        )
        if found is not None:  # ours is complete: upstream's goes
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
        rule = self.deployer.get_forwarding_rule(stack.forwarding_rule.name)
        if rule is not None and (not ips or str(rule.I_p_address) in ips):
            return MigrationPlan(action="keep", address=address, address_changes=False)
        found = self.upstream.find(request=request) if ips else None
        if found is not None and found.address in ips:
            return MigrationPlan(
                action="replace" if replace else "refuse",
                address=found.address,
                address_changes=replace,
                foreign=found.foreign_parts(),
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
        and its load balancer is kept: its UID is live.
        """
        built = build_stacks(requests=requests, build=self._stack, live_uids=live_uids)
        with self._sweep_lock:
            drifted, orphans = self.deployer.drifted(stacks=built.stacks, live_uids=built.live_uids)
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

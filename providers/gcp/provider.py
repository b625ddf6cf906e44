"""The GCP provider: the contract of :mod:`ccm.cloudprovider` on regional backend-service L4 LBs.

``ensure`` builds the desired stack (pure) and deploys it; ``update`` only syncs the shared instance
groups (one call per changed zone for the whole cluster); ``delete`` removes every owned part; the
bulk drift check lists the cluster's forwarding rules once and deletes orphaned load balancers after
a grace period.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from ccm.cloudprovider import (
    DEFAULT_ORPHAN_GRACE_SECONDS,
    IngressPoint,
    LoadBalancerRequest,
    LoadBalancerStatus,
    ProviderEvent,
)
from providers.common.drift import build_stacks
from providers.common.orphans import OrphanClock
from providers.gcp import annotations as ann
from providers.gcp import builder, model
from providers.gcp.client import GCEClients
from providers.gcp.config import GCEConfig, cluster_network
from providers.gcp.config import load as load_config
from providers.gcp.deployer import Deployer

logger = logging.getLogger(__name__)

NODE_REFUSED = "LoadBalancerNodeRefused"  # a node GCE would not put in the LB's instance group
IP_CHANGED = "LoadBalancerIPChanged"  # the Warning event of a change that could not keep the Service's IP


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

    def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
        stack = self._stack(request)
        ensured = self.deployer.ensure(key=request.key, uid=request.uid, stack=stack)
        events = tuple(ProviderEvent(reason=IP_CHANGED, message=message) for message in ensured.ip_changes)
        events += tuple(
            ProviderEvent(reason=NODE_REFUSED, message=message) for message in ensured.refused_nodes
        )
        return LoadBalancerStatus(ingress=(IngressPoint(ip=ensured.ip),), events=events)

    def update_load_balancer(self, *, request: LoadBalancerRequest) -> None:
        stack = self._stack(request)
        self.deployer.instance_groups.sync(instances=stack.instances)

    def ensure_load_balancer_deleted(self, *, request: LoadBalancerRequest) -> None:
        self.deployer.delete(lb_name=self.get_load_balancer_name(request=request))

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

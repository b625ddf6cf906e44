"""The AWS provider: the contract of :mod:`ccm.cloudprovider`, on top of the builder and the deployer.

``ensure`` builds the desired stack (pure), then deploys it; ``update`` only moves targets;
``delete`` deploys nothing; the bulk drift check lists load balancers by tag once for all Services.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from ccm.cloudprovider import (
    DEFAULT_ORPHAN_GRACE_SECONDS,
    IngressPoint,
    LoadBalancerRequest,
    LoadBalancerStatus,
    ProviderEvent,
    build_failure_is_expected,
)
from providers.aws import annotations as ann
from providers.aws import builder, model
from providers.aws.client import AWSClients
from providers.aws.config import AWSConfig
from providers.aws.config import load as load_config
from providers.aws.deploy.deployer import Deployer
from providers.common.drift import build_stacks

logger = logging.getLogger(__name__)


class AWSProvider:
    """``--cloud-provider=aws``."""

    def __init__(
        self,
        *,
        cluster_name: str,
        config: AWSConfig,
        clients: AWSClients | None = None,
        orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
        full_sweep_every: int = 6,
        load_balancer_class: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.cluster_name = config.cluster_id or cluster_name
        self.clients = clients or AWSClients(region=config.region)
        self.load_balancer_class = load_balancer_class
        self.deployer = Deployer(
            clients=self.clients,
            config=config,
            cluster_name=cluster_name,
            scope=load_balancer_class,
            orphan_grace=orphan_grace_seconds,
        )
        self.orphan_grace_seconds = orphan_grace_seconds
        self.clock = clock
        self.full_sweep_every = max(1, full_sweep_every)
        self._drift_checks = 0

    def _stack(self, request: LoadBalancerRequest) -> model.Stack:
        return builder.build_stack(request=request, config=self.config, cluster=self.deployer.cluster_info())

    def _status(
        self, stack: model.Stack, dns_name: str, notices: Sequence[tuple[str, str]] = ()
    ) -> LoadBalancerStatus:
        points = [IngressPoint(hostname=dns_name)]
        points.extend(
            IngressPoint(ip=m.private_ipv4_address, ip_mode="Proxy")
            for m in stack.load_balancer.subnet_mappings
            if m.private_ipv4_address
        )
        events = tuple(ProviderEvent(reason=reason, message=message) for reason, message in notices)
        return LoadBalancerStatus(ingress=tuple(points), events=events)

    # -- the contract -------------------------------------------------------------------------------

    def get_load_balancer_name(self, *, request: LoadBalancerRequest) -> str:
        return builder.load_balancer_name(
            cluster_name=self.cluster_name,
            namespace=request.namespace,
            name=request.name,
            uid=request.uid,
            internal=builder.is_internal(request.annotations),
        )

    def get_load_balancer(self, *, request: LoadBalancerRequest) -> tuple[LoadBalancerStatus | None, bool]:
        found = self.deployer.list_owned(uid=request.uid, types=("elasticloadbalancing:loadbalancer",))
        if not found:
            return None, False
        # the tagging API also lists deleted load balancers for a while: only one that exists counts
        described = self.deployer.confirmed_load_balancers([f.arn for f in found])
        lb = next((described[f.arn] for f in found if f.arn in described), None)
        if lb is None:
            return None, False
        return LoadBalancerStatus(ingress=(IngressPoint(hostname=lb["DNSName"]),)), True

    def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
        stack = self._stack(request)
        deployed = self.deployer.ensure(key=request.key, uid=request.uid, stack=stack)
        return self._status(stack, deployed.dns_name, deployed.notices)

    def unsupported_annotations(self, *, annotations: Mapping[str, str]) -> tuple[str, ...]:
        """``aws-load-balancer-*`` keys this provider does not implement (:class:`AnnotationChecker`)."""
        if builder.implemented_elsewhere(annotations):
            return ()  # the AWS Load Balancer Controller's Service: its annotations are its own
        return ann.unsupported(annotations=annotations)

    def update_load_balancer(self, *, request: LoadBalancerRequest) -> None:
        stack = self._stack(request)
        if not self.deployer.update_targets(key=request.key, uid=request.uid, stack=stack):
            raise RuntimeError(f"the load balancer of {request.key} does not exist (yet)")

    def ensure_load_balancer_deleted(self, *, request: LoadBalancerRequest) -> None:
        self.deployer.delete(
            key=request.key,
            uid=request.uid,
            keep_protection=builder.asks_deletion_protection(request.annotations),
            # only a Service told of an address has something to find by name (the listing lags)
            names=(lambda: self._names(request)) if request.status_addresses else None,
        )

    def _names(self, request: LoadBalancerRequest) -> model.StackNames:
        """What the Service's resources would be called (both schemes: it may have changed)."""
        lbs = tuple(
            builder.load_balancer_name(
                cluster_name=self.cluster_name,
                namespace=request.namespace,
                name=request.name,
                uid=request.uid,
                internal=internal,
            )
            for internal in (False, True)
        )
        try:
            tgs = tuple(tg.name for tg in self._stack(request).target_groups)
        except Exception as exc:  # a fallback: the delete goes on with what can be named
            if not build_failure_is_expected(exc):
                logger.warning("%s: cannot name its target groups: %s", request.key, exc)
            tgs = ()  # what the spec cannot name, the orphan sweep finds once it is listed
        sg = builder.frontend_security_group_name(
            cluster_name=self.cluster_name, namespace=request.namespace, name=request.name, uid=request.uid
        )
        return model.StackNames(load_balancers=lbs, target_groups=tgs, security_group=sg)

    def drifted_load_balancers(
        self, *, requests: Sequence[LoadBalancerRequest], live_uids: frozenset[str] | None = None
    ) -> frozenset[str]:
        """The bulk drift check and the orphan sweep (rule: :class:`ccm.cloudprovider.DriftChecker`).

        A request that cannot be built is reported as drifted (the full ensure shows the user why)
        and its resources are kept: its UID is live.
        """
        built = build_stacks(requests=requests, build=self._stack, live_uids=live_uids)
        self._drift_checks += 1
        full = self._drift_checks % self.full_sweep_every == 0
        return built.unbuildable | self.deployer.drifted(
            stacks=built.stacks, live_uids=built.live_uids, full=full, now=self.clock()
        )


def new(
    *,
    cluster_name: str,
    cloud_config: str | None = None,
    load_balancer_class: str = "",
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
) -> AWSProvider:
    """Entry point for ``--cloud-provider=aws``."""
    return AWSProvider(
        cluster_name=cluster_name,
        config=load_config(cloud_config),
        load_balancer_class=load_balancer_class,
        orphan_grace_seconds=orphan_grace_seconds,
    )

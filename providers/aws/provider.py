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
    REPLACE_FOREIGN_ANNOTATION,
    ForeignLoadBalancer,
    ImplementedElsewhere,
    IngressPoint,
    InvalidSpec,
    LoadBalancerRequest,
    LoadBalancerStatus,
    MigrationPlan,
    ProviderEvent,
    asks_replace_foreign,
    build_failure_is_expected,
)
from providers.aws import annotations as ann
from providers.aws import builder, model
from providers.aws.client import AWSClients
from providers.aws.config import AWSConfig
from providers.aws.config import load as load_config
from providers.aws.deploy.deployer import Deployer
from providers.aws.deploy.foreign import ForeignStack, claimed_hostname
from providers.common.drift import build_stacks

logger = logging.getLogger(__name__)

ADDRESS_REPLACED = "LoadBalancerReplaced"  # the Service accepted a new address in place of upstream's
FOREIGN_KEPT = "ForeignLoadBalancerKept"
REPLACE_ANNOTATION_HINT = f'{REPLACE_FOREIGN_ANNOTATION}: "true"'


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
        """Build and deploy the Service's stack; but never in place of the upstream provider's load
        balancer that serves the Service's address, unless the Service accepts a new address
        (:class:`ForeignLoadBalancer`). Then upstream's is deleted once ours is complete."""
        stack = self._stack(request)
        replace = asks_replace_foreign(request.annotations)
        foreign = self._foreign(request, stack=stack, parts=replace)
        if foreign is not None and not replace:
            raise ForeignLoadBalancer(address=claimed_hostname(request), parts=foreign.parts())
        deployed = self.deployer.ensure(key=request.key, uid=request.uid, stack=stack)
        notices = list(deployed.notices)
        if foreign is not None:
            notices.append(self._replaced(foreign, new_address=deployed.dns_name))
        return self._status(stack, deployed.dns_name, notices)

    def _foreign(
        self, request: LoadBalancerRequest, *, stack: model.Stack, parts: bool
    ) -> ForeignStack | None:
        """Upstream's load balancer serving the Service's status hostname (no call unless the
        hostname carries upstream's name)."""
        if not claimed_hostname(request):
            return None
        return self.deployer.foreign.find(request=request, parts=parts, instance_ids=stack.targets)

    def _replaced(self, foreign: ForeignStack, *, new_address: str) -> tuple[str, str]:
        """Delete upstream's load balancer the Service has replaced; the event that says so."""
        if not foreign.owned:
            return (
                FOREIGN_KEPT,
                f"the Service's address is now {new_address}; {foreign.kind} {foreign.name} "
                f"({foreign.dns_name}) is not deleted: its tags do not name this cluster and Service",
            )
        self.deployer.foreign.delete(foreign)
        gone = ", ".join(f"{p.kind} {p.name}" for p in foreign.parts())
        return (
            ADDRESS_REPLACED,
            f"the Service's address changed from {foreign.dns_name} to {new_address}, as it asked "
            f"({REPLACE_ANNOTATION_HINT}); deleted the upstream provider's {gone}",
        )

    def unsupported_annotations(self, *, annotations: Mapping[str, str]) -> tuple[str, ...]:
        """``aws-load-balancer-*`` keys this provider does not implement (:class:`AnnotationChecker`)."""
        if builder.implemented_elsewhere(annotations):
            return ()  # the AWS Load Balancer Controller's Service: its annotations are its own
        return ann.unsupported(annotations=annotations)

    def update_load_balancer(self, *, request: LoadBalancerRequest) -> None:
        stack = self._stack(request)
        if not self.deployer.update_targets(key=request.key, uid=request.uid, stack=stack):
            foreign = self._foreign(request, stack=stack, parts=False)
            if foreign is not None:
                raise ForeignLoadBalancer(address=claimed_hostname(request), parts=foreign.parts())
            raise RuntimeError(f"the load balancer of {request.key} does not exist (yet)")

    def ensure_load_balancer_deleted(self, *, request: LoadBalancerRequest) -> None:
        self.deployer.delete(
            key=request.key,
            uid=request.uid,
            keep_protection=builder.asks_deletion_protection(request.annotations),
            # only a Service told of an address has something to find by name (the listing lags)
            names=(lambda: self._names(request)) if request.status_addresses else None,
        )
        # A Service deleted while the upstream provider's load balancer served it: that one goes too
        # (this cluster's and this Service's by its tags; nobody else would delete it)
        if claimed_hostname(request):
            try:
                targets = self._stack(request).targets
            except Exception:  # an unbuildable spec: the node rules of the cluster's groups still go
                targets = ()
            foreign = self.deployer.foreign.find(request=request, parts=True, instance_ids=targets)
            if foreign is not None and foreign.owned:
                logger.info(
                    "%s: deleting the upstream provider's %s %s", request.key, foreign.kind, foreign.name
                )
                self.deployer.foreign.delete(foreign)

    def plan_migration(self, *, request: LoadBalancerRequest) -> MigrationPlan:
        """What :meth:`ensure_load_balancer` would do; reads only (:class:`MigrationPlanner`)."""
        address = next(iter(request.status_addresses), "")
        try:
            stack = self._stack(request)
            replace = asks_replace_foreign(request.annotations)
        except ImplementedElsewhere as exc:
            return MigrationPlan(action="elsewhere", address=address, address_changes=False, reason=str(exc))
        except InvalidSpec as exc:
            return MigrationPlan(action="invalid", address=address, address_changes=False, reason=str(exc))
        ours = self.deployer.list_owned(uid=request.uid, types=("elasticloadbalancing:loadbalancer",))
        described = self.deployer.confirmed_load_balancers([f.arn for f in ours]) if ours else {}
        foreign = self._foreign(request, stack=stack, parts=True)
        if foreign is not None:
            if replace:
                reason = f"the Service asks for a new address ({REPLACE_ANNOTATION_HINT})" + (
                    ""
                    if foreign.owned
                    else f"; {foreign.kind} {foreign.name} is kept: its tags do not name this cluster "
                    "and Service"
                )
                return MigrationPlan(
                    action="replace",
                    address=address,
                    address_changes=True,
                    foreign=foreign.parts(),
                    reason=reason,
                )
            return MigrationPlan(
                action="refuse",
                address=address,
                address_changes=False,
                foreign=foreign.parts(),
                reason=str(ForeignLoadBalancer(address=address, parts=foreign.parts())),
            )
        if described:
            dns = {lb["DNSName"] for lb in described.values()}
            return MigrationPlan(
                action="keep",
                address=address,
                address_changes=bool(address) and address not in dns,
                reason=f"served by this controller's NLB {', '.join(sorted(dns))}",
            )
        return MigrationPlan(
            action="create",
            address=address,
            address_changes=bool(address),
            reason=(
                f"nothing found serves {address}: a new NLB gets a new address" if address else "a new NLB"
            ),
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

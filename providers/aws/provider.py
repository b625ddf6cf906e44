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
from providers.aws import builder, kind, model
from providers.aws.classic import build as classic_build
from providers.aws.classic.model import ClassicStack
from providers.aws.classic.takeover import refusal as classic_refusal
from providers.aws.client import AWSClients
from providers.aws.config import AWSConfig
from providers.aws.config import load as load_config
from providers.aws.deploy.adoption import refusal
from providers.aws.deploy.deployer import AdoptionRefused, Deployer, NothingToAdopt
from providers.aws.deploy.foreign import CLB, CLB_SECURITY_GROUP_PREFIX, NLB, ForeignStack, claimed_hostname
from providers.aws.deploy.parts import Deployed, classic_name, is_classic_arn
from providers.common.drift import build_stacks

logger = logging.getLogger(__name__)

ADDRESS_REPLACED = "LoadBalancerReplaced"  # the Service accepted a new address in place of upstream's
FOREIGN_KEPT = "ForeignLoadBalancerKept"
REPLACE_ANNOTATION_HINT = f'{REPLACE_FOREIGN_ANNOTATION}: "true"'

Desired = model.Stack | ClassicStack  # an NLB's stack or a Classic ELB's


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

    def _classic(self, request: LoadBalancerRequest) -> bool:
        """Whether the Service's load balancer is a Classic ELB (:func:`providers.aws.kind.wants_classic`)."""
        return kind.wants_classic(
            annotations=request.annotations,
            config=self.config,
            status_addresses=request.status_addresses,
            replacing=asks_replace_foreign(request.annotations),
        )

    def _stack(self, request: LoadBalancerRequest, *, adopted: bool = False) -> Desired:
        cluster = self.deployer.cluster_info()
        if self._classic(request):
            return classic_build.build_classic_stack(
                request=request, config=self.config, cluster=cluster, adopted=adopted
            )
        return builder.build_stack(request=request, config=self.config, cluster=cluster, adopted=adopted)

    def _adopts(self, request: LoadBalancerRequest) -> bool:
        """Whether the Service's load balancer is the upstream provider's, taken over (its status
        hostname says so, and it has not asked for a new address); no call."""
        return bool(claimed_hostname(request)) and not asks_replace_foreign(request.annotations)

    def _stack_of(self, request: LoadBalancerRequest) -> Desired:
        """The stack the drift check compares: the taken-over one for a Service upstream served."""
        return self._stack(request, adopted=self._adopts(request))

    def _deploy(self, request: LoadBalancerRequest, stack: Desired, *, address: str = "") -> Deployed:
        if isinstance(stack, ClassicStack):
            return self.deployer.classic.ensure(key=request.key, uid=request.uid, stack=stack)
        return self.deployer.ensure(key=request.key, uid=request.uid, stack=stack, address=address)

    def _status(
        self, stack: Desired, dns_name: str, notices: Sequence[tuple[str, str]] = ()
    ) -> LoadBalancerStatus:
        points = [IngressPoint(hostname=dns_name)]
        if isinstance(stack, model.Stack):
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
        classic = [f for f in found if is_classic_arn(f.arn)]
        if classic:
            dns = self.deployer.classic.dns_names([classic_name(f.arn) for f in classic])
            name = next((n for n in (classic_name(f.arn) for f in classic) if n in dns), None)
            if name is not None:
                return LoadBalancerStatus(ingress=(IngressPoint(hostname=dns[name]),)), True
        described = self.deployer.confirmed_load_balancers(
            [f.arn for f in found if not is_classic_arn(f.arn)]
        )
        lb = next((described[f.arn] for f in found if f.arn in described), None)
        if lb is None:
            return None, False
        return LoadBalancerStatus(ingress=(IngressPoint(hostname=lb["DNSName"]),)), True

    def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
        """Build and deploy the Service's stack, keeping the address the upstream provider gave it.

        A Service whose status hostname is the upstream provider's NLB (named ``a<uid>``) gets that NLB
        taken over in place (:mod:`providers.aws.deploy.adoption`); one it cannot take over (a Classic
        ELB, or an NLB it refuses) is left alone with :class:`ForeignLoadBalancer`, unless the Service
        accepts a new address: then ours is built and upstream's deleted once ours is complete.
        """
        claimed = claimed_hostname(request)
        if claimed and not asks_replace_foreign(request.annotations):
            stack = self._stack(request, adopted=True)
            try:
                deployed = self._deploy(request, stack, address=claimed)
                return self._status(stack, deployed.dns_name, deployed.notices)
            except NothingToAdopt:  # none of upstream's name and the Service's kind: the other kind, or gone
                foreign = self.deployer.foreign.find(
                    request=request, parts=False, classic_only=isinstance(stack, model.Stack)
                )
                if foreign is not None:
                    raise ForeignLoadBalancer(
                        address=claimed, parts=foreign.parts(), reason=not_adopted(foreign, stack=stack)
                    ) from None
                logger.info(
                    "%s: nothing serves %s any more: building a new load balancer", request.key, claimed
                )
            except AdoptionRefused as refused:
                foreign = self.deployer.foreign.find(request=request, parts=False)
                raise ForeignLoadBalancer(
                    address=claimed, parts=foreign.parts() if foreign else (), reason=refused.reason
                ) from None
        stack = self._stack(request)
        foreign = self._foreign(request, stack=stack, parts=True) if claimed else None
        deployed = self._deploy(request, stack)
        notices = list(deployed.notices)
        if foreign is not None:
            notices.append(self._replaced(foreign, new_address=deployed.dns_name))
        return self._status(stack, deployed.dns_name, notices)

    def _foreign(self, request: LoadBalancerRequest, *, stack: Desired, parts: bool) -> ForeignStack | None:
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

    def unsupported_annotations(
        self, *, annotations: Mapping[str, str], status_addresses: Sequence[str] = ()
    ) -> tuple[str, ...]:
        """``aws-load-balancer-*`` keys this provider does not implement, and those of the other kind of
        load balancer than the Service's (:class:`AnnotationChecker`)."""
        if builder.implemented_elsewhere(annotations):
            return ()  # the AWS Load Balancer Controller's Service: its annotations are its own
        classic = kind.wants_classic(
            annotations=annotations,
            config=self.config,
            status_addresses=status_addresses,
            replacing=asks_replace_foreign(annotations),
        )
        return ann.unsupported(annotations=annotations, classic=classic)

    def update_load_balancer(self, *, request: LoadBalancerRequest) -> None:
        stack = self._stack(request, adopted=self._adopts(request))
        if isinstance(stack, ClassicStack):
            known = self.deployer.classic.update_targets(key=request.key, uid=request.uid, stack=stack)
        else:
            known = self.deployer.update_targets(key=request.key, uid=request.uid, stack=stack)
        if known:
            return
        foreign = self._foreign(request, stack=stack, parts=False)
        if foreign is not None:
            reason = not_adopted(foreign, stack=stack)
            if not reason:  # upstream's, not taken over yet: the Service's next sync takes it over
                raise RuntimeError(
                    f"{request.key}: the upstream provider's {foreign.kind} {foreign.name} is not taken over "
                    "yet; the Service's next sync takes it over, with the nodes"
                )
            raise ForeignLoadBalancer(address=claimed_hostname(request), parts=foreign.parts(), reason=reason)
        raise RuntimeError(f"the load balancer of {request.key} does not exist (yet)")

    def ensure_load_balancer_deleted(self, *, request: LoadBalancerRequest) -> None:
        """Delete the Service's stack; and the upstream provider's load balancer that served it (taken
        over or not: this cluster's and this Service's by its tags, and nobody else would delete it),
        with its target groups and its rules on the nodes' security groups."""
        foreign: ForeignStack | None = None
        stack: Desired | None = None
        if request.status_addresses:  # only a Service told of an address has something to find by name
            try:
                stack = self._stack(request)
            except Exception as exc:  # unbuildable: what is listed still goes, and the cluster's node rules
                if not build_failure_is_expected(exc):
                    logger.warning(
                        "%s: cannot build its load balancer to name its parts: %s", request.key, exc
                    )
                stack = None
        if claimed_hostname(request):
            targets = stack.targets if stack is not None else ()
            foreign = self.deployer.foreign.find(request=request, parts=True, instance_ids=targets)
        self.deployer.delete(
            key=request.key,
            uid=request.uid,
            keep_protection=builder.asks_deletion_protection(request.annotations),
            # only a Service told of an address has something to find by name (the listing lags)
            names=(lambda: self._names(request, stack)) if request.status_addresses else None,
            classic_name=stack.name if isinstance(stack, ClassicStack) else None,
        )
        if foreign is not None and foreign.owned:
            logger.info("%s: deleting the upstream provider's %s %s", request.key, foreign.kind, foreign.name)
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
        nlbs = [f.arn for f in ours if not is_classic_arn(f.arn)]
        described = self.deployer.confirmed_load_balancers(nlbs) if nlbs else {}
        classic = [classic_name(f.arn) for f in ours if is_classic_arn(f.arn)]
        described.update(
            {name: {"DNSName": dns} for name, dns in self.deployer.classic.dns_names(classic).items()}
            if classic
            else {}
        )
        foreign = self._foreign(request, stack=stack, parts=True)
        if foreign is not None and (foreign.arn or foreign.name) in described:
            foreign = None  # taken over already: it is ours
        if foreign is not None:
            reason = not_adopted(foreign, stack=stack)
            if not replace and not reason:
                return MigrationPlan(
                    action="adopt",
                    address=address,
                    address_changes=False,
                    foreign=foreign.parts(),
                    reason=(
                        f"the upstream provider's NLB {foreign.name} is taken over in place: its DNS name, "
                        "listeners and target groups stay, its rules on the nodes' groups are kept"
                        if foreign.kind == NLB
                        else f"the upstream provider's Classic ELB {foreign.name} is taken over in place: "
                        "its DNS name and listeners stay, its group "
                        f"{CLB_SECURITY_GROUP_PREFIX}{foreign.name} becomes the frontend group and the "
                        "cluster's backend group replaces its rules on the nodes' groups"
                    ),
                )
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
                reason=str(ForeignLoadBalancer(address=address, parts=foreign.parts(), reason=reason)),
            )
        if described:
            dns = {lb["DNSName"] for lb in described.values()}
            return MigrationPlan(
                action="keep",
                address=address,
                address_changes=bool(address) and address not in dns,
                reason=f"served by this controller's load balancer {', '.join(sorted(dns))}",
            )
        what = "a new Classic ELB" if isinstance(stack, ClassicStack) else "a new NLB"
        return MigrationPlan(
            action="create",
            address=address,
            address_changes=bool(address),
            reason=(f"nothing found serves {address}: {what} gets a new address" if address else what),
        )

    def _names(self, request: LoadBalancerRequest, stack: Desired | None) -> model.StackNames:
        """What the Service's resources would be called (both schemes: it may have changed); target
        groups only from a built NLB stack (what cannot be named, the orphan sweep finds once listed)."""
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
        tgs = tuple(tg.name for tg in stack.target_groups) if isinstance(stack, model.Stack) else ()
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
        built = build_stacks(requests=requests, build=self._stack_of, live_uids=live_uids)
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


def not_adopted(foreign: ForeignStack, *, stack: Desired) -> str:
    """Why the upstream provider's load balancer is not taken over in place ('' when it would be)."""
    wanted = CLB if isinstance(stack, ClassicStack) else NLB
    scheme = stack.scheme if isinstance(stack, ClassicStack) else stack.load_balancer.scheme
    if foreign.kind != wanted:
        return (
            f"the Service asks for a{'n' if wanted == NLB else ''} {wanted} ({ann.TYPE}) and the upstream "
            f"provider's load balancer is a{'n' if foreign.kind == NLB else ''} {foreign.kind}: the type "
            "of a load balancer cannot change in place (its address would change)"
        )
    owner = f"kubernetes.io/cluster/<cluster>=owned and {model.SERVICE_NAME_TAG}=<namespace>/<name>"
    if foreign.kind == CLB:
        return classic_refusal(
            owned=foreign.owned,
            owner=owner,
            have_scheme=str(foreign.described.get("Scheme", "")),
            want_scheme=scheme,
        )
    return refusal(
        lb=foreign.described,
        owned=foreign.owned,
        owner=owner,
        scheme=scheme or str(foreign.described.get("Scheme", "")),
    )

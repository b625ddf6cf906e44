"""The deployer: runs the synthesizers in dependency order to create or update a Service's stack, and
in reverse to delete it.

* parts are matched by their ``ccm-lb/resource`` tag, never by name alone; nothing without this
  cluster's ``owned`` tag is ever modified or deleted;
* an instance's scope (its ``--load-balancer-class``) is tagged ``ccm-lb/scope`` on what it creates;
  it lists, changes and deletes only resources of its scope (the default instance: those without the
  tag, which includes everything made before scopes existed). The cluster's shared backend security
  group belongs to no scope;
* every create is idempotent (AWS returns the existing load balancer or target group for the same
  name and settings; a duplicate listener or security group is looked up), so a process killed
  between two calls converges on the next try;
* deleting is deploying nothing: the same listing, then deletes, in dependency order.

Cluster-wide state (subnets, the shared backend security group, which node security groups carry our
rule) and per-Service state (ARNs, registered targets, DNS name) is cached in memory; the cache is
only an optimisation, every path works from an empty one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ccm.cloudprovider import DEFAULT_ORPHAN_GRACE_SECONDS
from providers.aws import model
from providers.aws.classic.deploy import ClassicDeployer
from providers.aws.classic.model import ClassicStack
from providers.aws.classic.refusals import refuse_classic
from providers.aws.client import AWSClients
from providers.aws.config import AWSConfig
from providers.aws.deploy.adoption import Adoption
from providers.aws.deploy.backend_security_group import BackendSecurityGroup
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery
from providers.aws.deploy.foreign import ForeignLoadBalancers
from providers.aws.deploy.listeners import Listeners
from providers.aws.deploy.load_balancer import LoadBalancers
from providers.aws.deploy.node_rules import NodeRules
from providers.aws.deploy.parts import (
    LB_TYPE,
    SG_TYPE,
    TAKEN_OVER,
    TG_TYPE,
    ActualStack,
    AdoptionRefused,
    Deployed,
    Found,
    NothingToAdopt,
    StackCache,
    effective_tg_name,
    without_own,
)
from providers.aws.deploy.security_groups import FrontendSecurityGroups
from providers.aws.deploy.sweep import Sweep
from providers.aws.deploy.target_groups import TargetGroups
from providers.aws.deploy.targets import Targets
from providers.common.spec_hash import spec_hash

logger = logging.getLogger(__name__)

# NothingToAdopt and AdoptionRefused live in parts (the Classic ELB deployer raises them too)
__all__ = ["AdoptionRefused", "Deployer", "NothingToAdopt", "parts_match"]


class Deployer:
    """Creates, updates and deletes the AWS resources of Services; thread-safe across Services."""

    def __init__(
        self,
        *,
        clients: AWSClients,
        config: AWSConfig,
        cluster_name: str,
        scope: str = "",
        orphan_grace: float = DEFAULT_ORPHAN_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = Context(
            clients=clients, config=config, cluster_name=config.cluster_id or cluster_name, scope=scope
        )
        self.discovery = Discovery(self.ctx)
        self.backend = BackendSecurityGroup(self.ctx, self.discovery)
        self.security_groups = FrontendSecurityGroups(self.ctx, self.discovery)
        self.target_groups = TargetGroups(self.ctx, self.discovery)
        self.load_balancers = LoadBalancers(self.ctx, self.discovery)
        self.listeners = Listeners(self.ctx)
        self.targets = Targets(self.ctx, clock=clock)
        self.foreign = ForeignLoadBalancers(self.ctx, self.discovery)
        self.adoption = Adoption(self.ctx, self.foreign)
        self.node_rules = NodeRules(self.ctx, self.discovery)
        self.sweep = Sweep(
            discovery=self.discovery,
            load_balancers=self.load_balancers,
            target_groups=self.target_groups,
            security_groups=self.security_groups,
            orphan_grace=orphan_grace,
            targets_match=self._targets_match,
            node_rules=self.node_rules,
            node_rules_drifted=self._node_rules_drifted,
        )
        # Classic ELBs: same discovery, groups and sweep (which hands it the Classic ELBs it lists)
        self.classic = ClassicDeployer(
            ctx=self.ctx,
            discovery=self.discovery,
            backend=self.backend,
            security_groups=self.security_groups,
            foreign=self.foreign,
            sweep=self.sweep,
            not_running=self.targets.not_running,
        )
        self._stacks: dict[str, StackCache] = {}

    # -- what the provider asks of the account -----------------------------------------------------

    def cluster_info(self) -> model.ClusterInfo:
        return self.discovery.cluster_info()

    def list_owned(
        self, *, uid: str | None = None, types: Sequence[str] = (LB_TYPE, TG_TYPE, SG_TYPE)
    ) -> list[Found]:
        return self.discovery.list_owned(uid=uid, types=types)

    def confirmed_load_balancers(self, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The load balancers of ``arns`` that exist, by ARN."""
        return self.discovery.described_load_balancers(arns)

    def ensure_backend(self, *, instance_ids: Sequence[str]) -> str:
        """The cluster's shared backend security group, and its rule on every node security group."""
        return self.backend.ensure(instance_ids=instance_ids)

    # -- ensure -------------------------------------------------------------------------------------

    def ensure(self, *, key: str, uid: str, stack: model.Stack, address: str = "") -> Deployed:
        """Make AWS match ``stack``; returns its DNS name, ARN and what could not be applied.

        Creation order makes every crash point recoverable: security group and its rules, target
        groups (and attributes), then the load balancer, its listeners, the targets, and last the spec
        hash on the load balancer: a hash that matches means the stack was complete for this spec. An
        ensure still trusts a matching hash only once its listeners were seen complete (by this
        process, or by one DescribeListeners after a restart), since a hash written by an earlier
        release (which tagged at creation) proves less.
        """
        actual = self.discovery.actual(uid)
        refuse_classic(actual=actual, ctx=self.ctx)  # a Classic ELB serves the Service: no NLB in its place
        took_over = False
        if stack.adopted and actual.load_balancer is None:  # before anything is made: it may refuse
            adopted = self.adoption.adopt(key=key, uid=uid, stack=stack, address=address)
            if adopted is None:
                raise NothingToAdopt(stack.load_balancer.name)
            actual, took_over = adopted
        backend_sg = self.backend.ensure(instance_ids=stack.targets)
        actual.prefer(stack.load_balancer.name)
        cache = self._stacks.setdefault(key, StackCache())
        cache.notices = []
        if took_over:
            cache.notices.append(
                (
                    TAKEN_OVER,
                    f"took over the upstream provider's NLB {stack.load_balancer.name} ({address}) in place: "
                    "the address, listeners and target groups stay, and no connection is interrupted",
                )
            )
        desired_hash = stack.spec_hash()
        lb = actual.load_balancer
        if (
            lb is not None
            and not actual.replaced
            and lb.tags.get(model.SPEC_HASH_TAG) == desired_hash
            and parts_match(stack, actual)
            and self.listeners.complete(lb_arn=lb.arn, stack=stack, actual=actual, cache=cache)
        ):
            cache.lb_arn = lb.arn
            cache.tg_arns = {tg.resource_id: tg.arn for tg in actual.target_groups}
            if stack.adopted and cache.node_rules_stale:  # found by the full drift check
                self._ensure_node_rules(stack)
                cache.node_rules_stale = False
            self.targets.sync(cache=cache, stack=stack)
            return Deployed(dns_name=self.load_balancers.dns_name(cache), lb_arn=cache.lb_arn)

        actual.target_groups = self.discovery.confirmed_target_groups(actual.target_groups)
        frontend = self.security_groups.ensure(stack=stack, actual=actual)
        # The backend group is attached in every case (BYO groups included): the node rules reference it.
        # An adopted NLB has no security group and can get none: its node rules are CIDR rules.
        sg_ids = (
            []
            if stack.adopted
            else [*([frontend] if frontend else []), *stack.byo_security_groups, backend_sg]
        )
        tg_arns = self.target_groups.ensure(stack=stack, actual=actual, cache=cache)
        lb_arn, created = self.load_balancers.ensure(stack=stack, actual=actual, sg_ids=sg_ids, cache=cache)
        for old in actual.replaced:  # the new NLB exists: the one it replaces goes, freeing its target groups
            self.load_balancers.delete(old.arn, keep_protection=False)
        tags_changed = lb is not None and without_own(lb.tags) != without_own(dict(stack.load_balancer.tags))
        self.listeners.ensure(
            stack=stack, lb_arn=lb_arn, tg_arns=tg_arns, created=created, cache=cache, retag=tags_changed
        )
        cache.listeners_hash = desired_hash
        desired_tgs = set(tg_arns.values())
        for tg in actual.target_groups:
            if tg.arn not in desired_tgs:
                self.target_groups.delete(tg.arn)
                cache.targets.pop(tg.arn, None)
        for sg in actual.security_groups:
            if sg.sg_id != frontend:
                self.security_groups.delete(sg.sg_id)
        if stack.adopted:
            self._ensure_node_rules(stack)
            cache.node_rules_stale = False
        self.targets.sync(cache=cache, stack=stack)
        # Last: the hash on the NLB says the whole stack is complete for this spec, which is what lets
        # the bulk drift check (one listing for all Services) stand in for an ensure after a restart.
        if created or lb is None or lb.tags.get(model.SPEC_HASH_TAG) != desired_hash:
            self.ctx.clients.elbv2.add_tags(
                ResourceArns=[lb_arn], Tags=[{"Key": model.SPEC_HASH_TAG, "Value": desired_hash}]
            )
        return Deployed(
            dns_name=self.load_balancers.dns_name(cache), lb_arn=lb_arn, notices=tuple(cache.notices)
        )

    def update_targets(self, *, key: str, uid: str, stack: model.Stack) -> bool:
        """Only the targets (node sync). Returns False if the stack is unknown (the caller ensures)."""
        cache = self._stacks.get(key)
        if cache is None or not cache.tg_arns:
            actual = self.discovery.actual(uid)
            if actual.load_balancer is None or not actual.target_groups:
                return False
            cache = self._stacks.setdefault(key, StackCache())
            cache.lb_arn = actual.load_balancer.arn
            cache.tg_arns = {tg.resource_id: tg.arn for tg in actual.target_groups}
        self.targets.sync(cache=cache, stack=stack)
        return True

    # -- delete -------------------------------------------------------------------------------------

    def delete(
        self,
        *,
        key: str,
        uid: str,
        keep_protection: bool = False,
        names: Callable[[], model.StackNames] | None = None,
        classic_name: str | None = None,
    ) -> None:
        """Delete everything of the Service's stack that this cluster owns, in reverse dependency order.

        An NLB with deletion protection is deleted only when the Service no longer asks for the
        protection (``keep_protection`` false: the attribute is ours to manage, as every ensure puts it
        back to false once the annotation is gone); otherwise the delete fails, saying how to let it go.

        The tagging API may not list what was made a moment ago: then what this process made is
        deleted from its memory, or, after a restart, what ``names`` finds (read back as owned first);
        for a Classic ELB, the one named ``classic_name``.
        """
        actual = self.discovery.actual(uid)
        cache = self._stacks.pop(key, None)
        if actual.empty and cache is not None and cache.lb_arn:
            actual.load_balancer = Found(arn=cache.lb_arn, tags={})
            actual.target_groups = [Found(arn=arn, tags={}) for arn in cache.tg_arns.values()]
        elif actual.empty and names is not None:
            actual = self.discovery.by_name(uid=uid, names=names())
        for lb in (actual.load_balancer, *actual.replaced):
            if lb is not None:
                self.load_balancers.delete(lb.arn, keep_protection=keep_protection)
        # the Service's Classic ELB (or one left from before its type changed), on the same listing
        self.classic.delete_load_balancers(key=key, uid=uid, actual=actual, name=classic_name)
        for tg in actual.target_groups:
            self.target_groups.delete(tg.arn)
        for sg in actual.security_groups:
            self.security_groups.delete(sg.sg_id)

    # -- drift and orphans ---------------------------------------------------------------------------

    def drifted(
        self,
        *,
        stacks: Mapping[str, tuple[str, model.Stack | ClassicStack]],
        live_uids: frozenset[str] | None,
        full: bool,
        now: float,
    ) -> frozenset[str]:
        """See :meth:`providers.aws.deploy.sweep.Sweep.drifted`; the Services of ``stacks`` served by a
        Classic ELB are checked by :attr:`classic`, on the same listing."""
        nlbs: dict[str, tuple[str, model.Stack]] = {}
        classic: dict[str, tuple[str, ClassicStack]] = {}
        for key, (uid, stack) in stacks.items():
            if isinstance(stack, ClassicStack):
                classic[key] = (uid, stack)
            else:
                nlbs[key] = (uid, stack)
        return self.sweep.drifted(
            stacks=nlbs, classic_stacks=classic, live_uids=live_uids, full=full, now=now
        )

    def _ensure_node_rules(self, stack: model.Stack) -> None:
        self.node_rules.ensure(
            lb_name=stack.load_balancer.name,
            rules=stack.node_rules,
            groups=self.backend.node_groups(stack.targets),
        )

    def _node_rules_drifted(self, adopted: Mapping[str, model.Stack]) -> frozenset[str]:
        """Keys of adopted NLBs whose rules on the nodes' groups differ (a rule revoked or added by hand);
        remembered, so that the ensure the drift triggers puts them back. One DescribeSecurityGroups for
        all of them, plus two calls to learn the nodes' groups when this process has not seen them yet."""
        self.backend.learn(instance_ids=sorted({i for stack in adopted.values() for i in stack.targets}))
        found = self.node_rules.drifted(
            {
                key: (stack.load_balancer.name, stack.node_rules, self.backend.node_groups(stack.targets))
                for key, stack in adopted.items()
            }
        )
        for key in found:
            self._stacks.setdefault(key, StackCache()).node_rules_stale = True
        return found

    def _targets_match(self, key: str, arns: Mapping[str, str], stack: model.Stack) -> bool:
        """Read what each listed target group holds; remember it (so the ensure this may trigger
        registers what is missing) and say whether it is the stack's targets."""
        cache = self._stacks.get(key)
        matched = True
        for arn in arns.values():
            registered = self.targets.registered(arn)
            if cache is not None:
                cache.remember_targets(arn=arn, instance_ids=registered)
            if not self.targets.holds(want=frozenset(stack.targets), registered=registered):
                logger.info("%s: target group %s does not hold the Service's targets: ensuring it", key, arn)
                matched = False
        return matched


def parts_match(stack: model.Stack, actual: ActualStack) -> bool:
    """Whether the listed target groups and frontend group are the stack's, by name and spec hash."""
    want_tgs = {tg.resource_id: (tg.name, spec_hash(tg)) for tg in stack.target_groups}
    have_tgs = {
        tg.resource_id: (effective_tg_name(tg), tg.tags.get(model.SPEC_HASH_TAG, ""))
        for tg in actual.target_groups
    }
    if want_tgs != have_tgs:
        return False
    want_sg = spec_hash(stack.frontend_security_group) if stack.frontend_security_group else ""
    have_sg = [sg.tags.get(model.SPEC_HASH_TAG, "") for sg in actual.security_groups]
    return have_sg == ([want_sg] if want_sg else [])

"""The bulk drift check and the orphan sweep: one listing for all Services.

A normal pass lists only load balancers (one call per 100). A ``full`` pass also lists target groups and
security groups, so a missing part or a leaked one (left by a failure midway) is found too, and reads
what each target group of an unchanged stack holds (one DescribeTargetHealth per target group), so a
target deregistered by hand is found within one full pass. A resource of this scope is an orphan when
its Service UID is not live; it is deleted once it has been an orphan for the grace period
(:class:`~providers.common.orphans.OrphanClock`), in dependency order, after a
describe confirms it still exists (the tagging API lists deleted resources for a while).

Classic ELBs are listed under the same resource type as NLBs: the Classic ELB deployer checks their
drift and deletes the orphaned ones (:class:`ClassicSweep`), with this module's listing and bookkeeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from providers.aws import model
from providers.aws.classic.model import RESOURCE_CLASSIC_LOAD_BALANCER, ClassicStack
from providers.aws.deploy.discovery import Discovery
from providers.aws.deploy.load_balancer import LoadBalancers
from providers.aws.deploy.node_rules import NodeRules
from providers.aws.deploy.parts import LB_TYPE, SG_TYPE, TG_TYPE, Found, is_classic_arn, lb_name
from providers.aws.deploy.security_groups import FrontendSecurityGroups
from providers.aws.deploy.target_groups import TargetGroups
from providers.common.orphans import OrphanClock
from providers.common.spec_hash import spec_hash

logger = logging.getLogger(__name__)

_DELETE_ORDER = {
    model.RESOURCE_LOAD_BALANCER: 0,
    RESOURCE_CLASSIC_LOAD_BALANCER: 0,
    model.RESOURCE_FRONTEND_SG: 2,
}  # target groups: 1

ClassicStacks = Mapping[str, tuple[str, ClassicStack]]


class ClassicSweep(Protocol):
    """What the sweep asks of the Classic ELB deployer, on the same listing as the NLBs'."""

    def drifted_in(
        self, *, stacks: ClassicStacks, by_uid: Mapping[str, Sequence[Found]], full: bool
    ) -> frozenset[str]: ...

    def delete_found(self, item: Found) -> bool: ...


class Sweep:
    def __init__(
        self,
        *,
        discovery: Discovery,
        load_balancers: LoadBalancers,
        target_groups: TargetGroups,
        security_groups: FrontendSecurityGroups,
        orphan_grace: float,
        targets_match: Callable[[str, Mapping[str, str], model.Stack], bool] | None = None,
        node_rules: NodeRules | None = None,
        node_rules_drifted: Callable[[Mapping[str, model.Stack]], frozenset[str]] | None = None,
    ) -> None:
        self.discovery = discovery
        self.load_balancers = load_balancers
        self.target_groups = target_groups
        self.security_groups = security_groups
        self.orphans = OrphanClock(grace=orphan_grace)
        # (key, resource id → target group ARN, stack) → whether the target groups hold the stack's targets
        self.targets_match = targets_match
        self.node_rules = node_rules
        # (key → adopted stack) → the keys whose rules on the nodes' groups differ (full passes only)
        self.node_rules_drifted = node_rules_drifted
        self.classic: ClassicSweep | None = None  # the Classic ELB deployer, attached once it exists
        self._lock = threading.Lock()  # one sweep at a time

    def drifted(
        self,
        *,
        stacks: Mapping[str, tuple[str, model.Stack]],
        live_uids: frozenset[str] | None,
        full: bool,
        now: float,
        classic_stacks: ClassicStacks | None = None,
    ) -> frozenset[str]:
        """Keys (of ``stacks``: key → (uid, stack), and of ``classic_stacks``, Services served by a
        Classic ELB) whose LB is missing or differs; deletes due orphans, Classic ELBs included.

        ``live_uids`` is every Service of the cluster; ``None`` sweeps nothing.
        """
        classic_stacks = classic_stacks or {}
        with self._lock:
            types = (LB_TYPE, TG_TYPE, SG_TYPE) if full else (LB_TYPE,)
            by_uid = by_service(self.discovery.list_owned(types=types))
            drifted = drifted_keys(stacks=stacks, by_uid=by_uid, full=full)
            if full and self.targets_match is not None:
                drifted |= self._targets_drifted(stacks=stacks, by_uid=by_uid, drifted=drifted)
            if full and self.node_rules_drifted is not None:
                adopted = {k: s for k, (_uid, s) in stacks.items() if s.adopted and k not in drifted}
                if adopted:
                    drifted |= self.node_rules_drifted(adopted)
            if classic_stacks and self.classic is not None:
                drifted |= self.classic.drifted_in(stacks=classic_stacks, by_uid=by_uid, full=full)
            if live_uids is None:
                return drifted
            live = (
                live_uids
                | {uid for uid, _stack in stacks.values()}
                | {uid for uid, _stack in classic_stacks.values()}
            )
            found = orphans(by_uid=by_uid, live=live)
            arns = {o.arn: o for o in found}
            due = self.orphans.observe(
                arns,
                now=now,
                # a partial listing (not full) leaves the target groups' and SGs' clocks running
                listed=lambda arn: full or ":loadbalancer/" in arn,
            )
            self._delete_orphans([arns[arn] for arn in due])
            return drifted

    def _targets_drifted(
        self,
        *,
        stacks: Mapping[str, tuple[str, model.Stack]],
        by_uid: Mapping[str, Sequence[Found]],
        drifted: frozenset[str],
    ) -> frozenset[str]:
        assert self.targets_match is not None
        found: set[str] = set()
        for key, (uid, stack) in sorted(stacks.items()):
            if key in drifted:
                continue  # its ensure reads the targets anyway
            arns = {
                item.resource_id: item.arn
                for item in by_uid.get(uid, [])
                if item.resource_id.startswith(model.TARGET_GROUP_PREFIX)
            }
            if not self.targets_match(key, arns, stack):
                found.add(key)
        return frozenset(found)

    def _delete_orphans(self, due: Sequence[Found]) -> None:
        """Delete in dependency order; an entry is forgotten only once its resource is gone."""
        if not due:
            return
        existing = self.discovery.existing(due)
        gone = [i.arn for i in due if i not in existing]
        if gone:
            logger.info(
                "the tagging API still lists deleted resources %s: nothing to delete", ", ".join(gone)
            )
            for arn in gone:
                self.orphans.forget(arn)
        for item in sorted(existing, key=lambda i: _DELETE_ORDER.get(i.resource_id, 1)):
            logger.info(
                "deleting orphaned %s %s of Service %s (uid %s): no Service with this UID exists",
                item.resource_id,
                item.arn,
                item.tags.get(model.SERVICE_NAME_TAG, "?"),
                item.tags.get(model.SERVICE_UID_TAG, "?"),
            )
            try:
                if self._delete(item):
                    self.orphans.forget(item.arn)
            except Exception as exc:  # the next sweep tries again; the others still go now
                logger.warning("could not delete orphaned %s yet: %s", item.arn, exc)

    def _delete(self, item: Found) -> bool:
        """Delete one orphan; whether it is gone (a security group still attached is not)."""
        if is_classic_arn(item.arn):
            return self.classic.delete_found(item) if self.classic is not None else False
        if item.resource_id == model.RESOURCE_LOAD_BALANCER:
            self.load_balancers.delete(item.arn, keep_protection=True)
            if item.tags.get(model.ADOPTED_FROM_TAG) and self.node_rules is not None:
                # taken over from the upstream provider: its CIDR rules on the nodes' groups go with it
                self.node_rules.forget(lb_name=lb_name(item.arn))
            return True
        if item.resource_id.startswith(model.TARGET_GROUP_PREFIX):
            self.target_groups.delete(item.arn)
            return True
        if item.resource_id == model.RESOURCE_FRONTEND_SG:
            return self.security_groups.delete(item.sg_id)
        return False  # not a part we make: left alone


# -- pure ------------------------------------------------------------------------------------------------


def by_service(found: Iterable[Found]) -> dict[str, list[Found]]:
    """Listed resources by their Service UID tag ("" for none)."""
    out: dict[str, list[Found]] = {}
    for item in found:
        out.setdefault(item.tags.get(model.SERVICE_UID_TAG, ""), []).append(item)
    return out


def drifted_keys(
    *, stacks: Mapping[str, tuple[str, model.Stack]], by_uid: Mapping[str, Sequence[Found]], full: bool
) -> frozenset[str]:
    """Keys whose NLB is missing, doubled or of another spec hash; with ``full``, also a part."""
    drifted: set[str] = set()
    for key, (uid, stack) in stacks.items():
        items = by_uid.get(uid, [])
        lbs = [
            i for i in items if i.resource_id == model.RESOURCE_LOAD_BALANCER and not is_classic_arn(i.arn)
        ]
        if len(lbs) != 1 or lbs[0].tags.get(model.SPEC_HASH_TAG) != stack.spec_hash():
            drifted.add(key)
            continue
        if full:
            have = {i.resource_id: i for i in items}
            want = {tg.resource_id: spec_hash(tg) for tg in stack.target_groups}
            if stack.frontend_security_group is not None:
                want[model.RESOURCE_FRONTEND_SG] = spec_hash(stack.frontend_security_group)
            if any(
                rid not in have or have[rid].tags.get(model.SPEC_HASH_TAG) != h for rid, h in want.items()
            ):
                drifted.add(key)
    return frozenset(drifted)


def orphans(*, by_uid: Mapping[str, Sequence[Found]], live: frozenset[str]) -> list[Found]:
    """Resources tagged with a Service UID that no live Service has (untagged ones are never orphans)."""
    return [item for uid, items in by_uid.items() if uid and uid not in live for item in items]

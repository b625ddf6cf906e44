"""The Classic ELB deployer: makes AWS match a :class:`~.model.ClassicStack` with as few calls as a
Classic ELB allows, and deletes, sweeps and checks Classic ELBs for drift.

* found like an NLB: the one tagging-API listing of the Service (``GetResources``) lists the Classic ELB
  with its tags (the tagging API has it under ``elasticloadbalancing:loadbalancer`` too, its ARN
  ``…:loadbalancer/<name>``), and its spec-hash tag says whether anything may differ: an unchanged
  Service costs that listing and, once per process, one ``DescribeLoadBalancers`` for the DNS name and
  the registered instances, and no write;
* a create sends everything ``CreateLoadBalancer`` takes (listeners, subnets, groups, scheme, tags),
  then only what differs from what AWS gives a new Classic ELB (health check, attributes, policies),
  the instances, and last the spec hash: a hash that matches means the ELB was complete for the spec;
* an update describes the ELB once (and its attributes once) and sends only the differences;
* a scheme cannot change in place: the new Classic ELB (another name) is made, then the old deleted;
* nothing is modified or deleted unless it carries this cluster's ``owned`` tag and the Service's UID.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from providers.aws import model
from providers.aws.classic.converge import ClassicWrites
from providers.aws.classic.live import LiveClassic, parse_description, security_group_ids
from providers.aws.classic.model import ClassicStack
from providers.aws.classic.refusals import refuse_nlb
from providers.aws.classic.takeover import ClassicTakeover
from providers.aws.client import error_code, suppress_codes
from providers.aws.deploy.backend_security_group import BackendSecurityGroup
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery
from providers.aws.deploy.foreign import ForeignLoadBalancers
from providers.aws.deploy.parts import (
    ADDRESS_CHANGED,
    TAKEN_OVER,
    ActualStack,
    Deployed,
    Found,
    classic_name,
    is_classic_arn,
    tag_changes,
    tag_list,
)
from providers.aws.deploy.security_groups import FrontendSecurityGroups
from providers.aws.deploy.sweep import Sweep
from providers.aws.deploy.target_sets import shared
from providers.aws.deploy.targets import NotRunning
from providers.common.spec_hash import spec_hash

logger = logging.getLogger(__name__)

PAGE_SIZE = 400  # DescribeLoadBalancers' largest page (botocore elb service-2.json, ``PageSize``)
NOT_FOUND = ("LoadBalancerNotFound",)  # AccessPointNotFoundException's code


@dataclass
class Known:
    """What this process knows of one Service's Classic ELB from its own calls."""

    name: str
    dns_name: str
    instances: frozenset[str]


class ClassicDeployer:
    """Creates, updates, deletes and sweeps the Classic ELBs of Services; thread-safe across Services."""

    def __init__(
        self,
        *,
        ctx: Context,
        discovery: Discovery,
        backend: BackendSecurityGroup,
        security_groups: FrontendSecurityGroups,
        foreign: ForeignLoadBalancers | None = None,
        sweep: Sweep | None = None,
        not_running: NotRunning | None = None,
    ) -> None:
        self.ctx = ctx
        # instances refused as not running, shared with the NLB path: left out for a while, not retried
        # on every sync
        self.not_running = not_running or NotRunning()
        self.discovery = discovery
        self.backend = backend
        self.security_groups = security_groups
        self.foreign = foreign or ForeignLoadBalancers(ctx, discovery)
        self.takeover = ClassicTakeover(
            ctx=ctx,
            discovery=discovery,
            backend=backend,
            security_groups=security_groups,
            foreign=self.foreign,
        )
        self.writes = ClassicWrites(ctx)
        self.sweep = sweep
        if sweep is not None:
            sweep.classic = self
        self._known: dict[str, Known] = {}
        self._lock = threading.Lock()

    # -- ensure -------------------------------------------------------------------------------------

    def ensure(self, *, key: str, uid: str, stack: ClassicStack) -> Deployed:
        """Make AWS match ``stack``; its DNS name, ARN and the Warning events it asks for."""
        actual = self.discovery.actual(uid)
        refuse_nlb(actual=actual, ctx=self.ctx)
        current = next((c for c in actual.classic if classic_name(c.arn) == stack.name), None)
        notices: list[tuple[str, str]] = []
        live: LiveClassic | None = None
        frontend: str | None = None  # converged by the takeover
        if stack.adopted and current is None:  # before anything is made: it may refuse
            taken = self.takeover.adopt(key=key, uid=uid, stack=stack, actual=actual)
            current, live, frontend = taken.found, taken.live, taken.frontend
            if taken.took_over:
                notices.append(
                    (
                        TAKEN_OVER,
                        f"took over the upstream provider's Classic ELB {stack.name} ({live.dns_name}) in "
                        "place: its name, address and listeners stay, and no connection is interrupted",
                    )
                )
        backend_sg = self.backend.ensure(instance_ids=stack.targets)
        replaced = [c for c in actual.classic if c is not current]
        want_hash = stack.spec_hash()
        if (
            live is None
            and current is not None
            and not replaced
            and current.tags.get(model.SPEC_HASH_TAG) == want_hash
            and frontend_matches(stack=stack, actual=actual)
        ):
            known = self._get(key)
            if known is None or known.name != stack.name:
                live = self._describe(stack.name)
                if live is not None:
                    known = self._remember(key, live)
            if known is not None:
                self._sync_instances(key=key, known=known, want=frozenset(stack.targets))
                return Deployed(dns_name=known.dns_name, lb_arn=current.arn)

        have_tags = dict(current.tags) if current is not None else {}
        if live is None:
            live = self._describe(stack.name)
            if live is not None and current is None:  # not listed (yet): ours only if its tags say so
                have_tags = self._tags(stack.name)
                if not self.ctx.owned_by(have_tags, uid=uid):  # before anything is made or changed
                    raise self.ctx.not_owned(f"Classic ELB {stack.name}")
        if frontend is None:
            frontend = self.security_groups.ensure_group(spec=stack.frontend_security_group, actual=actual)
        sg_ids = security_group_ids(frontend=frontend, stack=stack, backend=backend_sg)
        created = live is None
        if live is None:
            live = self.writes.create(stack=stack, sg_ids=sg_ids)
            have_tags = dict(stack.tags)
        self.writes.converge(stack=stack, live=live, sg_ids=sg_ids, created=created)
        stale, changed = tag_changes(have_tags, dict(stack.tags))
        if stale:
            self.ctx.clients.elb.remove_tags(LoadBalancerNames=[stack.name], Tags=[{"Key": k} for k in stale])
        if changed:
            self.ctx.clients.elb.add_tags(LoadBalancerNames=[stack.name], Tags=tag_list(changed))
        known = self._remember(key, live)
        self._sync_instances(key=key, known=known, want=frozenset(stack.targets))
        for old in replaced:  # the new Classic ELB is complete: the one it replaces goes
            self._delete_load_balancer(classic_name(old.arn))
            notices.append(
                (
                    ADDRESS_CHANGED,
                    f"the Service's address changed to {live.dns_name}: the Classic ELB "
                    f"{classic_name(old.arn)} could not change its scheme to {stack.scheme} in place and was "
                    "replaced",
                )
            )
        for sg in actual.security_groups:
            if sg.sg_id != frontend:
                self.security_groups.delete(sg.sg_id)
        # Last: the hash says the Classic ELB is complete for this spec
        if have_tags.get(model.SPEC_HASH_TAG) != want_hash:
            self.ctx.clients.elb.add_tags(
                LoadBalancerNames=[stack.name], Tags=[{"Key": model.SPEC_HASH_TAG, "Value": want_hash}]
            )
        arn = current.arn if current is not None else self.discovery.classic_arn(stack.name)
        return Deployed(dns_name=live.dns_name, lb_arn=arn, notices=tuple(notices))

    # -- node sync ----------------------------------------------------------------------------------

    def update_targets(self, *, key: str, uid: str, stack: ClassicStack) -> bool:
        """Only the instances (node sync): at most one Register and one Deregister call. Returns False
        if the Service has no Classic ELB of this name (the caller ensures)."""
        known = self._get(key)
        if known is None or known.name != stack.name:
            actual = self.discovery.actual(uid)
            if not any(classic_name(c.arn) == stack.name for c in actual.classic):
                return False
            live = self._describe(stack.name)
            if live is None:
                return False
            known = self._remember(key, live)
        self._sync_instances(key=key, known=known, want=frozenset(stack.targets))
        return True

    def _sync_instances(self, *, key: str, known: Known, want: frozenset[str]) -> None:
        """Deregister, then register (as upstream, and the NLB path) only the difference with what is
        known registered. An instance AWS refuses (``InvalidInstance``: "The instance must be a running
        instance in the same network", Classic ELB API reference, RegisterInstancesWithLoadBalancer)
        fails the whole call: the running ones are registered again without it, which it says."""
        elb = self.ctx.clients.elb
        add = sorted(want - known.instances - self.not_running.skip())
        remove = sorted(known.instances - want)
        if remove:
            elb.deregister_instances_from_load_balancer(
                LoadBalancerName=known.name, Instances=[{"InstanceId": i} for i in remove]
            )
        registered = set(add)
        if add:
            try:
                elb.register_instances_with_load_balancer(
                    LoadBalancerName=known.name, Instances=[{"InstanceId": i} for i in add]
                )
            except ClientError as exc:
                if error_code(exc) != "InvalidInstance":
                    raise
                running = {
                    iid
                    for iid, d in self.ctx.describe_instances(add).items()
                    if d.get("State", {}).get("Name") == "running"
                }
                registered = set(add) & running
                self.not_running.refused(set(add) - registered)
                logger.warning(
                    "%s: Classic ELB %s refused instances %s (not running): registered the others; they "
                    "are tried again in five minutes",
                    key,
                    known.name,
                    ", ".join(sorted(set(add) - registered)),
                )
                if registered:
                    elb.register_instances_with_load_balancer(
                        LoadBalancerName=known.name, Instances=[{"InstanceId": i} for i in sorted(registered)]
                    )
        if add or remove:
            now = frozenset((known.instances - set(remove)) | registered)
            with self._lock:
                self._known[key] = Known(name=known.name, dns_name=known.dns_name, instances=shared(now))

    # -- delete -------------------------------------------------------------------------------------

    def delete(self, *, key: str, uid: str, name: str | None = None) -> None:
        """Delete the Service's Classic ELBs and frontend group (what this cluster owns, by the Service's
        UID). ``name``: as :meth:`delete_load_balancers`. A group AWS still counts as in use
        (``DependencyViolation``: the deleted ELB's interfaces go a little later) is left to the orphan
        sweep, which deletes it once free."""
        actual = self.discovery.actual(uid)
        self.delete_load_balancers(key=key, uid=uid, actual=actual, name=name)
        for sg in actual.security_groups:
            self.security_groups.delete(sg.sg_id)

    def delete_load_balancers(self, *, key: str, uid: str, actual: ActualStack, name: str | None) -> None:
        """Delete the Classic ELBs ``actual`` lists for the Service, and the one named ``name`` (or that
        this process made for ``key``) when the tagging API does not list it yet, read back as owned
        first. A Classic ELB already gone is no error."""
        with self._lock:
            known = self._known.pop(key, None)
        names = [classic_name(c.arn) for c in actual.classic]
        for candidate in (name, known.name if known else None):
            if candidate and candidate not in names and self._describe(candidate) is not None:
                if self.ctx.owned_by(self._tags(candidate), uid=uid):
                    names.append(candidate)
                else:
                    logger.warning(
                        "Classic ELB %s has this Service's name but is not ours: left alone", candidate
                    )
        for lb in names:
            self._delete_load_balancer(lb)

    def _delete_load_balancer(self, name: str) -> None:
        logger.info("deleting Classic ELB %s", name)
        self.ctx.clients.elb.delete_load_balancer(LoadBalancerName=name)  # absent: success (elb API)
        with self._lock:
            for key in [k for k, v in self._known.items() if v.name == name]:
                del self._known[key]

    # -- drift and orphans ---------------------------------------------------------------------------

    def drifted(
        self,
        *,
        stacks: Mapping[str, tuple[str, ClassicStack]],
        live_uids: frozenset[str] | None,
        full: bool,
        now: float,
    ) -> frozenset[str]:
        """Keys of ``stacks`` whose Classic ELB is missing or differs; deletes due orphans (of every
        kind: one listing, :meth:`Sweep.drifted <providers.aws.deploy.sweep.Sweep.drifted>`)."""
        if self.sweep is None:
            raise RuntimeError("ClassicDeployer.drifted needs the sweep (Deployer attaches it)")
        return self.sweep.drifted(stacks={}, classic_stacks=stacks, live_uids=live_uids, full=full, now=now)

    def drifted_in(
        self,
        *,
        stacks: Mapping[str, tuple[str, ClassicStack]],
        by_uid: Mapping[str, Sequence[Found]],
        full: bool,
    ) -> frozenset[str]:
        """With the sweep's listing: keys whose Classic ELB is missing, doubled or of another spec hash;
        with ``full`` also a frontend group of another hash, or instances that differ (read with
        ``DescribeLoadBalancers`` in pages of 400 for all Classic ELBs, not one call per ELB)."""
        drifted: set[str] = set()
        steady: dict[str, tuple[str, ClassicStack]] = {}
        for key, (uid, stack) in stacks.items():
            items = by_uid.get(uid, [])
            clbs = [i for i in items if is_classic_arn(i.arn)]
            nlbs = [
                i
                for i in items
                if i.resource_id == model.RESOURCE_LOAD_BALANCER and not is_classic_arn(i.arn)
            ]
            if (
                len(clbs) != 1
                or nlbs
                or classic_name(clbs[0].arn) != stack.name
                or clbs[0].tags.get(model.SPEC_HASH_TAG) != stack.spec_hash()
            ) or (
                full and not frontend_matches(stack=stack, actual=ActualStack(security_groups=_sgs(items)))
            ):
                drifted.add(key)
            else:
                steady[key] = (uid, stack)
        if full and steady:
            described = self._describe_all({stack.name for _uid, stack in steady.values()})
            for key, (_uid, stack) in steady.items():
                live = described.get(stack.name)
                if live is None:
                    drifted.add(key)
                    continue
                self._remember(key, live)
                if live.instances != frozenset(stack.targets) - self.not_running.skip():
                    logger.info("%s: Classic ELB %s does not hold the Service's instances", key, stack.name)
                    drifted.add(key)
        return frozenset(drifted)

    def delete_found(self, item: Found) -> bool:
        """Delete a listed Classic ELB of this scope (an orphan the sweep confirmed, or one the NLB
        delete path met); whether it is gone."""
        self._delete_load_balancer(classic_name(item.arn))
        return True

    # -- reading ------------------------------------------------------------------------------------

    def dns_names(self, names: Sequence[str]) -> dict[str, str]:
        """The DNS names of the Classic ELBs of ``names`` that exist (one DescribeLoadBalancers each: a
        Service has one, two for a moment while its scheme changes)."""
        return {name: live.dns_name for name in dict.fromkeys(names) if (live := self._describe(name))}

    def _describe(self, name: str) -> LiveClassic | None:
        with suppress_codes(*NOT_FOUND):
            for d in self.ctx.clients.elb.describe_load_balancers(LoadBalancerNames=[name])[
                "LoadBalancerDescriptions"
            ]:
                return parse_description(d)
        return None

    def _describe_all(self, names: set[str]) -> dict[str, LiveClassic]:
        """The Classic ELBs of ``names`` that exist, from pages of 400 of the region's Classic ELBs."""
        found: dict[str, LiveClassic] = {}
        marker = ""
        while True:
            kwargs: dict[str, Any] = {"PageSize": PAGE_SIZE}
            if marker:
                kwargs["Marker"] = marker
            page = self.ctx.clients.elb.describe_load_balancers(**kwargs)
            for d in page["LoadBalancerDescriptions"]:
                if d["LoadBalancerName"] in names:
                    found[d["LoadBalancerName"]] = parse_description(d)
            marker = page.get("NextMarker", "")
            if not marker:
                return found

    def _tags(self, name: str) -> dict[str, str]:
        described = self.ctx.clients.elb.describe_tags(LoadBalancerNames=[name])["TagDescriptions"]
        return {t["Key"]: t["Value"] for t in (described[0]["Tags"] if described else [])}

    def _get(self, key: str) -> Known | None:
        with self._lock:
            return self._known.get(key)

    def _remember(self, key: str, live: LiveClassic) -> Known:
        known = Known(name=live.name, dns_name=live.dns_name, instances=shared(live.instances))
        with self._lock:
            self._known[key] = known
        return known


# -- pure ------------------------------------------------------------------------------------------------


def frontend_matches(*, stack: ClassicStack, actual: ActualStack) -> bool:
    """Whether the listed frontend group is the stack's, by its spec hash."""
    want = spec_hash(stack.frontend_security_group) if stack.frontend_security_group else ""
    have = [sg.tags.get(model.SPEC_HASH_TAG, "") for sg in actual.security_groups]
    return have == ([want] if want else [])


def _sgs(items: Sequence[Found]) -> list[Found]:
    return [i for i in items if i.resource_id == model.RESOURCE_FRONTEND_SG]

"""The nodes registered in a Service's target groups (what node sync changes).

Deregister, then register (as upstream: a node swap never needs room for both in the
500-targets-per-AZ quota), 100 per call. What is registered is remembered per target group, so a node
sync that changes nothing costs nothing; an instance AWS refused as not running is left out for a while.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from botocore.exceptions import ClientError

from providers.aws import model
from providers.aws.client import error_code
from providers.aws.deploy.context import Context
from providers.aws.deploy.parts import StackCache, chunks

logger = logging.getLogger(__name__)

NOT_RUNNING_RETRY_SECONDS = 300.0  # an instance refused as not running is tried again after this


class NotRunning:
    """Instances a register call was refused for because they are not running, left out of every load
    balancer of the cluster (NLB target groups and Classic ELBs alike) for
    :data:`NOT_RUNNING_RETRY_SECONDS`: a stopped node then costs one refused call, a describe and a
    register of the others once per period, not on every sync. Thread-safe."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._since: dict[str, float] = {}  # instance ID → when a register call was refused it
        self._lock = threading.Lock()

    def skip(self) -> frozenset[str]:
        """The instances to leave out now (those refused less than the period ago)."""
        now = self.clock()
        with self._lock:
            for iid, since in list(self._since.items()):
                if now - since >= NOT_RUNNING_RETRY_SECONDS:
                    del self._since[iid]
            return frozenset(self._since)

    def refused(self, instance_ids: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for iid in instance_ids:
                self._since[iid] = now


class Targets:
    def __init__(self, ctx: Context, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.clock = clock
        self.not_running = NotRunning(clock=clock)

    def sync(self, *, cache: StackCache, stack: model.Stack) -> None:
        """Every target group of the Service has exactly the stack's targets (less refused ones)."""
        want = frozenset(stack.targets)
        for arn in cache.tg_arns.values():
            skip = self.not_running.skip()
            have = cache.targets.get(arn)
            if have is None:
                have = self.registered(arn)
            remove, add = match(want=want, have=have, skip=skip)
            try:
                self._deregister(arn=arn, instance_ids=remove)
            except ClientError as exc:
                # A target we remember is no longer registered (its instance was terminated, or someone
                # deregistered it): the whole call is refused. What is registered is read, once.
                if error_code(exc) != "InvalidTarget" or arn not in cache.targets:
                    raise
                have = self.registered(arn)
                remove, add = match(want=want, have=have, skip=skip)
                self._deregister(arn=arn, instance_ids=remove)
            refused: set[str] = set()
            for chunk in chunks(add, 100):
                refused |= self._register(arn=arn, instance_ids=chunk)
            cache.remember_targets(arn=arn, instance_ids=(have - set(remove)) | (set(add) - refused))

    def registered(self, arn: str) -> frozenset[str]:
        """The instances registered in the target group (draining ones are on their way out)."""
        health = self.ctx.clients.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return frozenset(
            h["Target"]["Id"] for h in health if h.get("TargetHealth", {}).get("State") != "draining"
        )

    def holds(self, *, want: frozenset[str], registered: frozenset[str]) -> bool:
        """Whether ``registered`` is ``want``, leaving aside instances recently refused as not running."""
        remove, add = match(want=want, have=registered, skip=self.not_running.skip())
        return not remove and not add

    def _deregister(self, *, arn: str, instance_ids: Sequence[str]) -> None:
        for chunk in chunks(instance_ids, 100):
            self.ctx.clients.elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in chunk])

    def _register(self, *, arn: str, instance_ids: Sequence[str]) -> set[str]:
        """Register ``instance_ids``; returns those AWS refuses because they are not running.

        RegisterTargets refuses the whole call (``InvalidTarget``) when one instance is not running
        or no longer exists (ELBv2 API reference, RegisterTargets). Then the instances are described
        once, the running ones registered, and the rest reported and left out for a while, so that
        one stopped node never keeps every other node (and every Service) out of the load balancer.
        """
        elbv2 = self.ctx.clients.elbv2
        try:
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in instance_ids])
            return set()
        except ClientError as exc:
            if error_code(exc) != "InvalidTarget":
                raise
        found = self.ctx.describe_instances(instance_ids)
        running = [i for i in instance_ids if found.get(i, {}).get("State", {}).get("Name") == "running"]
        refused = {i for i in instance_ids if i not in running}
        logger.warning(
            "not registering instances that are not running with %s: %s",
            arn,
            ", ".join(
                f"{i} ({found[i]['State']['Name'] if i in found else 'does not exist'})"
                for i in sorted(refused)
            ),
        )
        self.not_running.refused(refused)
        if running:
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in running])
        return refused


def match(*, want: frozenset[str], have: frozenset[str], skip: frozenset[str]) -> tuple[list[str], list[str]]:
    """(instances to deregister, instances to register), sorted; ``skip``: recently refused ones."""
    return sorted(have - want), sorted(want - have - skip)

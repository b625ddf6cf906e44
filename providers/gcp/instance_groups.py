"""The cluster's shared unmanaged instance groups: one per zone, holding every node of the zone.

Every load balancer of the cluster uses the same groups as its backends (upstream's ``k8s-ig--<cid>``),
so a node sync changes one group per zone, not one per Service. Membership is cached; a refusal
(a node in another load-balanced group, a VM deleted outside) reads the group again, and a node GCE
will not take is left out for a while and named in the Service's event, so it never blocks the others.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from providers.common.errors import NotOwned
from providers.gcp import model
from providers.gcp.client import GCEClients, OperationFailed
from providers.gcp.ownership import is_in_use, member_already_exists, owned_description
from providers.gcp.urls import Urls

logger = logging.getLogger(__name__)

# Upstream's cap (cloud-provider-gcp gce_loadbalancer_internal.go maxInstancesPerInstanceGroup).
MAX_GROUP_MEMBERS = 1000
REFUSED_FOR = 300.0  # seconds a node addInstances refused is left out before it is tried again


@dataclass
class Membership:
    groups: dict[str, set[str]] = field(default_factory=dict)  # zone → instance names
    # (zone, instance) → (GCE's reason, when): nodes addInstances refused, left out for REFUSED_FOR seconds
    refused: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)


class InstanceGroups:
    """Thread-safe: one lock guards the membership cache and every change of membership."""

    def __init__(self, *, clients: GCEClients, urls: Urls, upstreams: bool = False) -> None:
        """``upstreams``: the groups are named after the upstream provider's cluster id (the cloud
        config's ``upstream-cluster-id``); a group of that name without a description is then upstream's
        (``ensureInternalInstanceGroup`` creates them with a name only) and is used as the cluster's,
        and deleted as upstream deletes it: once no load balancer uses it (GCE refuses while one does,
        ingress-gce's included)."""
        self.c = clients
        self.urls = urls
        self.cid = urls.cluster_id
        self.group = urls.instance_group_name
        self.upstreams = upstreams
        self.project = urls.project
        self._lock = threading.Lock()
        self._state = Membership()

    def forget(self) -> None:
        """Drop the cache (after a failure: another instance may have deleted the groups)."""
        with self._lock:
            self._state = Membership()

    def delete_unused(self, zones: Sequence[str]) -> None:
        """Delete the group of each zone GCE lets go (one still a backend is refused: kept)."""
        with self._lock:
            for zone in zones:
                if self._delete(zone):
                    self._state.groups.pop(zone, None)

    def sync(self, *, instances: Sequence[tuple[str, str]]) -> tuple[str, ...]:
        """Make each zone's shared instance group hold exactly ``instances`` (zone, name).

        A node GCE will not add (it is in another load-balanced instance group, such as GKE's or
        ingress-gce's, or in another network or subnetwork) is left out, tried again after
        ``REFUSED_FOR`` seconds, and named in the messages returned (the Service's Warning event); the
        other nodes are added, so one such node never blocks a zone.
        """
        wanted: dict[str, set[str]] = {}
        now = time.monotonic()
        with self._lock:
            refused = {k: v for k, v in self._state.refused.items() if now - v[1] < REFUSED_FOR}
            self._state.refused = refused
        for zone, name in instances:
            if (zone, name) not in refused:
                wanted.setdefault(zone, set()).add(name)
        for zone, names in wanted.items():
            if len(names) > MAX_GROUP_MEMBERS:
                kept = set(sorted(names)[:MAX_GROUP_MEMBERS])
                logger.warning(
                    "zone %s has %d nodes; its instance group holds the first %d by name, as upstream's does "
                    "(the others get no load-balanced traffic): %s…",
                    zone,
                    len(names),
                    MAX_GROUP_MEMBERS,
                    ", ".join(sorted(names - kept)[:5]),
                )
                wanted[zone] = kept
        with self._lock:
            zones = sorted(set(wanted) | set(self._state.groups))
            for zone in zones:
                want = wanted.get(zone, set())
                try:
                    self._sync_zone(zone, want)
                except (gexc.NotFound, gexc.BadRequest) as exc:
                    if isinstance(exc, gexc.BadRequest) and not member_already_exists(exc):
                        self._sync_zone_one_by_one(zone, want)
                        continue
                    # The cached membership was wrong: a VM deleted outside (removeInstances: 404), or a
                    # member someone else added (addInstances: memberAlreadyExists). Read the group
                    # again and retry once; what still fails is added one node at a time.
                    logger.info("instance group of %s: %s; reading its members again", zone, exc.message)
                    self._state.groups.pop(zone, None)
                    try:
                        self._sync_zone(zone, want)
                    except gexc.BadRequest:
                        self._sync_zone_one_by_one(zone, want)
            return self.refused_notices(instances)

    def refused_notices(self, instances: Sequence[tuple[str, str]]) -> tuple[str, ...]:
        wanted = set(instances)
        return tuple(
            f"node {name} (zone {zone}) is not in the load balancer's instance group: GCE refused it "
            f"({reason}); it gets no traffic from this load balancer. A node can be in one "
            "load-balanced instance group only (GKE's and ingress-gce's count), and in the group's network"
            for (zone, name), (reason, _when) in sorted(self._state.refused.items())
            if (zone, name) in wanted
        )

    def leave_out_nodes_in_other_groups(self, exc: gexc.BadRequest) -> bool:
        """GCE refused a backend service because a member of our group is in another load-balanced group
        ("instance may belong to at most one load-balanced instance group": GCE's message, and the
        Google Cloud load-balancing guide's rule). Those members leave our group and are named; True
        when there were any, so that the caller tries once more."""
        if "load-balanced instance group" not in str(exc.message):
            return False
        ig = self.group
        found = set(re.findall(r"zones/([a-z0-9-]+)/instances/([a-z0-9-]+)", str(exc.message)))
        with self._lock:
            for zone, name in sorted(found):
                if name not in self._state.groups.get(zone, set()):
                    continue
                self._change_members(zone=zone, group=ig, names=[name], add=False)
                self._state.groups[zone].discard(name)
                self._state.refused[(zone, name)] = (str(exc.message), time.monotonic())
                logger.warning("instance group of %s: node %s left out: %s", zone, name, exc.message)
        return bool(found)

    def _sync_zone_one_by_one(self, zone: str, want: set[str]) -> None:
        """A batch addInstances was refused: add the nodes one at a time, leaving out each one GCE refuses.

        Caller holds the lock. Costs one call per node to add, only after a refusal.
        """
        self._state.groups.pop(zone, None)
        have = self._members(zone)
        ig = self.group
        remove = sorted(have - want)
        if remove:
            self._change_members(zone=zone, group=ig, names=remove, add=False)
        members = have & want
        for name in sorted(want - have):
            try:
                self._change_members(zone=zone, group=ig, names=[name], add=True)
            except gexc.BadRequest as exc:
                if member_already_exists(exc) and f"/instanceGroups/{ig}" in str(exc.message):
                    members.add(name)  # already ours
                    continue
                logger.warning("instance group of %s: node %s refused: %s", zone, name, exc.message)
                self._state.refused[(zone, name)] = (str(exc.message), time.monotonic())
                continue
            members.add(name)
        self._state.groups[zone] = members

    def _sync_zone(self, zone: str, want: set[str]) -> None:
        """One zone's group to exactly ``want``. Caller holds the lock."""
        have = self._members(zone)
        ig = self.group
        add, remove = sorted(want - have), sorted(have - want)
        if add:
            self._change_members(zone=zone, group=ig, names=add, add=True)
        if remove:
            self._change_members(zone=zone, group=ig, names=remove, add=False)
        self._state.groups[zone] = set(want)

    def _change_members(self, *, zone: str, group: str, names: Sequence[str], add: bool) -> None:
        refs = [compute_v1.InstanceReference(instance=self.urls.instance(zone, n)) for n in names]
        if add:
            request: Any = compute_v1.AddInstancesInstanceGroupRequest(
                project=self.project,
                zone=zone,
                instance_group=group,
                instance_groups_add_instances_request_resource=compute_v1.InstanceGroupsAddInstancesRequest(
                    instances=refs
                ),
            )
            call: Callable[..., Any] = self.c.instance_groups.add_instances_unary
            name = "instanceGroups.addInstances"
        else:
            request = compute_v1.RemoveInstancesInstanceGroupRequest(
                project=self.project,
                zone=zone,
                instance_group=group,
                instance_groups_remove_instances_request_resource=compute_v1.InstanceGroupsRemoveInstancesRequest(
                    instances=refs
                ),
            )
            call = self.c.instance_groups.remove_instances_unary
            name = "instanceGroups.removeInstances"
        self.c.mutate(name, call, request, scope="zone", location=zone)

    def _members(self, zone: str) -> set[str]:
        """Current members of the zone's group (cached; created if missing). Caller holds the lock."""
        known = self._state.groups.get(zone)
        if known is not None:
            return known
        ig = self.group
        try:
            group = self._get(zone)
            if not self._ours(group):
                raise NotOwned(f"instance group {ig} in {zone} exists but is not owned by cluster {self.cid}")
        except gexc.NotFound:
            try:
                self.c.mutate(
                    "instanceGroups.insert",
                    self.c.instance_groups.insert_unary,
                    compute_v1.InsertInstanceGroupRequest(
                        project=self.project,
                        zone=zone,
                        instance_group_resource=compute_v1.InstanceGroup(
                            name=ig,
                            network=self.urls.network_url(),
                            description=model.description(cluster=self.cid),
                        ),
                    ),
                    scope="zone",
                    location=zone,
                )
                self._state.groups[zone] = set()
                return self._state.groups[zone]
            except gexc.Conflict:
                pass  # made by an earlier attempt: read its members below
        members: set[str] = set()
        pager = self.c.call(
            "instanceGroups.listInstances",
            self.c.instance_groups.list_instances,
            request=compute_v1.ListInstancesInstanceGroupsRequest(
                project=self.project,
                zone=zone,
                instance_group=ig,
                instance_groups_list_instances_request_resource=compute_v1.InstanceGroupsListInstancesRequest(
                    instance_state="ALL"
                ),
            ),
        )
        for item in pager:
            members.add(item.instance.rsplit("/", 1)[-1])
        self._state.groups[zone] = members
        return members

    def _ours(self, group: Any) -> bool:
        """The cluster's group: marked by this controller, or upstream's when the config shares them."""
        return bool(owned_description(group, self.cid)) or (self.upstreams and not group.description)

    def _get(self, zone: str) -> Any:
        """The zone's group as GCE has it (raises NotFound)."""
        return self.c.call(
            "instanceGroups.get",
            self.c.instance_groups.get,
            project=self.project,
            zone=zone,
            instance_group=self.group,
        )

    def _delete(self, zone: str) -> bool:
        ig = self.group
        try:
            group = self._get(zone)
        except gexc.NotFound:
            return True
        if not self._ours(group):
            return False
        try:
            self.c.mutate(
                "instanceGroups.delete",
                self.c.instance_groups.delete_unary,
                compute_v1.DeleteInstanceGroupRequest(project=self.project, zone=zone, instance_group=ig),
                scope="zone",
                location=zone,
            )
        except gexc.NotFound:
            return True
        except (gexc.BadRequest, OperationFailed) as exc:
            if is_in_use(exc):
                return False
            raise
        return True

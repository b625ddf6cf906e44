"""The cluster, the instance's scope and the ownership rule that every synthesizer applies.

Nothing without this cluster's ``owned`` tag (and, for a classed instance, its ``ccm-lb/scope`` tag)
is ever modified or deleted; :meth:`Context.require_owned` reads the tags back before a resource that
AWS handed back by name is used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from providers.aws import model
from providers.aws.client import AWSClients
from providers.aws.config import AWSConfig
from providers.aws.deploy.parts import chunks, tag_changes, tag_list
from providers.common.errors import NotOwned

logger = logging.getLogger(__name__)


@dataclass
class Context:
    clients: AWSClients
    config: AWSConfig
    cluster_name: str
    scope: str = ""
    # guards the small caches the synthesizers share across worker threads (never held across a call)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cluster_tag(self) -> str:
        return model.cluster_tag(self.cluster_name)

    def owns(self, tags: Mapping[str, str]) -> bool:
        """This cluster's ``owned`` tag, and this instance's scope (no scope tag for the default)."""
        return tags.get(self.cluster_tag) == model.OWNED and tags.get(model.SCOPE_TAG, "") == self.scope

    def owned_by(self, tags: Mapping[str, str], *, uid: str) -> bool:
        """Owned, and the Service ``uid``'s."""
        return self.owns(tags) and tags.get(model.SERVICE_UID_TAG) == uid

    def scope_hint(self) -> str:
        scope = f"{model.SCOPE_TAG}={self.scope}" if self.scope else f"no {model.SCOPE_TAG}"
        return f" or not of this controller's scope ({scope})"

    def not_owned(self, what: str, *, use: str = "use or change it") -> NotOwned:
        return NotOwned(
            f"{what} exists but is not owned by cluster {self.cluster_name} (no "
            f"{self.cluster_tag}=owned tag){self.scope_hint()}; refusing to {use}"
        )

    def require_owned(self, arn: str, *, what: str) -> None:
        """Read an ELBv2 resource's tags back; raise :class:`NotOwned` unless it is ours."""
        described = self.clients.elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
        tags = {t["Key"]: t["Value"] for t in (described[0]["Tags"] if described else [])}
        if not self.owns(tags):
            raise self.not_owned(what)

    def retag(self, arn: str, *, have: Mapping[str, str], want: Mapping[str, str]) -> None:
        """Keep our tags and the user's additional-resource-tags current (added and removed)."""
        stale, changed = tag_changes(have, want)
        if stale:
            self.clients.elbv2.remove_tags(ResourceArns=[arn], TagKeys=stale)
        if changed:
            self.clients.elbv2.add_tags(ResourceArns=[arn], Tags=tag_list(changed))

    def describe_instances(self, instance_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The instances that exist, by ID; IDs AWS no longer knows are simply absent.

        ``DescribeInstances(InstanceIds=…)`` fails the whole call with ``InvalidInstanceID.NotFound``
        for one unknown ID (a node whose instance was terminated more than about an hour ago: EC2 API
        reference, DescribeInstances). The ``instance-id`` filter returns what exists instead.
        """
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(sorted(set(instance_ids)), 200):
            for page in self.clients.ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": list(chunk)}]
            ):
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        found[instance["InstanceId"]] = instance
        return found

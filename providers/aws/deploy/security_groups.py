"""A Service's frontend security group: the ports of its listeners, open to its source ranges.

The group is created with its spec hash tag, then its rules are authorized; an existing group's rules
are compared with the wanted ones on every full ensure (a crash between CreateSecurityGroup and the
authorize call leaves a tagged, empty group), and only the difference is revoked and authorized.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from providers.aws import model
from providers.aws.client import error_code
from providers.aws.deploy.backend_security_group import owned_sg_by_name
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery
from providers.aws.deploy.parts import ActualStack, Found, tag_changes, tag_list
from providers.common.spec_hash import spec_hash

logger = logging.getLogger(__name__)

RuleKey = tuple[str, int, int, str]  # (protocol, from port, to port, CIDR)


@dataclass(frozen=True)
class RulesDiff:
    revoke: tuple[RuleKey, ...]  # sorted
    authorize: tuple[model.Rule, ...]

    @property
    def empty(self) -> bool:
        return not self.revoke and not self.authorize


class FrontendSecurityGroups:
    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self.ctx = ctx
        self.discovery = discovery

    def ensure(self, *, stack: model.Stack, actual: ActualStack) -> str:
        """The group's ID ("" when the Service uses only its own groups)."""
        return self.ensure_group(spec=stack.frontend_security_group, actual=actual)

    def ensure_group(self, *, spec: model.SecurityGroup | None, actual: ActualStack) -> str:
        """The frontend group ``spec`` of any kind of load balancer (an NLB's, a Classic ELB's), given
        the Service's groups as listed in ``actual``: its ID, "" when ``spec`` is None."""
        if spec is None:
            return ""
        want_hash = spec_hash(spec)
        existing = next(iter(actual.security_groups), None)
        if existing is None:
            return self._create(spec, want_hash=want_hash)
        try:
            self._sync_rules(sg_id=existing.sg_id, rules=spec.rules)
        except ClientError as exc:
            if error_code(exc) != "InvalidGroup.NotFound":
                raise
            logger.info("the tagging API still lists deleted security group %s: made again", existing.sg_id)
            actual.security_groups = [g for g in actual.security_groups if g is not existing]
            return self.ensure_group(spec=spec, actual=actual)
        if existing.tags.get(model.SPEC_HASH_TAG) != want_hash:
            self._retag(existing, want={**dict(spec.tags), model.SPEC_HASH_TAG: want_hash})
        return existing.sg_id

    def _create(self, spec: model.SecurityGroup, *, want_hash: str) -> str:
        ec2 = self.ctx.clients.ec2
        vpc_id = self.discovery.cluster_info().vpc_id
        tags = [*spec.tags, (model.SPEC_HASH_TAG, want_hash)]
        try:
            sg_id = str(
                ec2.create_security_group(
                    GroupName=spec.name,
                    Description=spec.description,
                    VpcId=vpc_id,
                    TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
                )["GroupId"]
            )
        except ClientError as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
            sg_id = owned_sg_by_name(self.ctx, name=spec.name, vpc_id=vpc_id)
            self._sync_rules(sg_id=sg_id, rules=spec.rules)
            ec2.create_tags(Resources=[sg_id], Tags=tag_list(tags))
            return sg_id
        self._authorize(sg_id, spec.rules)
        return sg_id

    def _retag(self, existing: Found, *, want: Mapping[str, str]) -> None:
        ec2 = self.ctx.clients.ec2
        stale, changed = tag_changes(existing.tags, want)
        if stale:
            ec2.delete_tags(Resources=[existing.sg_id], Tags=[{"Key": k} for k in stale])
        if changed:
            ec2.create_tags(Resources=[existing.sg_id], Tags=tag_list(changed))
        existing.tags = {**{k: v for k, v in existing.tags.items() if k not in stale}, **dict(changed)}

    def _authorize(self, sg_id: str, rules: Iterable[model.Rule]) -> None:
        perms = [permission(r) for r in rules]
        if perms:
            self.ctx.clients.ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=perms)

    def _sync_rules(self, *, sg_id: str, rules: Sequence[model.Rule]) -> None:
        group = self.ctx.clients.ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]
        diff = match_rules(desired=rules, have=cidr_rules(group.get("IpPermissions", [])))
        if diff.revoke:
            self.ctx.clients.ec2.revoke_security_group_ingress(
                GroupId=sg_id,
                IpPermissions=[
                    permission(model.Rule(protocol=p, from_port=f, to_port=t, cidr=c))
                    for p, f, t, c in diff.revoke
                ],
            )
        if diff.authorize:
            self._authorize(sg_id, diff.authorize)

    def delete(self, sg_id: str) -> bool:
        """Delete an owned group; one still attached (DependencyViolation) is left to the orphan sweep.

        Returns whether the group is gone.
        """
        try:
            self.ctx.clients.ec2.delete_security_group(GroupId=sg_id)
            return True
        except ClientError as exc:
            code = error_code(exc)
            if code == "InvalidGroup.NotFound":
                return True
            if code == "DependencyViolation":
                logger.info(
                    "security group %s is still in use (network interfaces of a deleted load "
                    "balancer take a few minutes to go); the orphan sweep will delete it",
                    sg_id,
                )
                return False
            raise


# -- pure ------------------------------------------------------------------------------------------------


def permission(rule: model.Rule) -> dict[str, Any]:
    """The EC2 ``IpPermission`` of one rule (IPv4 or IPv6 range by the CIDR's family)."""
    perm: dict[str, Any] = {"IpProtocol": rule.protocol, "FromPort": rule.from_port, "ToPort": rule.to_port}
    if ":" in rule.cidr:
        perm["Ipv6Ranges"] = [{"CidrIpv6": rule.cidr, "Description": rule.description}]
    else:
        perm["IpRanges"] = [{"CidrIp": rule.cidr, "Description": rule.description}]
    return perm


def cidr_rules(permissions: Iterable[Mapping[str, Any]]) -> set[RuleKey]:
    """The CIDR-sourced rules of a group's ``IpPermissions``."""
    have: set[RuleKey] = set()
    for perm in permissions:
        ports = (perm["IpProtocol"], perm.get("FromPort", -1), perm.get("ToPort", -1))
        for r in perm.get("IpRanges", []):
            have.add((*ports, r["CidrIp"]))
        for r in perm.get("Ipv6Ranges", []):
            have.add((*ports, r["CidrIpv6"]))
    return have


def match_rules(*, desired: Sequence[model.Rule], have: set[RuleKey]) -> RulesDiff:
    """What to revoke and authorize so that the group has exactly the ``desired`` rules."""
    want = {(r.protocol, r.from_port, r.to_port, r.cidr): r for r in desired}
    return RulesDiff(
        revoke=tuple(sorted(have - set(want))),
        authorize=tuple(rule for key, rule in want.items() if key not in have),
    )

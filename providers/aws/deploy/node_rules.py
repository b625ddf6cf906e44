"""The rules of an NLB without security groups on the nodes' security groups: the NLBs taken over
from the upstream provider keep upstream's rules, described as upstream describes them
(:mod:`providers.aws.build.node_rules`), and this synthesizer keeps them in line with the Service.

Only rules whose description names this NLB (``kubernetes.io/rule/nlb/client=<name>``,
``…/health=<name>``) are added or revoked; the shared path-MTU rules (``kubernetes.io/rule/nlb/mtu``, one
per client CIDR and group) are added when missing and revoked only when no client rule of any NLB on
that group still uses their CIDR, as upstream does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from providers.aws import model
from providers.aws.build.node_rules import NLB_CLIENT_RULE, NLB_HEALTH_RULE, NLB_MTU_RULE
from providers.aws.client import suppress_codes
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery

logger = logging.getLogger(__name__)

Key = tuple[str, int, int, str, str]  # protocol, from, to, CIDR, description


class NodeRules:
    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self.ctx = ctx
        self.discovery = discovery

    def ensure(self, *, lb_name: str, rules: Sequence[model.Rule], groups: Sequence[str]) -> None:
        """Make each of ``groups`` hold exactly ``rules`` among the rules of NLB ``lb_name``."""
        if not groups or self.ctx.config.disable_security_group_ingress:
            return
        ec2 = self.ctx.clients.ec2
        described = ec2.describe_security_groups(GroupIds=list(groups))["SecurityGroups"]
        for group in described:
            grant, revoke = plan(lb_name=lb_name, want=rules, have=group.get("IpPermissions", []))
            if revoke:
                with suppress_codes("InvalidPermission.NotFound"):
                    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=revoke)
            if grant:
                ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=grant)
            if grant or revoke:
                logger.info(
                    "%s: node group %s: %d rules added, %d revoked",
                    lb_name,
                    group["GroupId"],
                    len(grant),
                    len(revoke),
                )

    def drifted(
        self, wanted: Mapping[str, tuple[str, Sequence[model.Rule], Sequence[str]]]
    ) -> frozenset[str]:
        """Keys of ``wanted`` (key → (NLB name, rules, node groups)) whose rules on their node groups
        differ from what :meth:`ensure` would make: one DescribeSecurityGroups for all of them."""
        groups = sorted({g for _name, _rules, gs in wanted.values() for g in gs})
        if not groups or self.ctx.config.disable_security_group_ingress:
            return frozenset()
        described = self.ctx.clients.ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]
        have = {g["GroupId"]: g.get("IpPermissions", []) for g in described}
        found: set[str] = set()
        for key, (lb_name, rules, node_groups) in sorted(wanted.items()):
            for group in node_groups:
                grant, revoke = plan(lb_name=lb_name, want=rules, have=have.get(group, []))
                if grant or revoke:
                    logger.info(
                        "%s: node group %s lacks %d of NLB %s's rules and has %d to revoke: ensuring it",
                        key,
                        group,
                        len(grant),
                        lb_name,
                        len(revoke),
                    )
                    found.add(key)
                    break
        return frozenset(found)

    def forget(self, *, lb_name: str) -> None:
        """Revoke NLB ``lb_name``'s rules from the cluster's security groups (those with its tag key in
        the cluster's VPC, where upstream writes them): its load balancer is gone."""
        if self.ctx.config.disable_security_group_ingress:
            return
        vpc = self.discovery.cluster_info().vpc_id
        described = self.ctx.clients.ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc]},
                {"Name": "tag-key", "Values": [self.ctx.cluster_tag]},
            ]
        )["SecurityGroups"]
        for group in described:
            _grant, revoke = plan(lb_name=lb_name, want=(), have=group.get("IpPermissions", []))
            if revoke:
                with suppress_codes("InvalidPermission.NotFound"):
                    self.ctx.clients.ec2.revoke_security_group_ingress(
                        GroupId=group["GroupId"], IpPermissions=revoke
                    )
                logger.info(
                    "%s: revoked its %d rules from node group %s", lb_name, len(revoke), group["GroupId"]
                )


# -- pure ------------------------------------------------------------------------------------------------


def _keys(permissions: Iterable[Mapping[str, Any]]) -> set[Key]:
    out: set[Key] = set()
    for p in permissions:
        protocol, lo, hi = str(p.get("IpProtocol")), int(p.get("FromPort", -1)), int(p.get("ToPort", -1))
        for r in p.get("IpRanges", []):
            out.add((protocol, lo, hi, r.get("CidrIp", ""), r.get("Description", "")))
        for r in p.get("Ipv6Ranges", []):
            out.add((protocol, lo, hi, r.get("CidrIpv6", ""), r.get("Description", "")))
    return out


def _permission(key: Key) -> dict[str, Any]:
    protocol, lo, hi, cidr, description = key
    ranges = (
        {"Ipv6Ranges": [{"CidrIpv6": cidr, "Description": description}]}
        if ":" in cidr
        else {"IpRanges": [{"CidrIp": cidr, "Description": description}]}
    )
    return {"IpProtocol": protocol, "FromPort": lo, "ToPort": hi, **ranges}


def plan(
    *, lb_name: str, want: Sequence[model.Rule], have: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(to authorize, to revoke) on one group that has ``have``, for NLB ``lb_name`` to have ``want``."""
    mine = {f"{NLB_CLIENT_RULE}={lb_name}", f"{NLB_HEALTH_RULE}={lb_name}"}
    present = _keys(have)
    wanted = {(r.protocol, r.from_port, r.to_port, r.cidr, r.description) for r in want}
    other_client_cidrs = {
        k[3] for k in present if k[4].startswith(f"{NLB_CLIENT_RULE}=") and k[4] not in mine
    }
    wanted_client_cidrs = {k[3] for k in wanted if k[4] in mine and k[4].startswith(NLB_CLIENT_RULE)}
    revoke = {k for k in present if k[4] in mine and k not in wanted}
    revoke |= {
        k
        for k in present
        if k[4] == NLB_MTU_RULE and k[3] not in other_client_cidrs | wanted_client_cidrs and k not in wanted
    }
    grant = wanted - present
    return [_permission(k) for k in sorted(grant)], [_permission(k) for k in sorted(revoke)]

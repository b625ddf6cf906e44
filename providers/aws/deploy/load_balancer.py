"""A Service's NLB: created with its subnets and security groups, then kept in line in place.

What AWS can change in place is changed (security groups, IP address type, subnets, attributes, tags);
what it cannot is said in a Warning event (a subnet's address) or done by replacement (the scheme: a new
NLB, made before the old one is deleted, as the aws-load-balancer-controller does).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from providers.aws import model
from providers.aws.client import error_code
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery
from providers.aws.deploy.parts import (
    ADDRESS_CHANGED,
    NOT_APPLIED,
    ActualStack,
    Found,
    StackCache,
    lb_name,
    tag_list,
)
from providers.common.errors import NotOwned

logger = logging.getLogger(__name__)

# CreateLoadBalancer without a Scheme makes an internet-facing one (ELBv2 API reference, Scheme)
SCHEME_DEFAULT = "internet-facing"

# Load-balancer attributes put back to AWS's default when the annotation that set them is removed
# (botocore elbv2 service-2.json, LoadBalancerAttribute.Key).
MANAGED_LB_ATTRIBUTES = {
    "load_balancing.cross_zone.enabled": "false",
    "access_logs.s3.enabled": "false",
    "deletion_protection.enabled": "false",
    "dns_record.client_routing_policy": "any_availability_zone",
    "zonal_shift.config.enabled": "false",
}


class LoadBalancers:
    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self.ctx = ctx
        self.discovery = discovery

    def ensure(
        self, *, stack: model.Stack, actual: ActualStack, sg_ids: list[str], cache: StackCache
    ) -> tuple[str, bool]:
        """The NLB's ARN, and whether it was created (a created NLB has no listeners yet).

        No spec hash is written here: the deployer writes it once listeners and targets are complete.
        """
        spec = stack.load_balancer
        elbv2 = self.ctx.clients.elbv2
        existing = actual.load_balancer
        described: dict[str, Any] = {}
        replacing: Mapping[str, Any] = {}
        if existing is not None:
            described = self.discovery.described_load_balancers([existing.arn]).get(existing.arn, {})
            if not described:  # listed by the tagging API, but deleted since: made again
                existing = None
            elif (described.get("Scheme") or SCHEME_DEFAULT) != spec.scheme:
                self._replace_for_scheme(existing=existing, described=described, spec=spec, actual=actual)
                cache.dns_name = ""
                existing = None
                replacing = described
        if existing is None:
            lb = self._create(spec, sg_ids=sg_ids)
            cache.lb_arn, cache.dns_name = lb["LoadBalancerArn"], lb["DNSName"]
            if replacing:
                cache.notices.append(
                    (
                        ADDRESS_CHANGED,
                        f"the scheme changed from {replacing.get('Scheme')} to {spec.scheme}: AWS cannot "
                        f"change it in place, so a new NLB {lb['DNSName']} replaces "
                        f"{replacing.get('DNSName')}; "
                        "update DNS records and allowlists that name the old one",
                    )
                )
            changes = attribute_changes(want=spec.attributes, have=None)
            if changes:
                self._modify_attributes(lb["LoadBalancerArn"], changes)
            return cache.lb_arn, True
        cache.lb_arn, cache.dns_name = existing.arn, described["DNSName"]
        if sorted(described.get("SecurityGroups", [])) != sorted(sg_ids):
            elbv2.set_security_groups(LoadBalancerArn=existing.arn, SecurityGroups=sg_ids)
        address_type_changes = described.get("IpAddressType", "ipv4") != spec.ip_address_type
        if address_type_changes and spec.ip_address_type == "ipv4":  # before subnets that may lack IPv6
            elbv2.set_ip_address_type(LoadBalancerArn=existing.arn, IpAddressType=spec.ip_address_type)
        self._set_subnets(arn=existing.arn, spec=spec, described=described, cache=cache, keep=stack.adopted)
        if address_type_changes and spec.ip_address_type != "ipv4":  # after the subnets it needs
            elbv2.set_ip_address_type(LoadBalancerArn=existing.arn, IpAddressType=spec.ip_address_type)
        have = {
            a["Key"]: a["Value"]
            for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=existing.arn)["Attributes"]
        }
        changes = attribute_changes(want=spec.attributes, have=have)
        if changes:
            self._modify_attributes(existing.arn, changes)
        self.ctx.retag(existing.arn, have=existing.tags, want=dict(spec.tags))
        return existing.arn, False

    def _create(self, spec: model.LoadBalancer, *, sg_ids: list[str]) -> dict[str, Any]:
        started = datetime.datetime.now(datetime.UTC)
        try:
            lb: dict[str, Any] = self.ctx.clients.elbv2.create_load_balancer(
                Name=spec.name,
                Type="network",
                Scheme=spec.scheme,
                IpAddressType=spec.ip_address_type,
                SubnetMappings=[mapping(m) for m in spec.subnet_mappings],
                SecurityGroups=sg_ids,
                Tags=tag_list(spec.tags),
            )["LoadBalancers"][0]
        except ClientError as exc:
            if error_code(exc) == "DuplicateLoadBalancerName":
                raise NotOwned(
                    f"a load balancer named {spec.name} already exists with other settings and is not "
                    f"this Service's (no {self.ctx.cluster_tag}=owned and {model.SERVICE_UID_TAG} tags); "
                    "refusing to touch it"
                ) from exc
            raise
        created = lb.get("CreatedTime")
        if isinstance(created, datetime.datetime) and created < started - datetime.timedelta(minutes=1):
            # AWS handed back an existing LB of the same name: use it only if it is ours.
            self.ctx.require_owned(lb["LoadBalancerArn"], what=f"load balancer {spec.name}")
        return lb

    def _modify_attributes(self, arn: str, changes: Mapping[str, str]) -> None:
        self.ctx.clients.elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(changes.items())]
        )

    def _replace_for_scheme(
        self, *, existing: Found, described: Mapping[str, Any], spec: model.LoadBalancer, actual: ActualStack
    ) -> None:
        """A scheme cannot change in place: a new NLB replaces the old one, made before it is deleted.

        The new NLB is created while the old one still serves (its name differs: the scheme is in
        the name hash), then the deployer deletes the old one before it gives the new one its
        listeners, because an NLB target group serves one load balancer only (NLB quotas, "Load
        balancers per target group: 1"). An NLB named before the scheme was in the name (an internal
        one of an earlier release) goes first, since the new one takes its name. The Service's address
        changes either way, and the provider says so in an event.
        """
        if dict(spec.attributes).get("deletion_protection.enabled") == "true":
            raise RuntimeError(
                f"the scheme changes from {described.get('Scheme')} to {spec.scheme}, which needs a new NLB "
                "and the old one deleted, but the Service asks for deletion protection: set "
                "deletion_protection.enabled=false in aws-load-balancer-attributes for the change, then "
                "back to true"
            )
        logger.info(
            "%s: scheme changes from %s to %s: a new load balancer replaces %s",
            spec.name,
            described.get("Scheme"),
            spec.scheme,
            existing.arn,
        )
        if lb_name(existing.arn) == spec.name:
            self.delete(existing.arn, keep_protection=False)
        else:
            actual.replaced.append(existing)

    def _set_subnets(
        self,
        *,
        arn: str,
        spec: model.LoadBalancer,
        described: Mapping[str, Any],
        cache: StackCache,
        keep: bool = False,
    ) -> None:
        """Move the NLB to the spec's subnets; ``keep`` (an NLB taken over from the upstream provider, whose
        subnets stay as upstream made them): say what would have changed instead."""
        az_of = {s.subnet_id: s.availability_zone for s in self.discovery.cluster_info().subnets}
        plan = subnet_plan(
            want=spec.subnet_mappings, zones=described.get("AvailabilityZones", []), az_of=az_of
        )
        for message in plan.not_applied:
            cache.notices.append((NOT_APPLIED, message))
        if keep:
            if plan.calls:
                have = sorted(str(z.get("SubnetId")) for z in described.get("AvailabilityZones", []))
                want = sorted(m.subnet_id for m in spec.subnet_mappings)
                cache.notices.append(
                    (
                        NOT_APPLIED,
                        f"the NLB taken over from the upstream provider keeps its subnets {', '.join(have)}; "
                        f"the Service's would be {', '.join(want)}. To move it, annotate the Service "
                        'ccm-lb.io/replace-foreign-load-balancer: "true" (a new NLB, a new address)',
                    )
                )
            return
        for mappings in plan.calls:
            self.ctx.clients.elbv2.set_subnets(LoadBalancerArn=arn, SubnetMappings=mappings)

    def dns_name(self, cache: StackCache) -> str:
        if not cache.dns_name:
            described = self.ctx.clients.elbv2.describe_load_balancers(LoadBalancerArns=[cache.lb_arn])
            cache.dns_name = described["LoadBalancers"][0]["DNSName"]
        return cache.dns_name

    def delete(self, arn: str, *, keep_protection: bool) -> None:
        """Delete the NLB; deletion protection is turned off first unless the Service still asks for it."""
        elbv2 = self.ctx.clients.elbv2
        try:
            elbv2.delete_load_balancer(LoadBalancerArn=arn)
        except ClientError as exc:
            code = error_code(exc)
            if code == "LoadBalancerNotFound":
                return
            if code != "OperationNotPermitted":
                raise
            if keep_protection:
                raise RuntimeError(
                    f"the NLB {arn} has deletion protection on, as the Service asks "
                    "(aws-load-balancer-attributes: deletion_protection.enabled=true): remove that key or "
                    "set it to false to let the load balancer be deleted; until then it stays"
                ) from exc
            logger.info("%s: deletion protection is on but no longer asked for: turning it off", arn)
            elbv2.modify_load_balancer_attributes(
                LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}]
            )
            elbv2.delete_load_balancer(LoadBalancerArn=arn)


# -- pure ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubnetPlan:
    calls: list[list[dict[str, str]]] = field(default_factory=list)  # SetSubnets mappings, in order
    not_applied: list[str] = field(default_factory=list)  # messages: changes AWS cannot make


def mapping(m: model.SubnetMapping) -> dict[str, str]:
    """The ELBv2 ``SubnetMapping`` of one wanted subnet."""
    out = {"SubnetId": m.subnet_id}
    if m.allocation_id:
        out["AllocationId"] = m.allocation_id
    if m.private_ipv4_address:
        out["PrivateIPv4Address"] = m.private_ipv4_address
    return out


def zone_mapping(zone: Mapping[str, Any]) -> dict[str, str]:
    """The ``SubnetMapping`` that keeps an enabled zone as it is (its subnet and fixed addresses)."""
    out = {"SubnetId": str(zone["SubnetId"])}
    for address in zone.get("LoadBalancerAddresses", []):
        if address.get("AllocationId"):
            out["AllocationId"] = address["AllocationId"]
        if address.get("PrivateIPv4Address"):
            out["PrivateIPv4Address"] = address["PrivateIPv4Address"]
    return out


def _describe_mapping(m: Mapping[str, str]) -> str:
    parts = [m[k] for k in ("AllocationId", "PrivateIPv4Address") if m.get(k)]
    return ", ".join(parts) or "an address AWS chose"


def subnet_plan(
    *, want: Sequence[model.SubnetMapping], zones: Sequence[Mapping[str, Any]], az_of: Mapping[str, str]
) -> SubnetPlan:
    """The SetSubnets calls that move the NLB from its enabled ``zones`` to the ``want`` subnets.

    A subnet that stays keeps its addresses: AWS fixes the Elastic IP or private IPv4 address of an
    enabled subnet (SetSubnets: previously enabled subnets are given "with their existing
    configurations"), so a changed eip-allocations or private-ipv4-addresses for it is reported and the
    NLB keeps its addresses. Swapping the subnet of a zone that stays enabled takes two calls: the zone
    is left out first, then added back with its new subnet. Raises ``RuntimeError`` when every zone
    swaps (an NLB needs one zone at all times).
    """
    enabled = {z["ZoneName"]: z for z in zones}
    target: dict[str, dict[str, str]] = {}
    not_applied: list[str] = []
    for m in want:
        zone = enabled.get(az_of.get(m.subnet_id, ""))
        if zone is None or zone["SubnetId"] != m.subnet_id:
            target[m.subnet_id] = mapping(m)
            continue
        have, wanted = zone_mapping(zone), mapping(m)
        if wanted != have:
            not_applied.append(
                f"the NLB keeps the address of subnet {m.subnet_id} ({_describe_mapping(have)}): AWS cannot "
                f"change the Elastic IP or private IPv4 address of a subnet in use, so the new setting "
                f"({_describe_mapping(wanted)}) is not applied. To move the address, recreate the Service "
                "(a new NLB)"
            )
        target[m.subnet_id] = have
    if sorted(target) == sorted(z["SubnetId"] for z in enabled.values()):
        return SubnetPlan(not_applied=not_applied)
    swapped = {
        az_of.get(subnet_id, "")
        for subnet_id in target
        if az_of.get(subnet_id, "") in enabled and enabled[az_of.get(subnet_id, "")]["SubnetId"] != subnet_id
    }
    calls: list[list[dict[str, str]]] = []
    if swapped:
        interim = [m for subnet_id, m in target.items() if az_of.get(subnet_id, "") not in swapped]
        if not interim:
            raise RuntimeError(
                f"every availability zone of the NLB changes its subnet ({', '.join(sorted(swapped))}); "
                "AWS moves a zone to another subnet only by leaving it out first, and an NLB needs one "
                "zone at all times: change the subnets one zone at a time"
            )
        calls.append(interim)
    calls.append(list(target.values()))
    return SubnetPlan(calls=calls, not_applied=not_applied)


def attribute_changes(*, want: Sequence[tuple[str, str]], have: Mapping[str, str] | None) -> dict[str, str]:
    """Attributes to modify. A new NLB (``have`` None) gets what is asked for; an existing one also gets
    AWS's default back for a managed attribute no longer asked for."""
    wanted = dict(want)
    if have is None:
        return wanted
    for key, default in MANAGED_LB_ATTRIBUTES.items():
        wanted.setdefault(key, default)
    return {k: v for k, v in wanted.items() if have.get(k, MANAGED_LB_ATTRIBUTES.get(k)) != v}

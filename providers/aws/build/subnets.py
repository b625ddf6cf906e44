"""Scheme, subnets and addresses: which subnets an NLB gets (upstream's discovery by role tags, or the
subnets annotation), and the Elastic IPs or private addresses mapped to them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from providers.aws import annotations as ann
from providers.aws.build.common import (
    CLUSTER_TAG_PREFIX,
    EIP_ID,
    LEGACY_CLUSTER_TAG,
    NAME_TAG,
    ROLE_ELB_TAG,
    ROLE_INTERNAL_ELB_TAG,
    SCHEME_INTERNAL,
)
from providers.aws.model import (
    ClusterInfo,
    Subnet,
    SubnetMapping,
    cluster_tag,
)


def wants_internal(annotations: Mapping[str, str]) -> bool:
    """Whether the NLB is internal: upstream's aws-load-balancer-internal, or ALBC's scheme annotation."""
    value = ann.text(annotations=annotations, key=ann.INTERNAL)
    by_internal = None if value is None else value != "false"
    scheme = ann.text(annotations=annotations, key=ann.SCHEME)
    if scheme is None:
        return bool(by_internal)
    if scheme not in ann.SCHEMES:
        raise ann.invalid(key=ann.SCHEME, value=annotations[ann.SCHEME], reason="unknown scheme")
    internal = scheme == SCHEME_INTERNAL
    if by_internal is not None and by_internal != internal:
        raise ann.invalid(
            key=ann.SCHEME,
            value=annotations[ann.SCHEME],
            reason=f"contradicts {ann.INTERNAL}={annotations[ann.INTERNAL]!r}",
            accepted=f"a scheme that agrees with {ann.INTERNAL}, or only one of the two annotations",
        )
    return internal


def _tag_map(subnet: Subnet) -> dict[str, str]:
    return dict(subnet.tags)


def _ours(tags: Mapping[str, str], cluster_id: str) -> bool:
    return cluster_tag(cluster_id) in tags or tags.get(LEGACY_CLUSTER_TAG) == cluster_id


def _tagged_for_a_cluster(tags: Mapping[str, str]) -> bool:
    return any(k.startswith(CLUSTER_TAG_PREFIX) for k in tags) or LEGACY_CLUSTER_TAG in tags


def choose_subnets(
    annotations: Mapping[str, str], cluster: ClusterInfo, cluster_id: str, internal: bool
) -> tuple[Subnet, ...]:
    in_vpc = [s for s in cluster.subnets if s.vpc_id == cluster.vpc_id]
    wanted = ann.parse_list(annotations=annotations, key=ann.SUBNETS)
    if wanted:
        return _named_subnets(annotations[ann.SUBNETS], wanted, in_vpc, cluster.vpc_id)
    role = ROLE_INTERNAL_ELB_TAG if internal else ROLE_ELB_TAG
    best: dict[str, tuple[tuple[bool, bool, str], Subnet]] = {}
    for subnet in in_vpc:
        tags = _tag_map(subnet)
        if subnet.zone_type != "availability-zone":
            continue
        if not internal and not subnet.public:
            continue  # no route to an internet gateway: an internet-facing NLB there is unreachable
        ours = _ours(tags, cluster_id)
        if not ours and _tagged_for_a_cluster(tags):
            continue  # tagged for another cluster only
        rank = (role not in tags, not ours, subnet.subnet_id)
        current = best.get(subnet.availability_zone)
        if current is None or rank < current[0]:
            best[subnet.availability_zone] = (rank, subnet)
    if not best:
        raise ann.invalid(
            key=ann.SUBNETS,
            value="",
            reason=(
                f"no subnet of {cluster.vpc_id} can be used: tag one subnet per availability zone "
                f"with {role}=1 and {cluster_tag(cluster_id)}=shared (or owned)"
                + ("" if internal else ", in a route table with a route to an internet gateway")
                + ", or list subnets in this annotation"
            ),
        )
    return tuple(best[zone][1] for zone in sorted(best))


def _named_subnets(
    raw: str, wanted: Sequence[str], in_vpc: Sequence[Subnet], vpc_id: str
) -> tuple[Subnet, ...]:
    chosen: list[Subnet] = []
    for entry in wanted:
        if entry.startswith("subnet-"):
            matches = [s for s in in_vpc if s.subnet_id == entry]
        else:
            matches = [s for s in in_vpc if _tag_map(s).get(NAME_TAG) == entry]
        if not matches:
            raise ann.invalid(key=ann.SUBNETS, value=raw, reason=f"no subnet {entry!r} in {vpc_id}")
        if len(matches) > 1:
            raise ann.invalid(
                key=ann.SUBNETS,
                value=raw,
                reason=f"the Name {entry!r} matches {', '.join(s.subnet_id for s in matches)}; use an ID",
            )
        subnet = matches[0]
        if subnet in chosen:
            raise ann.invalid(key=ann.SUBNETS, value=raw, reason=f"{entry!r} is listed twice")
        twin = next((s for s in chosen if s.availability_zone == subnet.availability_zone), None)
        if twin is not None:
            raise ann.invalid(
                key=ann.SUBNETS,
                value=raw,
                reason=(
                    f"{twin.subnet_id} and {subnet.subnet_id} are both in {subnet.availability_zone}; "
                    "an NLB takes one subnet per availability zone"
                ),
            )
        chosen.append(subnet)
    return tuple(chosen)


def _contains(cidr: str, ip: ipaddress.IPv4Address) -> bool:
    """Whether ``ip`` is inside ``cidr``; False for a subnet without an IPv4 CIDR (IPv6-only)."""
    try:
        return ip in ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        return False


def build_subnet_mappings(
    annotations: Mapping[str, str], subnets: Sequence[Subnet], internal: bool
) -> tuple[SubnetMapping, ...]:
    allocations = ann.parse_list(annotations=annotations, key=ann.EIP_ALLOCATIONS)
    addresses = ann.parse_list(annotations=annotations, key=ann.PRIVATE_IPV4_ADDRESSES)
    ids = ", ".join(s.subnet_id for s in subnets)
    if allocations:
        raw = annotations[ann.EIP_ALLOCATIONS]
        if internal:
            raise ann.invalid(
                key=ann.EIP_ALLOCATIONS,
                value=raw,
                reason="Elastic IPs need an internet-facing NLB, and this one is internal",
                accepted=f"no EIPs on internal NLBs; use {ann.PRIVATE_IPV4_ADDRESSES}",
            )
        accepted = f"exactly {len(subnets)} eipalloc-... IDs, one for each subnet ({ids}), in that order"
        bad = next((a for a in allocations if not EIP_ID.fullmatch(a)), None)
        if bad is not None:
            raise ann.invalid(
                key=ann.EIP_ALLOCATIONS,
                value=raw,
                reason=f"{bad!r} is not an allocation ID",
                accepted=accepted,
            )
        if len(set(allocations)) != len(allocations):
            raise ann.invalid(
                key=ann.EIP_ALLOCATIONS, value=raw, reason="an allocation is listed twice", accepted=accepted
            )
        if len(allocations) != len(subnets):
            raise ann.invalid(
                key=ann.EIP_ALLOCATIONS,
                value=raw,
                reason=f"{len(allocations)} allocations for {len(subnets)} subnets",
                accepted=accepted,
            )
        return tuple(
            SubnetMapping(subnet_id=s.subnet_id, allocation_id=a)
            for s, a in zip(subnets, allocations, strict=True)
        )
    if addresses:
        raw = annotations[ann.PRIVATE_IPV4_ADDRESSES]
        cidrs = ", ".join(f"{s.subnet_id} {s.cidr_block}" for s in subnets)
        accepted = f"exactly {len(subnets)} IPv4 addresses, one inside each subnet: {cidrs}"
        if not internal:
            raise ann.invalid(
                key=ann.PRIVATE_IPV4_ADDRESSES,
                value=raw,
                reason=f"static private addresses need an internal NLB (set {ann.INTERNAL}: 'true')",
                accepted=accepted,
            )
        if len(addresses) != len(subnets):
            raise ann.invalid(
                key=ann.PRIVATE_IPV4_ADDRESSES,
                value=raw,
                reason=f"{len(addresses)} addresses for {len(subnets)} subnets",
                accepted=accepted,
            )
        by_subnet: dict[str, str] = {}
        for address in addresses:
            try:
                ip = ipaddress.IPv4Address(address)
            except ValueError:
                raise ann.invalid(
                    key=ann.PRIVATE_IPV4_ADDRESSES,
                    value=raw,
                    reason=f"{address!r} is not an IPv4 address",
                    accepted=accepted,
                ) from None
            home = next((s for s in subnets if _contains(s.cidr_block, ip)), None)
            if home is None:
                raise ann.invalid(
                    key=ann.PRIVATE_IPV4_ADDRESSES,
                    value=raw,
                    reason=f"{address} is in none of the load balancer's subnets",
                    accepted=accepted,
                )
            if home.subnet_id in by_subnet:
                raise ann.invalid(
                    key=ann.PRIVATE_IPV4_ADDRESSES,
                    value=raw,
                    reason=f"{by_subnet[home.subnet_id]} and {address} are both in {home.subnet_id}",
                    accepted=accepted,
                )
            by_subnet[home.subnet_id] = str(ip)
        return tuple(
            SubnetMapping(subnet_id=s.subnet_id, private_ipv4_address=by_subnet[s.subnet_id]) for s in subnets
        )
    return tuple(SubnetMapping(subnet_id=s.subnet_id) for s in subnets)

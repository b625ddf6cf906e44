"""The frontend security group's rules (listener ports from the source ranges), or the user's own
groups.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from providers.aws import annotations as ann
from providers.aws.build.common import (
    SG_ID,
)
from providers.aws.model import (
    Listener,
    Rule,
)


def byo_security_groups(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """``aws-load-balancer-security-groups``: the user's groups, replacing the managed frontend group."""
    return _security_group_ids(annotations, key=ann.SECURITY_GROUPS)


def extra_security_groups(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """``aws-load-balancer-extra-security-groups`` (Classic ELBs): groups added to the others."""
    return _security_group_ids(annotations, key=ann.EXTRA_SECURITY_GROUPS)


def _security_group_ids(annotations: Mapping[str, str], *, key: str) -> tuple[str, ...]:
    """Security-group IDs listed in annotation ``key``, in order, once each."""
    groups = ann.parse_list(annotations=annotations, key=key) or ()
    bad = next((g for g in groups if not SG_ID.fullmatch(g)), None)
    if bad is not None:
        raise ann.invalid(key=key, value=annotations[key], reason=f"{bad!r} is not a security group ID")
    return tuple(dict.fromkeys(groups))


def frontend_description(*, service_key: str, cluster_id: str) -> str:
    """The managed frontend group's description (≤ 255 characters; AWS cannot change it later)."""
    return f"Frontend of the load balancer of Service {service_key} (cluster {cluster_id})"[:255]


# the IP protocols a listener's protocol takes through the frontend group: NLB (TCP, TLS, UDP, TCP_UDP) and
# Classic ELB (TCP, SSL, HTTP, HTTPS) listeners
_IP_PROTOCOLS = {
    "TCP": ("tcp",),
    "TLS": ("tcp",),
    "SSL": ("tcp",),
    "HTTP": ("tcp",),
    "HTTPS": ("tcp",),
    "UDP": ("udp",),
    "TCP_UDP": ("tcp", "udp"),
}


def frontend_rules(listeners: Sequence[Listener], ranges: Sequence[str]) -> tuple[Rule, ...]:
    """Each NLB listener port from each source range, plus path-MTU discovery ICMP from each range."""
    return listener_rules([(listener.port, listener.protocol) for listener in listeners], ranges)


def listener_rules(ports: Sequence[tuple[int, str]], ranges: Sequence[str]) -> tuple[Rule, ...]:
    """The frontend group's rules for listeners given as ``(port, protocol)``: each port from each source
    range, plus ICMP "fragmentation needed" (IPv4 type 3 code 4; ICMPv6 type 2, packet too big) from
    each range for path-MTU discovery, as upstream's Classic ELB group has (aws.go
    ``createSecurityGroupRules``)."""
    rules: list[Rule] = []
    for port, protocol in ports:
        for ip_protocol in _IP_PROTOCOLS[protocol]:
            for cidr in ranges:
                rules.append(
                    Rule(
                        protocol=ip_protocol,
                        from_port=port,
                        to_port=port,
                        cidr=cidr,
                        description=f"listener {port}/{protocol}",
                    )
                )
    for cidr in ranges:
        if ipaddress.ip_network(cidr, strict=False).version == 4:
            rules.append(
                Rule(protocol="icmp", from_port=3, to_port=4, cidr=cidr, description="path MTU discovery")
            )
        else:
            rules.append(
                Rule(protocol="icmpv6", from_port=2, to_port=0, cidr=cidr, description="path MTU discovery")
            )
    return tuple(dict.fromkeys(rules))

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
    groups = ann.parse_list(annotations=annotations, key=ann.SECURITY_GROUPS) or ()
    bad = next((g for g in groups if not SG_ID.fullmatch(g)), None)
    if bad is not None:
        raise ann.invalid(
            key=ann.SECURITY_GROUPS,
            value=annotations[ann.SECURITY_GROUPS],
            reason=f"{bad!r} is not a security group ID",
        )
    return tuple(dict.fromkeys(groups))


def frontend_rules(listeners: Sequence[Listener], ranges: Sequence[str]) -> tuple[Rule, ...]:
    """Each listener port from each source range, plus path-MTU discovery ICMP from each range."""
    rules: list[Rule] = []
    for listener in listeners:
        protocols = {"TCP": ("tcp",), "TLS": ("tcp",), "UDP": ("udp",), "TCP_UDP": ("tcp", "udp")}
        for protocol in protocols[listener.protocol]:
            for cidr in ranges:
                rules.append(
                    Rule(
                        protocol=protocol,
                        from_port=listener.port,
                        to_port=listener.port,
                        cidr=cidr,
                        description=f"listener {listener.port}/{listener.protocol}",
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

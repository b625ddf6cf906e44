"""The rules an NLB without security groups needs on the nodes' security groups, as the upstream
provider (cloud-provider-aws) writes them, for the NLBs taken over from it.

Without a security group on the NLB, clients reach the nodes with their own addresses (client IP
preservation) and health checks come from the NLB's addresses in its subnets, so the nodes' group must
let both in on the NodePorts. Upstream (``pkg/providers/v1/aws_loadbalancer.go``,
``updateInstanceSecurityGroupsForNLB``) writes, per load balancer ``<name>``:

* ``kubernetes.io/rule/nlb/client=<name>``: each traffic NodePort from each source range (TCP, or UDP
  when a port is UDP);
* ``kubernetes.io/rule/nlb/health=<name>``: each health-check port from the subnets' CIDRs, TCP, left out
  when the client rule already covers it (source 0.0.0.0/0, TCP, the same ports);
* ``kubernetes.io/rule/nlb/mtu``: ICMP "fragmentation needed" (type 3, code 4) from each client CIDR
  (``updateInstanceSecurityGroupForNLBMTU``).

Keeping upstream's descriptions makes the takeover change no rule at all; later changes of the Service
move them as upstream would.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from providers.aws.model import Rule, TargetGroup

NLB_CLIENT_RULE = "kubernetes.io/rule/nlb/client"
NLB_HEALTH_RULE = "kubernetes.io/rule/nlb/health"
NLB_MTU_RULE = "kubernetes.io/rule/nlb/mtu"


def sg_less_node_rules(
    *, lb_name: str, target_groups: Sequence[TargetGroup], ranges: Sequence[str], subnet_cidrs: Sequence[str]
) -> tuple[Rule, ...]:
    """The node rules of NLB ``lb_name`` (upstream's, see the module docstring)."""
    client = f"{NLB_CLIENT_RULE}={lb_name}"
    health = f"{NLB_HEALTH_RULE}={lb_name}"
    client_protocol = "udp" if any(tg.protocol in ("UDP", "TCP_UDP") for tg in target_groups) else "tcp"
    client_ports = sorted({tg.port for tg in target_groups})
    health_ports = sorted(
        {
            tg.port if tg.health_check.port == "traffic-port" else int(tg.health_check.port)
            for tg in target_groups
        }
    )
    rules: list[Rule] = [
        Rule(protocol=client_protocol, from_port=port, to_port=port, cidr=cidr, description=client)
        for port in client_ports
        for cidr in ranges
    ]
    covered = list(ranges) == ["0.0.0.0/0"] and client_protocol == "tcp" and health_ports == client_ports
    if not covered:
        rules += [
            Rule(protocol="tcp", from_port=port, to_port=port, cidr=cidr, description=health)
            for port in health_ports
            for cidr in sorted(set(subnet_cidrs))
        ]
    rules += [
        Rule(protocol="icmp", from_port=3, to_port=4, cidr=cidr, description=NLB_MTU_RULE)
        for cidr in ranges
        if ipaddress.ip_network(cidr, strict=False).version == 4
    ]
    return tuple(dict.fromkeys(rules))

"""A Classic ELB's listeners: what of the Service's spec a Classic ELB can serve, and each port's
front-end and instance protocols, certificate and SSL policy, as the upstream provider maps them.

Kept apart from the NLB's :mod:`providers.aws.build.ports` and :mod:`providers.aws.build.tls` because the
Classic ELB's rules differ: TCP only, one listener per port, and ``backend-protocol`` choosing among
SSL, HTTPS, HTTP and TCP listeners (upstream ``aws.go`` ``buildListener`` and ``backendProtocolMapping``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Final

from ccm.cloudprovider import InvalidSpec, LoadBalancerRequest, ServicePort
from providers.aws import annotations as ann
from providers.aws.build.ports import require_node_port
from providers.aws.build.tls import backend_protocol, certificate_arn, negotiation_policy
from providers.aws.classic.model import ClassicListener

log = logging.getLogger(__name__)

# Classic ELB quota "Listeners per Classic Load Balancer": 100 (Elastic Load Balancing user guide for
# Classic Load Balancers, "Quotas for your Classic Load Balancer"; Service Quotas L-1A491844)
MAX_CLASSIC_LISTENERS: Final = 100

# backend-protocol → (front-end protocol, instance protocol) of a port with the certificate (upstream
# aws.go backendProtocolMapping and buildListener; unset behaves as tcp)
_SSL_PORT_PROTOCOLS: Final = {
    "https": ("HTTPS", "HTTPS"),
    "http": ("HTTPS", "HTTP"),
    "ssl": ("SSL", "SSL"),
    "tcp": ("SSL", "TCP"),
}


def check_classic_spec(request: LoadBalancerRequest) -> None:
    """The spec fields a Classic ELB cannot honour, refused as upstream refuses them."""
    if request.load_balancer_ip:
        # upstream aws.go EnsureLoadBalancer: "LoadBalancerIP cannot be specified for AWS ELB"
        raise InvalidSpec(
            field="spec.loadBalancerIP",
            value=request.load_balancer_ip,
            accepted="empty: a Classic ELB's addresses are AWS's, behind its DNS name",
            reason="a Classic ELB's addresses cannot be chosen",
        )
    if request.session_affinity not in ("", "None"):
        # upstream aws.go EnsureLoadBalancer: "unsupported load balancer affinity" (ELB stickiness is an
        # HTTP cookie, not client-IP affinity)
        raise InvalidSpec(
            field="spec.sessionAffinity",
            value=request.session_affinity,
            accepted="None",
            reason="a Classic ELB has no client-IP affinity (its stickiness is an HTTP cookie), as upstream",
        )
    if request.ip_families and request.ip_families[0] == "IPv6":
        raise InvalidSpec(
            field="spec.ipFamilies",
            value=",".join(request.ip_families),
            accepted="IPv4 first (SingleStack IPv4, or dual-stack with IPv4 first), or an NLB",
            reason="a Classic ELB in a VPC has IPv4 addresses only",
        )


def build_listeners(request: LoadBalancerRequest) -> tuple[tuple[ClassicListener, ...], str]:
    """One listener per Service port, in ``spec.ports`` order (the first one's NodePort is the default
    health-check port, as upstream), and the SSL negotiation policy ('' for AWS's default)."""
    annotations = request.annotations
    ports = _checked_ports(request)
    certificate = certificate_arn(annotations)
    backend = backend_protocol(annotations)
    ssl_ports: frozenset[int] = frozenset()
    policy = ""
    if certificate is not None:
        ssl_ports = _ssl_ports(annotations, ports)
        policy = negotiation_policy(annotations)
    listeners: list[ClassicListener] = []
    for port in ports:
        if port.port in ssl_ports:
            protocol, instance_protocol = _SSL_PORT_PROTOCOLS[backend or "tcp"]
        elif backend == "http":
            # upstream buildListener: without the certificate only `http` changes the listener
            protocol, instance_protocol = "HTTP", "HTTP"
        else:
            protocol, instance_protocol = "TCP", "TCP"
        listeners.append(
            ClassicListener(
                protocol=protocol,
                load_balancer_port=port.port,
                instance_protocol=instance_protocol,
                instance_port=port.node_port,
                ssl_certificate_id=certificate if port.port in ssl_ports and certificate else "",
            )
        )
    return tuple(listeners), policy


def _checked_ports(request: LoadBalancerRequest) -> tuple[ServicePort, ...]:
    """``spec.ports``: TCP only (upstream aws.go ``checkProtocol``: "elb only supports tcp"), each with a
    NodePort, each port number once, at most :data:`MAX_CLASSIC_LISTENERS`."""
    if not request.ports:
        raise InvalidSpec(field="spec.ports", value=[], accepted="1 to 100 TCP ports", reason="no ports")
    seen: dict[int, int] = {}
    for index, port in enumerate(request.ports):
        if port.protocol != "TCP":
            raise InvalidSpec(
                field=f"spec.ports[{index}].protocol",
                value=port.protocol,
                accepted=f"TCP (or {ann.TYPE}: nlb, which also forwards UDP)",
                reason="Classic ELBs forward only TCP",
            )
        require_node_port(request=request, index=index, why="a Classic ELB forwards to NodePorts")
        if port.port in seen:
            raise InvalidSpec(
                field=f"spec.ports[{index}].port",
                value=port.port,
                accepted=f"each port number once (spec.ports[{seen[port.port]}] has it)",
                reason="duplicate port",
            )
        seen[port.port] = index
    if len(request.ports) > MAX_CLASSIC_LISTENERS:
        raise InvalidSpec(
            field="spec.ports",
            value=f"{len(request.ports)} ports",
            accepted=f"at most {MAX_CLASSIC_LISTENERS} ports (listeners per Classic ELB, AWS's quota)",
            reason="too many ports",
        )
    return tuple(request.ports)


def _ssl_ports(annotations: Mapping[str, str], ports: Sequence[ServicePort]) -> frozenset[int]:
    """The ports ``ssl-ports`` names (``*``, numbers or names; default every port, as upstream's
    ``getPortSets``). Unlike upstream, which skips an entry matching no port, such an entry is an error."""
    entries = ann.parse_list(annotations=annotations, key=ann.SSL_PORTS) or ("*",)
    shown = ", ".join(f"{p.port} ({p.name})" if p.name else str(p.port) for p in ports)
    selected: set[int] = set()
    for entry in entries:
        if entry == "*":
            selected.update(p.port for p in ports)
            continue
        if entry.isdigit():
            match = next((p for p in ports if p.port == int(entry)), None)
        else:
            match = next((p for p in ports if p.name and p.name == entry), None)
        if match is None:
            raise ann.invalid(
                key=ann.SSL_PORTS,
                value=annotations[ann.SSL_PORTS],
                reason=f"{entry!r} is not a port of the Service",
                accepted=f"*, or numbers or names of the Service's ports: {shown}",
            )
        selected.add(match.port)
    return frozenset(selected)

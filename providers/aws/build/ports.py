"""Which controller handles the Service (its load-balancer type), what of its spec an NLB can serve, and
its ports grouped into listeners (a TCP and a UDP port of one number share a TCP_UDP listener).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ccm.cloudprovider import ImplementedElsewhere, InvalidSpec, LoadBalancerRequest
from providers.aws import annotations as ann
from providers.aws.build.common import (
    CLASSIC_TYPES,
    ELSEWHERE_TYPES,
    MAX_LISTENERS,
)


@dataclass(frozen=True)
class Port:
    """Service ports that share one listener: one entry, or a TCP and a UDP entry (TCP_UDP)."""

    port: int
    protocol: str  # TCP | UDP | TCP_UDP
    node_port: int
    names: tuple[str, ...]


def implemented_elsewhere(annotations: Mapping[str, str]) -> bool:
    """Whether the Service is left to the AWS Load Balancer Controller (``external``, ``nlb-ip``)."""
    return ann.text(annotations=annotations, key=ann.TYPE) in ELSEWHERE_TYPES


def check_type(annotations: Mapping[str, str]) -> None:
    """For the NLB builder: ImplementedElsewhere for the AWS Load Balancer Controller's types, and
    InvalidSpec for a type that is not ``nlb``. Whether a Service without the annotation gets an NLB is
    the provider's choice (:func:`providers.aws.kind.wants_classic`), not this builder's."""
    value = ann.text(annotations=annotations, key=ann.TYPE)
    if value is not None and value in ELSEWHERE_TYPES:
        raise ImplementedElsewhere(f"{ann.TYPE}={value}: left to the AWS Load Balancer Controller")
    if value is None or value == "nlb":
        return
    if value.lower() in CLASSIC_TYPES:
        raise ann.invalid(
            key=ann.TYPE,
            value=annotations[ann.TYPE],
            reason="the Service asks for a Classic ELB: Classic ELBs are not supported by the NLB builder",
            accepted="nlb for an NLB; classic, clb or elb are built as Classic ELBs",
        )
    raise ann.invalid(key=ann.TYPE, value=annotations[ann.TYPE], reason="unknown load balancer type")


def check_spec(request: LoadBalancerRequest) -> None:
    if request.load_balancer_ip:
        raise InvalidSpec(
            field="spec.loadBalancerIP",
            value=request.load_balancer_ip,
            accepted=f"empty; pin addresses with {ann.EIP_ALLOCATIONS} or {ann.PRIVATE_IPV4_ADDRESSES}",
            reason="an NLB's addresses cannot be chosen through spec.loadBalancerIP",
        )
    if request.session_affinity not in ("", "None"):
        raise InvalidSpec(
            field="spec.sessionAffinity",
            value=request.session_affinity,
            accepted="None",
            reason=(
                "not supported on AWS load balancers (as upstream); for source-IP stickiness set "
                f"{ann.TARGET_GROUP_ATTRIBUTES}: stickiness.enabled=true,stickiness.type=source_ip"
            ),
        )


def require_node_port(*, request: LoadBalancerRequest, index: int, why: str) -> None:
    """InvalidSpec for ``spec.ports[index]`` without a NodePort (instance targets are reached on it):
    naming ``spec.allocateLoadBalancerNodePorts`` when that is why. ``why`` is the reason's end."""
    if request.ports[index].node_port != 0:
        return
    if not request.allocate_load_balancer_node_ports:
        raise InvalidSpec(
            field="spec.allocateLoadBalancerNodePorts",
            value=False,
            accepted="true (or unset)",
            reason=f"spec.ports[{index}] has no nodePort, and {why}",
        )
    raise InvalidSpec(
        field=f"spec.ports[{index}].nodePort", value=0, accepted="an allocated NodePort", reason=why
    )


def group_ports(request: LoadBalancerRequest) -> tuple[Port, ...]:
    """Validate ``spec.ports`` and merge a TCP and a UDP entry of one port number into TCP_UDP."""
    if not request.ports:
        raise InvalidSpec(
            field="spec.ports", value=[], accepted="1 to 50 TCP or UDP ports", reason="no ports"
        )
    by_port: dict[int, list[tuple[int, str, int, str]]] = {}
    for index, port in enumerate(request.ports):
        if port.protocol not in ("TCP", "UDP"):
            raise InvalidSpec(
                field=f"spec.ports[{index}].protocol",
                value=port.protocol,
                accepted="TCP or UDP",
                reason="NLBs forward only TCP and UDP",
            )
        require_node_port(request=request, index=index, why="NLB instance targets need NodePorts")
        entries = by_port.setdefault(port.port, [])
        if any(protocol == port.protocol for _, protocol, _, _ in entries):
            raise InvalidSpec(
                field=f"spec.ports[{index}].port",
                value=port.port,
                accepted="each port number at most once per protocol",
                reason="duplicate port",
            )
        entries.append((index, port.protocol, port.node_port, port.name))
    groups: list[Port] = []
    for number in sorted(by_port):
        entries = by_port[number]
        node_ports = {node_port for _, _, node_port, _ in entries}
        if len(node_ports) > 1:
            index = entries[1][0]
            raise InvalidSpec(
                field=f"spec.ports[{index}].nodePort",
                value=entries[1][2],
                accepted=f"the nodePort of spec.ports[{entries[0][0]}] ({entries[0][2]})",
                reason=f"port {number} is served on TCP and UDP by one TCP_UDP target group, on one NodePort",
            )
        protocol = "TCP_UDP" if len(entries) == 2 else entries[0][1]
        names = tuple(name for _, _, _, name in entries if name)
        groups.append(Port(port=number, protocol=protocol, node_port=entries[0][2], names=names))
    if len(groups) > MAX_LISTENERS:
        raise InvalidSpec(
            field="spec.ports",
            value=f"{len(groups)} listeners",
            accepted=f"at most {MAX_LISTENERS} listeners (distinct port numbers) per NLB",
            reason="too many ports",
        )
    return tuple(groups)

"""A Classic ELB as AWS describes it, and what differs from a :class:`~.model.ClassicStack` (pure).

One ``DescribeLoadBalancers`` answer holds nearly everything of a Classic ELB: listeners with their
policies, health check, instances, security groups, subnets, backend policies and the names of the
policies it has (botocore elb service-2.json, ``LoadBalancerDescription``); only the attributes need
``DescribeLoadBalancerAttributes``. :class:`LiveClassic` is that answer in the model's terms, so the
deployer diffs like with like and sends only what differs. Right after ``CreateLoadBalancer`` the
state is known without a describe (:func:`after_create`): what was sent plus AWS's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from providers.aws.classic.model import (
    PROXY_PROTOCOL_POLICY,
    ClassicAttributes,
    ClassicHealthCheck,
    ClassicListener,
    ClassicStack,
)

SSL_NEGOTIATION_POLICY_FORMAT = "k8s-SSLNegotiationPolicy-{}"  # upstream's SSLNegotiationPolicyNameFormat
SSL_PROTOCOLS = frozenset({"SSL", "HTTPS"})
# The health check AWS gives a new Classic ELB: TCP on the first listener's instance port, interval 30 s,
# timeout 5 s, healthy threshold 10, unhealthy threshold 2 ("Health checks for your Classic Load
# Balancer", https://docs.aws.amazon.com/elasticloadbalancing/latest/classic/elb-healthchecks.html).
DEFAULT_HC_INTERVAL, DEFAULT_HC_TIMEOUT, DEFAULT_HC_HEALTHY, DEFAULT_HC_UNHEALTHY = 30, 5, 10, 2


@dataclass
class LiveClassic:
    """One Classic ELB as described (or as just created)."""

    name: str
    dns_name: str
    scheme: str
    listeners: dict[int, ClassicListener]  # by LoadBalancerPort
    listener_policies: dict[int, tuple[str, ...]]  # LoadBalancerPort → policy names
    backend_policies: dict[int, tuple[str, ...]]  # InstancePort → policy names
    policies: frozenset[str]  # the names of the policies the ELB has (OtherPolicies)
    health_check: ClassicHealthCheck | None
    subnets: frozenset[str]
    security_groups: tuple[str, ...]
    instances: frozenset[str]
    attributes: ClassicAttributes | None = None  # None: not read (DescribeLoadBalancerAttributes)


def ssl_policy_name(policy: str) -> str:
    return SSL_NEGOTIATION_POLICY_FORMAT.format(policy)


def parse_description(d: Mapping[str, Any]) -> LiveClassic:
    """A ``LoadBalancerDescription`` in the model's terms."""
    listeners: dict[int, ClassicListener] = {}
    listener_policies: dict[int, tuple[str, ...]] = {}
    for described in d.get("ListenerDescriptions", []):
        x = described["Listener"]
        port = int(x["LoadBalancerPort"])
        listeners[port] = ClassicListener(
            protocol=str(x["Protocol"]).upper(),
            load_balancer_port=port,
            instance_protocol=str(x.get("InstanceProtocol") or x["Protocol"]).upper(),
            instance_port=int(x["InstancePort"]),
            ssl_certificate_id=str(x.get("SSLCertificateId") or ""),
        )
        listener_policies[port] = tuple(described.get("PolicyNames", []))
    hc = d.get("HealthCheck")
    return LiveClassic(
        name=str(d["LoadBalancerName"]),
        dns_name=str(d.get("DNSName", "")),
        scheme=str(d.get("Scheme") or "internet-facing"),
        listeners=listeners,
        listener_policies=listener_policies,
        backend_policies={
            int(b["InstancePort"]): tuple(b.get("PolicyNames", []))
            for b in d.get("BackendServerDescriptions", [])
        },
        policies=frozenset(d.get("Policies", {}).get("OtherPolicies", [])),
        health_check=(
            ClassicHealthCheck(
                target=str(hc["Target"]),
                interval=int(hc["Interval"]),
                timeout=int(hc["Timeout"]),
                healthy_threshold=int(hc["HealthyThreshold"]),
                unhealthy_threshold=int(hc["UnhealthyThreshold"]),
            )
            if hc
            else None
        ),
        subnets=frozenset(d.get("Subnets", [])),
        security_groups=tuple(d.get("SecurityGroups", [])),
        instances=frozenset(i["InstanceId"] for i in d.get("Instances", [])),
    )


def parse_attributes(a: Mapping[str, Any]) -> ClassicAttributes:
    """``LoadBalancerAttributes`` in the model's terms; a value AWS leaves out is its default."""
    defaults = ClassicAttributes()
    draining = a.get("ConnectionDraining", {})
    log = a.get("AccessLog", {})
    return normal(
        ClassicAttributes(
            cross_zone=bool(a.get("CrossZoneLoadBalancing", {}).get("Enabled", defaults.cross_zone)),
            connection_draining=bool(draining.get("Enabled", defaults.connection_draining)),
            connection_draining_timeout=int(draining.get("Timeout", defaults.connection_draining_timeout)),
            idle_timeout=int(a.get("ConnectionSettings", {}).get("IdleTimeout", defaults.idle_timeout)),
            access_log_enabled=bool(log.get("Enabled", False)),
            access_log_bucket=str(log.get("S3BucketName") or ""),
            access_log_prefix=str(log.get("S3BucketPrefix") or ""),
            access_log_interval=int(log.get("EmitInterval") or defaults.access_log_interval),
        )
    )


def normal(attributes: ClassicAttributes) -> ClassicAttributes:
    """What a comparison looks at: the access log's details and the draining timeout only while on."""
    defaults = ClassicAttributes()
    if not attributes.access_log_enabled:
        attributes = replace(
            attributes,
            access_log_bucket=defaults.access_log_bucket,
            access_log_prefix=defaults.access_log_prefix,
            access_log_interval=defaults.access_log_interval,
        )
    if not attributes.connection_draining:
        attributes = replace(attributes, connection_draining_timeout=defaults.connection_draining_timeout)
    return attributes


def default_health_check(listeners: Sequence[ClassicListener]) -> ClassicHealthCheck | None:
    if not listeners:
        return None
    return ClassicHealthCheck(
        target=f"TCP:{listeners[0].instance_port}",
        interval=DEFAULT_HC_INTERVAL,
        timeout=DEFAULT_HC_TIMEOUT,
        healthy_threshold=DEFAULT_HC_HEALTHY,
        unhealthy_threshold=DEFAULT_HC_UNHEALTHY,
    )


def after_create(*, stack: ClassicStack, security_groups: Sequence[str], dns_name: str) -> LiveClassic:
    """The state of the Classic ELB ``CreateLoadBalancer`` just made for ``stack``."""
    return LiveClassic(
        name=stack.name,
        dns_name=dns_name,
        scheme=stack.scheme,
        listeners={x.load_balancer_port: x for x in stack.listeners},
        listener_policies={x.load_balancer_port: () for x in stack.listeners},
        backend_policies={},
        policies=frozenset(),
        health_check=default_health_check(stack.listeners),
        subnets=frozenset(stack.subnets),
        security_groups=tuple(security_groups),
        instances=frozenset(),
        attributes=ClassicAttributes(),
    )


# -- requests ---------------------------------------------------------------------------------------------


def listener_param(x: ClassicListener) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Protocol": x.protocol,
        "LoadBalancerPort": x.load_balancer_port,
        "InstanceProtocol": x.instance_protocol,
        "InstancePort": x.instance_port,
    }
    if x.ssl_certificate_id:
        out["SSLCertificateId"] = x.ssl_certificate_id
    return out


def health_check_param(hc: ClassicHealthCheck) -> dict[str, Any]:
    return {
        "Target": hc.target,
        "Interval": hc.interval,
        "Timeout": hc.timeout,
        "HealthyThreshold": hc.healthy_threshold,
        "UnhealthyThreshold": hc.unhealthy_threshold,
    }


def attributes_param(a: ClassicAttributes) -> dict[str, Any]:
    log: dict[str, Any] = {"Enabled": a.access_log_enabled}
    if a.access_log_enabled:
        log.update(S3BucketName=a.access_log_bucket, EmitInterval=a.access_log_interval)
        if a.access_log_prefix:
            log["S3BucketPrefix"] = a.access_log_prefix
    return {
        "CrossZoneLoadBalancing": {"Enabled": a.cross_zone},
        "ConnectionDraining": {"Enabled": a.connection_draining, "Timeout": a.connection_draining_timeout},
        "ConnectionSettings": {"IdleTimeout": a.idle_timeout},
        "AccessLog": log,
    }


# -- differences ------------------------------------------------------------------------------------------


def listener_changes(
    *, want: Iterable[ClassicListener], have: Mapping[int, ClassicListener]
) -> tuple[list[int], list[ClassicListener]]:
    """(ports to delete: changed or gone, listeners to create: changed or new)."""
    wanted = {x.load_balancer_port: x for x in want}
    delete = sorted(p for p, x in have.items() if wanted.get(p) != x)
    create = [x for p, x in sorted(wanted.items()) if have.get(p) != x]
    return delete, create


def backend_policy_changes(*, stack: ClassicStack, live: LiveClassic) -> dict[int, tuple[str, ...]]:
    """Instance port → the policies it should have, for the ports whose policies differ: the
    ProxyProtocol policy on every instance port when asked (upstream's ``proxy-protocol: "*"``), none
    otherwise (only the ports that have ours are cleared)."""
    out: dict[int, tuple[str, ...]] = {}
    for port in sorted({x.instance_port for x in stack.listeners}):
        have = live.backend_policies.get(port, ())
        if stack.proxy_protocol:
            if have != (PROXY_PROTOCOL_POLICY,):
                out[port] = (PROXY_PROTOCOL_POLICY,)
        elif PROXY_PROTOCOL_POLICY in have:
            out[port] = tuple(p for p in have if p != PROXY_PROTOCOL_POLICY)
    return out


def listener_policy_changes(*, stack: ClassicStack, live: LiveClassic) -> dict[int, tuple[str, ...]]:
    """LoadBalancerPort → policies, for the SSL/HTTPS listeners that lack the stack's SSL negotiation
    policy. Without one, AWS's default policy of the listener is left as AWS set it (as upstream)."""
    if not stack.ssl_negotiation_policy:
        return {}
    name = ssl_policy_name(stack.ssl_negotiation_policy)
    return {
        x.load_balancer_port: (name,)
        for x in stack.listeners
        if x.protocol in SSL_PROTOCOLS and live.listener_policies.get(x.load_balancer_port, ()) != (name,)
    }


def policies_to_create(*, stack: ClassicStack, live: LiveClassic) -> list[dict[str, Any]]:
    """``CreateLoadBalancerPolicy`` requests (without the name of the ELB) the stack needs."""
    out: list[dict[str, Any]] = []
    if stack.proxy_protocol and PROXY_PROTOCOL_POLICY not in live.policies:
        out.append(
            {
                "PolicyName": PROXY_PROTOCOL_POLICY,
                "PolicyTypeName": "ProxyProtocolPolicyType",
                "PolicyAttributes": [{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
            }
        )
    ssl = ssl_policy_name(stack.ssl_negotiation_policy) if stack.ssl_negotiation_policy else ""
    if ssl and ssl not in live.policies and any(x.protocol in SSL_PROTOCOLS for x in stack.listeners):
        out.append(
            {
                "PolicyName": ssl,
                "PolicyTypeName": "SSLNegotiationPolicyType",
                "PolicyAttributes": [
                    {
                        "AttributeName": "Reference-Security-Policy",
                        "AttributeValue": stack.ssl_negotiation_policy,
                    }
                ],
            }
        )
    return out


def security_group_ids(*, frontend: str, stack: ClassicStack, backend: str) -> list[str]:
    """The Classic ELB's groups: its frontend group (or the Service's own), the extras, the backend."""
    ids = [
        *([frontend] if frontend else []),
        *stack.byo_security_groups,
        *stack.extra_security_groups,
        backend,
    ]
    return list(dict.fromkeys(i for i in ids if i))

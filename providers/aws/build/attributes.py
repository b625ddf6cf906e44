"""Load-balancer, target-group and listener attributes from the annotations, checked against the keys
and values AWS accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ccm.cloudprovider import InvalidSpec
from providers.aws import annotations as ann
from providers.aws.build.common import (
    BUCKET,
)
from providers.aws.build.ports import Port
from providers.aws.build.tls import describe_ports
from providers.aws.model import (
    Subnet,
)


def target_group_attributes(annotations: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    pairs = ann.parse_key_values(annotations=annotations, key=ann.TARGET_GROUP_ATTRIBUTES) or ()
    attributes: dict[str, str] = {}
    for key, value in pairs:
        if key not in ann.TARGET_GROUP_ATTRIBUTE_VALUES:
            raise ann.invalid(
                key=ann.TARGET_GROUP_ATTRIBUTES,
                value=annotations[ann.TARGET_GROUP_ATTRIBUTES],
                reason=f"unknown target-group attribute {key!r}",
            )
        rule = ann.TARGET_GROUP_ATTRIBUTE_VALUES[key]
        if key.endswith(".enabled") and value.lower() in ("true", "false"):
            value = value.lower()  # noqa: PLW2901 - True/TRUE are spelled as AWS wants them
        if not rule.accepts(value):
            raise ann.invalid(
                key=ann.TARGET_GROUP_ATTRIBUTES,
                value=annotations[ann.TARGET_GROUP_ATTRIBUTES],
                reason=f"{key}={value!r}: accepted values are {rule}",
            )
        attributes[key] = value
    proxy = ann.text(annotations=annotations, key=ann.PROXY_PROTOCOL)
    if proxy is not None:
        if proxy != "*":
            raise ann.invalid(
                key=ann.PROXY_PROTOCOL,
                value=annotations[ann.PROXY_PROTOCOL],
                reason="only '*' (every port) is supported",
            )
        if attributes.get("proxy_protocol_v2.enabled", "true") != "true":
            raise ann.invalid(
                key=ann.PROXY_PROTOCOL,
                value=annotations[ann.PROXY_PROTOCOL],
                reason=f"conflicts with proxy_protocol_v2.enabled=false in {ann.TARGET_GROUP_ATTRIBUTES}",
                accepted="* without proxy_protocol_v2.enabled=false in target-group-attributes",
            )
        attributes["proxy_protocol_v2.enabled"] = "true"
    return tuple(sorted(attributes.items()))


_UNHEALTHY_TERMINATION: Final = "target_health_state.unhealthy.connection_termination.enabled"
_UNHEALTHY_DRAINING: Final = "target_health_state.unhealthy.draining_interval_seconds"


def attributes_for(
    annotations: Mapping[str, str], attributes: tuple[tuple[str, str], ...], *, protocol: str
) -> tuple[tuple[str, str], ...]:
    """The target-group attributes, checked against what AWS accepts for ``protocol``.

    botocore's elbv2 service-2.json (``TargetGroupAttribute.Key``): client IP preservation "can't be
    disabled for UDP and TCP_UDP target groups"; unhealthy connection termination "can't be enabled
    for UDP and TCP_UDP target groups"; the unhealthy draining interval "can only be configured when
    target_health_state.unhealthy.connection_termination.enabled is false". The NLB guide ("Sticky
    sessions"): stickiness is not supported with TLS target groups.
    """
    want = dict(attributes)
    udp = protocol in ("UDP", "TCP_UDP")
    problem = ""
    if udp and want.get("preserve_client_ip.enabled") == "false":
        problem = (
            f"preserve_client_ip.enabled=false: AWS cannot turn client IP preservation off on {protocol}"
        )
    elif udp and want.get(_UNHEALTHY_TERMINATION) == "true":
        problem = f"{_UNHEALTHY_TERMINATION}=true: AWS cannot terminate unhealthy connections on {protocol}"
    elif protocol == "TLS" and want.get("stickiness.enabled") == "true":
        problem = "stickiness.enabled=true: AWS has no stickiness on TLS target groups (backend-protocol ssl)"
    elif (
        want.get(_UNHEALTHY_DRAINING, "0") != "0" and want.get(_UNHEALTHY_TERMINATION) != "false" and not udp
    ):
        problem = (
            f"{_UNHEALTHY_DRAINING} needs unhealthy connection termination off: add "
            f"{_UNHEALTHY_TERMINATION}=false"
        )
    if problem:
        raise ann.invalid(
            key=ann.TARGET_GROUP_ATTRIBUTES,
            value=annotations[ann.TARGET_GROUP_ATTRIBUTES],
            reason=f"{problem} (port protocol {protocol})",
        )
    return attributes


def load_balancer_attributes(annotations: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Only the attributes the user set: the default Service needs no attribute call.

    From ALBC's aws-load-balancer-attributes and from upstream's single-purpose annotations
    (cross-zone-load-balancing-enabled, access-log-*); where both name one attribute they must agree.
    """
    attributes: dict[str, str] = {}
    origin: dict[str, str] = {}
    raw = annotations.get(ann.ATTRIBUTES, "")
    for key, value in ann.parse_key_values(annotations=annotations, key=ann.ATTRIBUTES) or ():
        rule = ann.LOAD_BALANCER_ATTRIBUTE_VALUES.get(key)
        if rule is None:
            raise ann.invalid(key=ann.ATTRIBUTES, value=raw, reason=f"unknown NLB attribute {key!r}")
        if key.endswith(".enabled") and value.lower() in ("true", "false"):
            value = value.lower()  # noqa: PLW2901 - True/TRUE are spelled as AWS wants them
        if key not in ann.FREE_TEXT_LB_ATTRIBUTES and not rule.accepts(value):
            raise ann.invalid(
                key=ann.ATTRIBUTES, value=raw, reason=f"{key}={value!r}: accepted values are {rule}"
            )
        attributes[key], origin[key] = value, ann.ATTRIBUTES

    def put(key: str, value: str, source: str) -> None:
        if key in attributes and attributes[key] != value:
            raise ann.invalid(
                key=source,
                value=annotations[source],
                reason=f"contradicts {key}={attributes[key]} in {origin[key]}",
                accepted=f"a value that agrees with {origin[key]}, or only one of the two annotations",
            )
        attributes[key], origin[key] = value, source

    cross_zone = ann.parse_bool(annotations=annotations, key=ann.CROSS_ZONE)
    if cross_zone is not None:
        put("load_balancing.cross_zone.enabled", str(cross_zone).lower(), ann.CROSS_ZONE)
    enabled = ann.parse_bool(annotations=annotations, key=ann.ACCESS_LOG_ENABLED)
    if enabled is not None:
        put("access_logs.s3.enabled", str(enabled).lower(), ann.ACCESS_LOG_ENABLED)
    bucket = ann.text(annotations=annotations, key=ann.ACCESS_LOG_BUCKET)
    if bucket is not None:
        put("access_logs.s3.bucket", bucket, ann.ACCESS_LOG_BUCKET)
    prefix = ann.text(annotations=annotations, key=ann.ACCESS_LOG_PREFIX)
    if prefix is not None:
        put("access_logs.s3.prefix", prefix, ann.ACCESS_LOG_PREFIX)
    bucket = attributes.get("access_logs.s3.bucket")
    if attributes.get("access_logs.s3.enabled") == "true" and not bucket:
        source = origin["access_logs.s3.enabled"]
        raise ann.invalid(
            key=source,
            value=annotations[source],
            reason=f"access logs need a bucket: set {ann.ACCESS_LOG_BUCKET} or access_logs.s3.bucket",
            accepted="false, or true together with a bucket",
        )
    if bucket is not None and (not BUCKET.fullmatch(bucket) or ".." in bucket):
        source = origin["access_logs.s3.bucket"]
        raise ann.invalid(
            key=source,
            value=annotations[source],
            reason=f"{bucket!r} is not a valid S3 bucket name",
            accepted="3 to 63 lower-case letters, digits, dots and hyphens",
        )
    return tuple(sorted(attributes.items()))


def asks_deletion_protection(annotations: Mapping[str, str]) -> bool:
    """Whether the Service asks for deletion protection; an unreadable attributes annotation counts as yes
    (when in doubt, the load balancer is kept)."""
    try:
        return dict(load_balancer_attributes(annotations)).get("deletion_protection.enabled") == "true"
    except InvalidSpec:
        return "deletion_protection" in annotations.get(ann.ATTRIBUTES, "")


def tcp_idle_timeout(annotations: Mapping[str, str]) -> int | None:
    low, high = ann.TCP_IDLE_TIMEOUT_RANGE
    return ann.parse_int(annotations=annotations, key=ann.CONNECTION_IDLE_TIMEOUT, low=low, high=high)


def check_dualstack(ports: Sequence[Port], subnets: Sequence[Subnet]) -> None:
    """What AWS refuses for a dual-stack NLB, refused before anything is made.

    ELBv2 API reference (CreateLoadBalancer, ``EnablePrefixForIpv6SourceNat``; CreateListener): a
    dual-stack NLB takes UDP and TCP_UDP listeners only with IPv6 source NAT prefixes, which this
    provider does not manage; every subnet of a dual-stack NLB needs an IPv6 CIDR block.
    """
    udp = [p for p in ports if p.protocol in ("UDP", "TCP_UDP")]
    if udp:
        raise InvalidSpec(
            field="spec.ipFamilies",
            value="IPv4,IPv6",
            reason=(
                f"a dual-stack NLB cannot carry UDP ports ({describe_ports(udp)}) without IPv6 source-NAT "
                "prefixes, which this provider does not manage"
            ),
            accepted="a single IP family, or only TCP ports",
        )
    without = [s.subnet_id for s in subnets if not s.ipv6_cidr_blocks]
    if without:
        raise InvalidSpec(
            field="spec.ipFamilies",
            value="IPv4,IPv6",
            reason=f"a dual-stack NLB needs an IPv6 CIDR in every subnet; {', '.join(without)} has none",
            accepted=f"IPv4 only, or subnets with IPv6 CIDRs (choose them with {ann.SUBNETS})",
        )

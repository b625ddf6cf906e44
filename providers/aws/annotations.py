"""Every Service annotation the AWS provider reads, in one declarative registry.

Why a registry: the upstream provider scatters its annotations over several thousand lines, so
nobody can say which ones it honours, what they accept or what happens when they are absent. Here
each annotation is declared once (key, meaning, accepted values, default, whether it is honoured),
the reference table in docs/aws-annotations.md is rendered from the same data
(:func:`reference_markdown`), and the parsing helpers take their error text from it. A malformed value raises
:class:`~ccm.cloudprovider.InvalidSpec` naming the annotation key, the raw value and what would be
accepted, so the user sees the fix in the Warning event instead of a retry loop.

The keys and meanings are upstream's (``service.beta.kubernetes.io/aws-load-balancer-*``), so a
Service written for the in-tree AWS provider works unchanged; where we differ (NLB by default, the
health-check timeout is really sent, stricter validation) the description says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ccm.cloudprovider import SOURCE_RANGES_ANNOTATION, InvalidSpec
from providers.annotation_registry import HONOURED, IGNORED, REJECTED, Registry, Support, text
from providers.annotation_registry import Annotation as _Annotation

__all__ = ["HONOURED", "IGNORED", "REJECTED", "Support", "text"]  # re-exported for the builder and tests

PREFIX: Final = "service.beta.kubernetes.io/aws-load-balancer-"

# -- keys ---------------------------------------------------------------------------------------------

TYPE: Final = PREFIX + "type"
INTERNAL: Final = PREFIX + "internal"
SCHEME: Final = PREFIX + "scheme"
ATTRIBUTES: Final = PREFIX + "attributes"
HEALTHCHECK_SUCCESS_CODES: Final = PREFIX + "healthcheck-success-codes"
SUBNETS: Final = PREFIX + "subnets"
EIP_ALLOCATIONS: Final = PREFIX + "eip-allocations"
PRIVATE_IPV4_ADDRESSES: Final = PREFIX + "private-ipv4-addresses"
SECURITY_GROUPS: Final = PREFIX + "security-groups"
EXTRA_SECURITY_GROUPS: Final = PREFIX + "extra-security-groups"
SOURCE_RANGES: Final = SOURCE_RANGES_ANNOTATION
SSL_CERT: Final = PREFIX + "ssl-cert"
SSL_PORTS: Final = PREFIX + "ssl-ports"
SSL_NEGOTIATION_POLICY: Final = PREFIX + "ssl-negotiation-policy"
BACKEND_PROTOCOL: Final = PREFIX + "backend-protocol"
ADDITIONAL_RESOURCE_TAGS: Final = PREFIX + "additional-resource-tags"
CROSS_ZONE: Final = PREFIX + "cross-zone-load-balancing-enabled"
ACCESS_LOG_ENABLED: Final = PREFIX + "access-log-enabled"
ACCESS_LOG_BUCKET: Final = PREFIX + "access-log-s3-bucket-name"
ACCESS_LOG_PREFIX: Final = PREFIX + "access-log-s3-bucket-prefix"
TARGET_GROUP_ATTRIBUTES: Final = PREFIX + "target-group-attributes"
PROXY_PROTOCOL: Final = PREFIX + "proxy-protocol"
HEALTHCHECK_PROTOCOL: Final = PREFIX + "healthcheck-protocol"
HEALTHCHECK_PORT: Final = PREFIX + "healthcheck-port"
HEALTHCHECK_PATH: Final = PREFIX + "healthcheck-path"
HEALTHCHECK_HEALTHY_THRESHOLD: Final = PREFIX + "healthcheck-healthy-threshold"
HEALTHCHECK_UNHEALTHY_THRESHOLD: Final = PREFIX + "healthcheck-unhealthy-threshold"
HEALTHCHECK_INTERVAL: Final = PREFIX + "healthcheck-interval"
HEALTHCHECK_TIMEOUT: Final = PREFIX + "healthcheck-timeout"
TARGET_NODE_LABELS: Final = PREFIX + "target-node-labels"
CONNECTION_DRAINING_ENABLED: Final = PREFIX + "connection-draining-enabled"
CONNECTION_DRAINING_TIMEOUT: Final = PREFIX + "connection-draining-timeout"
CONNECTION_IDLE_TIMEOUT: Final = PREFIX + "connection-idle-timeout"
ACCESS_LOG_EMIT_INTERVAL: Final = PREFIX + "access-log-emit-interval"

# -- value sets shared by the registry and the builder ------------------------------------------------

HEALTHCHECK_PROTOCOLS: Final = ("TCP", "HTTP", "HTTPS")
SCHEMES: Final = ("internal", "internet-facing")
TCP_IDLE_TIMEOUT_RANGE: Final = (60, 6000)  # botocore elbv2 ListenerAttribute: tcp.idle_timeout.seconds
HEALTHY_THRESHOLD_RANGE: Final = (2, 10)
INTERVAL_RANGE: Final = (5, 300)
TIMEOUT_RANGE: Final = (2, 120)
BACKEND_PROTOCOLS: Final = ("tcp", "ssl", "http", "https")
LOAD_BALANCER_TYPES: Final = ("nlb", "classic", "clb", "elb", "external", "nlb-ip")

# Classic ELBs (botocore elb/2012-06-01/service-2.json: HealthCheckInterval 5-300, HealthCheckTimeout
# 2-60, HealthyThreshold and UnhealthyThreshold 2-10; the Classic ELB guide: idle timeout 1 to 4,000 s,
# draining timeout 1 to 3,600 s, access logs every 5 or 60 minutes)
CLASSIC_HEALTHCHECK_PROTOCOLS: Final = ("TCP", "SSL", "HTTP", "HTTPS")
CLASSIC_TIMEOUT_RANGE: Final = (2, 60)
CLASSIC_IDLE_TIMEOUT_RANGE: Final = (1, 4000)
DRAINING_TIMEOUT_RANGE: Final = (1, 3600)
ACCESS_LOG_EMIT_INTERVALS: Final = ("5", "60")

_BOOL_VALUES: Final = "true or false"
_TRUE: Final = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go's strconv.ParseBool, as upstream
_FALSE: Final = frozenset({"0", "f", "F", "false", "FALSE", "False"})


@dataclass(frozen=True)
class ValueRule:
    """What one ``key=value`` attribute accepts: a set of words, or an integer range."""

    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = -1

    def accepts(self, value: str) -> bool:
        if self.choices:
            return value in self.choices
        return value.isdigit() and self.low <= int(value) <= self.high

    def __str__(self) -> str:
        if self.choices:
            return " or ".join(self.choices)
        return f"{self.low}-{self.high}"


_BOOL_RULE: Final = ValueRule(choices=("true", "false"))

# NLB target-group attributes the annotation may set, with the values each accepts.
TARGET_GROUP_ATTRIBUTE_VALUES: Final[Mapping[str, ValueRule]] = MappingProxyType(
    {
        "deregistration_delay.timeout_seconds": ValueRule(low=0, high=3600),
        "deregistration_delay.connection_termination.enabled": _BOOL_RULE,
        "load_balancing.cross_zone.enabled": ValueRule(
            choices=("true", "false", "use_load_balancer_configuration")
        ),
        "preserve_client_ip.enabled": _BOOL_RULE,
        "proxy_protocol_v2.enabled": _BOOL_RULE,
        "stickiness.enabled": _BOOL_RULE,
        "stickiness.type": ValueRule(choices=("source_ip",)),
        "target_health_state.unhealthy.connection_termination.enabled": _BOOL_RULE,
        "target_health_state.unhealthy.draining_interval_seconds": ValueRule(low=0, high=360000),
    }
)


# NLB load-balancer attributes aws-load-balancer-attributes may set (botocore's elbv2 service-2.json,
# LoadBalancerAttribute.Key, the keys that apply to Network Load Balancers), with the values each accepts.
LOAD_BALANCER_ATTRIBUTE_VALUES: Final[Mapping[str, ValueRule]] = MappingProxyType(
    {
        "deletion_protection.enabled": _BOOL_RULE,
        "load_balancing.cross_zone.enabled": _BOOL_RULE,
        "access_logs.s3.enabled": _BOOL_RULE,
        "access_logs.s3.bucket": ValueRule(choices=()),  # checked as an S3 bucket name by the builder
        "access_logs.s3.prefix": ValueRule(choices=()),  # any S3 key prefix
        "dns_record.client_routing_policy": ValueRule(
            choices=(
                "availability_zone_affinity",
                "partial_availability_zone_affinity",
                "any_availability_zone",
            )
        ),
        "zonal_shift.config.enabled": _BOOL_RULE,
        "ipv6.deny_all_igw_traffic": _BOOL_RULE,
    }
)
FREE_TEXT_LB_ATTRIBUTES: Final = frozenset({"access_logs.s3.bucket", "access_logs.s3.prefix"})


class Annotation(_Annotation):
    """An AWS annotation (the shared entry type, with its short name)."""

    @property
    def short_name(self) -> str:
        """The key without the common ``aws-load-balancer-`` prefix (for tables and messages)."""
        return self.key.removeprefix(PREFIX)


def _range(bounds: tuple[int, int], unit: str = "") -> str:
    return f"an integer from {bounds[0]} to {bounds[1]}{unit}"


REGISTRY: Final[tuple[Annotation, ...]] = (
    Annotation(
        key=TYPE,
        description=(
            "Which load balancer to build: `nlb`, or a Classic ELB for `classic`, `clb` or `elb` (any case). "
            "`external` and `nlb-ip` are left to the AWS Load Balancer Controller (this controller skips "
            "the Service). Unlike upstream, an unset type gives an NLB unless the cloud config's "
            "`DefaultLoadBalancerType` is `classic`; a Service without it that already has a load balancer "
            "keeps its kind (the status hostname tells: upstream's rule, `.elb.amazonaws.com` is a Classic "
            "ELB). The type of a load balancer cannot change in place. Annotations marked *NLB only* on a "
            "Classic ELB, and *Classic ELB only* on an NLB, are named in an `UnsupportedAnnotation` "
            "warning."
        ),
        accepted="nlb, classic (or clb, elb), external or nlb-ip",
        default="[Global] DefaultLoadBalancerType (nlb)",
    ),
    Annotation(
        key=INTERNAL,
        description=(
            'Any non-empty value except `"false"` gives an internal NLB (scheme `internal`), as upstream.'
        ),
        accepted='any value; "false" or empty for internet-facing',
        default="internet-facing",
    ),
    Annotation(
        key=SCHEME,
        description=(
            "The NLB's scheme, as the AWS Load Balancer Controller reads it. A value that contradicts "
            "`aws-load-balancer-internal` is an error. Changing it replaces the NLB (a new DNS name): "
            "the new one is made before the old one is deleted."
        ),
        accepted=" or ".join(SCHEMES),
        default="internet-facing (or internal when aws-load-balancer-internal says so)",
    ),
    Annotation(
        key=SUBNETS,
        description=(
            "Subnets of the cluster's VPC, by ID (`subnet-...`) or by `Name` tag, at most one per "
            "availability zone. Without it, one subnet per availability zone is discovered: the role tag "
            "(`kubernetes.io/role/elb`, or `kubernetes.io/role/internal-elb` for internal NLBs) wins, "
            "then the cluster tag, then the lowest subnet ID; subnets tagged for another cluster only "
            "and non-AZ (local/wavelength zone) subnets are never chosen."
        ),
        accepted=(
            "comma-separated subnet IDs or Name tags of subnets in the cluster's VPC, "
            "at most one per availability zone"
        ),
        default="auto-discovered",
    ),
    Annotation(
        key=EIP_ALLOCATIONS,
        description=(
            "NLB only. Elastic IP allocations for an internet-facing NLB, one per subnet; the n-th "
            "allocation goes to the n-th subnet (annotation order, or discovered subnets sorted by "
            "availability zone)."
        ),
        accepted="comma-separated eipalloc-... IDs, as many as subnets",
        default="AWS-assigned addresses",
    ),
    Annotation(
        key=PRIVATE_IPV4_ADDRESSES,
        description=(
            "NLB only. Static private IPv4 addresses for an internal NLB, one per subnet; each address "
            "goes to the subnet whose CIDR contains it."
        ),
        accepted="comma-separated IPv4 addresses, one inside each subnet's CIDR",
        default="AWS-assigned addresses",
    ),
    Annotation(
        key=SECURITY_GROUPS,
        description=(
            "Bring-your-own security groups attached to the load balancer (NLB or Classic ELB) instead "
            "of the managed frontend group. They are never modified or deleted."
        ),
        accepted="comma-separated sg-... IDs",
        default="a managed frontend security group",
    ),
    Annotation(
        key=EXTRA_SECURITY_GROUPS,
        description=(
            "Classic ELB only: security groups attached besides the managed frontend group (or the "
            "security-groups ones), never modified or deleted. Refused on an NLB (use security-groups)."
        ),
        accepted="comma-separated sg-... IDs",
        default="none",
    ),
    Annotation(
        key=SOURCE_RANGES,
        description=(
            "Client CIDRs allowed in by the frontend security group (IPv4 and IPv6), when "
            "`spec.loadBalancerSourceRanges` is empty."
        ),
        accepted="comma-separated CIDRs",
        default="0.0.0.0/0 (and ::/0 for IPv6 Services)",
    ),
    Annotation(
        key=SSL_CERT,
        description=(
            "ACM or IAM certificate ARN; the ports chosen by ssl-ports get TLS listeners on an NLB (TCP "
            "only), SSL or HTTPS listeners on a Classic ELB (see backend-protocol)."
        ),
        accepted=(
            "arn:aws:acm:<region>:<account>:certificate/<id> or "
            "arn:aws:iam::<account>:server-certificate/<name>"
        ),
        default="no TLS",
    ),
    Annotation(
        key=SSL_PORTS,
        description=(
            "Service ports (numbers or names) that get TLS listeners when ssl-cert is set. `*` means every "
            "TCP port; a UDP port named here is an error."
        ),
        accepted="*, or comma-separated port numbers or names of the Service's TCP ports",
        default="*",
    ),
    Annotation(
        key=SSL_NEGOTIATION_POLICY,
        description=(
            "The TLS listeners' security policy (`SslPolicy`); on a Classic ELB, the predefined policy "
            "of its SSL and HTTPS listeners."
        ),
        accepted="an ELB security policy name, e.g. ELBSecurityPolicy-TLS13-1-2-2021-06",
        default="AWS default",
    ),
    Annotation(
        key=BACKEND_PROTOCOL,
        description=(
            "`ssl` with ssl-cert makes the target groups of TLS listeners speak TLS to the nodes. "
            "On an NLB `http`/`https` mean `tcp`, as upstream. On a Classic ELB, as upstream: the ports "
            "with the certificate get HTTPS→HTTPS (`https`), HTTPS→HTTP (`http`), SSL→SSL (`ssl`) or "
            "SSL→TCP (`tcp`, the default) listeners, the other ports HTTP→HTTP with `http` and TCP→TCP "
            "otherwise; `https` and `ssl` make the default health check SSL."
        ),
        accepted=", ".join(BACKEND_PROTOCOLS),
        default="tcp",
    ),
    Annotation(
        key=ADDITIONAL_RESOURCE_TAGS,
        description=(
            "Extra tags on the NLB, listeners, target groups and security group (kept current: removed "
            "tags are removed). Keys may not start with `aws:`, `kubernetes.io/cluster/` or `ccm-lb/`."
        ),
        accepted="k=v,k2=,k3 (keys ≤ 128 characters, values ≤ 256; letters, digits, spaces and _.:/=+-@)",
        default="none",
    ),
    Annotation(
        key=CROSS_ZONE,
        description=(
            "NLB attribute `load_balancing.cross_zone.enabled`, set only when the annotation is present; "
            "Classic ELB attribute `CrossZoneLoadBalancing`."
        ),
        accepted=_BOOL_VALUES,
        default="AWS default (false)",
    ),
    Annotation(
        key=ACCESS_LOG_ENABLED,
        description=(
            "NLB attribute `access_logs.s3.enabled`, Classic ELB `AccessLog.Enabled`; true needs "
            "access-log-s3-bucket-name."
        ),
        accepted=_BOOL_VALUES,
        default="AWS default (false)",
    ),
    Annotation(
        key=ACCESS_LOG_BUCKET,
        description="NLB attribute `access_logs.s3.bucket`, Classic ELB `AccessLog.S3BucketName`.",
        accepted="an S3 bucket name",
        default="none",
    ),
    Annotation(
        key=ACCESS_LOG_PREFIX,
        description="NLB attribute `access_logs.s3.prefix`, Classic ELB `AccessLog.S3BucketPrefix`.",
        accepted="an S3 key prefix",
        default="none",
    ),
    Annotation(
        key=ATTRIBUTES,
        description=(
            "NLB only. NLB attributes, as the AWS Load Balancer Controller reads them. Removing one "
            "restores AWS's default. A key also set by cross-zone-load-balancing-enabled or access-log-* "
            "must agree with it. With `deletion_protection.enabled=true` the NLB is not deleted with the "
            "Service (the delete fails, saying so) until the key is removed or set to false."
        ),
        accepted="k=v,... with keys "
        + ", ".join(
            f"{k} ({'text' if k in FREE_TEXT_LB_ATTRIBUTES else v})"
            for k, v in LOAD_BALANCER_ATTRIBUTE_VALUES.items()
        ),
        default="AWS defaults",
    ),
    Annotation(
        key=TARGET_GROUP_ATTRIBUTES,
        description="NLB only. Attributes set on every target group. Removing one restores AWS's default.",
        accepted="k=v,... with keys "
        + ", ".join(f"{k} ({v})" for k, v in TARGET_GROUP_ATTRIBUTE_VALUES.items()),
        default="AWS defaults",
    ),
    Annotation(
        key=PROXY_PROTOCOL,
        description=(
            "`*`: on a Classic ELB, upstream's ProxyProtocol policy `k8s-proxyprotocol-enabled` on every "
            "instance port; on an NLB, `proxy_protocol_v2.enabled=true` on every target group."
        ),
        accepted="*",
        default="off",
    ),
    Annotation(
        key=HEALTHCHECK_PROTOCOL,
        description="Health-check protocol (SSL on Classic ELBs only).",
        accepted=", ".join(HEALTHCHECK_PROTOCOLS) + " (Classic ELB: also SSL)",
        default=(
            "TCP (externalTrafficPolicy Cluster; Classic ELB: SSL with backend-protocol https or ssl); "
            "HTTP (Local, or the Shared probe mode)"
        ),
    ),
    Annotation(
        key=HEALTHCHECK_PORT,
        description="Health-check port.",
        accepted="traffic-port or a port from 1 to 65535",
        default=(
            "traffic-port (Cluster; Classic ELB: the first port's NodePort); spec.healthCheckNodePort "
            "(Local); the shared probe port (Shared)"
        ),
    ),
    Annotation(
        key=HEALTHCHECK_PATH,
        description="Health-check path, HTTP and HTTPS checks only.",
        accepted="a path starting with /",
        default="/ (Cluster); /healthz (Local); the shared probe path (Shared)",
    ),
    Annotation(
        key=HEALTHCHECK_HEALTHY_THRESHOLD,
        description="Consecutive successes before a target is healthy.",
        accepted=_range(HEALTHY_THRESHOLD_RANGE),
        default="3 (Cluster); 2 (Local, Shared); Classic ELB: 2",
    ),
    Annotation(
        key=HEALTHCHECK_UNHEALTHY_THRESHOLD,
        description="Consecutive failures before a target is unhealthy.",
        accepted=_range(HEALTHY_THRESHOLD_RANGE),
        default="3 (Cluster); 2 (Local, Shared); Classic ELB: 6",
    ),
    Annotation(
        key=HEALTHCHECK_INTERVAL,
        description="Seconds between health checks.",
        accepted=_range(INTERVAL_RANGE, " (seconds)"),
        default="10",
    ),
    Annotation(
        key=HEALTHCHECK_TIMEOUT,
        description="Health-check timeout. Unlike upstream (cloud-provider-aws#822) it is sent to AWS.",
        accepted=(
            _range(TIMEOUT_RANGE, " (seconds)")
            + f"; Classic ELB: {CLASSIC_TIMEOUT_RANGE[0]} to {CLASSIC_TIMEOUT_RANGE[1]}, "
            "less than the interval"
        ),
        default="10 for TCP checks, 6 for HTTP(S) checks; Classic ELB: 5",
    ),
    Annotation(
        key=HEALTHCHECK_SUCCESS_CODES,
        description=(
            "NLB only. HTTP codes a healthy target answers (the target group's matcher), HTTP and HTTPS "
            "checks only; "
            "with a TCP check it is an error."
        ),
        accepted="a code from 200 to 599, a range 200-399, or a comma-separated list of codes",
        default="200-399",
    ),
    Annotation(
        key=TARGET_NODE_LABELS,
        description="Only nodes with all these labels become targets (`k` or `k=` matches any value).",
        accepted="k=v,k2=v2,k3",
        default="every node",
    ),
    Annotation(
        key=CONNECTION_DRAINING_ENABLED,
        description=(
            "Classic ELB only: attribute `ConnectionDraining.Enabled`. Not applied on an NLB (use "
            "target-group-attributes deregistration_delay.timeout_seconds)."
        ),
        accepted=_BOOL_VALUES,
        default="false",
    ),
    Annotation(
        key=CONNECTION_DRAINING_TIMEOUT,
        description=(
            "Classic ELB only: attribute `ConnectionDraining.Timeout`. Not applied on an NLB (use "
            "target-group-attributes deregistration_delay.timeout_seconds)."
        ),
        accepted=_range(DRAINING_TIMEOUT_RANGE, " (seconds)"),
        default="300",
    ),
    Annotation(
        key=CONNECTION_IDLE_TIMEOUT,
        description=(
            "Upstream's Classic ELB idle timeout (attribute `ConnectionSettings.IdleTimeout`); on an NLB "
            "applied to its TCP listeners as the listener "
            "attribute `tcp.idle_timeout.seconds` (configurable on NLBs since September 2024). AWS fixes "
            "the idle timeout of TLS (350 s) and UDP (120 s) listeners; a Service with no TCP listener "
            "is refused."
        ),
        accepted=(
            _range(TCP_IDLE_TIMEOUT_RANGE, " (seconds)")
            + f"; Classic ELB: {CLASSIC_IDLE_TIMEOUT_RANGE[0]} to {CLASSIC_IDLE_TIMEOUT_RANGE[1]}"
        ),
        default="350 (AWS default); Classic ELB: 60",
    ),
    Annotation(
        key=ACCESS_LOG_EMIT_INTERVAL,
        description=(
            "Classic ELB only: attribute `AccessLog.EmitInterval`, in minutes. Not applied on an NLB (NLBs "
            "deliver logs every 5 minutes)."
        ),
        accepted=" or ".join(ACCESS_LOG_EMIT_INTERVALS),
        default="60",
    ),
)

_TABLE: Final = Registry(REGISTRY)

# What only one kind of load balancer can do: the other kind's builder refuses these keys, naming the
# kind that can (upstream refuses extra-security-groups on NLBs and target-group-attributes on Classic
# ELBs, aws_validations.go ``validateServiceAnnotations``, and ignores the others).
CLASSIC_ONLY: Final = (
    EXTRA_SECURITY_GROUPS,
    CONNECTION_DRAINING_ENABLED,
    CONNECTION_DRAINING_TIMEOUT,
    ACCESS_LOG_EMIT_INTERVAL,
)
NLB_ONLY: Final = (
    EIP_ALLOCATIONS,
    PRIVATE_IPV4_ADDRESSES,
    TARGET_GROUP_ATTRIBUTES,
    ATTRIBUTES,
    HEALTHCHECK_SUCCESS_CODES,
)
BY_KEY: Final[Mapping[str, _Annotation]] = _TABLE.by_key


def lookup(*, key: str) -> _Annotation:
    """The registry entry of ``key`` (KeyError for an annotation the provider does not know)."""
    return BY_KEY[key]


def unsupported(*, annotations: Mapping[str, str], classic: bool = False) -> tuple[str, ...]:
    """Keys with our prefix that the provider does not implement: unknown to the registry (typos,
    settings only the AWS Load Balancer Controller builds) or declared ignored; and those only the
    other kind of load balancer has (:data:`NLB_ONLY` on a Classic ELB, :data:`CLASSIC_ONLY` on an
    NLB), which upstream ignores on the other kind, so a Service that carries them keeps working.

    The builder does not act on them; the controller names them in an ``UnsupportedAnnotation`` event.
    """
    other_kind = NLB_ONLY if classic else CLASSIC_ONLY
    return tuple(
        sorted(
            {
                *_TABLE.unsupported(annotations=annotations, prefixes=(PREFIX,)),
                *(key for key in other_kind if key in annotations),
            }
        )
    )


# -- the docs table -----------------------------------------------------------------------------------


def reference_markdown() -> str:
    """The annotation reference as a Markdown table, rendered from :data:`REGISTRY`."""
    return _TABLE.markdown()


# -- parsing helpers ----------------------------------------------------------------------------------


def invalid(*, key: str, value: object, reason: str, accepted: str | None = None) -> InvalidSpec:
    """An :class:`InvalidSpec` for annotation ``key``; ``accepted`` defaults to the registry's text."""
    return _TABLE.invalid(key=key, value=value, reason=reason, accepted=accepted)


def parse_bool(*, annotations: Mapping[str, str], key: str) -> bool | None:
    """``true``/``false`` (and Go's ``strconv.ParseBool`` spellings, as upstream); None when unset."""
    value = text(annotations=annotations, key=key)
    if value is None:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise invalid(key=key, value=annotations[key], reason="not a boolean")


def parse_int(
    *, annotations: Mapping[str, str], key: str, low: int, high: int, accepted: str | None = None
) -> int | None:
    """A decimal integer within ``[low, high]``; None when unset."""
    value = text(annotations=annotations, key=key)
    if value is None:
        return None
    accepted = accepted or f"an integer from {low} to {high}"
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise invalid(key=key, value=annotations[key], reason="not an integer", accepted=accepted)
    number = int(value)
    if not low <= number <= high:
        raise invalid(key=key, value=annotations[key], reason="out of range", accepted=accepted)
    return number


def parse_list(*, annotations: Mapping[str, str], key: str) -> tuple[str, ...] | None:
    """A comma-separated list, items stripped, empty items dropped; None when unset."""
    value = text(annotations=annotations, key=key)
    if value is None:
        return None
    return tuple(item.strip() for item in value.split(",") if item.strip())


def parse_key_values(*, annotations: Mapping[str, str], key: str) -> tuple[tuple[str, str], ...] | None:
    """``k=v,k2=,k3`` as pairs (``k3`` gives an empty value); None when unset.

    An empty key or a key given twice is an error; the caller validates keys and values further.
    """
    items = parse_list(annotations=annotations, key=key)
    if items is None:
        return None
    pairs: dict[str, str] = {}
    for item in items:
        name, _, val = item.partition("=")
        name, val = name.strip(), val.strip()
        if not name:
            raise invalid(key=key, value=annotations[key], reason=f"{item!r} has an empty key")
        if name in pairs:
            raise invalid(key=key, value=annotations[key], reason=f"{name!r} is given twice")
        pairs[name] = val
    return tuple(pairs.items())

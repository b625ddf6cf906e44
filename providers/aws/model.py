"""The desired state of one Service's AWS resources, as plain frozen data.

The builder (:mod:`providers.aws.builder`, in :mod:`providers.aws.build`) makes a :class:`Stack` from a
request without any AWS call; the deployer (:mod:`providers.aws.deploy`) compares it with what AWS
has (found by tags) and creates, updates or deletes. Each part carries a ``resource_id`` that is also
written as a tag, so desired and actual parts are matched by identity, never by name alone.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from providers.common.spec_hash import digest

# -- tags -------------------------------------------------------------------------------------------

SERVICE_NAME_TAG = "kubernetes.io/service-name"
SERVICE_UID_TAG = "ccm-lb/service-uid"
RESOURCE_TAG = "ccm-lb/resource"
SPEC_HASH_TAG = "ccm-lb/spec-hash"
# The controller instance's scope (its --load-balancer-class). Absent on the default instance's
# resources, so those made before scopes existed stay the default instance's after an upgrade.
SCOPE_TAG = "ccm-lb/scope"
OWNED = "owned"
# On a part taken over from the upstream provider (cloud-provider-aws): the load balancer says where it
# came from; a target group says which of the stack's target-group names it stands for (it keeps
# upstream's name, so the listener that uses it never changes)
ADOPTED_FROM_TAG = "ccm-lb/adopted-from"
ADOPTED_FROM = "cloud-provider-aws"
ADOPTED_AS_TAG = "ccm-lb/adopted-as"

RESOURCE_LOAD_BALANCER = "load-balancer"
RESOURCE_FRONTEND_SG = "frontend-security-group"
RESOURCE_BACKEND_SG = "backend-security-group"  # one per cluster, shared by all its load balancers
TARGET_GROUP_PREFIX = "target-group:"  # + "<port>/<protocol>"

Tags = tuple[tuple[str, str], ...]


@functools.lru_cache(maxsize=8)
def cluster_tag(cluster_name: str) -> str:
    """The ownership tag key; its value is ``owned`` on everything this cluster created (one string
    per cluster, not one per tag of every stack a drift check builds)."""
    return f"kubernetes.io/cluster/{cluster_name}"


# -- what the builder needs to know of the account ---------------------------------------------------


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    availability_zone: str
    cidr_block: str
    zone_type: str = "availability-zone"  # local-zone and wavelength-zone subnets are never chosen
    tags: Tags = ()
    # routes to an internet gateway (its route table, else the VPC's main one): only such subnets are
    # discovered for internet-facing load balancers. The deployer reads it from the route tables.
    public: bool = True
    # associated IPv6 CIDRs (Ipv6CidrBlockAssociationSet): a dual-stack NLB needs one in every subnet
    ipv6_cidr_blocks: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterInfo:
    """Facts about the cluster's network, discovered once and cached by the provider."""

    cluster_name: str
    vpc_id: str
    subnets: tuple[Subnet, ...]  # every subnet of the VPC
    scope: str = ""  # the instance's --load-balancer-class ('' = default): tagged as SCOPE_TAG


# -- parts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubnetMapping:
    subnet_id: str
    allocation_id: str = ""  # eip-allocations
    private_ipv4_address: str = ""  # private-ipv4-addresses (internal LBs)


@dataclass(frozen=True)
class HealthCheck:
    """Target-group health check. ``port`` is ``traffic-port`` or a number as a string."""

    protocol: str  # TCP | HTTP | HTTPS
    port: str
    path: str = ""  # only for HTTP(S)
    interval_seconds: int = 10
    timeout_seconds: int = 10
    healthy_threshold: int = 3
    unhealthy_threshold: int = 3
    success_codes: str = ""  # the HTTP(S) matcher (HttpCode); '' is AWS's default, 200-399


@dataclass(frozen=True)
class TargetGroup:
    """One target group per Service port: instance targets on the port's NodePort."""

    resource_id: str  # TARGET_GROUP_PREFIX + "<service port>/<protocol>"
    name: str  # ≤ 32 characters; changes when an immutable property changes
    protocol: str  # TCP | UDP | TCP_UDP | TLS
    port: int  # the NodePort
    health_check: HealthCheck
    attributes: tuple[tuple[str, str], ...] = ()
    tags: Tags = ()


@dataclass(frozen=True)
class Listener:
    port: int
    protocol: str  # TCP | UDP | TCP_UDP | TLS
    target_group: str  # the TargetGroup's resource_id
    certificate_arn: str = ""
    ssl_policy: str = ""
    # listener attributes the user set (tcp.idle_timeout.seconds on TCP listeners); AWS defaults otherwise
    attributes: tuple[tuple[str, str], ...] = ()
    tags: Tags = ()


@dataclass(frozen=True)
class Rule:
    """One ingress rule from a CIDR (IPv4 or IPv6)."""

    protocol: str  # tcp | udp | icmp | icmpv6
    from_port: int
    to_port: int
    cidr: str = ""
    description: str = ""


@dataclass(frozen=True)
class SecurityGroup:
    resource_id: str
    name: str
    description: str
    rules: tuple[Rule, ...]
    tags: Tags = ()


@dataclass(frozen=True)
class LoadBalancer:
    name: str  # ≤ 32 characters
    scheme: str  # internet-facing | internal
    subnet_mappings: tuple[SubnetMapping, ...]
    ip_address_type: str = "ipv4"  # ipv4 | dualstack
    attributes: tuple[
        tuple[str, str], ...
    ] = ()  # only the keys the user set, besides the defaults we enforce
    tags: Tags = ()


@dataclass(frozen=True)
class StackNames:
    """The deterministic names a Service's resources would have: how a stack is found when the
    tagging API does not list it yet (eventually consistent) and no memory of it survived a restart."""

    load_balancers: tuple[str, ...]  # one per scheme: the Service may have changed it meanwhile
    target_groups: tuple[str, ...]  # empty when the Service's spec cannot be built
    security_group: str


@dataclass(frozen=True)
class Stack:
    """Everything one Service needs. ``security_groups`` (BYO) replaces the managed frontend group."""

    load_balancer: LoadBalancer
    target_groups: tuple[TargetGroup, ...]
    listeners: tuple[Listener, ...]
    frontend_security_group: SecurityGroup | None
    byo_security_groups: tuple[str, ...] = ()
    targets: tuple[str, ...] = field(default=(), compare=False)  # instance IDs; not part of the spec
    # The NLB is the upstream provider's, taken over: it has no security group (AWS cannot add one to an
    # NLB made without), so clients and health checks reach the nodes through ``node_rules`` on the
    # nodes' security groups (upstream's rules, kept under upstream's descriptions); its subnets stay.
    adopted: bool = False
    node_rules: tuple[Rule, ...] = ()

    def spec_hash(self) -> str:
        """A short hash of everything but the targets: equal hashes mean nothing to change."""
        data = self.to_json()
        data.pop("targets", None)
        return digest(data)

    def to_json(self) -> dict[str, Any]:
        """For golden files: the whole stack as JSON-able data. The adoption fields appear only on an
        adopted stack, so the hash (and golden file) of every other stack is what it was before them."""
        data = asdict(self)
        if not self.adopted:
            data.pop("adopted")
            data.pop("node_rules")
        return data

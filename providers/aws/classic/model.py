"""The desired state of one Service's Classic ELB, as plain frozen data (see :mod:`providers.aws.classic`).

A Classic ELB holds its listeners, health check, attributes and policies itself, so the stack is one load
balancer plus its frontend security group. Field names follow the ``elb`` API (botocore
``elb/2012-06-01/service-2.json``): ``LoadBalancerPort``, ``InstancePort``, ``SSLCertificateId``,
``HealthCheck.Target``, ``CrossZoneLoadBalancing``, ``ConnectionDraining``, ``ConnectionSettings``,
``AccessLog``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from providers.aws.model import SecurityGroup, Tags
from providers.common.spec_hash import digest

RESOURCE_CLASSIC_LOAD_BALANCER = "classic-load-balancer"  # the ccm-lb/resource tag of a Classic ELB
PROXY_PROTOCOL_POLICY = "k8s-proxyprotocol-enabled"  # upstream's policy name (kept for taken-over ELBs)


@dataclass(frozen=True)
class ClassicListener:
    """One listener. Protocols: TCP, SSL, HTTP, HTTPS (front and instance side)."""

    protocol: str
    load_balancer_port: int
    instance_protocol: str
    instance_port: int  # the NodePort
    ssl_certificate_id: str = ""  # ACM or IAM ARN, for SSL and HTTPS listeners only


@dataclass(frozen=True)
class ClassicHealthCheck:
    """``HealthCheck``: ``target`` is ``TCP:<port>``, ``SSL:<port>``, ``HTTP:<port><path>`` or
    ``HTTPS:<port><path>``."""

    target: str
    interval: int
    timeout: int
    healthy_threshold: int
    unhealthy_threshold: int


@dataclass(frozen=True)
class ClassicAttributes:
    """``LoadBalancerAttributes``; the defaults are the values AWS gives a new Classic ELB through the
    API (cross-zone off, draining off with 300 s, idle timeout 60 s, no access log)."""

    cross_zone: bool = False
    connection_draining: bool = False
    connection_draining_timeout: int = 300
    idle_timeout: int = 60
    access_log_enabled: bool = False
    access_log_bucket: str = ""
    access_log_prefix: str = ""
    access_log_interval: int = 60  # 5 or 60 minutes


@dataclass(frozen=True)
class ClassicStack:
    """Everything one Service's Classic ELB needs.

    ``byo_security_groups`` (``aws-load-balancer-security-groups``) replace the managed frontend group;
    ``extra_security_groups`` are added to it. The cluster's shared backend group is always attached
    by the deployer (the nodes' rules reference it), so it is not part of the spec.
    """

    name: str  # ≤ 32 characters; upstream's ``a<uid>`` when taken over
    scheme: str  # internet-facing | internal
    subnets: tuple[str, ...]
    listeners: tuple[ClassicListener, ...]
    health_check: ClassicHealthCheck
    attributes: ClassicAttributes
    frontend_security_group: SecurityGroup | None
    byo_security_groups: tuple[str, ...] = ()
    extra_security_groups: tuple[str, ...] = ()
    proxy_protocol: bool = False  # the ProxyProtocol policy on every instance port
    ssl_negotiation_policy: str = ""  # a predefined policy (ELBSecurityPolicy-…) for SSL/HTTPS listeners
    tags: Tags = ()
    targets: tuple[str, ...] = field(default=(), compare=False)  # instance IDs; not part of the spec
    # the Classic ELB is the upstream provider's, taken over in place: its name, DNS name and its
    # security group ``k8s-elb-<name>`` (as the frontend group) stay
    adopted: bool = False

    def spec_hash(self) -> str:
        """A short hash of everything but the targets: equal hashes mean nothing to change."""
        data = self.to_json()
        data.pop("targets", None)
        return digest(data)

    def to_json(self) -> dict[str, Any]:
        """For golden files: the whole stack as JSON-able data."""
        return asdict(self)

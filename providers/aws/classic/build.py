"""Build the desired Classic ELB of one Service: request + config + network facts → :class:`ClassicStack`.

Why a pure function: as for NLBs (:mod:`providers.aws.builder`), every decision about a Service's Classic
ELB (name, scheme, subnets, listeners, health check, attributes, security groups, tags) is made here
without one AWS call, so it is tested with golden JSON, and a Service that cannot be built gets an
:class:`~ccm.cloudprovider.InvalidSpec` naming the field, the value and what is accepted before
anything is created.

Behaviour is the upstream provider's (kubernetes/cloud-provider-aws ``pkg/providers/v1``: ``aws.go``
EnsureLoadBalancer's Classic ELB branch, ``aws_loadbalancer.go``, ``aws_validations.go``), which users
migrate from; the pieces are in :mod:`.listeners`, :mod:`.health` and :mod:`.settings`. What the two kinds
share (names, subnets, tags, frontend rules, targets) comes from :mod:`providers.aws.build`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from ccm.cloudprovider import ImplementedElsewhere, LoadBalancerRequest, source_ranges
from providers.aws import annotations as ann
from providers.aws import kind
from providers.aws.build.common import CLASSIC_TYPES, ELSEWHERE_TYPES, SCHEME_INTERNAL, SCHEME_INTERNET_FACING
from providers.aws.build.names import (
    frontend_security_group_name,
    load_balancer_name,
    upstream_load_balancer_name,
)
from providers.aws.build.security_groups import (
    byo_security_groups,
    extra_security_groups,
    frontend_description,
    listener_rules,
)
from providers.aws.build.subnets import choose_subnets, wants_internal
from providers.aws.build.tags import additional_tags, resource_tags
from providers.aws.build.targets import target_instances
from providers.aws.build.tls import backend_protocol
from providers.aws.classic.health import build_classic_health_check
from providers.aws.classic.listeners import build_listeners, check_classic_spec
from providers.aws.classic.model import RESOURCE_CLASSIC_LOAD_BALANCER, ClassicStack
from providers.aws.classic.settings import build_attributes, proxy_protocol
from providers.aws.config import AWSConfig
from providers.aws.model import RESOURCE_FRONTEND_SG, ClusterInfo, SecurityGroup, Tags

log = logging.getLogger(__name__)

UPSTREAM_SG_PREFIX = "k8s-elb-"  # upstream aws.go buildELBSecurityGroupList: "k8s-elb-" + load balancer name


def wants_classic(*, annotations: Mapping[str, str], config: AWSConfig) -> bool:
    """Whether a Service without a load balancer yet gets a Classic ELB: ``aws-load-balancer-type``
    ``classic``, ``clb`` or ``elb`` (any case), or no type while the cloud config's
    ``DefaultLoadBalancerType`` is ``classic``. Upstream gives every Service without ``nlb`` a Classic
    ELB (aws_loadbalancer.go ``isNLB``); ours defaults to NLBs. The provider's full rule, which also
    keeps a served Service's kind, is :func:`providers.aws.kind.wants_classic`."""
    return kind.wants_classic(annotations=annotations, config=config)


def build_classic_stack(
    *, request: LoadBalancerRequest, config: AWSConfig, cluster: ClusterInfo, adopted: bool = False
) -> ClassicStack:
    """The desired Classic ELB of ``request``; pure and deterministic.

    ``adopted``: the Service's Classic ELB is the upstream provider's, taken over in place: it keeps
    upstream's name (``a<uid>``) and its security group ``k8s-elb-<name>`` with upstream's description.

    Raises :class:`ImplementedElsewhere` for ``external``/``nlb-ip``, and :class:`InvalidSpec` for a
    Service that asks for an NLB or cannot be built as a Classic ELB.
    """
    annotations = request.annotations
    _check_type(annotations)
    check_classic_spec(request)
    cluster_id = config.cluster_id or request.cluster_name

    listeners, ssl_policy = build_listeners(request)
    health_check = build_classic_health_check(
        request=request,
        config=config,
        first_node_port=listeners[0].instance_port,
        backend=backend_protocol(annotations),
    )
    attributes = build_attributes(annotations)
    proxy = proxy_protocol(annotations)
    byo_groups = byo_security_groups(annotations)
    extra_groups = tuple(g for g in extra_security_groups(annotations) if g not in byo_groups)
    extra_tags = additional_tags(annotations, scoped=bool(cluster.scope))
    internal = wants_internal(annotations)
    subnets = choose_subnets(annotations, cluster, cluster_id, internal)
    # a Classic ELB is IPv4 only: the allow-all default is 0.0.0.0/0 even for a dual-stack Service
    ranges = source_ranges(dataclasses.replace(request, ip_families=("IPv4",)))

    def tags(resource: str) -> Tags:
        return resource_tags(
            cluster_id=cluster_id,
            service_key=request.key,
            uid=request.uid,
            scope=cluster.scope,
            extra=extra_tags,
            resource=resource,
        )

    name = (
        upstream_load_balancer_name(request.uid)
        if adopted
        else load_balancer_name(
            cluster_name=cluster_id,
            namespace=request.namespace,
            name=request.name,
            uid=request.uid,
            internal=internal,
        )
    )
    frontend: SecurityGroup | None = None
    if not byo_groups:
        frontend = SecurityGroup(
            resource_id=RESOURCE_FRONTEND_SG,
            name=(
                UPSTREAM_SG_PREFIX + name
                if adopted
                else frontend_security_group_name(
                    cluster_name=cluster_id, namespace=request.namespace, name=request.name, uid=request.uid
                )
            ),
            # AWS cannot change a group's description: a taken-over group keeps upstream's (aws.go
            # buildELBSecurityGroupList, with the Service's namespace/name)
            description=(
                f"Security group for Kubernetes ELB {name} ({request.key})"
                if adopted
                else frontend_description(service_key=request.key, cluster_id=cluster_id)
            ),
            rules=listener_rules([(lst.load_balancer_port, lst.protocol) for lst in listeners], ranges),
            tags=tags(RESOURCE_FRONTEND_SG),
        )
    log.debug("built the Classic ELB %s of %s (adopted: %s)", name, request.key, adopted)
    return ClassicStack(
        name=name,
        scheme=SCHEME_INTERNAL if internal else SCHEME_INTERNET_FACING,
        subnets=tuple(s.subnet_id for s in subnets),
        listeners=listeners,
        health_check=health_check,
        attributes=attributes,
        frontend_security_group=frontend,
        byo_security_groups=byo_groups,
        extra_security_groups=extra_groups,
        proxy_protocol=proxy,
        ssl_negotiation_policy=ssl_policy,
        tags=tags(RESOURCE_CLASSIC_LOAD_BALANCER),
        targets=target_instances(request),
        adopted=adopted,
    )


def _check_type(annotations: Mapping[str, str]) -> None:
    """ImplementedElsewhere for the AWS Load Balancer Controller's types; InvalidSpec for ``nlb`` or an
    unknown type. Whether a Service without the annotation gets a Classic ELB is the provider's choice
    (:func:`providers.aws.kind.wants_classic`)."""
    value = ann.text(annotations=annotations, key=ann.TYPE)
    if value is None or value.lower() in CLASSIC_TYPES:
        return
    if value in ELSEWHERE_TYPES:
        raise ImplementedElsewhere(f"{ann.TYPE}={value}: left to the AWS Load Balancer Controller")
    raise ann.invalid(
        key=ann.TYPE,
        value=annotations[ann.TYPE],
        reason="the Service does not ask for a Classic ELB, and the Classic ELB builder builds nothing else",
        accepted="classic, clb or elb for a Classic ELB; nlb is built as an NLB",
    )

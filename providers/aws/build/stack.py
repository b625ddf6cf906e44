"""The builder: request + config + network facts → :class:`~providers.aws.model.Stack`, from the pieces
of the other modules of this package.
"""

from __future__ import annotations

from ccm.cloudprovider import LoadBalancerRequest, source_ranges
from providers.aws import annotations as ann
from providers.aws.build.attributes import (
    attributes_for,
    check_dualstack,
    load_balancer_attributes,
    target_group_attributes,
    tcp_idle_timeout,
)
from providers.aws.build.common import (
    LISTENER_PREFIX,
    SCHEME_INTERNAL,
    SCHEME_INTERNET_FACING,
    TCP_IDLE_TIMEOUT,
)
from providers.aws.build.health_checks import build_health_check, build_udp_health_check
from providers.aws.build.names import (
    frontend_security_group_name,
    load_balancer_name,
    target_group_name,
    upstream_load_balancer_name,
)
from providers.aws.build.node_rules import sg_less_node_rules
from providers.aws.build.ports import check_spec, check_type, group_ports
from providers.aws.build.security_groups import byo_security_groups, frontend_description, frontend_rules
from providers.aws.build.subnets import build_subnet_mappings, choose_subnets, wants_internal
from providers.aws.build.tags import additional_tags, resource_tags
from providers.aws.build.targets import target_instances
from providers.aws.build.tls import backend_is_tls, tls_settings
from providers.aws.config import AWSConfig
from providers.aws.model import (
    RESOURCE_FRONTEND_SG,
    RESOURCE_LOAD_BALANCER,
    TARGET_GROUP_PREFIX,
    ClusterInfo,
    Listener,
    LoadBalancer,
    SecurityGroup,
    Stack,
    Tags,
    TargetGroup,
)


def build_stack(
    *, request: LoadBalancerRequest, config: AWSConfig, cluster: ClusterInfo, adopted: bool = False
) -> Stack:
    """The desired stack for ``request``; pure and deterministic.

    ``adopted``: the Service's NLB is the upstream provider's, taken over (upstream's name, no security
    group, its subnets kept; the nodes' rules of :mod:`providers.aws.build.node_rules`).

    Raises :class:`ImplementedElsewhere` for ``aws-load-balancer-type: external`` or ``nlb-ip``
    (checked first, so the other controller's annotations are never judged here), and
    :class:`InvalidSpec` for anything that cannot be built, before the caller creates anything.
    """
    annotations = request.annotations
    check_type(annotations)
    check_spec(request)
    cluster_id = config.cluster_id or request.cluster_name

    ports = group_ports(request)
    tls_ports, certificate, ssl_policy = tls_settings(annotations, ports)
    backend_ssl = backend_is_tls(annotations)
    health_check = build_health_check(request, config)
    tg_attributes = target_group_attributes(annotations)
    extra_tags = additional_tags(annotations, scoped=bool(cluster.scope))
    internal = wants_internal(annotations)
    subnets = choose_subnets(annotations, cluster, cluster_id, internal)
    mappings = build_subnet_mappings(annotations, subnets, internal)
    dualstack = "IPv6" in request.ip_families
    if dualstack:
        check_dualstack(ports, subnets)
    lb_attributes = load_balancer_attributes(annotations)
    idle_timeout = tcp_idle_timeout(annotations)
    byo_groups = byo_security_groups(annotations)
    ranges = source_ranges(request)
    targets = target_instances(request)
    service_key = request.key  # one string for every resource's tags

    def tags(resource: str) -> Tags:
        return resource_tags(
            cluster_id=cluster_id,
            service_key=service_key,
            uid=request.uid,
            scope=cluster.scope,
            extra=extra_tags,
            resource=resource,
        )

    target_groups: list[TargetGroup] = []
    listeners: list[Listener] = []
    for group in ports:
        tls = group.port in tls_ports
        listener_protocol = "TLS" if tls else group.protocol
        tg_protocol = "TLS" if tls and backend_ssl else group.protocol
        resource = f"{TARGET_GROUP_PREFIX}{group.port}/{group.protocol}"
        target_groups.append(
            TargetGroup(
                resource_id=resource,
                name=target_group_name(
                    cluster_name=cluster_id,
                    namespace=request.namespace,
                    name=request.name,
                    uid=request.uid,
                    port=group.port,
                    protocol=tg_protocol,
                    node_port=group.node_port,
                ),
                protocol=tg_protocol,
                port=group.node_port,
                health_check=build_udp_health_check(health_check, request, config)
                if tg_protocol == "UDP"
                else health_check,
                attributes=attributes_for(annotations, tg_attributes, protocol=tg_protocol),
                tags=tags(resource),
            )
        )
        listeners.append(
            Listener(
                port=group.port,
                protocol=listener_protocol,
                target_group=resource,
                certificate_arn=certificate if tls else "",
                ssl_policy=ssl_policy if tls else "",
                attributes=(
                    ((TCP_IDLE_TIMEOUT, str(idle_timeout)),)
                    if idle_timeout and listener_protocol == "TCP"
                    else ()
                ),
                tags=tags(f"{LISTENER_PREFIX}{group.port}"),
            )
        )

    load_balancer = LoadBalancer(
        name=upstream_load_balancer_name(request.uid)
        if adopted
        else load_balancer_name(
            cluster_name=cluster_id,
            namespace=request.namespace,
            name=request.name,
            uid=request.uid,
            internal=internal,
        ),
        scheme=SCHEME_INTERNAL if internal else SCHEME_INTERNET_FACING,
        subnet_mappings=mappings,
        ip_address_type="dualstack" if dualstack else "ipv4",
        attributes=lb_attributes,
        tags=tags(RESOURCE_LOAD_BALANCER),
    )
    if idle_timeout and not any(listener.attributes for listener in listeners):
        raise ann.invalid(
            key=ann.CONNECTION_IDLE_TIMEOUT,
            value=annotations[ann.CONNECTION_IDLE_TIMEOUT],
            reason=(
                "the NLB has no TCP listener: AWS fixes the idle timeout of TLS (350 s) and UDP (120 s) "
                "listeners"
            ),
            accepted="no idle timeout, or a Service with a TCP port that is not TLS",
        )
    if adopted:
        if byo_groups:
            raise ann.invalid(
                key=ann.SECURITY_GROUPS,
                value=annotations[ann.SECURITY_GROUPS],
                reason=(
                    "the Service's NLB was made by the upstream provider without security groups, and "
                    "AWS cannot add security groups to such an NLB"
                ),
                accepted=(
                    "no security groups, or a new NLB: annotate the Service "
                    'ccm-lb.io/replace-foreign-load-balancer: "true" (its address changes)'
                ),
            )
        cidrs = [s.cidr_block for s in subnets if s.cidr_block]
        return Stack(
            load_balancer=load_balancer,
            target_groups=tuple(target_groups),
            listeners=tuple(listeners),
            frontend_security_group=None,
            targets=targets,
            adopted=True,
            node_rules=sg_less_node_rules(
                lb_name=load_balancer.name, target_groups=target_groups, ranges=ranges, subnet_cidrs=cidrs
            ),
        )
    frontend: SecurityGroup | None = None
    if not byo_groups:
        frontend = SecurityGroup(
            resource_id=RESOURCE_FRONTEND_SG,
            name=frontend_security_group_name(
                cluster_name=cluster_id, namespace=request.namespace, name=request.name, uid=request.uid
            ),
            description=frontend_description(service_key=request.key, cluster_id=cluster_id),
            rules=frontend_rules(listeners, ranges),
            tags=tags(RESOURCE_FRONTEND_SG),
        )
    return Stack(
        load_balancer=load_balancer,
        target_groups=tuple(target_groups),
        listeners=tuple(listeners),
        frontend_security_group=frontend,
        byo_security_groups=byo_groups,
        targets=targets,
    )

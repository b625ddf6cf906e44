"""The writes of one Classic ELB: its create, and the calls that bring an existing one in line with a
:class:`~.model.ClassicStack`, each sent only when :mod:`.live` finds a difference.

The instances and tags are the deployer's (:mod:`.deploy`): they change on their own (node syncs) and
their last write, the spec hash, says the rest is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from providers.aws.classic.live import (
    LiveClassic,
    after_create,
    attributes_param,
    backend_policy_changes,
    health_check_param,
    listener_changes,
    listener_param,
    listener_policy_changes,
    normal,
    parse_attributes,
    policies_to_create,
)
from providers.aws.classic.model import ClassicStack
from providers.aws.deploy.context import Context
from providers.aws.deploy.parts import tag_list

logger = logging.getLogger(__name__)


class ClassicWrites:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(self, *, stack: ClassicStack, sg_ids: Sequence[str]) -> LiveClassic:
        dns = self.ctx.clients.elb.create_load_balancer(
            LoadBalancerName=stack.name,
            Listeners=[listener_param(x) for x in stack.listeners],
            Subnets=list(stack.subnets),
            SecurityGroups=list(sg_ids),
            Scheme=stack.scheme,
            Tags=tag_list(stack.tags),
        )["DNSName"]
        logger.info("created Classic ELB %s (%s)", stack.name, dns)
        return after_create(stack=stack, security_groups=sg_ids, dns_name=str(dns))

    def converge(
        self, *, stack: ClassicStack, live: LiveClassic, sg_ids: Sequence[str], created: bool
    ) -> None:
        """Send what differs between ``live`` and ``stack`` (the instances and tags aside)."""
        elb = self.ctx.clients.elb
        name = stack.name
        delete, create = listener_changes(want=stack.listeners, have=live.listeners)
        if delete:
            elb.delete_load_balancer_listeners(LoadBalancerName=name, LoadBalancerPorts=delete)
        if create:
            elb.create_load_balancer_listeners(
                LoadBalancerName=name, Listeners=[listener_param(x) for x in create]
            )
        for port in {*delete, *(x.load_balancer_port for x in create)}:
            live.listener_policies[port] = ()  # a listener made again has none of the old one's policies
        live.listeners = {x.load_balancer_port: x for x in stack.listeners}
        if live.health_check != stack.health_check:
            elb.configure_health_check(
                LoadBalancerName=name, HealthCheck=health_check_param(stack.health_check)
            )
        if live.attributes is None:
            live.attributes = parse_attributes(
                elb.describe_load_balancer_attributes(LoadBalancerName=name)["LoadBalancerAttributes"]
            )
        if normal(live.attributes) != normal(stack.attributes):
            elb.modify_load_balancer_attributes(
                LoadBalancerName=name, LoadBalancerAttributes=attributes_param(stack.attributes)
            )
        if not created and set(live.security_groups) != set(sg_ids):
            elb.apply_security_groups_to_load_balancer(LoadBalancerName=name, SecurityGroups=list(sg_ids))
        attach = sorted(set(stack.subnets) - live.subnets)
        detach = sorted(live.subnets - set(stack.subnets))
        if attach:
            elb.attach_load_balancer_to_subnets(LoadBalancerName=name, Subnets=attach)
        if detach:
            elb.detach_load_balancer_from_subnets(LoadBalancerName=name, Subnets=detach)
        for policy in policies_to_create(stack=stack, live=live):
            elb.create_load_balancer_policy(LoadBalancerName=name, **policy)
        for port, policies in backend_policy_changes(stack=stack, live=live).items():
            elb.set_load_balancer_policies_for_backend_server(
                LoadBalancerName=name, InstancePort=port, PolicyNames=list(policies)
            )
        for port, policies in listener_policy_changes(stack=stack, live=live).items():
            elb.set_load_balancer_policies_of_listener(
                LoadBalancerName=name, LoadBalancerPort=port, PolicyNames=list(policies)
            )

"""Taking over the upstream provider's NLB of a Service in place: its DNS name, listeners and target
groups stay; it becomes this controller's by its tags.

Upstream (cloud-provider-aws, default ``NLBSecurityGroupMode``) makes an NLB without security groups,
named ``a<uid>`` and tagged ``kubernetes.io/cluster/<id>=owned`` and
``kubernetes.io/service-name=<ns>/<name>``, one listener per Service port forwarding to a target group
of instance targets on the port's NodePort. Adoption:

1. reads the NLB (by name), its tags, listeners and target groups, and refuses
   (:class:`~ccm.cloudprovider.ForeignLoadBalancer`, saying why) what cannot be taken over in place:
   tags that do not name this cluster and Service, security groups (upstream's ``Managed`` mode), a
   scheme other than the Service's (AWS cannot change it in place);
2. tags each target group a listener uses with this Service's tags (and each listener, as the stack's
   own listeners are tagged): one that matches the stack's target
   group for that port (same NodePort and protocol, instance targets) also gets ``ccm-lb/adopted-as``
   (it keeps upstream's name and stays behind its listener, so no listener changes and no target's
   health starts over); any other is tagged as a leftover, so the ensure deletes it once its listener
   forwards to the new target group;
3. tags the NLB last, so that a crash leaves either nothing adopted (the next sync starts over) or a
   whole stack that the ensure finishes like any of its own.

Health checks, attributes and the nodes' rules are then brought in line by the ensure itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ccm.cloudprovider import ForeignLoadBalancer, ForeignPart
from providers.aws import model
from providers.aws.deploy.context import Context
from providers.aws.deploy.foreign import ForeignLoadBalancers
from providers.aws.deploy.load_balancer import SCHEME_DEFAULT
from providers.aws.deploy.parts import ActualStack, Found, chunks, tag_list

logger = logging.getLogger(__name__)

LEFTOVER_PREFIX = (
    "target-group:adopted-leftover/"  # the resource id of a target group the stack has no use for
)


class Adoption:
    def __init__(self, ctx: Context, foreign: ForeignLoadBalancers) -> None:
        self.ctx = ctx
        self.foreign = foreign  # reads upstream's load balancer and its tags

    def adopt(
        self, *, key: str, uid: str, stack: model.Stack, address: str
    ) -> tuple[ActualStack, bool] | None:
        """Take the NLB ``stack.load_balancer.name`` over: its stack as now tagged, and whether this call
        took it over (False: an earlier one did, and the tagging API does not list it yet); None when no
        load balancer of that name exists. Raises :class:`ForeignLoadBalancer` when one exists that
        cannot be taken over in place."""
        elbv2 = self.ctx.clients.elbv2
        name = stack.load_balancer.name
        found = self.foreign.nlb(name, key=key)
        if found is None:
            return None
        lb, arn, tags = found.described, found.arn, found.tags
        if self.ctx.owned_by(tags, uid=uid):  # adopted already; the tagging API does not list it yet
            return self._already_adopted(arn=arn, tags=tags, uid=uid), False
        part = ForeignPart(kind="NLB", name=name, detail=found.dns_name)
        owner = f"{self.ctx.cluster_tag}=owned and {model.SERVICE_NAME_TAG}={key}"
        reason = refusal(lb=lb, owned=found.owned, owner=owner, scheme=stack.load_balancer.scheme)
        if reason:
            raise ForeignLoadBalancer(address=address, parts=[part], reason=reason)
        listeners = elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
        tg_of_port = {
            int(listener["Port"]): action["TargetGroupArn"]
            for listener in listeners
            for action in listener.get("DefaultActions", [])[:1]
            if action.get("TargetGroupArn")
        }
        groups: dict[str, dict[str, Any]] = {}
        for chunk in chunks(sorted(set(tg_of_port.values())), 20):
            for tg in elbv2.describe_target_groups(TargetGroupArns=list(chunk))["TargetGroups"]:
                groups[tg["TargetGroupArn"]] = tg
        actual = ActualStack()
        by_resource = {tg.resource_id: tg for tg in stack.target_groups}
        for port, tg_arn in sorted(tg_of_port.items()):
            listener = next((spec for spec in stack.listeners if spec.port == port), None)
            spec = by_resource.get(listener.target_group) if listener is not None else None
            tg = groups.get(tg_arn, {})
            if spec is not None and takes_over(tg, spec):
                new_tags = {**dict(spec.tags), model.ADOPTED_AS_TAG: spec.name}
            else:
                new_tags = {
                    **dict(stack.load_balancer.tags),
                    model.RESOURCE_TAG: f"{LEFTOVER_PREFIX}{tg_arn.rsplit('/', 1)[-1]}",
                }
            elbv2.add_tags(ResourceArns=[tg_arn], Tags=tag_list(new_tags.items()))
            actual.target_groups.append(Found(arn=tg_arn, tags=new_tags))
        for listener in listeners:  # tagged like the stack's own, so they are managed as ours
            wanted_listener = next((x for x in stack.listeners if x.port == int(listener["Port"])), None)
            wanted = dict((wanted_listener or stack.load_balancer).tags)
            elbv2.add_tags(ResourceArns=[listener["ListenerArn"]], Tags=tag_list(wanted.items()))
        lb_tags = {**dict(stack.load_balancer.tags), model.ADOPTED_FROM_TAG: model.ADOPTED_FROM}
        elbv2.add_tags(ResourceArns=[arn], Tags=tag_list(lb_tags.items()))
        actual.load_balancer = Found(arn=arn, tags={**tags, **lb_tags})
        logger.info("%s: took over the upstream provider's NLB %s (%s)", key, name, found.dns_name)
        return actual, True

    def _already_adopted(self, *, arn: str, tags: dict[str, str], uid: str) -> ActualStack:
        """The stack of an NLB adopted earlier, read by its listeners' target groups and their tags."""
        elbv2 = self.ctx.clients.elbv2
        arns = sorted(
            {
                action["TargetGroupArn"]
                for listener in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
                for action in listener.get("DefaultActions", [])[:1]
                if action.get("TargetGroupArn")
            }
        )
        actual = ActualStack(load_balancer=Found(arn=arn, tags=tags))
        for chunk in chunks(arns, 20):
            for described in elbv2.describe_tags(ResourceArns=list(chunk))["TagDescriptions"]:
                found = Found(
                    arn=described["ResourceArn"], tags={t["Key"]: t["Value"] for t in described["Tags"]}
                )
                if self.ctx.owned_by(found.tags, uid=uid):
                    actual.target_groups.append(found)
        return actual


# -- pure ------------------------------------------------------------------------------------------------


def refusal(*, lb: Mapping[str, Any], owned: bool, owner: str, scheme: str) -> str:
    """Why the upstream NLB ``lb`` cannot be taken over in place ('' when it can). ``owned``: its tags
    name this cluster and Service, as ``owner`` says in words."""
    if lb.get("Type") != "network":
        return f"it is a load balancer of type {lb.get('Type')}, not an NLB"
    if not owned:
        return f"its tags do not name this cluster and Service ({owner}), so it may be another cluster's"
    if lb.get("SecurityGroups"):
        return (
            "it has security groups (the upstream provider's NLBSecurityGroupMode=Managed), which this "
            "controller does not take over"
        )
    have = lb.get("Scheme") or SCHEME_DEFAULT
    if have != scheme:
        return f"its scheme is {have} and the Service asks for {scheme}, which AWS cannot change in place"
    return ""


def takes_over(tg: Mapping[str, Any], spec: model.TargetGroup) -> bool:
    """Whether upstream's target group ``tg`` can stand for ``spec``: what AWS cannot modify matches."""
    return (
        int(tg.get("Port", -1)) == spec.port
        and tg.get("Protocol") == spec.protocol
        and tg.get("TargetType", "instance") == "instance"
    )

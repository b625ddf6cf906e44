"""Taking over the upstream provider's Classic ELB of a Service in place: its name and DNS name stay, and
so do its listeners, so no client sees a new address and no connection is cut.

Upstream (cloud-provider-aws ``aws.go``) names the Classic ELB ``a<uid>``, tags it
``kubernetes.io/cluster/<id>=owned`` and ``kubernetes.io/service-name=<ns>/<name>``, gives it its own
group ``k8s-elb-a<uid>`` open on the listener ports (``buildELBSecurityGroupList``) and lets that group
into each node's cluster-tagged group with one all-protocols rule
(``updateInstanceSecurityGroupsForLoadBalancer``). The takeover, in an order where a crash after any
call converges on the next ensure and no client loses the path to the nodes meanwhile:

1. the group ``k8s-elb-a<uid>`` becomes the stack's frontend group: tagged as ours (its rules
   converged; its description, which AWS cannot change, is never compared);
2. the cluster's backend group is attached next to it (``ApplySecurityGroupsToLoadBalancer``): the
   nodes already let the backend group in on the NodePorts, so the ELB reaches them both ways;
3. only then upstream's node rules that let ``k8s-elb-a<uid>`` in are revoked;
4. last the Classic ELB is tagged as this Service's: until then the tagging API does not list it, and
   the next ensure goes through these steps again (each a no-op when done).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from providers.aws import model
from providers.aws.classic.live import LiveClassic, parse_description, security_group_ids
from providers.aws.classic.model import ClassicStack
from providers.aws.deploy.backend_security_group import BackendSecurityGroup
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery
from providers.aws.deploy.foreign import ForeignLoadBalancers
from providers.aws.deploy.parts import ActualStack, AdoptionRefused, Found, NothingToAdopt, tag_list
from providers.aws.deploy.security_groups import FrontendSecurityGroups

logger = logging.getLogger(__name__)


@dataclass
class TakenOver:
    """Upstream's Classic ELB, now tagged as the Service's."""

    found: Found  # as the tagging API would list it
    live: LiveClassic
    took_over: bool  # this call took it over (False: an earlier one did; the tagging API lags)
    frontend: str | None = None  # the frontend group's ID, when this call converged it ('' for none)


class ClassicTakeover:
    def __init__(
        self,
        *,
        ctx: Context,
        discovery: Discovery,
        backend: BackendSecurityGroup,
        security_groups: FrontendSecurityGroups,
        foreign: ForeignLoadBalancers,
    ) -> None:
        self.ctx = ctx
        self.discovery = discovery
        self.backend = backend
        self.security_groups = security_groups
        self.foreign = foreign

    def adopt(self, *, key: str, uid: str, stack: ClassicStack, actual: ActualStack) -> TakenOver:
        """Take the Classic ELB ``stack.name`` over. Raises :class:`NothingToAdopt` when none of that
        name exists, :class:`AdoptionRefused` when its tags or scheme forbid taking it over in place."""
        found = self.foreign.clb(stack.name, key=key)
        if found is None:
            raise NothingToAdopt(stack.name)
        live = parse_description(found.described)
        if self.ctx.owned_by(found.tags, uid=uid):  # taken over already; not listed yet
            arn = self.discovery.classic_arn(stack.name)
            return TakenOver(found=Found(arn=arn, tags=found.tags), live=live, took_over=False)
        reason = refusal(
            owned=found.owned,
            owner=f"{self.ctx.cluster_tag}=owned and {model.SERVICE_NAME_TAG}={key}",
            have_scheme=live.scheme,
            want_scheme=stack.scheme,
        )
        if reason:
            raise AdoptionRefused(
                f"the upstream provider's Classic ELB {stack.name} ({live.dns_name}): {reason}"
            )
        upstream_sgs = self._frontend(stack=stack, actual=actual)
        backend = self.backend.ensure(instance_ids=stack.targets)
        frontend = upstream_sgs[0] if upstream_sgs else ""
        want = security_group_ids(frontend=frontend, stack=stack, backend=backend)
        if list(live.security_groups) != want:
            self.ctx.clients.elb.apply_security_groups_to_load_balancer(
                LoadBalancerName=stack.name, SecurityGroups=want
            )
            live.security_groups = tuple(want)
        if upstream_sgs:  # the backend group is in: upstream's path from the ELB to the nodes can go
            rules = self.foreign.clb_node_rules(security_groups=upstream_sgs, instance_ids=stack.targets)
            self.foreign.revoke(rules)
        tags = {**dict(stack.tags), model.ADOPTED_FROM_TAG: model.ADOPTED_FROM}
        self.ctx.clients.elb.add_tags(LoadBalancerNames=[stack.name], Tags=tag_list(tags.items()))
        logger.info(
            "%s: took over the upstream provider's Classic ELB %s (%s)", key, stack.name, live.dns_name
        )
        arn = self.discovery.classic_arn(stack.name)
        return TakenOver(
            found=Found(arn=arn, tags={**found.tags, **tags}), live=live, took_over=True, frontend=frontend
        )

    def _frontend(self, *, stack: ClassicStack, actual: ActualStack) -> list[str]:
        """Upstream's group ``k8s-elb-<name>`` made the stack's frontend group (tagged, rules converged);
        its ID first. Empty when the stack has no frontend group of its own (the Service's groups)."""
        spec = stack.frontend_security_group
        if spec is None:
            return []
        if not actual.security_groups:  # not tagged by an earlier try: found by upstream's name
            for group in self._owned_groups_named(spec.name):
                tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
                arn = f"arn:aws:ec2:{self.ctx.clients.region}:{group.get('OwnerId', '')}:security-group/"
                actual.security_groups = [Found(arn=arn + group["GroupId"], tags=tags)]
        sg_id = self.security_groups.ensure_group(spec=spec, actual=actual)
        return [sg_id]

    def _owned_groups_named(self, name: str) -> list[dict[str, Any]]:
        groups = self.ctx.clients.ec2.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [name]},
                {"Name": "vpc-id", "Values": [self.discovery.cluster_info().vpc_id]},
            ]
        )["SecurityGroups"]
        owned = []
        for group in groups:
            tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
            if tags.get(self.ctx.cluster_tag) == model.OWNED:
                owned.append(group)
            else:
                logger.warning(
                    "security group %s (%s) is not this cluster's: left alone", name, group["GroupId"]
                )
        return owned


def refusal(*, owned: bool, owner: str, have_scheme: str, want_scheme: str) -> str:
    """Why upstream's Classic ELB cannot be taken over in place ('' when it can)."""
    if not owned:
        return f"its tags do not name this cluster and Service ({owner}), so it may be another cluster's"
    if have_scheme != want_scheme:
        return (
            f"its scheme is {have_scheme} and the Service asks for {want_scheme}, which AWS cannot change "
            "in place"
        )
    return ""

"""The refusals of a load balancer type change: a Service served by an NLB of ours does not get a Classic
ELB in its place, nor the other way round, since either would give it a new address (the address is
sacred: only a change the user can make knowingly, deleting and creating the Service, may change it).

Raised as :class:`~ccm.cloudprovider.InvalidSpec` naming the annotation, so the controller says it in an
event and does not retry in a hot loop.
"""

from __future__ import annotations

from ccm.cloudprovider import InvalidSpec
from providers.aws import annotations as ann
from providers.aws.client import suppress_codes
from providers.aws.deploy.context import Context
from providers.aws.deploy.parts import ActualStack, classic_name

TYPE_FIELD = f"metadata.annotations[{ann.TYPE}]"  # the key is spelled only in the registry


def refuse_nlb(*, actual: ActualStack, ctx: Context) -> None:
    """A Service served by an NLB of ours cannot become a Classic ELB in place (its address would change)."""
    lb = actual.load_balancer
    if lb is None:
        return
    address = lb.arn
    with suppress_codes("LoadBalancerNotFound"):
        for d in ctx.clients.elbv2.describe_load_balancers(LoadBalancerArns=[lb.arn])["LoadBalancers"]:
            address = d["DNSName"]
    raise InvalidSpec(
        field=TYPE_FIELD,
        value="classic",
        accepted=(
            "nlb (the type the Service was created with); to change it, delete the Service and create "
            "it again"
        ),
        reason=f"the Service is served by an NLB (address {address}); the type cannot change in place, that "
        "would change its address",
    )


def refuse_classic(*, actual: ActualStack, ctx: Context) -> None:
    """A Service served by a Classic ELB of ours cannot become an NLB in place (its address would change)."""
    if not actual.classic:
        return
    name = classic_name(actual.classic[0].arn)
    address = name
    with suppress_codes("LoadBalancerNotFound"):
        for d in ctx.clients.elb.describe_load_balancers(LoadBalancerNames=[name])[
            "LoadBalancerDescriptions"
        ]:
            address = d["DNSName"]
    raise InvalidSpec(
        field=TYPE_FIELD,
        value="nlb",
        accepted="unset or classic (the type the Service was created with); to change it, delete the Service "
        "and create it again",
        reason=f"the Service is served by a Classic ELB (address {address}); the type cannot change in "
        "place, that would change its address",
    )

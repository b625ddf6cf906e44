"""The vocabulary the synthesizers share: what the tagging API found, a Service's stack as found,
what this process remembers of it, and what an ensure returns.

Nothing here calls AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from providers.aws import model
from providers.aws.deploy.target_sets import shared

LB_TYPE = "elasticloadbalancing:loadbalancer"
TG_TYPE = "elasticloadbalancing:targetgroup"
SG_TYPE = "ec2:security-group"
# Reasons of the Warning events the deployer asks for (:class:`Deployed` ``notices``).
NOT_APPLIED = "LoadBalancerChangeNotApplied"  # a change the Service asked for that AWS cannot make in place
ADDRESS_CHANGED = "LoadBalancerIPChanged"  # the Service's address changed (as the GCP provider says it)
TAKEN_OVER = "LoadBalancerTakenOver"  # the upstream provider's load balancer is now the Service's (as GCP)


class NothingToAdopt(LookupError):
    """An adopted stack's load balancer does not exist: the upstream provider's is gone (the caller
    builds its own)."""


class AdoptionRefused(Exception):
    """The upstream provider's load balancer of the Service cannot be taken over in place; ``reason``
    says why, in words a user reads (its tags name another cluster or Service, another scheme)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def is_classic_arn(arn: str) -> bool:
    """Whether ``arn`` is a Classic ELB's:
    ``arn:aws:elasticloadbalancing:<region>:<acct>:loadbalancer/<name>`` (Service Authorization
    Reference, Elastic Load Balancing, resource type ``loadbalancer``), where an NLB's or ALB's is
    ``…:loadbalancer/net/<name>/<id>`` (``app/`` for an ALB). The tagging API lists both under
    ``elasticloadbalancing:loadbalancer``."""
    _, sep, rest = arn.partition(":loadbalancer/")
    return bool(sep) and bool(rest) and "/" not in rest


def classic_name(arn: str) -> str:
    """``…:loadbalancer/<name>`` → ``<name>`` (a Classic ELB is known by its name)."""
    return arn.rsplit("/", 1)[-1]


@dataclass
class Found:
    """One tagged resource from the tagging API."""

    arn: str
    tags: dict[str, str]

    @property
    def resource_id(self) -> str:
        return self.tags.get(model.RESOURCE_TAG, "")

    @property
    def sg_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


def lb_name(arn: str) -> str:
    """``…:loadbalancer/net/<name>/<id>`` → ``<name>``."""
    parts = arn.split("/")
    return parts[-2] if len(parts) >= 3 else ""


def tg_name(arn: str) -> str:
    """``…:targetgroup/<name>/<id>`` → ``<name>``."""
    return arn.split("/")[-2]


def effective_tg_name(found: Found) -> str:
    """The stack's name a target group stands for: its own, or, for one taken over from the upstream
    provider (which keeps upstream's name), the name recorded when it was adopted."""
    return found.tags.get(model.ADOPTED_AS_TAG) or tg_name(found.arn)


@dataclass
class ActualStack:
    """A Service's resources as the tagging API lists them."""

    load_balancer: Found | None = None
    target_groups: list[Found] = field(default_factory=list)
    security_groups: list[Found] = field(default_factory=list)
    # more NLBs of the Service: the one a scheme change replaces, left by a crash before it was deleted
    replaced: list[Found] = field(default_factory=list)
    # the Service's Classic ELBs (:mod:`providers.aws.classic`): never sent to elbv2
    classic: list[Found] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return (
            self.load_balancer is None
            and not self.target_groups
            and not self.security_groups
            and not self.classic
        )

    def prefer(self, name: str) -> None:
        """Make the NLB called ``name`` (if listed) the Service's; the others are replaced ones."""
        lbs = [lb for lb in (self.load_balancer, *self.replaced) if lb is not None]
        chosen = next((lb for lb in lbs if lb_name(lb.arn) == name), lbs[0] if lbs else None)
        self.load_balancer = chosen
        self.replaced = [lb for lb in lbs if lb is not chosen]


@dataclass
class StackCache:
    """What we know of one Service's stack from our own calls."""

    lb_arn: str = ""
    dns_name: str = ""
    listeners_hash: str = ""  # the spec hash whose listeners were seen complete
    tg_arns: dict[str, str] = field(default_factory=dict)  # resource id → ARN
    # TG ARN → instance IDs, set through :meth:`remember_targets` (equal sets are one object)
    targets: dict[str, frozenset[str]] = field(default_factory=dict)
    # listener ARN → the attributes we set or saw on it; an ARN not here is described before it is set
    listener_attributes: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    notices: list[tuple[str, str]] = field(default_factory=list)  # (event reason, message) of the last ensure
    node_rules_stale: bool = False  # the full drift check found an adopted NLB's node rules changed

    def remember_targets(self, *, arn: str, instance_ids: Iterable[str]) -> None:
        """What target group ``arn`` holds; the set is shared with every other target group holding
        the same instances (:func:`providers.aws.deploy.target_sets.shared`)."""
        self.targets[arn] = shared(instance_ids)


@dataclass(frozen=True)
class Deployed:
    """What an ensure made: the NLB's DNS name and ARN, and the changes AWS cannot make."""

    dns_name: str
    lb_arn: str
    # (reason, message) of Warning events, said by the ensure that met them
    notices: tuple[tuple[str, str], ...] = ()


# Tags an ensure writes on its own (not from the spec) and never takes off again
KEPT_TAGS = (model.SPEC_HASH_TAG, model.ADOPTED_AS_TAG, model.ADOPTED_FROM_TAG)


def without_own(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags to compare across parts: without the spec hash, the adoption marks and the resource id."""
    return {k: v for k, v in tags.items() if k not in (*KEPT_TAGS, model.RESOURCE_TAG)}


def tag_list(tags: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags]


def tag_changes(have: Mapping[str, str], want: Mapping[str, str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(keys to remove, tags to add or change) to go from ``have`` to ``want``.

    Never removes AWS's own ``aws:`` tags, nor the spec hash (written separately, last), nor the marks
    of a part taken over from the upstream provider.
    """
    stale = [k for k in have if k not in want and k not in KEPT_TAGS and not k.startswith("aws:")]
    changed = [(k, v) for k, v in want.items() if have.get(k) != v]
    return stale, changed


def chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

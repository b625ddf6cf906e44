"""Which kind of load balancer a Service gets on AWS: an NLB or a Classic ELB.

Decided in one place, without an AWS call, because every path (ensure, node sync, delete, the bulk
drift check, ``ccm migrate``, the unsupported-annotation warning) must agree on it:

1. ``aws-load-balancer-type`` says so: ``nlb``, or ``classic``/``clb``/``elb`` (any case);
2. without it, a Service that already has a load balancer keeps its kind, read from its status
   hostname with upstream's own rule: a hostname ending in ``.elb.amazonaws.com`` is a Classic ELB's
   (kubernetes/cloud-provider-aws v1.37.1 ``pkg/providers/v1/aws_validations.go``; AWS names a Classic
   ELB ``<name>-<id>.<region>.elb.amazonaws.com`` and an NLB ``<name>-<id>.elb.<region>.amazonaws.com``,
   the ``.cn`` partition adds ``.cn`` to both). So the cloud config's default can change, and the
   upstream provider's Classic ELBs can be taken over, without a live Service changing kind (its
   address would change);
3. otherwise the cloud config's ``DefaultLoadBalancerType`` (``nlb`` unless set).

A Service that accepts a new address in place of upstream's (``replacing``) is a new load balancer:
rule 2 does not apply to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from providers.aws import annotations as ann
from providers.aws.build.common import CLASSIC_TYPES
from providers.aws.config import AWSConfig

CLASSIC_HOST_SUFFIXES = (".elb.amazonaws.com", ".elb.amazonaws.com.cn")
ELB_HOST_MARKERS = (".elb.", "elb.amazonaws.com")


def is_classic_hostname(hostname: str) -> bool:
    """Whether an ELB hostname is a Classic ELB's (upstream's suffix rule)."""
    return hostname.lower().rstrip(".").endswith(CLASSIC_HOST_SUFFIXES)


def served_kind(status_addresses: Sequence[str]) -> str:
    """``classic``, ``nlb`` or '' (no ELB hostname in the Service's status)."""
    for address in status_addresses:
        host = address.lower()
        if any(marker in host for marker in ELB_HOST_MARKERS):
            return "classic" if is_classic_hostname(host) else "nlb"
    return ""


def wants_classic(
    *,
    annotations: Mapping[str, str],
    config: AWSConfig,
    status_addresses: Sequence[str] = (),
    replacing: bool = False,
) -> bool:
    """Whether the Service's load balancer is a Classic ELB (see the module docstring)."""
    value = ann.text(annotations=annotations, key=ann.TYPE)
    if value is not None:
        return value.lower() in CLASSIC_TYPES
    served = "" if replacing else served_kind(status_addresses)
    return (served or config.default_load_balancer_type) == "classic"

"""Every Service annotation (and load-balancer class) the GCP provider reads, in one declarative registry.

Why a registry: upstream's GCE provider reads its annotations in half a dozen files, with different
rules for unset, blank and unknown values (an unknown load-balancer type silently gives an external,
internet-facing LB; ``allow-global-access: "True"`` silently means false). Here each annotation is
declared once (key, meaning, accepted values, default, whether it is honoured), the reference table in
docs/gcp-annotations.md is rendered from the same data (:func:`reference_markdown`), and a malformed value
raises :class:`~ccm.cloudprovider.InvalidSpec` naming the key, the raw value and what would be accepted.

The keys and values are upstream's (``networking.gke.io/*``, ``cloud.google.com/*``), so a Service
written for GKE or the upstream cloud-provider-gcp works unchanged; where we are stricter (unknown
values and options of the other LB scheme are errors rather than ignored) the description says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ccm.cloudprovider import SOURCE_RANGES_ANNOTATION, InvalidSpec
from providers.annotation_registry import ELSEWHERE, HONOURED, IGNORED, Registry, Support, text
from providers.annotation_registry import Annotation as _Annotation

__all__ = ["ELSEWHERE", "HONOURED", "IGNORED", "Support", "text"]  # re-exported for the builder and tests

# -- keys ---------------------------------------------------------------------------------------------

LOAD_BALANCER_TYPE: Final = "networking.gke.io/load-balancer-type"
DEPRECATED_LOAD_BALANCER_TYPE: Final = "cloud.google.com/load-balancer-type"
NETWORK_TIER: Final = "cloud.google.com/network-tier"
INTERNAL_SUBNET: Final = "networking.gke.io/internal-load-balancer-subnet"
ALLOW_GLOBAL_ACCESS: Final = "networking.gke.io/internal-load-balancer-allow-global-access"
SOURCE_RANGES: Final = SOURCE_RANGES_ANNOTATION
L4_RBS: Final = "cloud.google.com/l4-rbs"
BACKEND_SHARE: Final = "alpha.cloud.google.com/load-balancer-backend-share"

# -- values shared by the registry and the builder ----------------------------------------------------

TYPE_INTERNAL: Final = ("Internal", "internal")  # upstream's value and its deprecated lower-case spelling
TYPE_EXTERNAL: Final = ("External", "external")
TIER_PREMIUM: Final = "Premium"
TIER_STANDARD: Final = "Standard"
TIERS: Final = (TIER_PREMIUM, TIER_STANDARD)
RBS_ENABLED: Final = "enabled"

# spec.loadBalancerClass values that choose the scheme (upstream's legacy classes). Which classes reach the
# provider at all is the controller's choice (--load-balancer-class).
CLASS_EXTERNAL: Final = "networking.gke.io/l4-regional-external-legacy"
CLASS_INTERNAL: Final = "networking.gke.io/l4-regional-internal-legacy"
LOAD_BALANCER_CLASSES: Final = (CLASS_EXTERNAL, CLASS_INTERNAL)


Annotation = _Annotation


REGISTRY: Final[tuple[Annotation, ...]] = (
    Annotation(
        key=LOAD_BALANCER_TYPE,
        description=(
            "`Internal` builds an internal passthrough load balancer (scheme INTERNAL, an address in the "
            "VPC); `External` or unset an external one. Unlike upstream, any other value is an error "
            "instead of a silent, internet-facing external LB. Conflicts with a legacy "
            "`spec.loadBalancerClass` of the other scheme are errors too."
        ),
        accepted=f"{' or '.join(TYPE_INTERNAL)}; {' or '.join(TYPE_EXTERNAL)}",
        default="External",
    ),
    Annotation(
        key=DEPRECATED_LOAD_BALANCER_TYPE,
        description=(
            f"Deprecated spelling of `{LOAD_BALANCER_TYPE}`, same values; read only when that key is unset."
        ),
        accepted=f"{' or '.join(TYPE_INTERNAL)}; {' or '.join(TYPE_EXTERNAL)}",
        default="External",
    ),
    Annotation(
        key=NETWORK_TIER,
        description=(
            "Network tier of an external LB's forwarding rule (and of a reserved `spec.loadBalancerIP`, "
            "which must have the same tier). External LBs only: an error on an internal one."
        ),
        accepted=" or ".join(TIERS),
        default=TIER_PREMIUM,
    ),
    Annotation(
        key=INTERNAL_SUBNET,
        description=(
            "Subnetwork (of the cluster's network and region) the internal LB's address comes from. "
            "Internal LBs only: an error on an external one."
        ),
        accepted="a subnetwork name (lower-case letters, digits and hyphens, at most 63)",
        default="subnetwork-name of the cloud config",
    ),
    Annotation(
        key=ALLOW_GLOBAL_ACCESS,
        description=(
            "Clients in every region of the VPC may reach the internal LB (`allowGlobalAccess`). Only the "
            'exact words are accepted: upstream silently treats "True" or "yes" as false. '
            "Internal LBs only: an error on an external one."
        ),
        accepted="true or false",
        default="false",
    ),
    Annotation(
        key=SOURCE_RANGES,
        description=(
            "Client CIDRs allowed by the traffic firewall rule, when `spec.loadBalancerSourceRanges` is "
            "empty. IPv4 only: IPv6 ranges are an error on an IPv4 Service, and ignored on a dual-stack "
            "one, whose IPv6 frontend is not built (GCE IPv6 passthrough LBs are not supported yet)."
        ),
        accepted="comma-separated IPv4 CIDRs",
        default="0.0.0.0/0",
    ),
    Annotation(
        key=L4_RBS,
        description=(
            "`enabled` hands the Service to GKE's own L4 controller (the RBS NetLB): this controller "
            "skips it. Any other value is ignored, as upstream."
        ),
        accepted=RBS_ENABLED,
        default="handled here",
        support=ELSEWHERE,
    ),
    Annotation(
        key=BACKEND_SHARE,
        description=(
            "Upstream shares one backend service between internal LBs with this annotation. Accepted and "
            "ignored: here every LB has its own backend service, and the per-zone instance groups are "
            "always shared by all of the cluster's LBs."
        ),
        accepted="anything",
        default="-",
        support=IGNORED,
    ),
)

_TABLE: Final = Registry(REGISTRY)
BY_KEY: Final[Mapping[str, Annotation]] = _TABLE.by_key


def lookup(*, key: str) -> Annotation:
    """The registry entry of ``key`` (KeyError for an annotation the provider does not know)."""
    return BY_KEY[key]


# The load-balancer annotation namespaces of GKE and upstream's GCE provider (issue 11 §3). Others, such as
# ``cloud.google.com/neg`` (ingress-gce's) or ``cloud.google.com/backend-config``, are not ours to judge.
LOAD_BALANCER_PREFIXES: Final = (
    "networking.gke.io/load-balancer-",
    "networking.gke.io/internal-load-balancer-",
    "cloud.google.com/load-balancer-",
    "alpha.cloud.google.com/load-balancer-",
)
LOAD_BALANCER_KEYS: Final = (NETWORK_TIER, L4_RBS)


def unsupported(*, annotations: Mapping[str, str]) -> tuple[str, ...]:
    """Load-balancer keys this provider does not implement: unknown to the registry, or ignored."""
    return _TABLE.unsupported(
        annotations=annotations, prefixes=LOAD_BALANCER_PREFIXES, keys=LOAD_BALANCER_KEYS
    )


# -- the docs table -----------------------------------------------------------------------------------


def reference_markdown() -> str:
    """The annotation reference as a Markdown table, rendered from :data:`REGISTRY`, then the classes."""
    return _TABLE.markdown(
        footer=f"`spec.loadBalancerClass`: `{CLASS_EXTERNAL}` builds an external LB and "
        f"`{CLASS_INTERNAL}` an internal one; otherwise (no class, or the class given to "
        "`--load-balancer-class`) the type annotation decides."
    )


# -- parsing helpers ----------------------------------------------------------------------------------


def invalid(*, key: str, value: object, reason: str, accepted: str | None = None) -> InvalidSpec:
    """An :class:`InvalidSpec` for annotation ``key``; ``accepted`` defaults to the registry's text."""
    return _TABLE.invalid(key=key, value=value, reason=reason, accepted=accepted)


def parse_bool(*, annotations: Mapping[str, str], key: str) -> bool | None:
    """Exactly ``true`` or ``false`` (upstream compares with ``"true"``); None when unset."""
    value = text(annotations=annotations, key=key)
    if value is None:
        return None
    if value in ("true", "false"):
        return value == "true"
    raise invalid(key=key, value=annotations[key], reason="not a boolean")

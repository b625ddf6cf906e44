"""The contract between the controller (``ccm``) and the cloud providers (``providers``).

It mirrors the ``LoadBalancer`` interface of upstream ``k8s.io/cloud-provider`` (``cloud.go``) in
snake_case, with one difference that makes providers testable without Kubernetes: they receive a
plain, frozen :class:`LoadBalancerRequest` instead of the Service and Node objects. This module is
the only part of ``ccm`` a provider may import (an import-linter contract enforces it).

Providers are found through the ``ccm.providers`` entry points; each names a factory
``new(*, cluster_name: str, cloud_config: str | None, load_balancer_class: str = "",
orphan_grace_seconds: float = 600.0) -> LoadBalancer``.

``load_balancer_class`` is the controller instance's *scope* ('' for the default instance, which
serves the Services without a class): a provider marks what it creates with it and lists, changes
and deletes only resources of its own scope, so several instances share one cluster and one cloud
account. Resources without a scope marker (made before scopes existed) belong to the default scope.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Protocol, runtime_checkable

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ccm.providers"
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"


# -- errors -------------------------------------------------------------------------------------


class ImplementedElsewhere(Exception):
    """Another controller builds this kind of load balancer.

    ``ensure_load_balancer`` and ``update_load_balancer`` raise it for a Service they leave to
    someone else (for example ``aws-load-balancer-type: external``). The controller then keeps its
    finalizer but writes no status. ``ensure_load_balancer_deleted`` must never raise it: a type
    change or a migration still has to tear down what we built.
    """


class RetryAfter(Exception):
    """Come back after a fixed delay instead of exponential backoff (upstream ``api.RetryError``).

    For states that are expected to resolve by themselves (a load balancer still provisioning, an
    address still being released). The controller requeues the Service after ``seconds`` without
    counting a failure.
    """

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class InvalidSpec(Exception):
    """The Service asks for something that cannot be built; retrying will not help.

    ``field`` names what is wrong (an annotation key or a spec path such as ``spec.ports[1].protocol``),
    ``value`` is what the user wrote and ``accepted`` says what would be valid. The controller shows
    the message as a Warning event and a status condition, and retries only at the maximum backoff.
    A provider raises it before creating anything.
    """

    def __init__(self, *, field: str, value: object, accepted: str, reason: str = "") -> None:
        self.field = field
        self.value = value
        self.accepted = accepted
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"invalid {field}={value!r}{detail}; accepted: {accepted}")


REPLACE_FOREIGN_ANNOTATION = "ccm-lb.io/replace-foreign-load-balancer"


@dataclass(frozen=True)
class ForeignPart:
    """One resource another controller (the upstream cloud provider) made for a Service."""

    kind: str  # what it is, in the cloud's words: "NLB", "Classic ELB", "target group", "forwarding rule"
    name: str  # its name or ID, as the console shows it
    detail: str = ""  # what a reviewer needs (its DNS name or IP, the rule it is)


class ForeignLoadBalancer(Exception):
    """The Service's address is served by a load balancer another controller built, and this provider
    does not take it over; a load balancer of ours would give the Service a new address, which it did
    not ask for (the trust contract: never change an address unless the Service asked).

    ``ensure_load_balancer`` raises it before creating anything. The controller leaves the status as it
    is (the address keeps working), records a Warning ``ForeignLoadBalancer`` naming the load balancer
    and the way out, and retries only at the maximum backoff. The Service asks for the new address
    with the annotation :data:`REPLACE_FOREIGN_ANNOTATION` ``: "true"``; the provider then builds its
    own load balancer and deletes the foreign one once its own is complete.
    """

    def __init__(self, *, address: str, parts: Sequence[ForeignPart], reason: str = "") -> None:
        self.address = address
        self.parts = tuple(parts)
        self.reason = reason
        serving = parts[0] if parts else ForeignPart(kind="load balancer", name="?")
        why = f": {reason}" if reason else ""
        super().__init__(
            f"the Service's address {address} is served by {serving.kind} {serving.name}, which another "
            f"controller (the upstream cloud provider) built and this controller cannot take over{why}; "
            "making a load balancer of its own would change the address, so nothing was created. To "
            f'accept a new address, annotate the Service {REPLACE_FOREIGN_ANNOTATION}: "true" (the old '
            "load balancer is deleted once the new one is ready); to keep it, keep the upstream "
            "controller serving this Service (or give this one a --load-balancer-class)"
        )


def asks_replace_foreign(annotations: Mapping[str, str]) -> bool:
    """Whether the Service accepts a new address in place of a foreign load balancer's.

    Raises :class:`InvalidSpec` for a value that is neither ``"true"`` nor ``"false"``.
    """
    raw = annotations.get(REPLACE_FOREIGN_ANNOTATION)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise InvalidSpec(
            field=f"annotation {REPLACE_FOREIGN_ANNOTATION}", value=raw, accepted='"true" or "false"'
        )
    return value == "true"


# -- plain data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePort:
    """One entry of ``spec.ports``; ``node_port`` is 0 when the apiserver allocated none."""

    name: str
    protocol: str
    port: int
    node_port: int
    target_port: int | str | None = None
    app_protocol: str | None = None


@dataclass(frozen=True)
class NodeAddress:
    type: str
    address: str


@dataclass(frozen=True)
class Node:
    """A node that should receive traffic. ``provider_id`` is ``spec.providerID`` ('' if unset)."""

    name: str
    provider_id: str
    zone: str = ""
    addresses: tuple[NodeAddress, ...] = ()
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class LoadBalancerRequest:
    """Everything a provider may look at, frozen. Built by the controller from a Service and Nodes."""

    cluster_name: str
    namespace: str
    name: str
    uid: str
    ports: tuple[ServicePort, ...]
    nodes: tuple[Node, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    load_balancer_source_ranges: tuple[str, ...] = ()
    external_traffic_policy: str = "Cluster"
    health_check_node_port: int = 0
    session_affinity: str = "None"
    session_affinity_timeout_seconds: int | None = None
    load_balancer_ip: str = ""
    ip_families: tuple[str, ...] = ("IPv4",)
    ip_family_policy: str = "SingleStack"
    load_balancer_class: str | None = None
    allocate_load_balancer_node_ports: bool = True
    # status.loadBalancer.ingress as the Service has it (hostnames and IPs): evidence that a load
    # balancer was made, for a provider whose listing of it may lag (AWS's tagging API); not part of
    # what is asked for, so not compared
    status_addresses: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """``namespace/name``, the controller's work-queue key."""
        return f"{self.namespace}/{self.name}"

    def with_nodes(self, nodes: Sequence[Node]) -> LoadBalancerRequest:
        """The same request for another node set (what a node sync passes to update)."""
        return dataclasses.replace(self, nodes=tuple(nodes))


@dataclass(frozen=True)
class PortStatus:
    port: int
    protocol: str
    error: str | None = None


@dataclass(frozen=True)
class IngressPoint:
    """One ``status.loadBalancer.ingress`` entry: an ``ip`` or a ``hostname`` (or both)."""

    ip: str = ""
    hostname: str = ""
    ip_mode: str = ""
    ports: tuple[PortStatus, ...] = ()


@dataclass(frozen=True)
class ProviderEvent:
    """Something a provider did that the Service's owner must hear of: a Warning event on the Service.

    Upstream providers hold an event recorder of their own; ours see no Service, so they return the
    event with the status and the controller records it, once, on the sync that made the change. For
    example the GCP provider's ``LoadBalancerIPChanged`` when external ↔ internal needs a new address.
    """

    reason: str  # CamelCase, like upstream reasons
    message: str


@dataclass(frozen=True)
class LoadBalancerStatus:
    """What the controller writes to ``status.loadBalancer``; ``events`` are recorded, not written."""

    ingress: tuple[IngressPoint, ...] = ()
    events: tuple[ProviderEvent, ...] = field(default=(), compare=False)


# -- the provider interface ---------------------------------------------------------------------


@runtime_checkable
class LoadBalancer(Protocol):
    """A cloud's load balancers (upstream ``cloudprovider.LoadBalancer``).

    Every method may be called concurrently for different Services; the controller never runs two
    calls for the same Service at once. Requests are read-only. All methods are idempotent.
    """

    def get_load_balancer_name(self, *, request: LoadBalancerRequest) -> str:
        """The name of the load balancer; stable for a Service's lifetime and unique per cluster."""
        ...

    def get_load_balancer(self, *, request: LoadBalancerRequest) -> tuple[LoadBalancerStatus | None, bool]:
        """``(status, True)`` if the load balancer exists, ``(None, False)`` if it does not.

        Absence is not an error. An error means the state is unknown.
        """
        ...

    def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
        """Create or update the load balancer to match the request and return its status.

        Raises :class:`InvalidSpec` (before creating anything) for what the user must fix,
        :class:`RetryAfter` to be called again after a fixed delay, :class:`ImplementedElsewhere`
        when another controller owns this kind of LB. Must never return ``None``.
        """
        ...

    def update_load_balancer(self, *, request: LoadBalancerRequest) -> None:
        """Bring the load balancer's backends to ``request.nodes``; change nothing else.

        Called by the node sync when a Service's host set changed. May raise
        :class:`ImplementedElsewhere`.
        """
        ...

    def ensure_load_balancer_deleted(self, *, request: LoadBalancerRequest) -> None:
        """Delete every part of the load balancer; succeed when nothing (or only part) exists.

        Must not raise :class:`ImplementedElsewhere`. Must never delete what this cluster does not own,
        nor what another instance scope (``load_balancer_class``) owns.
        """
        ...


@runtime_checkable
class DriftChecker(Protocol):
    """Optional: a cheap bulk check that a provider offers for the periodic resync.

    ``requests`` is every Service that currently wants a load balancer of this instance (the
    controller's caches are synced when it calls). The provider returns the keys whose load balancer
    is missing or differs from what the request would build; the controller fully re-ensures only
    those. A request the provider cannot build (:class:`InvalidSpec`, :class:`ImplementedElsewhere`,
    or anything unexpected, which it logs) is returned too, so the full ensure reports it; its
    resources are kept as they are.

    ``live_uids`` is the UID of *every* Service in the cluster: any type, any class, valid or not.
    The provider may delete a resource of its own scope (the orphan sweep) only when the Service UID
    it carries is not in ``live_uids`` and it has been an orphan for the grace period. A Service
    that still exists is never swept: if it no longer wants a load balancer the controller's delete
    path handles it, if its spec is invalid it keeps what it has. ``None`` means the caller cannot
    say which Services exist: nothing is swept. Without this method the controller re-ensures every
    Service.
    """

    def drifted_load_balancers(
        self, *, requests: Sequence[LoadBalancerRequest], live_uids: frozenset[str] | None = None
    ) -> frozenset[str]: ...


@dataclass(frozen=True)
class MigrationPlan:
    """What this provider would do with one Service's load balancer, and what of another controller's
    it would delete; ``ccm migrate`` prints it for review. Reading it changes nothing.

    ``action`` is one of:

    * ``keep``: the load balancer is this controller's already; nothing changes;
    * ``adopt``: another controller's load balancer serves the Service's address and is taken over in
      place (its address stays); ``foreign`` lists what is taken over;
    * ``create``: nothing serves the Service; a new load balancer (and address) is made;
    * ``refuse``: a foreign load balancer serves the Service's address; the controller leaves it alone
      and says so in a ``ForeignLoadBalancer`` event (see :class:`ForeignLoadBalancer`);
    * ``replace``: the Service accepts a new address (:data:`REPLACE_FOREIGN_ANNOTATION`); a new load
      balancer is made, then the foreign one and its parts (``foreign``) are deleted;
    * ``invalid``: the Service's spec cannot be built (``reason`` says why); nothing is made;
    * ``elsewhere``: another controller builds this kind of load balancer (:class:`ImplementedElsewhere`).
    """

    action: str
    address: str  # the address the Service has today ('' if none)
    address_changes: bool  # whether clients would have to move to a new address
    foreign: tuple[ForeignPart, ...] = ()  # the other controller's parts found for the Service
    reason: str = ""


@runtime_checkable
class MigrationPlanner(Protocol):
    """Optional: read-only, what :meth:`LoadBalancer.ensure_load_balancer` would do to a Service.

    It reads the cloud (the Service's own resources, and the other controller's found by their
    deterministic names) and never changes it.
    """

    def plan_migration(self, *, request: LoadBalancerRequest) -> MigrationPlan: ...


UNSUPPORTED_ANNOTATION_REASON = "UnsupportedAnnotation"


@runtime_checkable
class AnnotationChecker(Protocol):
    """Optional: which load-balancer annotations on a Service the provider does not implement.

    Pure (no cloud call). The keys are the provider's own load-balancer namespace only (for AWS
    ``service.beta.kubernetes.io/aws-load-balancer-*``), never annotations meant for other
    controllers. The controller names them in a Warning ``UnsupportedAnnotation`` event and in the
    ``LoadBalancerSynced`` condition, once per change of the set, so nothing a user writes for the
    load balancer is ignored silently. ``status_addresses`` are the Service's status addresses (what
    serves it decides, on AWS, whether settings of one kind of load balancer apply).
    """

    def unsupported_annotations(
        self, *, annotations: Mapping[str, str], status_addresses: Sequence[str] = ()
    ) -> tuple[str, ...]: ...


ProviderFactory = Callable[..., LoadBalancer]


class UnknownProvider(LookupError):
    """``--cloud-provider`` names no installed provider."""


def provider_names() -> list[str]:
    """Names of the installed providers (entry points in the ``ccm.providers`` group)."""
    return sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))


DEFAULT_ORPHAN_GRACE_SECONDS = 600.0


def load_provider(
    *,
    name: str,
    cluster_name: str,
    cloud_config: str | None,
    load_balancer_class: str = "",
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
) -> LoadBalancer:
    """Build the provider called ``name`` through its entry point, for one instance scope."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            factory: ProviderFactory = ep.load()
            return factory(
                cluster_name=cluster_name,
                cloud_config=cloud_config,
                load_balancer_class=load_balancer_class,
                orphan_grace_seconds=orphan_grace_seconds,
            )
    raise UnknownProvider(
        f"--cloud-provider={name!r} is not installed; accepted: {', '.join(provider_names()) or '(none)'}"
    )


# -- helpers providers share --------------------------------------------------------------------


def scope_digest(load_balancer_class: str) -> str:
    """A short, stable stand-in for a scope where the cloud allows only a few characters.

    GCE label values take ``[a-z0-9_-]`` up to 63 characters, a class does not fit; 16 hex digits of
    its SHA-256 do, and tell the classes of one cluster apart. '' for the default scope.
    """
    if not load_balancer_class:
        return ""
    return hashlib.sha256(load_balancer_class.encode()).hexdigest()[:16]


def build_failure_is_expected(exc: BaseException) -> bool:
    """Whether a failed build during the drift check is the user's (reported by the full ensure).

    Anything else is a bug or an outage the provider must log; either way the Service's resources
    are kept, never swept.
    """
    return isinstance(exc, InvalidSpec | ImplementedElsewhere)


def source_ranges(request: LoadBalancerRequest) -> tuple[str, ...]:
    """``spec.loadBalancerSourceRanges``, else the annotation, else allow-all (upstream semantics).

    Allow-all covers each IP family the Service uses (upstream forgets IPv6). Raises
    :class:`InvalidSpec` for a value that is not a CIDR.
    """
    if request.load_balancer_source_ranges:
        where, raw = "spec.loadBalancerSourceRanges", list(request.load_balancer_source_ranges)
    elif request.annotations.get(SOURCE_RANGES_ANNOTATION, "").strip():
        where = f"annotation {SOURCE_RANGES_ANNOTATION}"
        raw = [part for part in request.annotations[SOURCE_RANGES_ANNOTATION].split(",")]
    else:
        families = request.ip_families or ("IPv4",)
        return tuple(("0.0.0.0/0" if fam == "IPv4" else "::/0") for fam in families)
    cidrs: list[str] = []
    for part in raw:
        value = part.strip()
        try:
            cidrs.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise InvalidSpec(
                field=where,
                value=value,
                accepted="CIDRs such as 203.0.113.0/24 or 2001:db8::/32",
                reason="not a CIDR",
            ) from None
    return tuple(dict.fromkeys(cidrs))

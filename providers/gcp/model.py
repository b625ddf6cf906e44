"""The desired GCE resources of one Service (and the cluster's shared ones), as plain frozen data.

A passthrough L4 load balancer on a regional backend service (not target pools: those need the legacy
HTTP health checks that google-cloud-compute has no client for):

* per cluster, shared by every LB: one unmanaged instance group per zone, the node health check
  (kube-proxy ``10256/healthz``, for ``externalTrafficPolicy: Cluster``) and its firewall;
* per Service: a regional backend service, a forwarding rule, a traffic firewall, and for
  ``externalTrafficPolicy: Local`` a health check on ``healthCheckNodePort`` with its firewall.

GCE resources have no tags; ownership lives in labels where the resource has them (forwarding rules,
addresses) and otherwise in the upstream-style JSON ``description``. :func:`description` writes it,
:func:`parse_description` reads it back before anything is changed or deleted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from providers.common.spec_hash import digest

SERVICE_NAME_KEY = "kubernetes.io/service-name"
CLUSTER_KEY = "ccm-lb/cluster"
SERVICE_UID_KEY = "ccm-lb/service-uid"
SPEC_HASH_KEY = "ccm-lb/spec-hash"
# The controller instance's scope (its --load-balancer-class), on the per-Service resources a classed
# instance makes: the class itself in the description, a digest of it in a label (label values allow
# only [a-z0-9_-]). Absent for the default instance, so resources made before scopes existed stay its.
SCOPE_KEY = "ccm-lb/scope"
SCOPE_LABEL = "ccm-lb-scope"  # label keys: lower case letters, digits, - and _ only
CLUSTER_LABEL = "ccm-lb-cluster"
SERVICE_UID_LABEL = "ccm-lb-service-uid"
SPEC_HASH_LABEL = "ccm-lb-spec-hash"

# Google's health-check probe ranges for passthrough load balancers.
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22", "130.211.0.0/22")
NODE_HEALTH_CHECK_PORT = 10256
NODE_HEALTH_CHECK_PATH = "/healthz"


def description(
    *, cluster: str, service: str = "", uid: str = "", spec_hash: str = "", scope: str = ""
) -> str:
    """The ownership marker for resources without labels (upstream's JSON, plus our keys)."""
    data = {CLUSTER_KEY: cluster}
    if scope:
        data[SCOPE_KEY] = scope
    if service:
        data[SERVICE_NAME_KEY] = service
    if uid:
        data[SERVICE_UID_KEY] = uid
    if spec_hash:
        data[SPEC_HASH_KEY] = spec_hash
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def parse_description(text: str | None) -> dict[str, str]:
    """The marker of a resource ({} for anything that is not one of ours)."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


@dataclass(frozen=True)
class HealthCheck:
    """A regional HTTP health check (``regions/R/healthChecks``)."""

    name: str
    port: int
    path: str
    check_interval_sec: int = 8
    timeout_sec: int = 1
    healthy_threshold: int = 1
    unhealthy_threshold: int = 3
    shared: bool = False  # the cluster's node health check, used by every eTP=Cluster LB


@dataclass(frozen=True)
class Firewall:
    """An ingress allow rule to the nodes (by target tags)."""

    name: str
    protocol_ports: tuple[tuple[str, tuple[str, ...]], ...]  # (("tcp", ("80", "443")), ("udp", ("53",)))
    source_ranges: tuple[str, ...]
    target_tags: tuple[str, ...]
    destination_ranges: tuple[str, ...] = ()  # the LB's IP, once known (filled by the deployer)
    priority: int = 1000
    shared: bool = False


@dataclass(frozen=True)
class BackendService:
    """Regional backend service with the zones' instance groups as backends."""

    name: str
    scheme: str  # EXTERNAL | INTERNAL
    protocol: str  # TCP | UDP
    health_check: str  # name of the HealthCheck
    session_affinity: str  # NONE | CLIENT_IP
    zones: tuple[str, ...]  # zones whose instance group is a backend
    connection_draining_timeout_sec: int = 0


@dataclass(frozen=True)
class ForwardingRule:
    name: str
    scheme: str  # EXTERNAL | INTERNAL
    protocol: str  # TCP | UDP
    ports: tuple[int, ...]  # ≤ 5 listed; more → all_ports
    all_ports: bool
    backend_service: str
    ip_address: str = ""  # spec.loadBalancerIP (a reserved address), or "" for ephemeral
    network_tier: str = ""  # PREMIUM | STANDARD, external only
    subnetwork: str = ""  # internal only (a name; the deployer makes the URL)
    allow_global_access: bool = False  # internal only
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Stack:
    """Everything one Service needs, plus what it expects of the cluster's shared parts."""

    name: str  # the load balancer's base name (≤ 63, leading letter)
    scheme: str  # EXTERNAL | INTERNAL
    forwarding_rule: ForwardingRule
    backend_service: BackendService
    health_check: HealthCheck  # the per-LB one (Local) or the shared node check (Cluster)
    firewalls: tuple[Firewall, ...]  # traffic, and the health-check one (shared or per LB)
    instances: tuple[tuple[str, str], ...] = ()  # (zone, instance name) of the targets; not in the spec

    def spec_hash(self) -> str:
        data = asdict(self)
        data.pop("instances", None)
        return digest(data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClusterNetwork:
    """What the builder needs to know of the project (from the cloud config)."""

    project: str
    region: str
    network: str  # network name
    network_project: str  # shared VPC host project, or the project
    subnetwork: str  # default subnetwork for internal LBs
    node_tags: tuple[str, ...]
    cluster_id: str  # a short id for shared resource names (derived from the cluster name)
    # The upstream GCP provider's (cloud config upstream-cluster-id): the cluster's instance groups are
    # then upstream's k8s-ig--<id>, as a node can be in one load-balanced instance group only.
    upstream_cluster_id: str = ""

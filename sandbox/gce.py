"""A fake GCE project for the sandbox: :class:`fakegce.FakeCompute` in this process, seeded like a cluster's.

The controller runs as its own process and reaches the fake exactly as it reaches Compute Engine, through
the ``api-endpoint`` of its ``gce.conf`` (``token-url = nil``: anonymous requests); nothing in it knows
that the cloud is fake. The seed is what the GCP provider is configured with in a real project: a network,
a subnetwork in the region (for internal load balancers), and tagged instances in two zones for the Nodes
to point at. The sandbox reads back what the controller built from the fake's state, for its tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fakegce import FakeCompute
from sandbox.cloud import Machine, Seeded, without_prefixes
from sandbox.report import section, table

PROJECT = "sandbox-project"
REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b")
NETWORK = "sandbox-network"
SUBNETWORK = "sandbox-nodes"
SUBNETWORK_CIDR = "10.128.0.0/20"
NODE_TAG = "sandbox-node"
MACHINE_TYPE = "e2-standard-2"  # what the fake gives every instance
SERVICE_NAME_KEY = "kubernetes.io/service-name"  # in the provider's JSON description; read for display only
# The user's Google settings are not passed on: the gce.conf says where the API is and that no token is sent.
USER_SETTINGS = ("GOOGLE_", "CLOUDSDK_", "GCE_")


def _name(link: str) -> str:
    return link.rsplit("/", 1)[-1]


def _zonal(link: str) -> str:
    """``zone/name`` of a zonal resource's link."""
    parts = link.rsplit("/", 3)
    return f"{parts[-3]}/{parts[-1]}"


def _service(resource: Mapping[str, Any]) -> str:
    try:
        owner = json.loads(resource.get("description") or "")
    except ValueError:
        owner = None
    return str(owner.get(SERVICE_NAME_KEY) or "(shared)") if isinstance(owner, dict) else "-"


def _ports(protocol: str, rule: Mapping[str, Any]) -> str:
    if rule.get("allPorts"):
        return f"{protocol}:all"
    ports = list(rule.get("ports") or ([rule["portRange"]] if rule.get("portRange") else []))
    return f"{protocol}:{','.join(ports)}" if ports else protocol


def _allowed(rules: Iterable[Mapping[str, Any]]) -> str:
    return "; ".join(_ports(str(rule.get("IPProtocol", "")).lower(), rule) for rule in rules) or "-"


def _check(hc: Mapping[str, Any]) -> str:
    kind = str(hc.get("type", ""))
    spec = hc.get(f"{kind.lower()}HealthCheck") or {}
    return f"{kind}:{spec.get('port', '')}{spec.get('requestPath', '')}"


class GceCloud:
    """The :class:`sandbox.cloud.Cloud` of ``--cloud-provider=gce``: the fake Compute Engine API."""

    label = "GCE"
    server = "the fake Compute Engine API"
    provider = "gce"
    provider_id_scheme = "gce://"
    address_kind = "IP"
    load_balancers = "forwarding rules"
    port_flag = ""  # the fake always takes a free port

    def __init__(self, *, cluster: str) -> None:
        self.cluster = cluster
        self.fake = FakeCompute(project=PROJECT, region=REGION, zones=ZONES)

    @property
    def endpoint(self) -> str:
        return self.fake.url

    def start(self) -> str:
        self.fake.start()
        return f"fake Compute Engine API listening on {self.endpoint} (project {PROJECT}, region {REGION})"

    def stop(self) -> None:
        self.fake.stop()

    def seed(self, *, nodes: int) -> Seeded:
        self.fake.seed_network(NETWORK)
        self.fake.seed_subnetwork(SUBNETWORK, NETWORK, SUBNETWORK_CIDR)
        machines = []
        for index in range(nodes):
            zone, name = ZONES[index % len(ZONES)], f"{self.cluster}-node-{index}"
            made = self.fake.seed_instance(
                zone, name, tags=(NODE_TAG,), network=NETWORK, subnetwork=SUBNETWORK
            )
            machines.append(
                Machine(
                    node_name=name,
                    provider_id=f"gce://{PROJECT}/{zone}/{name}",
                    region=REGION,
                    zone=zone,
                    private_ip=made["networkInterfaces"][0]["networkIP"],
                    instance_type=MACHINE_TYPE,
                )
            )
        return Seeded(
            machines=tuple(machines),
            summary=f"seeded network {NETWORK}, subnetwork {SUBNETWORK} ({SUBNETWORK_CIDR}, for internal "
            f"load balancers), {len(machines)} instances tagged {NODE_TAG} in {' and '.join(ZONES)}",
        )

    def controller_args(self, *, workdir: Path) -> list[str]:
        conf = workdir / "gce.conf"
        conf.write_text(
            "[global]\n"
            f"project-id = {PROJECT}\n"
            f"region = {REGION}\n"
            f"network-name = {NETWORK}\n"
            f"subnetwork-name = {SUBNETWORK}\n"
            f"node-tags = {NODE_TAG}\n"
            f"api-endpoint = {self.endpoint}\n"
            "token-url = nil\n",
            encoding="utf-8",
        )
        return [f"--cloud-config={conf}"]

    def controller_env(self, *, base: Mapping[str, str]) -> dict[str, str]:
        return without_prefixes(base, *USER_SETTINGS)

    def render(self) -> str:
        """Forwarding rules, backend services, health checks, firewalls and instance groups, as tables."""
        fake = self.fake
        backends = fake.resources("backendServices")
        # A forwarding rule's description names no Service (its labels carry the Service's uid): the
        # Service is the one of its backend service.
        owners = {backend["name"]: _service(backend) for backend in backends}
        return section(
            f"GCE resources (fake Compute Engine API at {self.endpoint}, project {PROJECT}, region {REGION})",
            table(
                headers=("FORWARDING RULE", "SERVICE", "SCHEME", "IP", "PORTS", "BACKEND SERVICE"),
                rows=[
                    (
                        rule["name"],
                        owners.get(_name(rule.get("backendService", "")), _service(rule)),
                        rule.get("loadBalancingScheme", ""),
                        rule.get("IPAddress", ""),
                        _ports(rule.get("IPProtocol", ""), rule),
                        _name(rule.get("backendService", "")) or "-",
                    )
                    for rule in fake.resources("forwardingRules")
                ],
            ),
            table(
                headers=("BACKEND SERVICE", "SERVICE", "SCHEME", "PROTOCOL", "HEALTH CHECK", "BACKENDS"),
                rows=[
                    (
                        backend["name"],
                        _service(backend),
                        backend.get("loadBalancingScheme", ""),
                        backend.get("protocol", ""),
                        ",".join(_name(link) for link in backend.get("healthChecks", [])) or "-",
                        ",".join(_zonal(b["group"]) for b in backend.get("backends", [])) or "-",
                    )
                    for backend in backends
                ],
            ),
            table(
                headers=("HEALTH CHECK", "SERVICE", "CHECK"),
                rows=[(hc["name"], _service(hc), _check(hc)) for hc in fake.resources("healthChecks")],
            ),
            table(
                headers=("FIREWALL", "SERVICE", "ALLOW", "SOURCES", "TARGET TAGS"),
                rows=[
                    (
                        fw["name"],
                        _service(fw),
                        _allowed(fw.get("allowed", [])),
                        ",".join(fw.get("sourceRanges", [])) or "-",
                        ",".join(fw.get("targetTags", [])) or "-",
                    )
                    for fw in fake.resources("firewalls")
                ],
            ),
            table(
                headers=("INSTANCE GROUP", "ZONE", "MEMBERS", "INSTANCES"),
                rows=[self._group_row(group) for group in fake.resources("instanceGroups")],
            ),
        )

    def _group_row(self, group: Mapping[str, Any]) -> tuple[str, str, str, str]:
        zone = _name(group["zone"])
        members = sorted(_name(link) for link in self.fake.members(zone, group["name"]))
        return group["name"], zone, str(len(members)), ",".join(members) or "-"

    def footer(self) -> list[str]:
        base = f"{self.endpoint}/compute/v1/projects/{PROJECT}"
        return [
            f"GCE (fake Compute Engine API): {self.endpoint}",
            f"  curl {base}/regions/{REGION}/forwardingRules",
        ]


def new(*, cluster: str, port: int) -> GceCloud:
    """``port`` must be 0: the fake serves on a free port (``--aws-port`` is refused before this)."""
    assert port == 0, "the fake Compute Engine API takes a free port"
    return GceCloud(cluster=cluster)

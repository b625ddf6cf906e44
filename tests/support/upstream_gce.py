"""The load balancers the upstream GCP cloud provider builds, made on the fake exactly as upstream names
and shapes them, so the GCP provider's tests meet what a cluster moving off upstream's CCM has.

Sources (kubernetes/cloud-provider-gcp, ``providers/gce/``): ``gce_loadbalancer_naming.go`` (names and
descriptions), ``gce_loadbalancer_external.go`` (``ensureExternalLoadBalancer``: the transient address,
``createForwardingRule`` with a ``portRange`` and the target pool's URL, ``createTargetPoolAndHealthCheck``
with instances as ``/zones/Z/instances/N``, ``makeHTTPHealthCheck`` (8 s, 1 s, 1, 3),
``ensureHTTPHealthCheckFirewall``, the traffic firewall with ``destinationRanges=[VIP]``) and
``gce_loadbalancer_internal.go`` (``ensureInternalLoadBalancer``: instance groups ``k8s-ig--{cid}``, a
global health check, a regional backend service, ``ports``). The legacy health check goes through raw
REST, as google-cloud-compute has no client for it.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions
from google.cloud import compute_v1

from tests.support.fakegce import GOOGLE, HC_RANGES, PROJECT, REGION, Gce

NODE_HEALTH_CHECK_PORT = 10256


def lb_name(uid: str) -> str:
    """k8s.io/cloud-provider ``DefaultLoadBalancerName``: "a" + the UID without dashes, 32 characters."""
    return ("a" + uid.replace("-", ""))[:32]


def service_description(key: str) -> str:
    """``makeServiceDescription`` (forwarding rule, address, target pool)."""
    return f'{{"kubernetes.io/service-name":"{key}"}}'


def firewall_description(key: str, ip: str) -> str:
    """``makeFirewallDescription`` (with its space after the comma)."""
    return f'{{"kubernetes.io/service-name":"{key}", "kubernetes.io/service-ip":"{ip}"}}'


@dataclass(frozen=True)
class Built:
    name: str
    ip: str


class UpstreamCloud:
    """Upstream's L4 load balancers on the fake, for its cluster id ``cid`` (ConfigMap ingress-uid)."""

    def __init__(self, gce: Gce, *, cid: str = "0123456789abcdef", node_tag: str = "k8s-node") -> None:
        self.gce = gce
        self.cid = cid
        self._groups: set[tuple[str, str]] = set()
        self.node_tag = node_tag

    # -- raw REST for the legacy health checks ------------------------------------------------------

    def _rest(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.gce.fake.url}/compute/v1/projects/{PROJECT}/{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def _http_health_check(self, name: str, port: int) -> str:
        """``ensureHTTPHealthCheck`` → ``makeHTTPHealthCheck``; returns its selfLink. Idempotent (shared)."""
        try:
            return str(self._rest("GET", f"global/httpHealthChecks/{name}")["selfLink"])
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
        body = {
            "name": name,
            "port": port,
            "requestPath": "/healthz",
            "description": service_description(name),  # sic: the check's own name
            "checkIntervalSec": 8,
            "timeoutSec": 1,
            "healthyThreshold": 1,
            "unhealthyThreshold": 3,
        }
        op = compute_v1.Operation.from_json(
            json.dumps(self._rest("POST", "global/httpHealthChecks", body)), ignore_unknown_fields=True
        )
        self.gce.wait(op)
        return str(self._rest("GET", f"global/httpHealthChecks/{name}")["selfLink"])

    def _firewall(
        self, name: str, *, description: str, ports: Sequence[str], sources: Sequence[str], ip: str
    ) -> None:
        try:
            self.gce.firewalls.get(project=PROJECT, firewall=name)
            return  # shared and already there
        except exceptions.NotFound:
            pass
        rule = compute_v1.Firewall(
            name=name,
            description=description,
            network=f"{GOOGLE}global/networks/default",
            allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=list(ports))],
            source_ranges=list(sources),
            destination_ranges=[ip],
            target_tags=[self.node_tag],
            priority=1000,
        )
        self.gce.wait(self.gce.firewalls.insert_unary(project=PROJECT, firewall_resource=rule))

    # -- external: target pool ----------------------------------------------------------------------

    def external(
        self,
        *,
        key: str,
        uid: str,
        ports: Sequence[int] = (80, 443),
        instances: Sequence[tuple[str, str]] = (),
        local_port: int = 0,
    ) -> Built:
        """``ensureExternalLoadBalancer`` for a Service with TCP ``ports``; ``local_port`` > 0 is
        ``externalTrafficPolicy: Local`` with that ``healthCheckNodePort``."""
        name = lb_name(uid)
        address = compute_v1.Address(name=name, description=service_description(key), network_tier="PREMIUM")
        self.gce.wait(
            self.gce.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=address)
        )
        ip = self.gce.addresses.get(project=PROJECT, region=REGION, address=name).address
        self._firewall(
            f"k8s-fw-{name}",
            description=firewall_description(key, ip),
            ports=[str(p) for p in ports],
            sources=["0.0.0.0/0"],
            ip=ip,
        )
        if local_port:
            check, check_port = name, local_port
            fw_name, fw_description = f"k8s-{name}-http-hc", firewall_description(key, ip)
        else:
            check, check_port = f"k8s-{self.cid}-node", NODE_HEALTH_CHECK_PORT
            fw_name, fw_description = (
                f"k8s-{self.cid}-node-http-hc",
                f'{{"kubernetes.io/cluster-id":"{self.cid}"}}',
            )
        self._firewall(fw_name, description=fw_description, ports=[str(check_port)], sources=HC_RANGES, ip=ip)
        link = self._http_health_check(check, check_port)
        pool = compute_v1.TargetPool(
            name=name,
            description=service_description(key),
            instances=[f"/zones/{zone}/instances/{instance}" for zone, instance in instances],
            session_affinity="NONE",
            health_checks=[link],
        )
        self.gce.wait(
            self.gce.target_pools.insert_unary(project=PROJECT, region=REGION, target_pool_resource=pool)
        )
        rule = compute_v1.ForwardingRule(
            name=name,
            description=service_description(key),
            I_p_address=ip,
            I_p_protocol="TCP",
            port_range=f"{min(ports)}-{max(ports)}",
            target=f"{GOOGLE}regions/{REGION}/targetPools/{name}",
            network_tier="PREMIUM",
        )
        self.gce.forwarding_rule(rule)
        # the deferred release: the address goes, the rule keeps the IP as ephemeral
        self.gce.wait(self.gce.addresses.delete_unary(project=PROJECT, region=REGION, address=name))
        return Built(name=name, ip=ip)

    # -- internal: backend service ------------------------------------------------------------------

    def internal(
        self,
        *,
        key: str,
        uid: str,
        ports: Sequence[int] = (80,),
        instances: Sequence[tuple[str, str]] = (),
        local_port: int = 0,
    ) -> Built:
        """``ensureInternalLoadBalancer``, no subsetting: ``externalTrafficPolicy: Cluster`` (the shared
        check ``k8s-{cid}-node``, no description) or, with ``local_port``, ``Local`` (the check ``a<uid>``
        on that health-check NodePort, described; ``makeHealthCheckName``, ``newInternalLBHealthCheck``)."""
        name = lb_name(uid)
        group = f"k8s-ig--{self.cid}"
        zones = sorted({zone for zone, _ in instances})
        for zone in zones:
            members = tuple(i for z, i in instances if z == zone)
            if (zone, group) in self._groups:  # ensureInternalInstanceGroup: the existing group, as is
                continue
            self.gce.instance_group(group, zone=zone, instances=members)
            self._groups.add((zone, group))
        check = name if local_port else f"k8s-{self.cid}-node"
        check_port = local_port or NODE_HEALTH_CHECK_PORT
        hc = compute_v1.HealthCheck(
            name=check,
            type_="HTTP",
            description=service_description(key) if local_port else "",
            check_interval_sec=8,
            timeout_sec=1,
            healthy_threshold=1,
            unhealthy_threshold=3,
            http_health_check=compute_v1.HTTPHealthCheck(port=check_port, request_path="/healthz"),
        )
        with contextlib.suppress(exceptions.Conflict):  # ensureInternalHealthCheck: the shared one exists
            self.gce.wait(
                self.gce.global_health_checks.insert_unary(project=PROJECT, health_check_resource=hc)
            )
        service = compute_v1.BackendService(
            name=name,
            description=service_description(key),
            load_balancing_scheme="INTERNAL",
            protocol="TCP",
            session_affinity="NONE",
            health_checks=[f"{GOOGLE}global/healthChecks/{check}"],
            backends=[
                compute_v1.Backend(
                    group=f"{GOOGLE}zones/{zone}/instanceGroups/{group}", balancing_mode="CONNECTION"
                )
                for zone in zones
            ],
        )
        self.gce.wait(
            self.gce.backend_services.insert_unary(
                project=PROJECT, region=REGION, backend_service_resource=service
            )
        )
        rule = compute_v1.ForwardingRule(
            name=name,
            description=service_description(key),
            load_balancing_scheme="INTERNAL",
            I_p_protocol="TCP",
            ports=[str(p) for p in ports],
            backend_service=f"{GOOGLE}regions/{REGION}/backendServices/{name}",
            network=f"{GOOGLE}global/networks/default",
            subnetwork=f"{GOOGLE}regions/{REGION}/subnetworks/nodes",
        )
        self.gce.forwarding_rule(rule)
        ip = self.gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule=name).I_p_address
        self._firewall(
            f"k8s-fw-{name}",
            description=firewall_description(key, ip),
            ports=[str(p) for p in ports],
            sources=["0.0.0.0/0"],
            ip=ip,
        )
        self._firewall(
            f"{check}-hc",  # makeHealthCheckFirewallNameFromHC
            description=firewall_description(key, ip),
            ports=[str(check_port)],
            sources=HC_RANGES,
            ip=ip,
        )
        return Built(name=name, ip=ip)

    def http_health_checks(self) -> list[str]:
        return sorted(r["name"] for r in self.gce.fake.resources("httpHealthChecks"))


def left_of(fake: Any, built: Built, kinds: Sequence[str]) -> dict[str, list[str]]:
    """Upstream's resources of ``kinds`` of one load balancer (by its name) still in the fake project."""
    found = {
        kind: sorted(r["name"] for r in fake.resources(kind) if built.name in r["name"]) for kind in kinds
    }
    return {kind: names for kind, names in found.items() if names}

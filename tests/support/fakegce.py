"""The real google-cloud-compute clients on the fake GCE server, and the request bodies the fakegce tests
(and the GCP provider tests that put foreign resources beside the provider's) send through them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from fakegce import FakeCompute

PROJECT = "test-project"
REGION = "us-central1"
ZONE = "us-central1-a"
GOOGLE = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/"
HC_RANGES = ["35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22", "130.211.0.0/22"]


@dataclass
class Gce:
    """The real google-cloud-compute clients pointed at the fake, and helpers to wait for operations."""

    fake: FakeCompute
    addresses: Any
    forwarding_rules: Any
    backend_services: Any
    health_checks: Any
    firewalls: Any
    instance_groups: Any
    instances: Any
    region_operations: Any
    global_operations: Any
    zone_operations: Any
    regions: Any
    zones: Any
    networks: Any
    subnetworks: Any
    target_pools: Any
    global_health_checks: Any

    @classmethod
    def connect(cls, fake: FakeCompute) -> Gce:
        options = {
            "client_options": ClientOptions(api_endpoint=fake.url),
            "credentials": AnonymousCredentials(),
        }
        return cls(
            fake=fake,
            addresses=compute_v1.AddressesClient(**options),
            forwarding_rules=compute_v1.ForwardingRulesClient(**options),
            backend_services=compute_v1.RegionBackendServicesClient(**options),
            health_checks=compute_v1.RegionHealthChecksClient(**options),
            firewalls=compute_v1.FirewallsClient(**options),
            instance_groups=compute_v1.InstanceGroupsClient(**options),
            instances=compute_v1.InstancesClient(**options),
            region_operations=compute_v1.RegionOperationsClient(**options),
            global_operations=compute_v1.GlobalOperationsClient(**options),
            zone_operations=compute_v1.ZoneOperationsClient(**options),
            regions=compute_v1.RegionsClient(**options),
            zones=compute_v1.ZonesClient(**options),
            networks=compute_v1.NetworksClient(**options),
            subnetworks=compute_v1.SubnetworksClient(**options),
            target_pools=compute_v1.TargetPoolsClient(**options),
            global_health_checks=compute_v1.HealthChecksClient(**options),
        )

    def wait(self, operation: Any, max_waits: int = 20) -> Any:
        """POST .../operations/{op}/wait until DONE, as the Go provider does (see gcp-provider.md §4)."""
        for _ in range(max_waits):
            if operation.status == compute_v1.Operation.Status.DONE:
                return operation
            name = operation.name
            if operation.zone:
                zone = operation.zone.rsplit("/", 1)[-1]
                operation = self.zone_operations.wait(project=PROJECT, zone=zone, operation=name)
            elif operation.region:
                region = operation.region.rsplit("/", 1)[-1]
                operation = self.region_operations.wait(project=PROJECT, region=region, operation=name)
            else:
                operation = self.global_operations.wait(project=PROJECT, operation=name)
        raise AssertionError(f"operation {operation.name} still {operation.status} after {max_waits} waits")

    # --- shortcuts that create resources and wait ---

    def health_check(self, name: str = "hc", port: int = 10256) -> Any:
        check = compute_v1.HealthCheck(
            name=name,
            type_="HTTP",
            http_health_check=compute_v1.HTTPHealthCheck(port=port, request_path="/healthz"),
        )
        return self.wait(
            self.health_checks.insert_unary(project=PROJECT, region=REGION, health_check_resource=check)
        )

    def instance_group(self, name: str = "ig", zone: str = ZONE, instances: tuple[str, ...] = ()) -> Any:
        op = self.instance_groups.insert_unary(
            project=PROJECT, zone=zone, instance_group_resource=compute_v1.InstanceGroup(name=name)
        )
        self.wait(op)
        if instances:
            refs = [compute_v1.InstanceReference(instance=f"zones/{zone}/instances/{i}") for i in instances]
            self.wait(
                self.instance_groups.add_instances_unary(
                    project=PROJECT,
                    zone=zone,
                    instance_group=name,
                    instance_groups_add_instances_request_resource=compute_v1.InstanceGroupsAddInstancesRequest(
                        instances=refs
                    ),
                )
            )
        return op

    def backend_service(
        self, name: str = "lb", scheme: str = "EXTERNAL", protocol: str = "TCP", groups: tuple[str, ...] = ()
    ) -> Any:
        service = compute_v1.BackendService(
            name=name,
            load_balancing_scheme=scheme,
            protocol=protocol,
            health_checks=[f"regions/{REGION}/healthChecks/hc"],
            session_affinity="NONE",
            backends=[compute_v1.Backend(group=f"zones/{ZONE}/instanceGroups/{g}") for g in groups],
        )
        return self.wait(
            self.backend_services.insert_unary(
                project=PROJECT, region=REGION, backend_service_resource=service
            )
        )

    def forwarding_rule(self, rule: Any) -> Any:
        return self.wait(
            self.forwarding_rules.insert_unary(project=PROJECT, region=REGION, forwarding_rule_resource=rule)
        )


def internal_rule(name: str = "ilb", **kwargs: Any) -> compute_v1.ForwardingRule:
    values: dict[str, Any] = {
        "name": name,
        "load_balancing_scheme": "INTERNAL",
        "I_p_protocol": "TCP",
        "ports": ["80", "443"],
        "backend_service": f"regions/{REGION}/backendServices/ilb",
        "subnetwork": f"regions/{REGION}/subnetworks/default",
    }
    values.update(kwargs)
    return compute_v1.ForwardingRule(**values)


def external_rule(name: str = "lb", **kwargs: Any) -> compute_v1.ForwardingRule:
    values: dict[str, Any] = {
        "name": name,
        "load_balancing_scheme": "EXTERNAL",
        "I_p_protocol": "TCP",
        "port_range": "80-443",
        "backend_service": f"{GOOGLE}regions/{REGION}/backendServices/lb",
        "network_tier": "PREMIUM",
    }
    values.update(kwargs)
    return compute_v1.ForwardingRule(**values)


def firewall(name: str = "k8s-fw-lb", **kwargs: Any) -> compute_v1.Firewall:
    values: dict[str, Any] = {
        "name": name,
        "network": "global/networks/default",
        "allowed": [compute_v1.Allowed(I_p_protocol="tcp", ports=["80", "443"])],
        "source_ranges": ["0.0.0.0/0"],
        "target_tags": ["gke-cluster-node"],
        "description": '{"kubernetes.io/service-name":"default/web"}',
    }
    values.update(kwargs)
    return compute_v1.Firewall(**values)

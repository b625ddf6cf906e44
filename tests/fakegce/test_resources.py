"""CRUD, references and strictness of each resource, through the real google-cloud-compute clients."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from fakegce import FakeCompute
from tests.support.fakegce import (
    GOOGLE,
    HC_RANGES,
    PROJECT,
    REGION,
    ZONE,
    Gce,
    external_rule,
    firewall,
    internal_rule,
)


def raw(fake: FakeCompute, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A request the typed client cannot make (unknown fields, wrong methods)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{fake.url}/compute/v1/projects/{PROJECT}/{path}", data=data, method=method
    )
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def reason(error: exceptions.GoogleAPICallError) -> str:
    return str(error.errors[0]["reason"])


# --- health checks ---------------------------------------------------------------------------------


def test_a_health_check_is_created_with_gce_defaults_listed_patched_replaced_and_deleted(gce: Gce) -> None:
    op = gce.health_check()
    assert op.operation_type == "insert"
    assert op.target_link == f"{GOOGLE}regions/{REGION}/healthChecks/hc"

    check = gce.health_checks.get(project=PROJECT, region=REGION, health_check="hc")
    assert (
        check.check_interval_sec,
        check.timeout_sec,
        check.healthy_threshold,
        check.unhealthy_threshold,
    ) == (
        5,
        5,
        2,
        2,
    )
    assert check.http_health_check.request_path == "/healthz"
    assert check.self_link == f"{GOOGLE}regions/{REGION}/healthChecks/hc"
    assert [c.name for c in gce.health_checks.list(project=PROJECT, region=REGION)] == ["hc"]

    patch = compute_v1.HealthCheck(check_interval_sec=8, timeout_sec=1, unhealthy_threshold=3)
    gce.wait(
        gce.health_checks.patch_unary(
            project=PROJECT, region=REGION, health_check="hc", health_check_resource=patch
        )
    )
    check = gce.health_checks.get(project=PROJECT, region=REGION, health_check="hc")
    assert (check.check_interval_sec, check.timeout_sec, check.unhealthy_threshold) == (8, 1, 3)
    assert check.http_health_check.port == 10256

    whole = compute_v1.HealthCheck(
        name="hc", type_="TCP", tcp_health_check=compute_v1.TCPHealthCheck(port=31000)
    )
    gce.wait(
        gce.health_checks.update_unary(
            project=PROJECT, region=REGION, health_check="hc", health_check_resource=whole
        )
    )
    check = gce.health_checks.get(project=PROJECT, region=REGION, health_check="hc")
    assert check.type_ == "TCP"
    assert check.tcp_health_check.port == 31000
    assert check.check_interval_sec == 5  # PUT replaces: unset fields go back to the defaults

    gce.wait(gce.health_checks.delete_unary(project=PROJECT, region=REGION, health_check="hc"))
    with pytest.raises(exceptions.NotFound, match="healthChecks/hc' was not found"):
        gce.health_checks.get(project=PROJECT, region=REGION, health_check="hc")


def test_a_duplicate_name_is_a_conflict_and_a_missing_item_not_found(gce: Gce) -> None:
    gce.health_check()
    with pytest.raises(exceptions.Conflict, match="already exists") as conflict:
        gce.health_check()
    assert reason(conflict.value) == "alreadyExists"
    with pytest.raises(exceptions.NotFound) as missing:
        gce.health_checks.delete_unary(project=PROJECT, region=REGION, health_check="nope")
    assert reason(missing.value) == "notFound"


def test_a_health_check_timeout_longer_than_its_interval_is_rejected(gce: Gce) -> None:
    check = compute_v1.HealthCheck(
        name="hc",
        type_="HTTP",
        check_interval_sec=2,
        timeout_sec=5,
        http_health_check=compute_v1.HTTPHealthCheck(),
    )
    with pytest.raises(exceptions.BadRequest, match="timeoutSec"):
        gce.health_checks.insert_unary(project=PROJECT, region=REGION, health_check_resource=check)


# --- firewalls -------------------------------------------------------------------------------------


def test_a_firewall_is_created_read_listed_patched_updated_and_deleted(gce: Gce) -> None:
    gce.wait(gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall()))
    rule = gce.firewalls.get(project=PROJECT, firewall="k8s-fw-lb")
    assert rule.network == f"{GOOGLE}global/networks/default"
    assert (rule.priority, rule.direction, rule.disabled) == (1000, "INGRESS", False)
    assert [(a.I_p_protocol, list(a.ports)) for a in rule.allowed] == [("tcp", ["80", "443"])]

    gce.wait(
        gce.firewalls.patch_unary(
            project=PROJECT,
            firewall="k8s-fw-lb",
            firewall_resource=compute_v1.Firewall(source_ranges=HC_RANGES),
        )
    )
    rule = gce.firewalls.get(project=PROJECT, firewall="k8s-fw-lb")
    assert list(rule.source_ranges) == HC_RANGES
    assert list(rule.target_tags) == ["gke-cluster-node"]  # PATCH keeps what it does not name

    replaced = firewall(allowed=[compute_v1.Allowed(I_p_protocol="udp", ports=["53"])], target_tags=[])
    gce.wait(gce.firewalls.update_unary(project=PROJECT, firewall="k8s-fw-lb", firewall_resource=replaced))
    rule = gce.firewalls.get(project=PROJECT, firewall="k8s-fw-lb")
    assert [a.I_p_protocol for a in rule.allowed] == ["udp"]
    assert list(rule.target_tags) == []

    listed = gce.firewalls.list(
        request=compute_v1.ListFirewallsRequest(project=PROJECT, filter='name eq "k8s-fw-.*"')
    )
    assert [f.name for f in listed] == ["k8s-fw-lb"]
    gce.wait(gce.firewalls.delete_unary(project=PROJECT, firewall="k8s-fw-lb"))
    assert gce.fake.resources("firewalls") == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"network": "global/networks/missing"}, "not found"),
        ({"network": "default"}, "URL is malformed"),
        ({"denied": [compute_v1.Denied(I_p_protocol="all")]}, "Exactly one of allowed or denied"),
        ({"allowed": [compute_v1.Allowed(I_p_protocol="tcp", ports=["70000"])]}, "Ports must be between"),
        ({"allowed": [compute_v1.Allowed(I_p_protocol="icmp", ports=["80"])]}, "Ports need tcp"),
        ({"source_ranges": ["10.0.0.0/33"]}, "valid IP address or CIDR"),
        ({"priority": 70000}, "between 0 and 65535"),
        ({"name": "K8s_fw"}, "Must be a match of regex"),
    ],
)
def test_an_invalid_firewall_is_rejected(gce: Gce, change: dict[str, Any], match: str) -> None:
    expected = exceptions.NotFound if match == "not found" else exceptions.BadRequest
    with pytest.raises(expected, match=match):
        gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall(**change))


# --- instance groups -------------------------------------------------------------------------------


def test_instances_are_added_listed_page_by_page_and_removed_from_an_instance_group(gce: Gce) -> None:
    gce.instance_group(instances=("node-a-1", "node-a-2"))
    group = gce.instance_groups.get(project=PROJECT, zone=ZONE, instance_group="ig")
    assert group.size == 2
    assert group.network == f"{GOOGLE}global/networks/default"

    request = compute_v1.ListInstancesInstanceGroupsRequest(
        project=PROJECT,
        zone=ZONE,
        instance_group="ig",
        instance_groups_list_instances_request_resource=compute_v1.InstanceGroupsListInstancesRequest(
            instance_state="ALL"
        ),
        max_results=1,
    )
    pager = gce.instance_groups.list_instances(request=request)
    assert [i.instance.rsplit("/", 1)[-1] for i in pager] == ["node-a-1", "node-a-2"]
    assert gce.fake.calls[("POST", "zones/{zone}/instanceGroups/{instanceGroup}/listInstances")] == 2

    remove = compute_v1.InstanceGroupsRemoveInstancesRequest(
        instances=[compute_v1.InstanceReference(instance=f"{GOOGLE}zones/{ZONE}/instances/node-a-1")]
    )
    gce.wait(
        gce.instance_groups.remove_instances_unary(
            project=PROJECT,
            zone=ZONE,
            instance_group="ig",
            instance_groups_remove_instances_request_resource=remove,
        )
    )
    assert gce.fake.members(ZONE, "ig") == [f"{GOOGLE}zones/{ZONE}/instances/node-a-2"]


def add(gce: Gce, group: str, *instances: str, zone: str = ZONE) -> Any:
    refs = [
        compute_v1.InstanceReference(instance=i if "/" in i else f"zones/{zone}/instances/{i}")
        for i in instances
    ]
    return gce.instance_groups.add_instances_unary(
        project=PROJECT,
        zone=zone,
        instance_group=group,
        instance_groups_add_instances_request_resource=compute_v1.InstanceGroupsAddInstancesRequest(
            instances=refs
        ),
    )


def test_adding_a_member_twice_missing_instances_or_other_zones_is_rejected(gce: Gce) -> None:
    gce.instance_group(instances=("node-a-1",))
    with pytest.raises(exceptions.BadRequest, match="is already a member of") as twice:
        add(gce, "ig", "node-a-1")
    assert reason(twice.value) == "memberAlreadyExists"
    with pytest.raises(exceptions.NotFound, match="instances/ghost' was not found"):
        add(gce, "ig", "ghost")
    with pytest.raises(exceptions.BadRequest, match="group's zone"):
        add(gce, "ig", "zones/us-central1-b/instances/node-b-1")


def test_a_deleted_vm_leaves_its_group_and_removing_it_is_not_found(gce: Gce) -> None:
    gce.instance_group(instances=("node-a-1", "node-a-2"))
    gce.fake.delete_instance(ZONE, "node-a-2")
    assert [m.rsplit("/", 1)[-1] for m in gce.fake.members(ZONE, "ig")] == ["node-a-1"]
    request = compute_v1.InstanceGroupsRemoveInstancesRequest(
        instances=[compute_v1.InstanceReference(instance=f"zones/{ZONE}/instances/node-a-2")]
    )
    with pytest.raises(exceptions.NotFound, match="instances/node-a-2' was not found"):
        gce.instance_groups.remove_instances_unary(
            project=PROJECT,
            zone=ZONE,
            instance_group="ig",
            instance_groups_remove_instances_request_resource=request,
        )


def test_an_instance_may_belong_to_one_load_balanced_instance_group_only(gce: Gce) -> None:
    gce.health_check()
    gce.instance_group("ig", instances=("node-a-1",))
    gce.instance_group("other", instances=("node-a-1",))  # allowed while neither is load-balanced
    gce.backend_service(groups=("ig",))
    with pytest.raises(exceptions.BadRequest, match="at most one load-balanced instance group"):
        gce.backend_service("lb2", groups=("other",))
    gce.instance_group("third")
    gce.backend_service("lb3", groups=("third",))
    with pytest.raises(exceptions.BadRequest, match="is already a member of") as error:
        add(gce, "third", "node-a-1")
    assert reason(error.value) == "memberAlreadyExists"


def test_an_instance_group_in_use_by_a_backend_service_cannot_be_deleted(gce: Gce) -> None:
    gce.health_check()
    gce.instance_group()
    gce.backend_service(groups=("ig",))
    with pytest.raises(exceptions.BadRequest, match="is already being used by") as error:
        gce.instance_groups.delete_unary(project=PROJECT, zone=ZONE, instance_group="ig")
    assert reason(error.value) == "resourceInUseByAnotherResource"


# --- backend services ------------------------------------------------------------------------------


def test_a_backend_service_is_created_read_and_updated_with_its_fingerprint(gce: Gce) -> None:
    gce.health_check()
    gce.instance_group()
    gce.backend_service(groups=("ig",))
    service = gce.backend_services.get(project=PROJECT, region=REGION, backend_service="lb")
    assert service.health_checks == [f"{GOOGLE}regions/{REGION}/healthChecks/hc"]
    assert [(b.group, b.balancing_mode) for b in service.backends] == [
        (f"{GOOGLE}zones/{ZONE}/instanceGroups/ig", "CONNECTION")
    ]
    assert service.fingerprint

    stale = compute_v1.BackendService(session_affinity="CLIENT_IP", fingerprint="c3RhbGU=")
    with pytest.raises(exceptions.PreconditionFailed):
        gce.backend_services.patch_unary(
            project=PROJECT, region=REGION, backend_service="lb", backend_service_resource=stale
        )
    fresh = compute_v1.BackendService(session_affinity="CLIENT_IP", fingerprint=service.fingerprint)
    gce.wait(
        gce.backend_services.patch_unary(
            project=PROJECT, region=REGION, backend_service="lb", backend_service_resource=fresh
        )
    )
    patched = gce.backend_services.get(project=PROJECT, region=REGION, backend_service="lb")
    assert patched.session_affinity == "CLIENT_IP"
    assert patched.fingerprint != service.fingerprint

    without = compute_v1.BackendService(
        name="lb", load_balancing_scheme="EXTERNAL", protocol="TCP", health_checks=list(patched.health_checks)
    )
    with pytest.raises(exceptions.PreconditionFailed):  # PUT needs the fingerprint
        gce.backend_services.update_unary(
            project=PROJECT, region=REGION, backend_service="lb", backend_service_resource=without
        )
    without.fingerprint = patched.fingerprint
    gce.wait(
        gce.backend_services.update_unary(
            project=PROJECT, region=REGION, backend_service="lb", backend_service_resource=without
        )
    )
    replaced = gce.backend_services.get(project=PROJECT, region=REGION, backend_service="lb")
    assert list(replaced.backends) == []
    assert replaced.session_affinity == "NONE"


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"protocol": "HTTP"}, exceptions.BadRequest, "needs TCP, UDP or UNSPECIFIED"),
        ({"protocol": None}, exceptions.BadRequest, "'HTTP'"),  # GCE's default protocol is HTTP
        ({"load_balancing_scheme": "CLASSIC"}, exceptions.BadRequest, "Must be one of"),
        ({"health_checks": []}, exceptions.BadRequest, "healthChecks' not specified"),
        ({"health_checks": ["regions/us-central1/healthChecks/nope"]}, exceptions.NotFound, "not found"),
        ({"session_affinity": "GENERATED_COOKIE"}, exceptions.BadRequest, "passthrough"),
        (
            {"backends": [compute_v1.Backend(group=f"zones/{ZONE}/instanceGroups/nope")]},
            exceptions.NotFound,
            "nope",
        ),
    ],
)
def test_an_invalid_backend_service_is_rejected(
    gce: Gce, change: dict[str, Any], error: type[Exception], match: str
) -> None:
    gce.health_check()
    values: dict[str, Any] = {
        "name": "lb",
        "load_balancing_scheme": "EXTERNAL",
        "protocol": "TCP",
        "health_checks": [f"regions/{REGION}/healthChecks/hc"],
    }
    values.update(change)
    values = {k: v for k, v in values.items() if v is not None}
    service = compute_v1.BackendService(**values)
    with pytest.raises(error, match=match):
        gce.backend_services.insert_unary(project=PROJECT, region=REGION, backend_service_resource=service)


def test_a_health_check_used_by_a_backend_service_cannot_be_deleted(gce: Gce) -> None:
    gce.health_check()
    gce.backend_service()
    with pytest.raises(exceptions.BadRequest, match="being used by") as error:
        gce.health_checks.delete_unary(project=PROJECT, region=REGION, health_check="hc")
    assert reason(error.value) == "resourceInUseByAnotherResource"
    gce.wait(gce.backend_services.delete_unary(project=PROJECT, region=REGION, backend_service="lb"))
    gce.wait(gce.health_checks.delete_unary(project=PROJECT, region=REGION, health_check="hc"))


def test_gce_defaults_a_missing_scheme_to_external_and_a_missing_protocol_to_tcp(gce: Gce) -> None:
    gce.health_check()
    service = compute_v1.BackendService(
        name="lb", protocol="TCP", health_checks=[f"regions/{REGION}/healthChecks/hc"]
    )
    gce.wait(
        gce.backend_services.insert_unary(project=PROJECT, region=REGION, backend_service_resource=service)
    )
    assert gce.backend_services.get(
        project=PROJECT, region=REGION, backend_service="lb"
    ).load_balancing_scheme == ("EXTERNAL")
    gce.forwarding_rule(
        compute_v1.ForwardingRule(name="lb", backend_service=f"regions/{REGION}/backendServices/lb")
    )
    rule = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="lb")
    assert (rule.load_balancing_scheme, rule.I_p_protocol) == ("EXTERNAL", "TCP")


def test_a_global_health_check_serves_an_internal_backend_service_only(gce: Gce) -> None:
    check = {"name": "global-hc", "type": "TCP", "tcpHealthCheck": {"port": 10256}}
    status, _ = gce.fake.dispatch(
        "POST", f"/compute/v1/projects/{PROJECT}/global/healthChecks", json.dumps(check).encode()
    )
    assert status == 200
    for scheme in ("INTERNAL", "EXTERNAL"):
        service = compute_v1.BackendService(
            name=f"lb-{scheme.lower()}",
            load_balancing_scheme=scheme,
            protocol="TCP",
            health_checks=["global/healthChecks/global-hc"],
        )
        if scheme == "INTERNAL":
            gce.wait(
                gce.backend_services.insert_unary(
                    project=PROJECT, region=REGION, backend_service_resource=service
                )
            )
        else:
            with pytest.raises(exceptions.BadRequest, match="needs a regional health check"):
                gce.backend_services.insert_unary(
                    project=PROJECT, region=REGION, backend_service_resource=service
                )
    assert gce.fake.permissions_used() >= {"compute.healthChecks.create", "compute.healthChecks.useReadOnly"}


def test_a_shared_loadbalancer_vip_address_serves_up_to_ten_forwarding_rules(gce: Gce) -> None:
    gce.fake.seed_address(
        "vip", "10.128.0.50", "INTERNAL", subnetwork="default", purpose="SHARED_LOADBALANCER_VIP"
    )
    gce.fake.seed_address("single", "10.128.0.60", "INTERNAL", subnetwork="default")
    gce.health_check()
    gce.backend_service("ilb", scheme="INTERNAL")
    for i in range(10):
        gce.forwarding_rule(internal_rule(f"vip-{i}", I_p_address="10.128.0.50", ports=[str(1000 + i)]))
    with pytest.raises(exceptions.BadRequest, match="in use"):
        gce.forwarding_rules.insert_unary(
            project=PROJECT,
            region=REGION,
            forwarding_rule_resource=internal_rule("vip-10", I_p_address="10.128.0.50", ports=["2000"]),
        )
    gce.forwarding_rule(internal_rule("one", I_p_address="10.128.0.60"))
    with pytest.raises(exceptions.BadRequest, match="in use"):
        gce.forwarding_rules.insert_unary(
            project=PROJECT,
            region=REGION,
            forwarding_rule_resource=internal_rule("two", I_p_address="10.128.0.60"),
        )
    gce.wait(gce.forwarding_rules.delete_unary(project=PROJECT, region=REGION, forwarding_rule="vip-0"))
    vip = gce.addresses.get(project=PROJECT, region=REGION, address="vip")
    assert vip.status == "IN_USE" and len(vip.users) == 9


# --- addresses -------------------------------------------------------------------------------------


def test_addresses_are_reserved_listed_by_name_or_ip_and_released(gce: Gce) -> None:
    gce.wait(
        gce.addresses.insert_unary(
            project=PROJECT,
            region=REGION,
            address_resource=compute_v1.Address(name="ext", network_tier="STANDARD"),
        )
    )
    internal = compute_v1.Address(
        name="int", address_type="INTERNAL", subnetwork=f"regions/{REGION}/subnetworks/default"
    )
    gce.wait(gce.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=internal))
    ext = gce.addresses.get(project=PROJECT, region=REGION, address="ext")
    assert ext.address.startswith("34.")
    assert (ext.status, ext.network_tier, ext.address_type) == ("RESERVED", "STANDARD", "EXTERNAL")
    inner = gce.addresses.get(project=PROJECT, region=REGION, address="int")
    assert ipaddress.IPv4Address(inner.address) in ipaddress.IPv4Network("10.128.0.0/20")
    assert inner.purpose == "GCE_ENDPOINT"

    by_ip = compute_v1.ListAddressesRequest(
        project=PROJECT, region=REGION, filter=f'address eq "{ext.address}"'
    )
    assert [a.name for a in gce.addresses.list(request=by_ip)] == ["ext"]
    by_name = compute_v1.ListAddressesRequest(project=PROJECT, region=REGION, filter='name eq "int"')
    assert [a.name for a in gce.addresses.list(request=by_name)] == ["int"]

    gce.wait(gce.addresses.delete_unary(project=PROJECT, region=REGION, address="ext"))
    assert [a["name"] for a in gce.fake.resources("addresses")] == ["int"]


def test_an_external_address_cannot_claim_an_ip_the_project_does_not_hold(gce: Gce) -> None:
    with pytest.raises(exceptions.BadRequest, match="not available to this project"):
        gce.addresses.insert_unary(
            project=PROJECT, region=REGION, address_resource=compute_v1.Address(name="a", address="35.1.2.3")
        )
    outside = compute_v1.Address(
        name="b",
        address="10.9.9.9",
        address_type="INTERNAL",
        subnetwork=f"regions/{REGION}/subnetworks/default",
    )
    with pytest.raises(exceptions.BadRequest, match="usable range"):
        gce.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=outside)


# --- forwarding rules ------------------------------------------------------------------------------


def test_an_external_forwarding_rule_gets_an_ephemeral_ip_that_can_be_promoted_and_demoted(gce: Gce) -> None:
    gce.health_check()
    gce.backend_service()
    gce.forwarding_rule(external_rule())
    rule = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="lb")
    assert rule.I_p_address.startswith("34.")
    assert (rule.port_range, rule.network_tier, rule.I_p_protocol) == ("80-443", "PREMIUM", "TCP")
    assert rule.backend_service == f"{GOOGLE}regions/{REGION}/backendServices/lb"
    assert rule.self_link == f"{GOOGLE}regions/{REGION}/forwardingRules/lb"

    # upstream's transient address: reserve the rule's IP (promote), then release it (demote)
    keep = compute_v1.Address(name="lb", address=rule.I_p_address)
    gce.wait(gce.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=keep))
    address = gce.addresses.get(project=PROJECT, region=REGION, address="lb")
    assert (address.status, list(address.users)) == ("IN_USE", [rule.self_link])
    gce.wait(gce.addresses.delete_unary(project=PROJECT, region=REGION, address="lb"))
    assert gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="lb").I_p_address == (
        rule.I_p_address
    )

    with pytest.raises(exceptions.BadRequest, match="being used by") as error:
        gce.backend_services.delete_unary(project=PROJECT, region=REGION, backend_service="lb")
    assert reason(error.value) == "resourceInUseByAnotherResource"
    gce.wait(gce.forwarding_rules.delete_unary(project=PROJECT, region=REGION, forwarding_rule="lb"))
    gce.wait(gce.backend_services.delete_unary(project=PROJECT, region=REGION, backend_service="lb"))


def test_a_forwarding_rule_uses_a_reserved_static_ip_of_the_same_tier(gce: Gce) -> None:
    gce.fake.seed_address("user-ip", "35.200.0.7", network_tier="STANDARD")
    gce.health_check()
    gce.backend_service()
    with pytest.raises(exceptions.BadRequest, match="network tier"):
        gce.forwarding_rules.insert_unary(
            project=PROJECT, region=REGION, forwarding_rule_resource=external_rule(I_p_address="35.200.0.7")
        )
    gce.forwarding_rule(external_rule(I_p_address="35.200.0.7", network_tier="STANDARD"))
    (address,) = gce.fake.resources("addresses")
    assert address["status"] == "IN_USE"
    assert address["users"] == [f"{GOOGLE}regions/{REGION}/forwardingRules/lb"]
    gce.wait(gce.forwarding_rules.delete_unary(project=PROJECT, region=REGION, forwarding_rule="lb"))
    (address,) = gce.fake.resources("addresses")
    assert address["status"] == "RESERVED"  # the user's IP outlives the rule


def test_an_external_ip_that_is_not_reserved_is_rejected(gce: Gce) -> None:
    gce.health_check()
    gce.backend_service()
    with pytest.raises(exceptions.BadRequest, match="must be a static address reserved"):
        gce.forwarding_rules.insert_unary(
            project=PROJECT, region=REGION, forwarding_rule_resource=external_rule(I_p_address="35.1.1.1")
        )


def test_an_internal_forwarding_rule_gets_an_ip_of_its_subnetwork(gce: Gce) -> None:
    gce.health_check()
    gce.backend_service("ilb", scheme="INTERNAL")
    gce.forwarding_rule(internal_rule(allow_global_access=True))
    rule = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="ilb")
    assert ipaddress.IPv4Address(rule.I_p_address) in ipaddress.IPv4Network("10.128.0.0/20")
    assert rule.I_p_address not in {
        n["networkInterfaces"][0]["networkIP"] for n in gce.fake.resources("instances")
    }
    assert (list(rule.ports), rule.allow_global_access) == (["80", "443"], True)
    assert rule.network == f"{GOOGLE}global/networks/default"
    assert rule.subnetwork == f"{GOOGLE}regions/{REGION}/subnetworks/default"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"ports": [str(p) for p in range(80, 86)]}, "At most 5 ports"),
        ({"port_range": "80-81"}, "mutually exclusive"),
        ({"all_ports": True}, "mutually exclusive"),
        ({"ports": []}, "needs ports or allPorts"),
        ({"I_p_protocol": "UDP"}, "Must match the protocol of the backend service"),
        ({"I_p_protocol": "GRE"}, "Must be one of"),
        ({"load_balancing_scheme": "EXTERNAL"}, "load balancing scheme of the backend service is INTERNAL"),
        ({"network_tier": "STANDARD"}, "PREMIUM"),
        ({"backend_service": ""}, "A target or a backend service must be specified"),
        ({"I_p_address": "10.128.0.1"}, "usable range"),
    ],
)
def test_an_invalid_internal_forwarding_rule_is_rejected(
    gce: Gce, change: dict[str, Any], match: str
) -> None:
    gce.health_check()
    gce.backend_service("ilb", scheme="INTERNAL")
    with pytest.raises(exceptions.BadRequest, match=match):
        gce.forwarding_rules.insert_unary(
            project=PROJECT, region=REGION, forwarding_rule_resource=internal_rule(**change)
        )


def test_global_access_of_an_internal_rule_is_patched_in_place_and_nothing_else_is(gce: Gce) -> None:
    gce.health_check()
    gce.backend_service("ilb", scheme="INTERNAL")
    gce.forwarding_rule(internal_rule())
    before = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="ilb")
    for allow in (True, False):
        patch = compute_v1.ForwardingRule(allow_global_access=allow, fingerprint=before.fingerprint)
        op = gce.wait(
            gce.forwarding_rules.patch_unary(
                project=PROJECT, region=REGION, forwarding_rule="ilb", forwarding_rule_resource=patch
            )
        )
        assert op.operation_type == "patch"
        after = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="ilb")
        assert (after.id, after.I_p_address, after.allow_global_access) == (
            before.id,
            before.I_p_address,
            allow,
        )
        assert after.fingerprint != before.fingerprint
        before = after
    with pytest.raises(exceptions.BadRequest, match="cannot be patched"):
        gce.forwarding_rules.patch_unary(
            project=PROJECT,
            region=REGION,
            forwarding_rule="ilb",
            forwarding_rule_resource=compute_v1.ForwardingRule(ports=["8080"]),
        )
    with pytest.raises(exceptions.PreconditionFailed):
        gce.forwarding_rules.patch_unary(
            project=PROJECT,
            region=REGION,
            forwarding_rule="ilb",
            forwarding_rule_resource=compute_v1.ForwardingRule(
                allow_global_access=True, fingerprint="c3RhbGU="
            ),
        )


def test_an_internal_rules_ephemeral_ip_is_promoted_by_an_address_of_its_subnetwork(gce: Gce) -> None:
    gce.health_check()
    gce.backend_service("ilb", scheme="INTERNAL")
    gce.forwarding_rule(internal_rule())
    rule = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="ilb")
    hold = compute_v1.Address(
        name="ilb",
        address=rule.I_p_address,
        address_type="INTERNAL",
        subnetwork=f"regions/{REGION}/subnetworks/default",
    )
    gce.wait(gce.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=hold))
    address = gce.addresses.get(project=PROJECT, region=REGION, address="ilb")
    assert (address.address, address.status, list(address.users)) == (
        rule.I_p_address,
        "IN_USE",
        [rule.self_link],
    )
    gce.wait(gce.forwarding_rules.delete_unary(project=PROJECT, region=REGION, forwarding_rule="ilb"))
    assert gce.addresses.get(project=PROJECT, region=REGION, address="ilb").status == "RESERVED"
    gce.forwarding_rule(internal_rule(I_p_address=rule.I_p_address))  # the same IP, on the reservation
    gce.wait(gce.addresses.delete_unary(project=PROJECT, region=REGION, address="ilb"))
    assert gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="ilb").I_p_address == (
        rule.I_p_address
    )


def test_more_than_five_ports_need_all_ports(gce: Gce) -> None:
    gce.health_check()
    gce.backend_service("ilb", scheme="INTERNAL")
    gce.forwarding_rule(internal_rule(ports=[], all_ports=True))
    assert gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="ilb").all_ports is True


def test_labels_given_to_a_forwarding_rule_insert_are_dropped_and_set_only_by_set_labels(gce: Gce) -> None:
    # GCE ignores `labels` in forwardingRules.insert: recorded real traffic, k8s-config-connector
    # regionalcomputeforwardingruletcp-direct/_http.log (the GET after the insert has a labelFingerprint
    # and no labels; they appear after setLabels).
    gce.health_check()
    gce.backend_service()
    gce.forwarding_rule(external_rule(labels={"ccm-lb-cluster": "c1"}))
    rule = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="lb")
    assert dict(rule.labels) == {} and rule.label_fingerprint
    request = compute_v1.RegionSetLabelsRequest(labels={"ccm-lb-cluster": "c2"}, label_fingerprint="c3RhbGU=")
    with pytest.raises(exceptions.PreconditionFailed):
        gce.forwarding_rules.set_labels_unary(
            project=PROJECT, region=REGION, resource="lb", region_set_labels_request_resource=request
        )
    request.label_fingerprint = rule.label_fingerprint
    op = gce.wait(
        gce.forwarding_rules.set_labels_unary(
            project=PROJECT, region=REGION, resource="lb", region_set_labels_request_resource=request
        )
    )
    assert op.operation_type == "setLabels"
    updated = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="lb")
    assert dict(updated.labels) == {"ccm-lb-cluster": "c2"}
    assert updated.label_fingerprint != rule.label_fingerprint


# --- instances, regions, zones, networks -----------------------------------------------------------


def test_instances_are_listed_with_a_name_regex_and_zones_by_region(gce: Gce) -> None:
    request = compute_v1.ListInstancesRequest(project=PROJECT, zone=ZONE, filter='name eq "node-a-.*"')
    nodes = list(gce.instances.list(request=request))
    assert [n.name for n in nodes] == ["node-a-1", "node-a-2"]
    assert list(nodes[0].tags.items) == ["gke-cluster-node"]
    assert (
        gce.instances.get(project=PROJECT, zone=ZONE, instance="node-a-1").network_interfaces[0].network_i_p
    )
    zones = gce.zones.list(
        request=compute_v1.ListZonesRequest(project=PROJECT, filter=f'region eq ".*/{REGION}"')
    )
    assert [z.name for z in zones] == [f"{REGION}-{s}" for s in "abcf"]
    assert len(gce.regions.get(project=PROJECT, region=REGION).zones) == 4
    assert gce.networks.get(project=PROJECT, network="default").subnetworks
    assert (
        gce.subnetworks.get(project=PROJECT, region=REGION, subnetwork="default").ip_cidr_range
        == "10.128.0.0/20"
    )


# --- strictness of the HTTP surface ----------------------------------------------------------------


def test_an_unknown_field_is_rejected_like_gces_json_front_end(fake: FakeCompute) -> None:
    status, body = raw(
        fake, "POST", "global/firewalls", {"name": "fw", "allowed": [{"IPProtocol": "tcp"}], "x": 1}
    )
    assert status == 400
    assert body["error"]["message"].startswith('Invalid JSON payload received. Unknown name "x"')
    assert body["error"]["errors"][0]["domain"] == "global"
    status, body = raw(
        fake, "POST", "global/firewalls", {"name": "fw", "allowed": [{"IPProtocol": "tcp", "port": ["80"]}]}
    )
    assert status == 400
    assert "Unknown name \"port\" at 'resource.allowed[0]'" in body["error"]["message"]
    status, body = raw(fake, "POST", "global/firewalls", {"name": "fw", "priority": "high"})
    assert (status, "TYPE_INT32" in body["error"]["message"]) == (400, True)


def test_a_known_field_the_fake_does_not_model_is_refused_rather_than_ignored(fake: FakeCompute) -> None:
    status, body = raw(fake, "POST", f"regions/{REGION}/forwardingRules", {"name": "fr", "serviceLabel": "x"})
    assert status == 400
    assert "not modelled by fakegce" in body["error"]["message"]


def test_unknown_paths_are_404_and_wrong_methods_405(fake: FakeCompute) -> None:
    assert raw(fake, "GET", f"regions/{REGION}/targetInstances")[0] == 404
    assert raw(fake, "GET", "global/httpsHealthChecks/x")[0] == 404
    assert raw(fake, "PATCH", "global/httpHealthChecks/x", {})[0] == 405  # the recorded update is a PUT
    assert raw(fake, "PUT", f"regions/{REGION}/forwardingRules/x", {})[0] == 405
    assert raw(fake, "GET", "regions/europe-west1/forwardingRules")[0] == 404
    status, body = raw(fake, "GET", f"regions/{REGION}/forwardingRules?bogus=1")
    assert (status, 'Unknown name "bogus"' in body["error"]["message"]) == (400, True)


# --- target pools and legacy HTTP health checks (the upstream provider's external LB) ---------------


def _legacy_check(fake: FakeCompute, gce: Gce, name: str = "legacy", **fields: Any) -> dict[str, Any]:
    status, op = raw(fake, "POST", "global/httpHealthChecks", {"name": name, **fields})
    assert status == 200, op
    gce.wait(compute_v1.Operation.from_json(json.dumps(op), ignore_unknown_fields=True))
    status, check = raw(fake, "GET", f"global/httpHealthChecks/{name}")
    assert status == 200
    return dict(check)


def _pool(gce: Gce, name: str = "pool", **fields: Any) -> Any:
    pool = compute_v1.TargetPool(name=name, **fields)
    return gce.wait(gce.target_pools.insert_unary(project=PROJECT, region=REGION, target_pool_resource=pool))


def test_a_legacy_health_check_answers_with_gces_defaults_and_is_replaced_by_a_put(
    fake: FakeCompute, gce: Gce
) -> None:
    check = _legacy_check(fake, gce, description="d")
    assert check["kind"] == "compute#httpHealthCheck"
    assert (check["port"], check["requestPath"], check["checkIntervalSec"], check["timeoutSec"]) == (
        80,
        "/",
        5,
        5,
    )
    assert (check["healthyThreshold"], check["unhealthyThreshold"], check["proxyHeader"]) == (2, 2, "NONE")
    assert "host" not in check and check["selfLink"] == f"{GOOGLE}global/httpHealthChecks/legacy"
    status, op = raw(fake, "PUT", "global/httpHealthChecks/legacy", {**check, "port": 10256})
    assert (status, op["operationType"]) == (200, "update")
    assert raw(fake, "GET", "global/httpHealthChecks/legacy")[1]["port"] == 10256
    status, body = raw(fake, "POST", "global/httpHealthChecks", {"name": "bad", "type": "HTTP"})
    assert (status, 'Unknown name "type"' in body["error"]["message"]) == (400, True)  # not a HealthCheck


def test_a_target_pool_takes_one_legacy_check_and_instances_named_as_upstream_names_them(
    fake: FakeCompute, gce: Gce
) -> None:
    check = _legacy_check(fake, gce)
    _pool(
        gce,
        health_checks=[check["selfLink"]],
        instances=[f"/zones/{ZONE}/instances/node-a-1"],
        session_affinity="CLIENT_IP",
    )
    pool = gce.target_pools.get(project=PROJECT, region=REGION, target_pool="pool")
    assert list(pool.instances) == [f"{GOOGLE}zones/{ZONE}/instances/node-a-1"]
    assert (pool.session_affinity, list(pool.health_checks)) == ("CLIENT_IP", [check["selfLink"]])
    gce.health_check("new-style")
    with pytest.raises(exceptions.BadRequest):  # a new-style health check is not a legacy one
        _pool(gce, "other", health_checks=[f"regions/{REGION}/healthChecks/new-style"])
    with pytest.raises(exceptions.BadRequest):
        _pool(gce, "other", session_affinity="CLIENT_IP_PORT_PROTO")


def test_instances_are_added_to_and_removed_from_a_target_pool(gce: Gce) -> None:
    _pool(gce)
    ref = compute_v1.InstanceReference(instance=f"zones/{ZONE}/instances/node-a-2")
    gce.wait(
        gce.target_pools.add_instance_unary(
            project=PROJECT,
            region=REGION,
            target_pool="pool",
            target_pools_add_instance_request_resource=compute_v1.TargetPoolsAddInstanceRequest(
                instances=[ref]
            ),
        )
    )
    pool = gce.target_pools.get(project=PROJECT, region=REGION, target_pool="pool")
    assert list(pool.instances) == [f"{GOOGLE}zones/{ZONE}/instances/node-a-2"]
    gce.wait(
        gce.target_pools.remove_instance_unary(
            project=PROJECT,
            region=REGION,
            target_pool="pool",
            target_pools_remove_instance_request_resource=compute_v1.TargetPoolsRemoveInstanceRequest(
                instances=[ref]
            ),
        )
    )
    assert list(gce.target_pools.get(project=PROJECT, region=REGION, target_pool="pool").instances) == []


def test_a_forwarding_rule_targets_a_target_pool_and_deletes_refuse_what_is_in_use(
    fake: FakeCompute, gce: Gce
) -> None:
    check = _legacy_check(fake, gce)
    _pool(gce, health_checks=[check["selfLink"]])
    rule = compute_v1.ForwardingRule(
        name="lb",
        I_p_protocol="TCP",
        port_range="80-443",
        target=f"{GOOGLE}regions/{REGION}/targetPools/pool",
    )
    gce.forwarding_rule(rule)
    got = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="lb")
    assert (got.load_balancing_scheme, got.port_range, got.target) == (
        "EXTERNAL",
        "80-443",
        f"{GOOGLE}regions/{REGION}/targetPools/pool",
    )
    with pytest.raises(exceptions.BadRequest) as pool_in_use:
        gce.target_pools.delete_unary(project=PROJECT, region=REGION, target_pool="pool")
    assert reason(pool_in_use.value) == "resourceInUseByAnotherResource"
    assert "being used by" in str(pool_in_use.value)
    status, body = raw(fake, "DELETE", "global/httpHealthChecks/legacy")
    assert (status, body["error"]["errors"][0]["reason"]) == (400, "resourceInUseByAnotherResource")
    gce.wait(gce.forwarding_rules.delete_unary(project=PROJECT, region=REGION, forwarding_rule="lb"))
    gce.wait(gce.target_pools.delete_unary(project=PROJECT, region=REGION, target_pool="pool"))
    assert raw(fake, "DELETE", "global/httpHealthChecks/legacy")[0] == 200
    assert fake.resources("httpHealthChecks") == [] and fake.resources("targetPools") == []
    with pytest.raises(exceptions.BadRequest):  # a target pool serves EXTERNAL rules only
        _pool(gce, "again")
        gce.forwarding_rule(
            compute_v1.ForwardingRule(
                name="ilb",
                load_balancing_scheme="INTERNAL",
                target=f"regions/{REGION}/targetPools/again",
                ports=["80"],
            )
        )

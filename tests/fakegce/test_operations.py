"""Operations, fault injection, requestId idempotency, call counting and IAM permissions."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from fakegce import CONDITIONAL_PERMISSIONS, PERMISSIONS, FakeCompute
from fakegce.compute import Compute
from tests.support.fakegce import PROJECT, REGION, ZONE, Gce, external_rule, firewall, internal_rule

DONE = compute_v1.Operation.Status.DONE
RUNNING = compute_v1.Operation.Status.RUNNING
FR = "regions/{region}/forwardingRules"
WAIT = ("POST", "regions/{region}/operations/{operation}/wait")


def test_a_running_operation_is_polled_until_done(gce: Gce) -> None:
    gce.fake.operations_stay_running(polls=3)
    op = gce.health_checks.insert_unary(
        project=PROJECT, region=REGION, health_check_resource=compute_v1.HealthCheck(name="hc", type_="TCP")
    )
    assert (op.status, op.progress) == (RUNNING, 0)
    polled = gce.region_operations.get(project=PROJECT, region=REGION, operation=op.name)
    assert polled.status == RUNNING
    done = gce.wait(polled)
    assert (done.status, done.progress, done.error.errors) == (DONE, 100, [])
    assert gce.fake.calls[WAIT] == 2
    assert gce.fake.calls[("GET", "regions/{region}/operations/{operation}")] == 1


def test_zonal_and_global_operations_are_polled_in_their_own_scope(gce: Gce) -> None:
    gce.fake.operations_stay_running(polls=1)
    group = gce.instance_groups.insert_unary(
        project=PROJECT, zone=ZONE, instance_group_resource=compute_v1.InstanceGroup(name="ig")
    )
    assert group.zone.endswith(f"/zones/{ZONE}")
    assert gce.wait(group).status == DONE
    rule = gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall())
    assert not rule.region and not rule.zone
    assert gce.wait(rule).status == DONE
    with pytest.raises(exceptions.NotFound):
        gce.region_operations.get(project=PROJECT, region=REGION, operation=rule.name)


def test_an_asynchronous_failure_ends_done_with_an_error_and_changes_nothing(gce: Gce) -> None:
    gce.fake.fail_operation(
        "POST", "global/firewalls", 400, "The network is not ready.", reason="RESOURCE_NOT_READY"
    )
    op = gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall())
    assert op.status == RUNNING  # as GCE answers a mutation (recorded real traffic)
    op = gce.wait(op)
    assert op.status == DONE
    assert (op.http_error_status_code, op.http_error_message) == (400, "BAD REQUEST")
    assert [(e.code, e.message) for e in op.error.errors] == [
        ("RESOURCE_NOT_READY", "The network is not ready.")
    ]
    assert gce.fake.resources("firewalls") == []
    gce.wait(
        gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall())
    )  # times=1: next one works
    assert [f["name"] for f in gce.fake.resources("firewalls")] == ["k8s-fw-lb"]


def test_an_asynchronous_failure_surfaces_from_an_extended_operation(gce: Gce) -> None:
    # GCE answers some operations DONE at once (setLabels, in recorded real traffic): then
    # ExtendedOperation.result() needs no poll (which would go to the public endpoint: §4's endpoint bug).
    gce.fake.operations_stay_running(polls=0)
    gce.fake.fail_operation("POST", "global/firewalls", 403, "Required 'compute.networks.updatePolicy'")
    operation = gce.firewalls.insert(project=PROJECT, firewall_resource=firewall())
    with pytest.raises(exceptions.Forbidden, match="updatePolicy"):
        operation.result(timeout=5)


def test_a_failing_operation_can_stay_running_first(gce: Gce) -> None:
    gce.fake.operations_stay_running(polls=2)
    gce.fake.fail_operation("DELETE", "global/firewalls/{firewall}", 503, "backend unavailable")
    gce.fake.operations_stay_running(polls=0)
    gce.wait(gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall()))
    gce.fake.operations_stay_running(polls=2)
    op = gce.firewalls.delete_unary(project=PROJECT, firewall="k8s-fw-lb")
    assert op.status == RUNNING
    done = gce.wait(op)
    assert done.http_error_status_code == 503
    assert gce.fake.calls[("POST", "global/operations/{operation}/wait")] == 2
    assert len(gce.fake.resources("firewalls")) == 1


def test_injected_429_fails_a_mutation_once_and_is_not_retried_by_the_client(gce: Gce) -> None:
    gce.fake.fail("POST", "global/firewalls", 429, times=1)
    with pytest.raises(exceptions.TooManyRequests) as error:
        gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall())
    assert error.value.errors[0]["reason"] == "rateLimitExceeded"
    assert gce.fake.resources("firewalls") == []
    gce.wait(gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall()))
    assert gce.fake.calls[("POST", "global/firewalls")] == 2


def test_injected_503s_on_a_read_are_retried_by_the_clients_default_policy(gce: Gce) -> None:
    gce.fake.fail("GET", "zones/{zone}/instances/{instance}", 503, times=2)
    assert gce.instances.get(project=PROJECT, zone=ZONE, instance="node-a-1").name == "node-a-1"
    assert gce.fake.calls[("GET", "zones/{zone}/instances/{instance}")] == 3


def test_injected_500_is_an_internal_server_error(gce: Gce) -> None:
    gce.fake.fail("GET", "global/firewalls", 500)
    with pytest.raises(exceptions.InternalServerError):
        list(gce.firewalls.list(project=PROJECT))


def test_fault_injection_refuses_an_unknown_template(fake: FakeCompute) -> None:
    with pytest.raises(ValueError, match="no route"):
        fake.fail("POST", "regions/{region}/targetInstances", 503)
    with pytest.raises(ValueError, match="no mutating route"):
        fake.fail_operation("GET", "global/firewalls", 400, "x")


def test_a_delay_slows_every_answer(gce: Gce) -> None:
    gce.fake.delay(0.3)
    start = time.monotonic()
    gce.instances.get(project=PROJECT, zone=ZONE, instance="node-a-1")
    assert time.monotonic() - start >= 0.3
    gce.fake.delay(0)
    start = time.monotonic()
    gce.instances.get(project=PROJECT, zone=ZONE, instance="node-a-1")
    assert time.monotonic() - start < 0.3


def test_a_repeated_request_id_returns_the_first_operation_and_applies_once(gce: Gce) -> None:
    gce.fake.operations_stay_running(polls=1)
    request_id = str(uuid.uuid4())
    request = compute_v1.InsertFirewallRequest(
        project=PROJECT, firewall_resource=firewall(), request_id=request_id
    )
    first = gce.firewalls.insert_unary(request=request)
    again = gce.firewalls.insert_unary(request=request)  # a retry after a lost answer: no 409
    assert again.name == first.name
    assert len(gce.fake.resources("firewalls")) == 1
    assert gce.fake.requests[-1]["query"] == {"requestId": request_id}
    gce.wait(first)
    assert gce.firewalls.insert_unary(request=request).status == DONE  # the same operation, now done
    with pytest.raises(exceptions.Conflict):  # without the requestId it is a second insert
        gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall())


def test_a_request_id_must_be_a_uuid(gce: Gce) -> None:
    request = compute_v1.InsertFirewallRequest(
        project=PROJECT, firewall_resource=firewall(), request_id="retry-1"
    )
    with pytest.raises(exceptions.BadRequest, match="requestId"):
        gce.firewalls.insert_unary(request=request)


def test_calls_are_counted_per_template_and_mutations_separately(gce: Gce) -> None:
    gce.health_check()
    gce.backend_service()
    gce.fake.reset_calls()
    with pytest.raises(exceptions.NotFound):
        gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="lb")
    gce.forwarding_rule(external_rule())
    gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule="lb")
    assert gce.fake.calls == {
        ("GET", f"{FR}/{{forwardingRule}}"): 2,
        ("POST", FR): 1,
        ("POST", "regions/{region}/operations/{operation}/wait"): 1,  # the insert answered RUNNING
    }
    assert gce.fake.mutations() == {("POST", FR): 1}
    gce.fake.reset_calls()
    assert gce.fake.calls == {}


def test_the_permissions_of_an_internal_load_balancer_are_recorded(gce: Gce) -> None:
    gce.fake.operations_stay_running(polls=1)
    gce.health_check()
    gce.instance_group(instances=("node-a-1",))
    gce.backend_service("ilb", scheme="INTERNAL", groups=("ig",))
    address = compute_v1.Address(
        name="ilb", address_type="INTERNAL", subnetwork=f"regions/{REGION}/subnetworks/default"
    )
    gce.wait(gce.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=address))
    ip = gce.addresses.get(project=PROJECT, region=REGION, address="ilb").address
    gce.forwarding_rule(internal_rule(I_p_address=ip))
    gce.wait(gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall()))
    assert gce.fake.permissions_used() == {
        "compute.regionHealthChecks.create",
        "compute.regionOperations.get",
        "compute.zoneOperations.get",
        "compute.globalOperations.get",
        "compute.instanceGroups.create",
        "compute.instanceGroups.update",
        "compute.instances.use",
        "compute.regionBackendServices.create",
        "compute.regionHealthChecks.useReadOnly",
        "compute.instanceGroups.use",
        "compute.addresses.createInternal",
        "compute.subnetworks.use",
        "compute.addresses.get",
        "compute.forwardingRules.create",
        "compute.regionBackendServices.use",
        "compute.addresses.useInternal",
        "compute.firewalls.create",
        "compute.networks.updatePolicy",
    }


def test_every_route_has_its_iam_permissions_and_multi_permission_calls_list_all() -> None:
    assert PERMISSIONS[("POST", FR)] == (
        "compute.forwardingRules.create",
        "compute.regionBackendServices.use",
    )
    assert PERMISSIONS[("POST", "zones/{zone}/instanceGroups/{instanceGroup}/addInstances")] == (
        "compute.instanceGroups.update",
        "compute.instances.use",
    )
    assert PERMISSIONS[("POST", "regions/{region}/operations/{operation}/wait")] == (
        "compute.regionOperations.get",
    )
    assert PERMISSIONS[("PUT", "regions/{region}/backendServices/{backendService}")] == (
        "compute.regionBackendServices.update",
    )
    assert PERMISSIONS[("DELETE", "global/firewalls/{firewall}")] == (
        "compute.firewalls.delete",
        "compute.networks.updatePolicy",
    )
    assert PERMISSIONS[("POST", "zones/{zone}/instanceGroups/{instanceGroup}/listInstances")] == (
        "compute.instanceGroups.get",  # the REST page's IAM block (iam-dataset crawl), not .list
    )
    assert set(PERMISSIONS) == set(FakeCompute().routes()) and len(PERMISSIONS) == 65
    assert all(PERMISSIONS.values())
    names = [p for needed in (*PERMISSIONS.values(), *CONDITIONAL_PERMISSIONS.values()) for p in needed]
    assert all(p.startswith("compute.") and p.count(".") == 2 for p in names)


def test_labels_given_at_insert_need_set_labels_on_an_address_and_nothing_on_a_forwarding_rule(
    gce: Gce,
) -> None:
    gce.health_check()
    gce.backend_service()
    gce.fake.reset_calls()
    gce.forwarding_rule(external_rule(labels={"ccm-lb-cluster": "c1"}))  # GCE drops them
    assert gce.fake.permissions_by_route()[("POST", FR)] == {
        "compute.forwardingRules.create",
        "compute.regionBackendServices.use",
    }
    gce.fake.reset_calls()
    labelled = compute_v1.Address(name="ext", labels={"ccm-lb-cluster": "c1"})
    gce.wait(gce.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=labelled))
    assert gce.fake.permissions_used() == {
        "compute.addresses.create",
        "compute.addresses.setLabels",
        "compute.regionOperations.get",  # the wait for the RUNNING operation
    }


def test_an_internal_address_needs_create_internal_without_hiding_an_external_create(gce: Gce) -> None:
    external = compute_v1.Address(name="ext")
    internal = compute_v1.Address(
        name="int", address_type="INTERNAL", subnetwork=f"regions/{REGION}/subnetworks/default"
    )
    for address in (external, internal):
        gce.wait(gce.addresses.insert_unary(project=PROJECT, region=REGION, address_resource=address))
    assert gce.fake.permissions_used() == {
        "compute.addresses.create",
        "compute.addresses.createInternal",
        "compute.subnetworks.use",
        "compute.regionOperations.get",  # the waits for the RUNNING operations
    }


def test_a_failed_call_still_needed_its_permissions(gce: Gce) -> None:
    with pytest.raises(exceptions.NotFound):
        gce.firewalls.delete_unary(project=PROJECT, firewall="missing")
    gce.fake.fail("GET", "global/firewalls", 503, times=1)
    with pytest.raises(exceptions.ServiceUnavailable):
        list(gce.firewalls.list(request=compute_v1.ListFirewallsRequest(project=PROJECT), retry=None))
    assert gce.fake.permissions_used() == {
        "compute.firewalls.delete",
        "compute.networks.updatePolicy",
        "compute.firewalls.list",
    }


def test_a_handler_needing_an_undeclared_permission_fails_the_call_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def poll(self: Compute, request: Any) -> Any:
        self.used.add("compute.projects.get")
        return original(self, request)

    original = Compute.poll
    monkeypatch.setattr(Compute, "poll", poll)
    with FakeCompute(project=PROJECT, region=REGION) as fake:
        gce = Gce.connect(fake)
        with pytest.raises(exceptions.InternalServerError, match=r"undeclared.*compute\.projects\.get"):
            gce.global_operations.get(project=PROJECT, operation="operation-1")

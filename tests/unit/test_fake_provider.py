"""providers.fake.FakeCloud: the recording, fault-injecting in-memory provider."""

from __future__ import annotations

import threading
import time

import pytest

from ccm.cloudprovider import (
    ImplementedElsewhere,
    IngressPoint,
    InvalidSpec,
    LoadBalancerStatus,
    Node,
    RetryAfter,
    ServicePort,
)
from providers.fake import Call, FakeCloud, new
from tests.unit.builders import request

UID_A = "aaaaaaaa-0000-0000-0000-000000000001"
UID_B = "bbbbbbbb-0000-0000-0000-000000000002"


def nodes(*names: str) -> tuple[Node, ...]:
    return tuple(Node(name=n, provider_id=f"fake://{n}") for n in names)


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud(cluster_name="unit")


# -- recording and the happy path -------------------------------------------------------------------


def test_every_call_is_recorded_with_the_service_key_and_node_names(cloud: FakeCloud) -> None:
    req = request("web", namespace="shop", uid=UID_A, nodes=nodes("n1", "n2"))

    cloud.get_load_balancer(request=req)
    cloud.ensure_load_balancer(request=req)
    cloud.update_load_balancer(request=req.with_nodes(nodes("n1")))
    cloud.ensure_load_balancer_deleted(request=req)

    assert list(cloud.calls) == [
        Call("get_load_balancer", "shop/web", ("n1", "n2")),
        Call("ensure_load_balancer", "shop/web", ("n1", "n2")),
        Call("update_load_balancer", "shop/web", ("n1",)),
        Call("ensure_load_balancer_deleted", "shop/web", ("n1", "n2")),
    ]


def test_calls_can_be_filtered_by_key_and_method_and_cleared(cloud: FakeCloud) -> None:
    a, b = request("a", uid=UID_A), request("b", uid=UID_B)
    cloud.ensure_load_balancer(request=a)
    cloud.ensure_load_balancer(request=b)
    cloud.get_load_balancer(request=a)

    assert [c.method for c in cloud.calls_for(key="default/a")] == [
        "ensure_load_balancer",
        "get_load_balancer",
    ]
    assert [c.key for c in cloud.calls_for(method="ensure_load_balancer")] == ["default/a", "default/b"]
    assert cloud.calls_for(key="default/b", method="get_load_balancer") == []

    cloud.clear_calls()
    assert list(cloud.calls) == []


def test_a_load_balancer_that_was_never_ensured_does_not_exist(cloud: FakeCloud) -> None:
    assert cloud.get_load_balancer(request=request()) == (None, False)


def test_an_ensured_load_balancer_exists_with_the_returned_status(cloud: FakeCloud) -> None:
    req = request(uid=UID_A)

    status = cloud.ensure_load_balancer(request=req)

    assert cloud.get_load_balancer(request=req) == (status, True)
    assert cloud.balancers["default/svc"].request == req


def test_update_moves_the_backends_of_an_existing_load_balancer(cloud: FakeCloud) -> None:
    req = request(uid=UID_A, nodes=nodes("n1", "n2"))
    cloud.ensure_load_balancer(request=req)

    cloud.update_load_balancer(request=req.with_nodes(nodes("n3")))

    assert cloud.balancers["default/svc"].request == req.with_nodes(nodes("n3"))


def test_update_of_a_missing_load_balancer_fails(cloud: FakeCloud) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        cloud.update_load_balancer(request=request())


def test_delete_removes_the_load_balancer_and_is_idempotent(cloud: FakeCloud) -> None:
    req = request(uid=UID_A)
    cloud.ensure_load_balancer(request=req)

    cloud.ensure_load_balancer_deleted(request=req)
    cloud.ensure_load_balancer_deleted(request=req)

    assert cloud.get_load_balancer(request=req) == (None, False)


def test_forget_loses_a_load_balancer_out_of_band(cloud: FakeCloud) -> None:
    req = request(uid=UID_A)
    cloud.ensure_load_balancer(request=req)

    cloud.forget(key=req.key)

    assert cloud.get_load_balancer(request=req) == (None, False)


# -- deterministic addresses ------------------------------------------------------------------------


def test_the_load_balancer_name_is_a_followed_by_the_uid_without_dashes_cut_to_32(cloud: FakeCloud) -> None:
    name = cloud.get_load_balancer_name(request=request(uid=UID_A))

    assert name == ("a" + UID_A.replace("-", ""))[:32]
    assert len(name) == 32


def test_the_default_address_is_a_hostname_derived_from_the_name(cloud: FakeCloud) -> None:
    req = request(uid=UID_A)

    status = cloud.ensure_load_balancer(request=req)

    name = cloud.get_load_balancer_name(request=req)
    assert status == LoadBalancerStatus(ingress=(IngressPoint(hostname=f"{name}.lb.fake.invalid"),))


def test_an_ip_address_is_handed_out_from_test_net_1_when_asked_for(cloud: FakeCloud) -> None:
    req = request(uid=UID_A, annotations={"fake.ccm.io/address-type": "ip"})

    status = cloud.ensure_load_balancer(request=req)

    assert len(status.ingress) == 1
    point = status.ingress[0]
    assert point.hostname == ""
    assert point.ip.startswith("192.0.2.")
    assert 1 <= int(point.ip.rsplit(".", 1)[1]) <= 254


def test_addresses_are_deterministic_per_cluster_and_uid() -> None:
    annotations = {"fake.ccm.io/address-type": "ip"}
    first = FakeCloud(cluster_name="unit").ensure_load_balancer(
        request=request(uid=UID_A, annotations=annotations)
    )
    again = FakeCloud(cluster_name="unit").ensure_load_balancer(
        request=request(uid=UID_A, annotations=annotations)
    )
    addresses = {
        FakeCloud(cluster_name="unit")
        .ensure_load_balancer(
            request=request(uid=f"{i:08d}-0000-0000-0000-000000000000", annotations=annotations)
        )
        .ingress[0]
        .ip
        for i in range(20)
    }

    assert first == again
    assert len(addresses) > 1, "different Services should not all share one address"


# -- faults -----------------------------------------------------------------------------------------


def test_fail_makes_every_method_raise_for_that_service_only(cloud: FakeCloud) -> None:
    broken, fine = request("broken", uid=UID_A), request("fine", uid=UID_B)
    cloud.fail(key=broken.key)

    with pytest.raises(RuntimeError, match="injected failure for default/broken"):
        cloud.ensure_load_balancer(request=broken)
    with pytest.raises(RuntimeError):
        cloud.get_load_balancer(request=broken)
    with pytest.raises(RuntimeError):
        cloud.ensure_load_balancer_deleted(request=broken)
    cloud.ensure_load_balancer(request=fine)

    assert "default/broken" not in cloud.balancers
    assert [c.method for c in cloud.calls_for(key=broken.key)] == [
        "ensure_load_balancer",
        "get_load_balancer",
        "ensure_load_balancer_deleted",
    ]


def test_fail_can_target_one_method_with_a_given_error(cloud: FakeCloud) -> None:
    req = request(uid=UID_A)
    cloud.fail(key=req.key, method="ensure_load_balancer", error=ValueError("quota exceeded"))

    with pytest.raises(ValueError, match="quota exceeded"):
        cloud.ensure_load_balancer(request=req)
    assert cloud.get_load_balancer(request=req) == (None, False)


def test_fail_with_times_fails_that_many_calls_then_succeeds(cloud: FakeCloud) -> None:
    req = request(uid=UID_A)
    cloud.fail(key=req.key, method="ensure_load_balancer", times=2)

    for _ in range(2):
        with pytest.raises(RuntimeError):
            cloud.ensure_load_balancer(request=req)
    cloud.ensure_load_balancer(request=req)

    assert req.key in cloud.balancers


def test_throttle_raises_retry_after_with_the_delay(cloud: FakeCloud) -> None:
    req = request(uid=UID_A)
    cloud.throttle(key=req.key, seconds=42, times=1)

    with pytest.raises(RetryAfter) as raised:
        cloud.ensure_load_balancer(request=req)
    assert raised.value.seconds == 42
    cloud.ensure_load_balancer(request=req)


def test_slow_delays_calls_for_that_service(cloud: FakeCloud) -> None:
    req = request(uid=UID_A)
    cloud.slow(key=req.key, seconds=0.05, method="ensure_load_balancer")

    started = time.monotonic()
    cloud.ensure_load_balancer(request=req)
    slow_elapsed = time.monotonic() - started

    assert slow_elapsed >= 0.05
    assert req.key in cloud.balancers


def test_heal_removes_the_faults_of_one_service(cloud: FakeCloud) -> None:
    a, b = request("a", uid=UID_A), request("b", uid=UID_B)
    cloud.fail(key=a.key)
    cloud.fail(key=b.key)

    cloud.heal(key=a.key)

    cloud.ensure_load_balancer(request=a)
    with pytest.raises(RuntimeError):
        cloud.ensure_load_balancer(request=b)


def test_heal_without_a_key_removes_every_fault(cloud: FakeCloud) -> None:
    a, b = request("a", uid=UID_A), request("b", uid=UID_B)
    cloud.fail(key=a.key, method="ensure_load_balancer")
    cloud.throttle(key=b.key, seconds=1)

    cloud.heal()

    cloud.ensure_load_balancer(request=a)
    cloud.ensure_load_balancer(request=b)


def test_implemented_elsewhere_is_raised_when_annotated(cloud: FakeCloud) -> None:
    req = request(uid=UID_A, annotations={"fake.ccm.io/implemented-elsewhere": "true"})

    with pytest.raises(ImplementedElsewhere):
        cloud.ensure_load_balancer(request=req)
    with pytest.raises(ImplementedElsewhere):
        cloud.update_load_balancer(request=req)
    cloud.ensure_load_balancer_deleted(request=req)  # never raises ImplementedElsewhere
    assert req.key not in cloud.balancers


def test_an_unsupported_protocol_raises_invalid_spec_before_creating_anything(cloud: FakeCloud) -> None:
    req = request(
        uid=UID_A,
        ports=(
            ServicePort(name="http", protocol="TCP", port=80, node_port=30080),
            ServicePort(name="ping", protocol="ICMP", port=0, node_port=30000),
        ),
    )

    with pytest.raises(InvalidSpec) as raised:
        cloud.ensure_load_balancer(request=req)

    assert raised.value.field == "spec.ports[1].protocol"
    assert raised.value.value == "ICMP"
    assert "TCP" in raised.value.accepted
    assert req.key not in cloud.balancers


@pytest.mark.parametrize("protocol", ["TCP", "UDP", "SCTP"])
def test_the_supported_protocols_are_accepted(cloud: FakeCloud, protocol: str) -> None:
    req = request(uid=UID_A, ports=(ServicePort(name="p", protocol=protocol, port=1000, node_port=31000),))

    cloud.ensure_load_balancer(request=req)

    assert req.key in cloud.balancers


def test_concurrent_calls_are_all_recorded(cloud: FakeCloud) -> None:
    reqs = [request(f"svc-{i}", uid=f"{i:08d}-0000-0000-0000-000000000000") for i in range(8)]

    def work(i: int) -> None:
        for _ in range(25):
            cloud.ensure_load_balancer(request=reqs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert len(cloud.calls) == 200
    assert set(cloud.balancers) == {r.key for r in reqs}


# -- drift ------------------------------------------------------------------------------------------


def test_no_drift_when_every_load_balancer_matches_its_request(cloud: FakeCloud) -> None:
    a, b = request("a", uid=UID_A), request("b", uid=UID_B)
    cloud.ensure_load_balancer(request=a)
    cloud.ensure_load_balancer(request=b)

    assert cloud.drifted_load_balancers(requests=[a, b]) == frozenset()
    assert cloud.calls[-1] == Call("drifted_load_balancers", "*")


def test_a_missing_load_balancer_is_drifted(cloud: FakeCloud) -> None:
    a, b = request("a", uid=UID_A), request("b", uid=UID_B)
    cloud.ensure_load_balancer(request=a)

    assert cloud.drifted_load_balancers(requests=[a, b]) == frozenset({"default/b"})


def test_a_load_balancer_built_from_another_request_is_drifted(cloud: FakeCloud) -> None:
    a = request("a", uid=UID_A)
    cloud.ensure_load_balancer(request=a)
    changed = request(
        "a", uid=UID_A, ports=(ServicePort(name="https", protocol="TCP", port=443, node_port=30443),)
    )

    assert cloud.drifted_load_balancers(requests=[changed]) == frozenset({"default/a"})


def test_a_load_balancer_with_other_backends_is_drifted(cloud: FakeCloud) -> None:
    a = request("a", uid=UID_A, nodes=nodes("n1"))
    cloud.ensure_load_balancer(request=a)

    assert cloud.drifted_load_balancers(requests=[a.with_nodes(nodes("n1", "n2"))]) == frozenset(
        {"default/a"}
    )


def test_an_orphaned_load_balancer_is_deleted_and_not_reported(cloud: FakeCloud) -> None:
    a, orphan = request("a", uid=UID_A), request("gone", uid=UID_B)
    cloud.ensure_load_balancer(request=a)
    cloud.ensure_load_balancer(request=orphan)

    assert cloud.drifted_load_balancers(requests=[a], live_uids=frozenset({UID_A})) == frozenset()
    assert set(cloud.balancers) == {"default/a"}


def test_the_load_balancer_of_a_service_that_exists_is_never_swept(cloud: FakeCloud) -> None:
    a, other = request("a", uid=UID_A), request("typechanged", uid=UID_B)
    cloud.ensure_load_balancer(request=a)
    cloud.ensure_load_balancer(request=other)

    assert cloud.drifted_load_balancers(requests=[a], live_uids=frozenset({UID_A, UID_B})) == frozenset()
    assert cloud.drifted_load_balancers(requests=[a]) == frozenset()  # no live_uids: no sweep at all
    assert set(cloud.balancers) == {"default/a", "default/typechanged"}


def test_a_load_balancer_of_a_recreated_service_is_deleted_and_reported_missing(cloud: FakeCloud) -> None:
    old = request("a", uid=UID_A)
    cloud.ensure_load_balancer(request=old)
    recreated = request("a", uid=UID_B)

    assert cloud.drifted_load_balancers(requests=[recreated], live_uids=frozenset({UID_B})) == frozenset(
        {"default/a"}
    )
    assert "default/a" not in cloud.balancers


# -- entry point ------------------------------------------------------------------------------------


def test_the_entry_point_builds_a_fake_cloud_for_the_cluster_without_a_cloud_config() -> None:
    cloud = new(cluster_name="unit")

    assert isinstance(cloud, FakeCloud)
    assert cloud.cluster_name == "unit"
    assert cloud.hostname_suffix == "lb.fake.invalid"
    assert cloud.balancers == {}

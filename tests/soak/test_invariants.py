"""The soak's invariants catch what they are there to catch (so a passing soak means something).

Driven on state made by hand: no apiserver, no cloud, no controller.
"""

from __future__ import annotations

import random
from typing import Any

from tests.soak.aws import FLAVOUR, INTERVAL
from tests.soak.cloud import Inventory, LoadBalancer
from tests.soak.invariants import Observer, Violations, settled_problems
from tests.soak.workload import OTHER_CLASS, OUR_FINALIZER, Machine, Spec, Workload

NODE = Machine(node="n1", provider_id="aws:///us-east-1a/i-1", zone="us-east-1a", instance="i-1")


def service(
    name: str = "s00",
    *,
    uid: str = "uid-1",
    type_: str = "LoadBalancer",
    cls: str | None = None,
    finalizers: tuple[str, ...] = (OUR_FINALIZER,),
    ingress: str = "lb-1.example",
    condition: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    cond = {"type": "LoadBalancerSynced", "status": "True", "reason": "EnsuredLoadBalancer"}
    cond["observedGeneration"] = generation  # type: ignore[assignment]
    return {
        "metadata": {
            "name": name,
            "namespace": "soak-a",
            "uid": uid,
            "generation": generation,
            "finalizers": list(finalizers),
            "annotations": annotations or {},
        },
        "spec": {"type": type_, "ports": [{"port": 80, "protocol": "TCP"}], "loadBalancerClass": cls},
        "status": {
            "loadBalancer": {"ingress": [{"hostname": ingress}] if ingress else []},
            "conditions": [condition if condition is not None else cond],
        },
    }


def inventory(*lbs: tuple[str, str]) -> Inventory:
    """(uid, scheme) per load balancer."""
    inv = Inventory()
    for index, (uid, scheme) in enumerate(lbs):
        inv.load_balancers.setdefault(uid, []).append(
            LoadBalancer(id=f"lb-{index}", scheme=scheme, address=f"lb-{index}.example", service="soak-a/s00")
        )
        inv.parts.setdefault(uid, []).append(f"lb-{index}")
    return inv


def observer() -> tuple[Observer, Violations, Workload]:
    violations = Violations()
    workload = Workload(api=None, cloud=None, flavour=FLAVOUR, rng=random.Random(1))
    return Observer(api=None, cloud=None, workload=workload, violations=violations), violations, workload


def no_problem(**_: Any) -> list[str]:
    return []


def test_two_load_balancers_of_one_scheme_for_one_service_are_a_duplicate() -> None:
    obs, violations, _ = observer()
    obs.check_duplicates(inventory(("uid-1", "internet-facing"), ("uid-2", "internet-facing")))
    assert violations.total() == 0
    obs.check_duplicates(inventory(("uid-1", "internet-facing"), ("uid-1", "internal")))  # a scheme change
    assert violations.total() == 0
    obs.check_duplicates(inventory(("uid-1", "internet-facing"), ("uid-1", "internet-facing")))
    assert violations.counts == {"duplicate": 1}


def test_an_address_that_changes_with_nothing_asked_is_a_flap() -> None:
    obs, violations, _ = observer()
    for address in (("a",), ("a",), ("b",)):
        obs.check_address("uid-1", "soak-a/s00", 0, address)
    assert violations.counts == {"flap": 1}


def test_an_address_may_change_once_after_a_change_that_moves_it() -> None:
    obs, violations, _ = observer()
    obs.check_address("uid-1", "soak-a/s00", 0, ())
    obs.check_address("uid-1", "soak-a/s00", 0, ("a",))
    # the user asks for another scheme (epoch 1): the old address stays a while, then the new one comes
    for address in (("a",), ("a",), ("b",), ("b",)):
        obs.check_address("uid-1", "soak-a/s00", 1, address)
    assert violations.total() == 0
    obs.check_address("uid-1", "soak-a/s00", 1, ("a",))  # and going back unasked is a flap
    assert violations.counts == {"flap": 1}


def test_a_move_made_late_for_the_previous_request_is_not_a_flap() -> None:
    """Found by the 30-minute soak (seed 7): the user asked for internal (epoch 1), and while that ensure
    was in flight, for internet-facing again (epoch 2). The internal address came during epoch 2, then the
    internet-facing one: two moves for two requests."""
    obs, violations, _ = observer()
    obs.check_address("uid-1", "soak-a/s00", 0, ("a",))
    obs.check_address("uid-1", "soak-a/s00", 2, ("a",))
    obs.check_address("uid-1", "soak-a/s00", 2, ("internal",))
    obs.check_address("uid-1", "soak-a/s00", 2, ("b",))
    assert violations.total() == 0
    obs.check_address("uid-1", "soak-a/s00", 2, ("internal",))  # a third move for two requests
    assert violations.counts == {"flap": 1}


def test_a_service_of_another_class_given_our_finalizer_or_an_address_is_foreign_touched() -> None:
    obs, violations, workload = observer()
    epochs = {key: 0 for key in workload.service_keys()}
    untouched = service("s01", uid="other-1", cls=OTHER_CLASS, finalizers=(), ingress="")
    obs.check_services([untouched], epochs, Inventory())
    assert violations.total() == 0
    touched = service("s02", uid="other-2", cls=OTHER_CLASS, finalizers=(OUR_FINALIZER,), ingress="")
    obs.check_services([touched], epochs, Inventory())
    assert violations.counts == {"foreign-touched": 1}


def test_a_settled_valid_service_with_its_load_balancer_has_no_problem() -> None:
    found = settled_problems(
        services=[service()],
        targets=[NODE],
        inventory=inventory(("uid-1", "internet-facing")),
        flavour=FLAVOUR,
        check=no_problem,
    )
    assert found == []


def test_what_the_cloud_check_says_is_wrong_is_a_problem() -> None:
    def wrong(**_: Any) -> list[str]:
        return ["listeners [(80, 'TCP')], wanted [(443, 'TCP')]"]

    found = settled_problems(
        services=[service()],
        targets=[NODE],
        inventory=inventory(("uid-1", "x")),
        flavour=FLAVOUR,
        check=wrong,
    )
    assert found == ["soak-a/s00: listeners [(80, 'TCP')], wanted [(443, 'TCP')]"]


def test_a_condition_of_an_older_generation_is_not_settled() -> None:
    stale = service(generation=2)
    stale["status"]["conditions"][0]["observedGeneration"] = 1
    found = settled_problems(
        services=[stale], targets=[NODE], inventory=Inventory(), flavour=FLAVOUR, check=no_problem
    )
    assert found == ["soak-a/s00: synced generation 1, not 2"]


def test_an_invalid_service_must_say_invalid_spec() -> None:
    invalid = service(annotations={INTERVAL: "ten"})  # condition True: the controller did not notice
    found = settled_problems(
        services=[invalid], targets=[NODE], inventory=Inventory(), flavour=FLAVOUR, check=no_problem
    )
    assert len(found) == 1 and "invalid (interval-not-a-number)" in found[0]


def test_resources_of_a_uid_no_service_wants_are_a_leak_and_a_cluster_ip_keeps_no_finalizer() -> None:
    cluster_ip = service("s01", uid="uid-2", type_="ClusterIP", ingress="")
    found = settled_problems(
        services=[cluster_ip],
        targets=[NODE],
        inventory=inventory(("uid-2", "internet-facing"), ("uid-gone", "internal")),
        flavour=FLAVOUR,
        check=no_problem,
    )
    assert found == [
        "soak-a/s01: wants no load balancer but keeps our finalizer",
        "leaked: resources of uid uid-2 (no Service wants them): ['lb-0']",
        "leaked: resources of uid uid-gone (no Service wants them): ['lb-1']",
    ]


def test_the_workload_knows_which_of_its_changes_may_move_an_address() -> None:
    _, _, workload = observer()
    plain = Spec()
    assert not workload.moves_address(plain, Spec(ports=((443, "TCP"),), source_ranges=("10.0.0.0/8",)))
    assert workload.moves_address(plain, Spec(type="ClusterIP"))
    assert workload.moves_address(plain, Spec(annotations=((FLAVOUR.address_keys[0], "true"),)))

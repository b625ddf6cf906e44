"""Failures stay visible (events and a condition) and are retried with backoff, never in a hot loop."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from ccm.cloudprovider import InvalidSpec
from ccm.controllers.service import ServiceController
from providers.fake import FakeCloud
from tests.support import kube
from tests.support.controller import ControllerFactory


def _max_calls(window: float, base: float, cap: float) -> int:
    """Upper bound of attempts in ``window`` seconds with delays base, 2·base, … capped at cap."""
    elapsed, calls, delay = 0.0, 1, base
    while elapsed + delay <= window:
        elapsed += delay
        calls += 1
        delay = min(delay * 2, cap)
    return calls


def test_failing_provider_gives_warning_events_a_condition_and_backs_off(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
) -> None:
    controller = make_controller(backoff_base=0.1, backoff_max=10.0)
    key = f"{namespace}/broken"
    cloud.fail(
        key=key, method="ensure_load_balancer", error=RuntimeError("quota exceeded for load balancers")
    )
    started = time.monotonic()
    kube.create_service(kube_api, namespace, "broken")
    cond = kube.eventually(
        lambda: kube.condition(kube.get_service(kube_api, namespace, "broken")),
        message="a LoadBalancerSynced condition",
    )
    assert cond["status"] == "False" and cond["reason"] == "SyncLoadBalancerFailed"
    assert "quota exceeded for load balancers" in cond["message"]
    kube.eventually(
        lambda: len(cloud.calls_for(key=key, method="ensure_load_balancer")) >= 4, message="a few retries"
    )
    kube.eventually(  # one more retry: the bound below is checked after backing off, not before
        lambda: len(cloud.calls_for(key=key, method="ensure_load_balancer")) >= 5, message="one more retry"
    )
    calls = len(cloud.calls_for(key=key, method="ensure_load_balancer"))
    assert calls <= _max_calls(time.monotonic() - started, 0.1, 10.0)
    svc = kube.get_service(kube_api, namespace, "broken")
    assert kube.ingress(svc) == []
    kube.eventually(lambda: "SyncLoadBalancerFailed" in kube.reasons(kube_api, namespace, "broken"))
    warning = next(
        e for e in kube.events(kube_api, namespace, "broken") if e["reason"] == "SyncLoadBalancerFailed"
    )
    assert warning["type"] == "Warning"
    assert warning["message"].startswith("Error syncing load balancer: failed to ensure load balancer: quota")
    assert controller.service_queue.num_requeues(key) >= 3


def test_repeated_failures_are_folded_into_one_event_with_a_count(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
) -> None:
    make_controller(backoff_base=0.05, backoff_max=0.2)
    key = f"{namespace}/noisy"
    cloud.fail(key=key, method="ensure_load_balancer", error=RuntimeError("still broken"))
    kube.create_service(kube_api, namespace, "noisy")
    kube.eventually(lambda: len(cloud.calls_for(key=key, method="ensure_load_balancer")) >= 5)

    def failures() -> list[dict[str, object]]:
        return [
            e for e in kube.events(kube_api, namespace, "noisy") if e["reason"] == "SyncLoadBalancerFailed"
        ]

    folded = kube.eventually(
        lambda: [e for e in failures() if int(str(e["count"])) >= 3], message="count >= 3"
    )
    assert len(failures()) == 1 and folded


def test_recovery_clears_the_failure_condition_and_writes_the_address(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    key = f"{namespace}/recovers"
    cloud.fail(key=key, method="ensure_load_balancer", times=2)
    kube.create_service(kube_api, namespace, "recovers")
    kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "recovers")))
    cond = kube.eventually(
        lambda: (
            (c := kube.condition(kube.get_service(kube_api, namespace, "recovers")))
            and c["status"] == "True"
            and c
        )
    )
    assert cond["reason"] == "EnsuredLoadBalancer"
    assert len(cloud.calls_for(key=key, method="ensure_load_balancer")) == 3


def test_retry_after_is_honoured_instead_of_exponential_backoff(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    key = f"{namespace}/provisioning"
    cloud.throttle(key=key, seconds=0.6, method="ensure_load_balancer", times=2)
    kube.create_service(kube_api, namespace, "provisioning")
    kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "provisioning")))
    calls = cloud.calls_for(key=key, method="ensure_load_balancer")
    assert len(calls) == 3
    assert controller.service_queue.num_requeues(key) == 0  # fixed delays count no failure
    cond = kube.condition(kube.get_service(kube_api, namespace, "provisioning"))
    assert cond is not None and cond["status"] == "True"


def test_invalid_spec_is_reported_with_the_field_and_retried_only_at_the_maximum_backoff(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
) -> None:
    controller = make_controller(backoff_base=0.05, backoff_max=60.0)
    key = f"{namespace}/bad"
    cloud.fail(
        key=key,
        method="ensure_load_balancer",
        error=InvalidSpec(
            field="service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval",
            value="often",
            accepted="an integer from 5 to 300",
        ),
    )
    kube.create_service(kube_api, namespace, "bad")
    cond = kube.eventually(lambda: kube.condition(kube.get_service(kube_api, namespace, "bad")))
    assert cond["status"] == "False" and cond["reason"] == "InvalidSpec"
    assert "aws-load-balancer-healthcheck-interval" in cond["message"] and "'often'" in cond["message"]
    # with a 0.05 s base a normal error comes back in 0.05 s; an invalid spec only at the maximum
    kube.eventually(lambda: controller.service_queue.due(key) is not None, message="the retry scheduled")
    due = controller.service_queue.due(key)
    assert due is not None and due - time.monotonic() > 50.0
    assert len(cloud.calls_for(key=key, method="ensure_load_balancer")) == 1
    kube.eventually(lambda: "SyncLoadBalancerFailed" in kube.reasons(kube_api, namespace, "bad"))


def test_one_failing_service_does_not_hold_up_the_others(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    cloud.slow(key=f"{namespace}/stuck", seconds=3.0, method="ensure_load_balancer")
    kube.create_service(kube_api, namespace, "stuck")
    kube.eventually(lambda: cloud.calls_for(key=f"{namespace}/stuck"))
    kube.create_service(kube_api, namespace, "fine")
    kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "fine")))
    assert kube.ingress(kube.get_service(kube_api, namespace, "stuck")) == []


def test_a_failed_delete_keeps_the_finalizer_until_it_succeeds(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    key = f"{namespace}/sticky"
    kube.create_service(kube_api, namespace, "sticky")
    kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "sticky")))
    cloud.fail(key=key, method="ensure_load_balancer_deleted", times=2)
    kube.delete_service(kube_api, namespace, "sticky")
    kube.eventually(lambda: kube.get_service(kube_api, namespace, "sticky") is None)
    assert len(cloud.calls_for(key=key, method="ensure_load_balancer_deleted")) == 3
    assert "SyncLoadBalancerFailed" in kube.reasons(kube_api, namespace, "sticky")


def test_a_service_deleted_before_its_finalizer_is_added_gets_no_load_balancer(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
) -> None:
    """Issue 17's crash storm: a Service listed by the controller and deleted (without our finalizer)
    just before the finalizer patch. The patch finds it gone; nothing may be built for it."""
    controller = make_controller()
    add_finalizer = controller.patcher.add_finalizer

    def deleted_just_before(*, service: Mapping[str, Any], finalizer: str) -> dict[str, Any] | None:
        meta = service["metadata"]
        if meta["name"] == "gone":
            kube.delete_service(kube_api, meta["namespace"], meta["name"])
        return add_finalizer(service=service, finalizer=finalizer)

    controller.patcher.add_finalizer = deleted_just_before  # type: ignore[method-assign]
    sync_service, synced = controller.sync_service, []

    def recording(key: str) -> None:
        try:
            sync_service(key)
        finally:
            synced.append(key)

    controller.sync_service = recording  # type: ignore[method-assign]
    kube.create_service(kube_api, namespace, "gone")
    kube.eventually(lambda: f"{namespace}/gone" in synced, message="the sync of the Service")

    assert kube.get_service(kube_api, namespace, "gone") is None
    assert cloud.calls_for(key=f"{namespace}/gone", method="ensure_load_balancer") == []
    assert "EnsuredLoadBalancer" not in kube.reasons(kube_api, namespace, "gone")

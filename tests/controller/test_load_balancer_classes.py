"""Two instances in one cluster: the default one and one with ``--load-balancer-class``.

Issue 11: the default instance's ``needs_cleanup`` was true for a Service of another class that
carried ``service.kubernetes.io/load-balancer-cleanup``, so it deleted the classed instance's load
balancer and removed its finalizer and status. Each instance now has its own finalizer and never
touches a Service of another class; each provider (here one fake cloud per instance) sees only its
own scope.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from ccm.cloudprovider import LoadBalancerRequest, ServicePort
from ccm.controllers.predicates import LOAD_BALANCER_CLEANUP_FINALIZER, cleanup_finalizer
from ccm.controllers.service import ServiceController
from providers.fake import FakeCloud, FakeLoadBalancer
from tests.support import kube
from tests.support.controller import ControllerFactory

SECOND = "example.com/second"
SECOND_FINALIZER = cleanup_finalizer(load_balancer_class=SECOND)


@pytest.fixture
def classed_cloud() -> FakeCloud:
    return FakeCloud(cluster_name="test", hostname_suffix="second.fake.invalid", load_balancer_class=SECOND)


@pytest.fixture
def two(
    make_controller: ControllerFactory, cloud: FakeCloud, classed_cloud: FakeCloud
) -> tuple[ServiceController, ServiceController]:
    default = make_controller()
    classed = make_controller(provider=classed_cloud, load_balancer_class=SECOND)
    return default, classed


def finalizers(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    svc = kube.get_service(api, namespace, name)
    return list((svc or {}).get("metadata", {}).get("finalizers") or [])


def settle(api: client.ApiClient, namespace: str, *controllers: ServiceController) -> None:
    """Wait until a fresh default Service is served and every queue is idle (no fixed sleeps)."""
    name = f"sentinel-{len(kube.events(api, namespace))}"
    kube.create_service(api, namespace, name)
    kube.eventually(lambda: kube.ingress(kube.get_service(api, namespace, name)), message=f"{name} served")
    for c in controllers:
        kube.eventually(lambda c=c: c.service_queue.pending() == 0, message="an idle queue")  # type: ignore[misc]


def test_a_classed_instance_uses_its_own_finalizer_and_cleans_up_after_a_type_change(
    kube_api: client.ApiClient,
    namespace: str,
    two: tuple[ServiceController, ServiceController],
    cloud: FakeCloud,
    classed_cloud: FakeCloud,
) -> None:
    default, classed = two
    key = f"{namespace}/classed"
    kube.create_service(kube_api, namespace, "classed", load_balancer_class=SECOND)
    served = kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "classed")))
    assert served[0]["hostname"].endswith("second.fake.invalid")
    assert finalizers(kube_api, namespace, "classed") == [SECOND_FINALIZER]
    assert SECOND_FINALIZER.startswith("ccm-lb.io/cleanup-example.com-second-")

    # The type change clears spec.loadBalancerClass: the finalizer says it was the classed instance's.
    kube.patch_service(kube_api, namespace, "classed", {"spec": {"type": "ClusterIP"}})
    kube.eventually(lambda: key not in classed_cloud.balancers, message="the classed LB deleted")
    kube.eventually(lambda: finalizers(kube_api, namespace, "classed") == [], message="finalizer removed")
    kube.eventually(lambda: not kube.ingress(kube.get_service(kube_api, namespace, "classed")))
    settle(kube_api, namespace, default, classed)
    assert cloud.calls_for(key=key) == []  # the default instance never touched it


def test_the_default_instance_ignores_a_classed_service_that_carries_upstreams_finalizer(
    kube_api: client.ApiClient,
    namespace: str,
    two: tuple[ServiceController, ServiceController],
    cloud: FakeCloud,
    classed_cloud: FakeCloud,
) -> None:
    default, classed = two
    key = f"{namespace}/legacy"
    body = kube.service_body("legacy", load_balancer_class=SECOND)
    body["metadata"]["finalizers"] = [LOAD_BALANCER_CLEANUP_FINALIZER]  # put there by an earlier release
    kube.raw(kube_api, "POST", f"/api/v1/namespaces/{namespace}/services", body)
    kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "legacy")))
    # The classed instance migrates the finalizer to its own.
    kube.eventually(lambda: finalizers(kube_api, namespace, "legacy") == [SECOND_FINALIZER])
    kube.patch_service(kube_api, namespace, "legacy", {"metadata": {"annotations": {"touched": "yes"}}})
    settle(kube_api, namespace, default, classed)
    default.resync()
    settle(kube_api, namespace, default, classed)
    svc = kube.get_service(kube_api, namespace, "legacy")
    assert kube.ingress(svc) and kube.condition(svc) is not None
    assert key in classed_cloud.balancers
    assert cloud.calls_for(key=key) == []
    assert "DeletingLoadBalancer" not in kube.reasons(kube_api, namespace, "legacy")

    kube.delete_service(kube_api, namespace, "legacy")
    kube.eventually(lambda: kube.get_service(kube_api, namespace, "legacy") is None, message="deleted")
    assert key not in classed_cloud.balancers
    assert cloud.calls_for(key=key) == []


def test_a_service_of_another_class_still_carrying_upstreams_finalizer_is_left_alone_by_the_default(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
) -> None:
    """No classed instance is running: the default must still not delete, un-finalize or clear it."""
    default = make_controller()
    body = kube.service_body("other", load_balancer_class=SECOND)
    body["metadata"]["finalizers"] = [LOAD_BALANCER_CLEANUP_FINALIZER]
    kube.raw(kube_api, "POST", f"/api/v1/namespaces/{namespace}/services", body)
    kube.patch_service(kube_api, namespace, "other", {"metadata": {"annotations": {"touched": "yes"}}})
    settle(kube_api, namespace, default)
    default.resync()
    settle(kube_api, namespace, default)
    assert finalizers(kube_api, namespace, "other") == [LOAD_BALANCER_CLEANUP_FINALIZER]
    assert cloud.calls_for(key=f"{namespace}/other") == []


def test_resync_never_sweeps_the_load_balancer_of_a_service_that_exists_in_any_form(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    # A ClusterIP Service whose LB is still there (e.g. the controller was down at the type change).
    created = kube.create_service(kube_api, namespace, "plain", type_="ClusterIP")
    uid = created["metadata"]["uid"]
    request = LoadBalancerRequest(
        cluster_name="test",
        namespace=namespace,
        name="plain",
        uid=uid,
        ports=(ServicePort(name="http", protocol="TCP", port=80, node_port=30080),),
    )
    status = cloud.ensure_load_balancer(request=request)
    kube.eventually(lambda: controller.services.store.get(f"{namespace}/plain") is not None)
    controller.resync()
    assert cloud.balancers[f"{namespace}/plain"] == FakeLoadBalancer(
        name=cloud.get_load_balancer_name(request=request), request=request, status=status
    )

"""A Service's life with the service controller: create, change, type change, delete."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes import client

from ccm.cloudprovider import LoadBalancerRequest, LoadBalancerStatus, ProviderEvent
from ccm.controllers.predicates import LOAD_BALANCER_CLEANUP_FINALIZER
from ccm.controllers.service import ServiceController
from providers.fake import FakeCloud
from tests.support import kube
from tests.support.controller import ControllerFactory


def _hostname(kube_api: client.ApiClient, namespace: str, name: str) -> str:
    def ready() -> str:
        points = kube.ingress(kube.get_service(kube_api, namespace, name))
        return points[0].get("hostname", "") if points else ""

    return kube.eventually(ready, message=f"{name} to get an ingress hostname")


def test_load_balancer_service_gets_finalizer_status_events_and_condition(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: Callable[..., str],
) -> None:
    node = nodes()
    kube.create_service(kube_api, namespace, "web")
    hostname = _hostname(kube_api, namespace, "web")
    assert hostname.endswith(".lb.fake.invalid")
    svc = kube.get_service(kube_api, namespace, "web")
    assert svc is not None
    assert LOAD_BALANCER_CLEANUP_FINALIZER in svc["metadata"]["finalizers"]
    cond = kube.eventually(lambda: kube.condition(kube.get_service(kube_api, namespace, "web")))
    assert cond["status"] == "True" and cond["reason"] == "EnsuredLoadBalancer"
    ensure_calls = cloud.calls_for(key=f"{namespace}/web", method="ensure_load_balancer")
    assert len(ensure_calls) == 1
    assert ensure_calls[0].nodes == (node,)
    kube.eventually(
        lambda: (
            {"EnsuringLoadBalancer", "EnsuredLoadBalancer"} <= set(kube.reasons(kube_api, namespace, "web"))
        ),
        message="events",
    )
    event = kube.events(kube_api, namespace, "web")[0]
    assert event["source"]["component"] == "service-controller"


def test_finalizer_is_on_the_service_before_the_first_cloud_call(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
) -> None:
    seen: list[list[str]] = []

    class Checking(FakeCloud):
        def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
            svc = kube.get_service(kube_api, request.namespace, request.name) or {}
            seen.append(list(svc.get("metadata", {}).get("finalizers") or []))
            return super().ensure_load_balancer(request=request)

    make_controller(provider=Checking(cluster_name="test"))
    kube.create_service(kube_api, namespace, "first")
    kube.eventually(lambda: seen, message="the first ensure call")
    assert seen[0] == [LOAD_BALANCER_CLEANUP_FINALIZER]


def test_status_is_patched_only_when_the_ingress_changes(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "steady")
    _hostname(kube_api, namespace, "steady")
    kube.eventually(lambda: kube.condition(kube.get_service(kube_api, namespace, "steady")))
    patches_before = controller.patcher.patches
    kube.patch_service(kube_api, namespace, "steady", {"metadata": {"annotations": {"touch": "1"}}})
    key = f"{namespace}/steady"
    kube.eventually(
        lambda: len(cloud.calls_for(key=key, method="ensure_load_balancer")) == 2,
        message="a second ensure after the annotation change",
    )
    kube.eventually(lambda: controller.service_queue.pending() == 0, message="the queue to drain")
    assert controller.patcher.patches == patches_before


def test_an_ip_status_without_ip_mode_is_not_patched_again(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "by-ip", annotations={"fake.ccm.io/address-type": "ip"})
    points = kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "by-ip")))
    assert points[0]["ip"].startswith("192.0.2.") and points[0]["ipMode"] == "VIP"
    kube.eventually(lambda: kube.condition(kube.get_service(kube_api, namespace, "by-ip")))
    kube.eventually(lambda: controller.service_queue.pending() == 0)
    before = controller.patcher.patches
    kube.patch_service(kube_api, namespace, "by-ip", {"metadata": {"annotations": {"touch": "2"}}})
    kube.eventually(
        lambda: len(cloud.calls_for(key=f"{namespace}/by-ip", method="ensure_load_balancer")) == 2
    )
    kube.eventually(lambda: controller.service_queue.pending() == 0)
    assert controller.patcher.patches == before


def test_a_port_change_re_ensures_with_the_new_ports(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "ports")
    _hostname(kube_api, namespace, "ports")
    kube.patch_service(
        kube_api,
        namespace,
        "ports",
        {"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]}},
    )
    key = f"{namespace}/ports"
    kube.eventually(
        lambda: cloud.balancers.get(key) and cloud.balancers[key].request.ports[0].port == 443,
        message="the LB to carry port 443",
    )
    assert cloud.balancers[key].request.ports[0].node_port >= 30000


def test_type_change_away_from_load_balancer_deletes_and_clears_status(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "shrink")
    _hostname(kube_api, namespace, "shrink")
    kube.patch_service(kube_api, namespace, "shrink", {"spec": {"type": "ClusterIP"}})

    def cleaned() -> bool:
        svc = kube.get_service(kube_api, namespace, "shrink") or {}
        return not kube.ingress(svc) and not svc["metadata"].get("finalizers") and kube.condition(svc) is None

    kube.eventually(cleaned, message="finalizer, ingress and condition to be removed")
    key = f"{namespace}/shrink"
    assert cloud.calls_for(key=key, method="ensure_load_balancer_deleted")
    assert key not in cloud.balancers
    kube.eventually(
        lambda: (
            {"DeletingLoadBalancer", "DeletedLoadBalancer"}
            <= set(kube.reasons(kube_api, namespace, "shrink"))
        )
    )


def test_deleting_the_service_deletes_the_load_balancer_then_the_service_goes(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "gone")
    _hostname(kube_api, namespace, "gone")
    kube.delete_service(kube_api, namespace, "gone")
    kube.eventually(
        lambda: kube.get_service(kube_api, namespace, "gone") is None,
        message="the Service to be deleted once our finalizer is removed",
    )
    assert f"{namespace}/gone" not in cloud.balancers


def test_delete_is_called_even_when_the_provider_says_the_load_balancer_is_absent(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "partial")
    _hostname(kube_api, namespace, "partial")
    key = f"{namespace}/partial"
    cloud.forget(key=key)  # get would now say "absent"; parts may still exist in a real cloud
    kube.delete_service(kube_api, namespace, "partial")
    kube.eventually(lambda: kube.get_service(kube_api, namespace, "partial") is None)
    assert len(cloud.calls_for(key=key, method="ensure_load_balancer_deleted")) == 1


def test_a_service_deleted_without_our_finalizer_still_gets_its_load_balancer_deleted(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "stripped")
    _hostname(kube_api, namespace, "stripped")
    kube.patch_service(kube_api, namespace, "stripped", {"metadata": {"finalizers": None}})
    kube.delete_service(kube_api, namespace, "stripped")
    key = f"{namespace}/stripped"
    kube.eventually(
        lambda: cloud.calls_for(key=key, method="ensure_load_balancer_deleted"),
        message="delete of the LB of a Service whose finalizer a user removed",
    )
    assert key not in cloud.balancers


def test_a_service_deleted_without_our_finalizer_is_deleted_with_the_address_its_status_showed(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    # The deletion of a Service whose finalizer a user removed is built from what the controller last
    # knew of it; that must be the Service as it last stood (with the status we wrote), as the
    # finalizer path's deletion is: the GCP provider deletes upstream's parts only when they serve
    # the status address (upstream's cache keeps the version it last synced, before its own status).
    seen: list[LoadBalancerRequest] = []
    delete = cloud.ensure_load_balancer_deleted

    def recording(*, request: LoadBalancerRequest) -> None:
        seen.append(request)
        delete(request=request)

    cloud.ensure_load_balancer_deleted = recording  # type: ignore[method-assign]
    kube.create_service(kube_api, namespace, "stripped")
    hostname = _hostname(kube_api, namespace, "stripped")
    kube.patch_service(kube_api, namespace, "stripped", {"metadata": {"finalizers": None}})
    kube.delete_service(kube_api, namespace, "stripped")
    kube.eventually(lambda: seen, message="delete of the LB of a Service whose finalizer a user removed")
    assert seen[0].status_addresses == (hostname,)


def test_cluster_ip_service_is_never_sent_to_the_cloud(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "plain", type_="ClusterIP")
    kube.create_service(kube_api, namespace, "marker")
    _hostname(kube_api, namespace, "marker")  # a later Service is done, so the earlier one was seen
    assert cloud.calls_for(key=f"{namespace}/plain") == []
    svc = kube.get_service(kube_api, namespace, "plain") or {}
    assert not svc["metadata"].get("finalizers")


def test_service_with_another_load_balancer_class_is_left_alone(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "other", load_balancer_class="example.com/other")
    kube.create_service(kube_api, namespace, "marker")
    _hostname(kube_api, namespace, "marker")
    assert cloud.calls_for(key=f"{namespace}/other") == []
    svc = kube.get_service(kube_api, namespace, "other") or {}
    assert not svc["metadata"].get("finalizers") and not kube.ingress(svc)


def test_controller_with_a_class_handles_only_services_of_that_class(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
) -> None:
    make_controller(load_balancer_class="example.com/ours")
    kube.create_service(kube_api, namespace, "unclassed")
    kube.create_service(kube_api, namespace, "ours", load_balancer_class="example.com/ours")
    _hostname(kube_api, namespace, "ours")
    assert cloud.calls_for(key=f"{namespace}/unclassed") == []


def test_implemented_elsewhere_keeps_the_finalizer_and_writes_no_status(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(
        kube_api, namespace, "elsewhere", annotations={"fake.ccm.io/implemented-elsewhere": "true"}
    )
    key = f"{namespace}/elsewhere"
    kube.eventually(lambda: cloud.calls_for(key=key, method="ensure_load_balancer"))
    kube.eventually(lambda: controller.service_queue.pending() == 0)
    svc = kube.get_service(kube_api, namespace, "elsewhere") or {}
    assert svc["metadata"]["finalizers"] == [LOAD_BALANCER_CLEANUP_FINALIZER]
    assert kube.ingress(svc) == []
    assert "EnsuredLoadBalancer" not in kube.reasons(kube_api, namespace, "elsewhere")


def test_existing_services_are_ensured_when_the_controller_starts(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "before-start")
    make_controller()
    _hostname(kube_api, namespace, "before-start")


def test_an_event_the_provider_returns_is_recorded_on_the_service_as_a_warning(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
) -> None:
    class Telling(FakeCloud):
        def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
            status = super().ensure_load_balancer(request=request)
            event = ProviderEvent(reason="LoadBalancerIPChanged", message="moved from 1.2.3.4 to 5.6.7.8")
            return dataclasses.replace(status, events=(event,))

    make_controller(provider=Telling(cluster_name="test"))
    kube.create_service(kube_api, namespace, "told")
    _hostname(kube_api, namespace, "told")
    told = kube.eventually(
        lambda: [
            e for e in kube.events(kube_api, namespace, "told") if e["reason"] == "LoadBalancerIPChanged"
        ],
        message="the provider's event",
    )
    assert told[0]["type"] == "Warning" and told[0]["message"] == "moved from 1.2.3.4 to 5.6.7.8"


class _Picky(FakeCloud):
    """A provider that implements no ``example.com/lb-*`` annotation (an :class:`AnnotationChecker`)."""

    def unsupported_annotations(
        self, *, annotations: Mapping[str, str], status_addresses: Sequence[str] = ()
    ) -> tuple[str, ...]:
        return tuple(sorted(k for k in annotations if k.startswith("example.com/lb-")))


def test_an_annotation_the_provider_does_not_implement_is_named_once_per_change(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
) -> None:
    make_controller(provider=_Picky(cluster_name="test"))
    kube.create_service(
        kube_api, namespace, "picky", annotations={"example.com/lb-speed": "fast", "example.com/other": "x"}
    )
    _hostname(kube_api, namespace, "picky")

    def unsupported() -> list[dict[str, Any]]:
        return [
            e for e in kube.events(kube_api, namespace, "picky") if e["reason"] == "UnsupportedAnnotation"
        ]

    (first,) = kube.eventually(unsupported, message="the UnsupportedAnnotation event")
    assert first["type"] == "Warning" and "example.com/lb-speed" in first["message"]
    assert "example.com/other" not in first["message"]
    cond = kube.condition(kube.get_service(kube_api, namespace, "picky"))
    assert cond is not None and cond["status"] == "True" and "example.com/lb-speed" in cond["message"]

    # a spec change re-ensures the Service; the same unsupported key is not reported again
    kube.patch_service(
        kube_api,
        namespace,
        "picky",
        {
            "spec": {
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "alt", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
                ]
            }
        },
    )
    kube.eventually(
        lambda: (
            sum(
                e.get("count") or 1
                for e in kube.events(kube_api, namespace, "picky")
                if e["reason"] == "EnsuredLoadBalancer"
            )
            >= 2
        ),
        message="the spec change synced",
    )
    # another unsupported key is a change: named, once, with the first
    kube.patch_service(
        kube_api, namespace, "picky", {"metadata": {"annotations": {"example.com/lb-size": "xl"}}}
    )
    kube.eventually(lambda: len(unsupported()) == 2 or None, message="a second UnsupportedAnnotation event")
    messages = sorted(e["message"] for e in unsupported())
    assert {("example.com/lb-size" in m, "example.com/lb-speed" in m) for m in messages} == {
        (False, True),
        (True, True),
    }
    assert sum(e.get("count", 1) for e in unsupported()) == 2

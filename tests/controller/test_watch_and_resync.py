"""Nothing is missed when the watch breaks or the server says 410 Gone; drift is repaired."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from ccm.controllers.service import ServiceController
from ccm.envtest.assets import find_assets
from ccm.envtest.controlplane import ControlPlane
from ccm.k8s.events import EventRecorder
from providers.fake import FakeCloud
from tests.plugins.controlplane import api_client_for
from tests.support import kube


def test_a_broken_watch_resumes_and_misses_nothing(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    for i in range(3):
        controller.services.break_watch()
        kube.create_service(kube_api, namespace, f"during-{i}")
    for i in range(3):
        kube.eventually(
            lambda i=i: kube.ingress(kube.get_service(kube_api, namespace, f"during-{i}")),  # type: ignore[misc]
            message=f"during-{i} to be handled after the watch broke",
        )


def test_gone_resource_version_relists_and_sees_changes_and_deletions() -> None:
    """A real 410: an apiserver without watch cache, and etcd compacted past the watch's version."""
    with ControlPlane(assets=find_assets(), extra_apiserver_args=("--watch-cache=false",)) as plane:
        api = api_client_for(plane.kubeconfig)
        cloud = FakeCloud(cluster_name="test")
        recorder = EventRecorder(api=api)
        controller = ServiceController(
            api=api,
            provider=cloud,
            cluster_name="test",
            recorder=recorder,
            backoff_base=0.05,
            backoff_max=1.0,
        )
        controller.start()
        try:
            kube.eventually(controller.has_synced)
            for name in ("kept", "dropped"):
                kube.create_service(api, "default", name)
                kube.eventually(lambda n=name: kube.ingress(kube.get_service(api, "default", n)))  # type: ignore[misc]
            relists = controller.services.relists
            stale = controller.services.resource_version
            kube.delete_service(api, "default", "dropped")  # happens while we are "disconnected"
            kube.create_service(api, "default", "added")
            plane.compact_etcd()
            controller.services.resource_version = str(int(stale) - 1)
            controller.services.break_watch()  # the re-watch from a compacted version gets 410 Gone
            kube.eventually(lambda: controller.services.relists > relists, message="a relist after 410 Gone")
            kube.eventually(lambda: kube.ingress(kube.get_service(api, "default", "added")))
            kube.eventually(lambda: kube.get_service(api, "default", "dropped") is None)
            kube.eventually(
                lambda: "default/dropped" not in cloud.balancers, message="the dropped LB deleted"
            )
            assert "default/kept" in cloud.balancers
        finally:
            controller.stop()
            recorder.stop()
            api.close()


def test_resync_re_ensures_only_a_load_balancer_deleted_out_of_band(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    for name in ("intact", "lost"):
        kube.create_service(kube_api, namespace, name)
        kube.eventually(lambda n=name: kube.ingress(kube.get_service(kube_api, namespace, n)))  # type: ignore[misc]
    kube.eventually(lambda: controller.service_queue.pending() == 0)
    cloud.forget(key=f"{namespace}/lost")  # someone deleted it in the console
    before = {
        k: len(cloud.calls_for(key=f"{namespace}/{k}", method="ensure_load_balancer"))
        for k in ("intact", "lost")
    }
    drifted = controller.resync()
    assert f"{namespace}/lost" in drifted and f"{namespace}/intact" not in drifted
    kube.eventually(lambda: f"{namespace}/lost" in cloud.balancers, message="the lost LB to be rebuilt")
    kube.eventually(lambda: controller.service_queue.pending() == 0)
    assert len(cloud.calls_for(key=f"{namespace}/intact", method="ensure_load_balancer")) == before["intact"]
    assert len(cloud.calls_for(key=f"{namespace}/lost", method="ensure_load_balancer")) == before["lost"] + 1
    assert len(cloud.calls_for(method="drifted_load_balancers")) == 1  # one bulk check for all Services


def test_resync_does_not_ensure_again_a_service_ensured_while_its_bulk_check_ran(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bulk check lists the cloud first (AWS: one GetResources page per 100 load balancers, many
    seconds at thousands); a Service the workers finish meanwhile looks missing in that listing. At
    5,000 Services created at once (bench/side_by_side.py) a resync in the middle re-queued ~1,200 of
    them, one more cloud read each; they were complete."""
    kube.create_service(kube_api, namespace, "late")
    key = f"{namespace}/late"
    kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "late")))
    kube.eventually(lambda: controller.service_queue.pending() == 0)
    listed = cloud.drifted_load_balancers

    def stale_listing(**kwargs: Any) -> frozenset[str]:
        drifted = listed(**kwargs)
        controller.sync_service(key)  # a worker completes it after the listing was read
        return drifted | {key}

    monkeypatch.setattr(cloud, "drifted_load_balancers", stale_listing)
    ensures = len(cloud.calls_for(key=key, method="ensure_load_balancer"))

    assert controller.resync() == frozenset()
    assert controller.service_queue.pending() == 0
    assert len(cloud.calls_for(key=key, method="ensure_load_balancer")) == ensures + 1  # the worker's only


def test_resync_deletes_an_orphan_whose_service_is_gone(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
) -> None:
    kube.create_service(kube_api, namespace, "live")
    kube.eventually(lambda: kube.ingress(kube.get_service(kube_api, namespace, "live")))
    orphan = next(iter(cloud.balancers.values())).request
    cloud.balancers["elsewhere/ghost"] = type(cloud.balancers[f"{namespace}/live"])(
        name="ghost",
        request=orphan.__class__(
            **{**orphan.__dict__, "namespace": "elsewhere", "name": "ghost", "uid": "ghost-uid"}
        ),
        status=cloud.balancers[f"{namespace}/live"].status,
    )
    controller.resync()
    assert "elsewhere/ghost" not in cloud.balancers
    assert f"{namespace}/live" in cloud.balancers


def test_the_caches_keep_no_managed_fields_and_no_node_image_lists(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    nodes: Callable[..., str],
) -> None:
    """What the controller never reads is not kept for every object (RSS at thousands of Services)."""
    name = nodes()
    patched = kube.raw(
        kube_api,
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        {"status": {"images": [{"names": ["registry.example/app@sha256:" + "0" * 64], "sizeBytes": 1}]}},
        content_type="application/merge-patch+json",
    )
    kube.create_service(kube_api, namespace, "lean")
    kube.eventually(lambda: controller.services.store.get(f"{namespace}/lean"), message="the Service cached")
    assert patched["status"]["images"]
    rv = patched["metadata"]["resourceVersion"]
    kube.eventually(
        lambda: (controller.nodes.store.get(name) or {}).get("metadata", {}).get("resourceVersion") == rv,
        message="the node cached as patched",
    )
    assert kube.get_service(kube_api, namespace, "lean")["metadata"].get("managedFields")  # the API has them
    service = controller.services.store.get(f"{namespace}/lean")
    node = controller.nodes.store.get(name)
    assert service is not None and node is not None
    assert "managedFields" not in service["metadata"] and "managedFields" not in node["metadata"]
    assert "images" not in node["status"]

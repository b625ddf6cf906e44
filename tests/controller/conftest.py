"""Fixtures for controller tests: a ServiceController with the fake provider on the real apiserver.

Nodes are cluster-scoped, so each test's nodes are deleted at its end; Services live in the test's
own namespace and are stripped of our finalizer and deleted at its end, so later tests' controllers
do not keep reconciling them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from ccm.controllers.service import ServiceController
from ccm.k8s.events import EventRecorder
from providers.fake import FakeCloud
from tests.support import kube
from tests.support.controller import ControllerFactory


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud(cluster_name="test")


@pytest.fixture
def make_controller(kube_api: client.ApiClient, cloud: FakeCloud) -> Iterator[ControllerFactory]:
    """Start a controller (started and synced) with test-friendly backoff; several may be made."""
    started: list[tuple[ServiceController, EventRecorder]] = []

    def make(**overrides: Any) -> ServiceController:
        recorder = EventRecorder(api=kube_api, aggregate_window=0.0)
        options: dict[str, Any] = {
            "api": kube_api,
            "provider": cloud,
            "cluster_name": "test",
            "recorder": recorder,
            "workers": 2,
            "resync_period": 3600.0,
            "backoff_base": 0.05,
            "backoff_max": 1.0,
        }
        options.update(overrides)
        controller = ServiceController(**options)
        controller.start()
        started.append((controller, recorder))
        kube.eventually(controller.has_synced, message="informer caches to sync")
        return controller

    yield make
    for controller, recorder in started:
        controller.stop()
        recorder.flush()
        recorder.stop()


@pytest.fixture
def controller(make_controller: ControllerFactory) -> ServiceController:
    return make_controller()


@pytest.fixture
def nodes(kube_api: client.ApiClient) -> Iterator[Callable[..., str]]:
    """Create nodes for this test (deleted at its end): ``name = nodes(labels=…, taints=…)``."""
    made: list[str] = []

    def make(**kwargs: Any) -> str:
        name = kube.node_name()
        kube.create_node(kube_api, name, **kwargs)
        made.append(name)
        return name

    yield make
    for name in made:
        kube.delete_node(kube_api, name)


@pytest.fixture(autouse=True)
def _cleanup_services(kube_api: client.ApiClient, namespace: str) -> Iterator[None]:
    yield
    listing = kube.raw(kube_api, "GET", f"/api/v1/namespaces/{namespace}/services")
    for svc in listing["items"]:
        name = svc["metadata"]["name"]
        if svc["metadata"].get("finalizers"):
            kube.patch_service(kube_api, namespace, name, {"metadata": {"finalizers": None}})
        kube.delete_service(kube_api, namespace, name)

"""The event recorder under a restart's burst: nothing dropped, and only references held."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from ccm.k8s.events import NORMAL, EventRecorder


class SlowCore:
    """Stands in for CoreV1Api: blocks every create until released, as a throttled apiserver would."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.created: list[dict[str, Any]] = []

    def create_namespaced_event(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self.released.wait()
        self.created.append(body)


def service(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"svc-{i}", "namespace": "default", "uid": f"uid-{i}", "resourceVersion": "7"},
        "spec": {"ports": [{"port": 80}] * 50},  # a big object the queue must not keep alive
    }


def test_a_restart_with_five_thousand_services_drops_no_event() -> None:
    core = SlowCore()
    recorder = EventRecorder(api=client.ApiClient(), core=core, aggregate_window=0.0)
    try:
        for i in range(5000):
            recorder.event(
                service(i), type=NORMAL, reason="EnsuringLoadBalancer", message="Ensuring load balancer"
            )
            recorder.event(
                service(i), type=NORMAL, reason="EnsuredLoadBalancer", message="Ensured load balancer"
            )
        assert recorder.dropped == 0
        core.released.set()
        recorder.flush(timeout=60)
    finally:
        core.released.set()
        recorder.stop()
    assert len(core.created) == 10_000
    involved = core.created[0]["involvedObject"]
    assert involved == {
        "apiVersion": "v1",
        "kind": "Service",
        "name": "svc-0",
        "namespace": "default",
        "uid": "uid-0",
        "resourceVersion": "7",
    }

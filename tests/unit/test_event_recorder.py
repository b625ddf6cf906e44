"""The event recorder under a restart's burst: nothing dropped, and only references held."""

from __future__ import annotations

import http.server
import threading
from typing import Any, ClassVar

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


class _EventsServer(http.server.BaseHTTPRequestHandler):
    """Answers every Event POST with 201 on a kept-alive HTTP/1.1 connection; counts connections."""

    protocol_version = "HTTP/1.1"
    peers: ClassVar[set[int]] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).peers.add(self.client_address[1])
        body = b'{"kind": "Event"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_events_are_posted_over_one_kept_alive_connection() -> None:
    """An undecoded answer left unread kept its connection from the pool: every Event cost a new
    connection (and, against a real apiserver, a TLS handshake: most of the controller's CPU)."""
    _EventsServer.peers = set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EventsServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    recorder = EventRecorder(api=client.ApiClient(config), aggregate_window=0.0)
    try:
        for i in range(20):
            recorder.event(
                service(i), type=NORMAL, reason="EnsuredLoadBalancer", message="Ensured load balancer"
            )
        recorder.flush(timeout=30)
    finally:
        recorder.stop()
        server.shutdown()
    assert len(_EventsServer.peers) == 1, _EventsServer.peers

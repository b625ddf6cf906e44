"""ccm.k8s.core: the core/v1 requests of the generated client, without importing it (issue 16).

Importing ``kubernetes.client.CoreV1Api`` was half of the controller's start-up CPU; these check that
the controller's wiring no longer imports it, and that what goes on the wire is what the generated
methods send (method, path, query, headers, body; ApiException outside 2xx).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from ccm.k8s.core import CoreV1

REPO = Path(__file__).resolve().parents[2]


class _Answer:
    def __init__(self, status: int) -> None:
        self.status, self.reason, self.data = status, "Reason", b'{"kind": "Status"}'
        self.headers: dict[str, str] = {}
        self.response = self  # the urllib3 response the callers get

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict[str, str]:
        return self.headers


def _core(status: int = 200) -> tuple[CoreV1, list[tuple[str, str, dict[str, Any]]]]:
    config = client.Configuration(host="https://apiserver:6443")
    config.api_key = {"authorization": "token"}
    config.api_key_prefix = {"authorization": "Bearer"}
    api = client.ApiClient(config)
    sent: list[tuple[str, str, dict[str, Any]]] = []

    def request(method: str, url: str, **kwargs: Any) -> _Answer:
        sent.append((method, url, kwargs))
        return _Answer(status)

    setattr(api.rest_client, "request", request)  # noqa: B010 - in place of the HTTP call
    return CoreV1(api), sent


def test_a_status_patch_is_a_strategic_merge_patch_with_the_token() -> None:
    core, sent = _core()
    answer = core.patch_namespaced_service_status("web", "shop", {"status": {}}, _preload_content=False)
    assert isinstance(answer, _Answer)
    ((method, url, kwargs),) = sent
    assert (method, url) == ("PATCH", "https://apiserver:6443/api/v1/namespaces/shop/services/web/status")
    assert kwargs["headers"]["Content-Type"] == "application/strategic-merge-patch+json"
    assert kwargs["headers"]["Accept"] == "application/json"
    assert kwargs["headers"]["authorization"] == "Bearer token"
    assert kwargs["body"] == {"status": {}}


def test_events_are_posted_as_json_and_patched_by_strategic_merge() -> None:
    core, sent = _core(201)
    core.create_namespaced_event("shop", {"kind": "Event"}, _preload_content=False)
    core.patch_namespaced_event("web.1", "shop", {"count": 2}, _preload_content=False)
    assert [(m, u, k["headers"].get("Content-Type")) for m, u, k in sent] == [
        ("POST", "https://apiserver:6443/api/v1/namespaces/shop/events", "application/json"),
        (
            "PATCH",
            "https://apiserver:6443/api/v1/namespaces/shop/events/web.1",
            "application/strategic-merge-patch+json",
        ),
    ]


def test_list_and_watch_take_the_generated_keyword_arguments() -> None:
    core, sent = _core()
    core.list_service_for_all_namespaces(
        limit=500, _continue="tok", _preload_content=False, _request_timeout=60
    )
    core.list_node(
        watch=True,
        resource_version="12",
        allow_watch_bookmarks=True,
        timeout_seconds=300,
        _preload_content=False,
        _request_timeout=(10, 330),
    )
    assert sent[0][1] == "https://apiserver:6443/api/v1/services?limit=500&continue=tok"
    assert sent[0][2]["_request_timeout"] == 60
    assert sent[1][1] == (
        "https://apiserver:6443/api/v1/nodes?watch=true&resourceVersion=12&allowWatchBookmarks=true&timeoutSeconds=300"
    )
    with pytest.raises(TypeError):
        core.list_node(pretty="true")
    with pytest.raises(TypeError):
        core.list_node(_preload_content=True)


def test_an_answer_outside_2xx_is_the_generated_clients_api_exception() -> None:
    core, _ = _core(404)
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_config_map("ccm-state", "kube-system", _preload_content=False)
    assert caught.value.status == 404


def test_the_controllers_wiring_does_not_import_the_generated_core_api() -> None:
    """In a fresh interpreter: what ``ccm run`` builds (events, patcher, checkpoint, service controller)."""
    code = """
import sys
from kubernetes import client
from ccm import cli
from ccm.controllers.service import ServiceController
from ccm.k8s.checkpoint import Checkpoint
from ccm.k8s.events import EventRecorder
from providers.fake import FakeCloud
api = client.ApiClient(client.Configuration(host="https://apiserver:6443"))
recorder = EventRecorder(api=api)
Checkpoint(api=api, namespace="kube-system", name="ccm-state")
ServiceController(api=api, provider=FakeCloud(), cluster_name="c", recorder=recorder)
recorder.stop()
print("kubernetes.client.api.core_v1_api" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "False", out.stderr

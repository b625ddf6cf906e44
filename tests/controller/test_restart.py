"""A new leader trusts what the checkpoint and the provider's bulk check prove, on the real apiserver.

The checkpoint (a ConfigMap beside the Lease) records the node set every load balancer was brought to;
a controller starting on an unchanged cluster makes one bulk check and no ensure, and one starting after
a change ensures what changed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ccm.k8s.checkpoint import Checkpoint, node_set_digest
from providers.fake import FakeCloud
from tests.support import kube
from tests.support.controller import ControllerFactory


def _settle(kube_api: client.ApiClient, namespace: str, make_controller: ControllerFactory) -> Checkpoint:
    checkpoint = Checkpoint(api=kube_api, namespace=namespace, name="ccm-lb-controller-state")
    first = make_controller(checkpoint=checkpoint)
    for name in ("web", "api"):
        kube.create_service(kube_api, namespace, name)
        kube.eventually(lambda n=name: kube.ingress(kube.get_service(kube_api, namespace, n)))  # type: ignore[misc]
    kube.eventually(lambda: first.service_queue.pending() == 0)
    first.sync_nodes()
    kube.eventually(checkpoint.read, message="the checkpoint to be written")
    assert checkpoint.read() == node_set_digest(first.targets().fingerprint)
    first.stop()
    return checkpoint


def test_the_checkpoint_is_created_then_updated_in_its_configmap(
    kube_api: client.ApiClient, namespace: str
) -> None:
    checkpoint = Checkpoint(api=kube_api, namespace=namespace, name="state")
    assert checkpoint.read() is None
    checkpoint.write("one")
    checkpoint.write("two")
    cm = client.CoreV1Api(kube_api).read_namespaced_config_map("state", namespace)
    assert cm.data == {"nodeSet": "two"} and checkpoint.read() == "two"


def test_two_first_writes_at_once_both_land_instead_of_one_failing(
    kube_api: client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service workers and the node sync save the checkpoint from their own threads: a first write
    can find no ConfigMap, then lose the create to the other one (AlreadyExists). It is written anyway."""
    checkpoint = Checkpoint(api=kube_api, namespace=namespace, name="state")
    other = Checkpoint(api=kube_api, namespace=namespace, name="state")
    patch = checkpoint._core.patch_namespaced_config_map

    def other_creates_it_first(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(checkpoint._core, "patch_namespaced_config_map", patch)
        other.write("theirs")  # the racing writer creates the ConfigMap between our patch and create
        raise ApiException(status=404, reason="Not Found")

    monkeypatch.setattr(checkpoint._core, "patch_namespaced_config_map", other_creates_it_first)
    checkpoint.write("ours")

    assert checkpoint.read() == "ours"


def test_a_new_leader_on_an_unchanged_cluster_ensures_nothing(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
    nodes: Callable[..., str],
) -> None:
    nodes()
    checkpoint = _settle(kube_api, namespace, make_controller)
    cloud.clear_calls()
    second = make_controller(checkpoint=checkpoint)
    kube.eventually(lambda: second.service_queue.pending() == 0 and second.node_queue.pending() == 0)
    mine = [c for c in cloud.calls if c.key.startswith(f"{namespace}/")]
    assert mine == [], mine
    assert len(cloud.calls_for(method="drifted_load_balancers")) == 1


def test_a_new_leader_gives_a_node_added_meanwhile_to_every_load_balancer(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
    nodes: Callable[..., str],
) -> None:
    nodes()
    checkpoint = _settle(kube_api, namespace, make_controller)
    added = nodes()
    cloud.clear_calls()
    second = make_controller(checkpoint=checkpoint)
    for name in ("web", "api"):
        kube.eventually(
            lambda n=name: added in {node.name for node in cloud.balancers[f"{namespace}/{n}"].request.nodes},  # type: ignore[misc]
            message=f"{name} to be given the new node",
        )
    kube.eventually(lambda: second.service_queue.pending() == 0)
    kube.eventually(lambda: checkpoint.read() == node_set_digest(second.targets().fingerprint))


def test_a_start_up_check_that_fails_unexpectedly_still_starts_the_workers_and_trusts_nothing(
    kube_api: client.ApiClient,
    namespace: str,
    make_controller: ControllerFactory,
    cloud: FakeCloud,
    nodes: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The soak test once found the start-up thread dead after the checkpoint's read raised what it
    # did not expect: no worker ever started and the leader synced nothing. Whatever the start-up
    # check raises, the leader ensures every Service as if it had no checkpoint.
    nodes()
    checkpoint = _settle(kube_api, namespace, make_controller)
    cloud.clear_calls()

    def garbled() -> str | None:
        raise ValueError("the checkpoint's body is not JSON")

    monkeypatch.setattr(checkpoint, "read", garbled)
    second = make_controller(checkpoint=checkpoint)
    kube.create_service(kube_api, namespace, "after")
    kube.eventually(
        lambda: kube.ingress(kube.get_service(kube_api, namespace, "after")),
        message="a Service created after the failed check to get an address",
    )
    kube.eventually(lambda: second.service_queue.pending() == 0)
    ensured = {c.key for c in cloud.calls_for(method="ensure_load_balancer")}
    assert {f"{namespace}/web", f"{namespace}/api"} <= ensured
    assert "the start-up check failed" in caplog.text

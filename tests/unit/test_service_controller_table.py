"""The service controller in process: table tests against a fake clock, no apiserver, no threads.

The model is upstream's ``controllers/service/controller_test.go``: the caches are fed directly
(client-go's ``Indexer.Add``), the Service writes go to an in-memory patcher, and each case calls
``sync_service``/``sync_nodes`` itself and looks at what a user would see: the provider's calls, the
Service as written (finalizers, status, condition), the Events and when the key comes back. The
real-apiserver tier (tests/controller) proves the same controller against Kubernetes itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ccm.cloudprovider import RetryAfter
from ccm.controllers.predicates import LOAD_BALANCER_CLEANUP_FINALIZER
from ccm.controllers.service import ServiceController, SyncError
from providers.fake import FakeCloud

KEY = "default/web"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class MemoryPatcher:
    """Applies the controller's patches to Services kept in memory, as the apiserver would."""

    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    patches: int = 0
    fail_status: Exception | None = None

    def _stored(self, service: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = service["metadata"]
        return self.services.get(f"{meta['namespace']}/{meta['name']}")

    def add_finalizer(self, *, service: Mapping[str, Any], finalizer: str) -> dict[str, Any] | None:
        stored = self._stored(service)
        if stored is None:
            return None
        if finalizer not in stored["metadata"].setdefault("finalizers", []):
            self.patches += 1
            stored["metadata"]["finalizers"].append(finalizer)
        return copy.deepcopy(stored)

    def remove_finalizers(
        self, *, service: Mapping[str, Any], finalizers: Sequence[str]
    ) -> dict[str, Any] | None:
        stored = self._stored(service)
        if stored is None:
            return None
        present = stored["metadata"].get("finalizers") or []
        if any(f in present for f in finalizers):
            self.patches += 1
            stored["metadata"]["finalizers"] = [f for f in present if f not in finalizers]
        return copy.deepcopy(stored)

    def patch_status(
        self,
        *,
        service: Mapping[str, Any],
        ingress: list[dict[str, Any]] | None = None,
        condition: Mapping[str, Any] | None = None,
        clear_ingress: bool = False,
        remove_condition: str | None = None,
    ) -> dict[str, Any] | None:
        stored = self._stored(service)
        if stored is None:
            return None
        self.patches += 1
        if self.fail_status is not None:
            raise self.fail_status
        status = stored.setdefault("status", {})
        if clear_ingress:
            status["loadBalancer"] = {}
        elif ingress is not None:
            status["loadBalancer"] = {"ingress": ingress}
        conditions = [c for c in status.get("conditions", []) if c["type"] != remove_condition]
        if condition is not None:
            conditions = [c for c in conditions if c["type"] != condition["type"]] + [dict(condition)]
        status["conditions"] = conditions
        return copy.deepcopy(stored)


@dataclass
class ListRecorder:
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def event(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _type, reason, _message in self.events]


@dataclass
class World:
    controller: ServiceController
    cloud: FakeCloud
    patcher: MemoryPatcher
    recorder: ListRecorder
    clock: FakeClock

    def put(self, service: dict[str, Any]) -> None:
        """The Service as the apiserver and the controller's cache both have it."""
        key = f"{service['metadata']['namespace']}/{service['metadata']['name']}"
        self.patcher.services[key] = service
        self.controller.services.store.add(copy.deepcopy(service))

    def stored(self, key: str = KEY) -> dict[str, Any]:
        return self.patcher.services[key]

    def sync(self, key: str = KEY) -> None:
        """One worker pass as the queue hands it out; then the cache catches up with the writes."""
        queue = self.controller.service_queue
        queue.release_due()
        queue.add(key)
        assert queue.get(timeout=0) == key
        try:
            self.controller.process_service(key)
        finally:
            queue.done(key)
        for service in self.patcher.services.values():
            self.controller.services.store.add(copy.deepcopy(service))


def service(
    *,
    type_: str = "LoadBalancer",
    protocol: str = "TCP",
    finalizers: Sequence[str] = (),
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "namespace": "default",
        "name": "web",
        "uid": "uid-1",
        "generation": 1,
        "finalizers": list(finalizers),
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-04T00:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"type": type_, "ports": [{"port": 80, "protocol": protocol, "nodePort": 30080}]},
        "status": {},
    }


def node(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {}},
        "spec": {"providerID": f"fake:///{name}"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


@dataclass
class MemoryCheckpoint:
    digest: str | None = None
    writes: int = 0

    def read(self) -> str | None:
        return self.digest

    def write(self, digest: str) -> None:
        self.writes += 1
        self.digest = digest


def new_world(
    *,
    cloud: FakeCloud | None = None,
    patcher: MemoryPatcher | None = None,
    checkpoint: MemoryCheckpoint | None = None,
    nodes: Sequence[str] = ("node-a",),
) -> World:
    cloud = cloud or FakeCloud(cluster_name="test")
    patcher = patcher or MemoryPatcher()
    recorder = ListRecorder()
    clock = FakeClock()

    def never(**_: Any) -> Any:
        raise AssertionError("the in-process tier never lists from an apiserver")

    controller = ServiceController(
        provider=cloud,
        cluster_name="test",
        recorder=recorder,
        patcher=patcher,
        list_services=never,
        list_nodes=never,
        clock=clock,
        checkpoint=checkpoint,
        backoff_base=5.0,
        backoff_max=300.0,
    )
    for name in nodes:
        controller.nodes.store.add(node(name))
    for stored in patcher.services.values():
        controller.services.store.add(copy.deepcopy(stored))
    return World(controller=controller, cloud=cloud, patcher=patcher, recorder=recorder, clock=clock)


@pytest.fixture
def world() -> World:
    return new_world()


# -- create and update --------------------------------------------------------------------------------


def test_a_new_load_balancer_service_gets_the_finalizer_the_load_balancer_and_its_address(
    world: World,
) -> None:
    world.put(service())
    world.sync()
    stored = world.stored()
    assert stored["metadata"]["finalizers"] == [LOAD_BALANCER_CLEANUP_FINALIZER]
    assert stored["status"]["loadBalancer"]["ingress"]
    assert [c.method for c in world.cloud.calls_for(key=KEY)] == ["ensure_load_balancer"]
    assert world.recorder.reasons() == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]
    assert world.controller.service_queue.due(KEY) is None


def test_a_second_sync_with_nothing_changed_writes_nothing(world: World) -> None:
    world.put(service())
    world.sync()
    writes = world.patcher.patches
    world.sync()
    assert world.patcher.patches == writes


def test_a_cluster_ip_service_without_the_finalizer_costs_no_cloud_call_and_no_write(world: World) -> None:
    world.put(service(type_="ClusterIP"))
    world.sync()
    assert world.cloud.calls_for(key=KEY) == []
    assert world.patcher.patches == 0
    assert world.recorder.events == []


# -- failures: one error path -----------------------------------------------------------------------------


def test_an_invalid_spec_is_named_in_an_event_and_the_condition_and_retried_only_at_the_maximum_backoff(
    world: World,
) -> None:
    world.put(service(protocol="HTTP"))
    world.sync()
    warnings = [(reason, message) for type_, reason, message in world.recorder.events if type_ == "Warning"]
    assert len(warnings) == 1
    reason, message = warnings[0]
    assert reason == "SyncLoadBalancerFailed"
    assert message.startswith("Error syncing load balancer: failed to ensure load balancer: ")
    assert "spec.ports[0].protocol" in message and "HTTP" in message
    (condition,) = world.stored()["status"]["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert world.controller.service_queue.due(KEY) == world.clock.now + 300.0


def test_retry_after_from_the_provider_brings_the_key_back_after_exactly_its_delay(world: World) -> None:
    world.cloud.fail(key=KEY, error=RetryAfter("target group still in use", seconds=10), times=1)
    world.put(service())
    world.sync()
    assert world.controller.service_queue.due(KEY) == world.clock.now + 10.0
    assert world.stored()["status"]["conditions"][0]["reason"] == "RetryAfter"


def test_a_cloud_error_backs_off_exponentially_and_a_success_resets_the_backoff(world: World) -> None:
    world.cloud.fail(key=KEY, error=RuntimeError("throttled"), times=2)
    world.put(service())
    world.sync()
    assert world.controller.service_queue.due(KEY) == world.clock.now + 5.0
    world.clock.now += 5.0
    world.sync()
    assert world.controller.service_queue.due(KEY) == world.clock.now + 10.0
    world.clock.now += 10.0
    world.sync()
    assert world.stored()["status"]["conditions"][0]["status"] == "True"
    assert world.controller.service_queue.num_requeues(KEY) == 0


def test_a_failed_status_write_is_reported_as_the_status_step(world: World) -> None:
    world.put(service())
    world.patcher.fail_status = RuntimeError("conflict")
    with pytest.raises(SyncError) as caught:
        world.controller.sync_service(KEY)
    assert caught.value.message == "failed to update load balancer status"
    assert "SyncLoadBalancerFailed" in world.recorder.reasons()


# -- delete -------------------------------------------------------------------------------------------


def test_a_deleting_service_has_its_load_balancer_deleted_then_the_finalizer_removed(world: World) -> None:
    world.put(service())
    world.sync()
    deleting = copy.deepcopy(world.stored())
    deleting["metadata"]["deletionTimestamp"] = "2026-12-04T00:00:00Z"
    world.put(deleting)
    world.sync()
    assert [c.method for c in world.cloud.calls_for(key=KEY)][-1] == "ensure_load_balancer_deleted"
    assert world.stored()["metadata"]["finalizers"] == []
    assert world.recorder.reasons()[-2:] == ["DeletingLoadBalancer", "DeletedLoadBalancer"]


def test_a_failed_delete_keeps_the_finalizer(world: World) -> None:
    world.put(service(finalizers=[LOAD_BALANCER_CLEANUP_FINALIZER], deleting=True))
    world.cloud.fail(
        key=KEY, error=RuntimeError("DependencyViolation"), method="ensure_load_balancer_deleted"
    )
    world.sync()
    assert world.stored()["metadata"]["finalizers"] == [LOAD_BALANCER_CLEANUP_FINALIZER]
    assert world.controller.service_queue.due(KEY) == world.clock.now + 5.0


# -- node sync ----------------------------------------------------------------------------------------


def test_node_sync_calls_update_only_when_the_target_set_changed(world: World) -> None:
    world.put(service())
    world.sync()
    world.controller.sync_nodes()
    assert [c.method for c in world.cloud.calls_for(key=KEY)] == ["ensure_load_balancer"]
    world.controller.nodes.store.add(node("node-b"))
    world.controller.sync_nodes()
    calls = world.cloud.calls_for(key=KEY)
    assert [c.method for c in calls] == ["ensure_load_balancer", "update_load_balancer"]
    assert calls[-1].nodes == ("node-a", "node-b")


# -- restart and fail-over: trust what the checkpoint and the bulk check prove -----------------------


def restarted(before: World, checkpoint: MemoryCheckpoint, *, nodes: Sequence[str] = ("node-a",)) -> World:
    """A new leader: same cloud, same apiserver (the patcher's Services), a fresh process."""
    after = new_world(cloud=before.cloud, patcher=before.patcher, checkpoint=checkpoint, nodes=nodes)
    after.cloud.clear_calls()
    return after


def settled_world(checkpoint: MemoryCheckpoint) -> World:
    before = new_world(checkpoint=checkpoint)
    before.put(service())
    before.sync()
    before.controller.sync_nodes()  # every load balancer has the node set: it is recorded
    return before


def test_the_node_set_is_recorded_once_every_load_balancer_has_it(world: World) -> None:
    checkpoint = MemoryCheckpoint()
    before = settled_world(checkpoint)
    assert checkpoint.digest is not None and checkpoint.writes == 1
    before.controller.sync_nodes()
    assert checkpoint.writes == 1  # unchanged: not written again


def test_a_failed_ensure_keeps_the_node_set_from_being_recorded() -> None:
    checkpoint = MemoryCheckpoint()
    world = new_world(checkpoint=checkpoint)
    world.cloud.fail(key=KEY, error=RuntimeError("throttled"), times=1)
    world.put(service())
    world.sync()
    world.controller.sync_nodes()
    assert checkpoint.writes == 0


def test_a_new_leader_with_nothing_changed_makes_one_bulk_check_and_no_write() -> None:
    checkpoint = MemoryCheckpoint()
    before = settled_world(checkpoint)
    writes = before.patcher.patches
    after = restarted(before, checkpoint)
    assert after.controller.trust_unchanged() == 1
    after.sync()
    after.controller.sync_nodes()
    assert [c.method for c in after.cloud.calls] == ["drifted_load_balancers"]
    assert after.patcher.patches == writes
    assert after.recorder.events == []


def test_a_node_added_while_no_leader_ran_is_given_to_every_load_balancer() -> None:
    checkpoint = MemoryCheckpoint()
    before = settled_world(checkpoint)
    after = restarted(before, checkpoint, nodes=("node-a", "node-b"))
    assert after.controller.trust_unchanged() == 0
    after.sync()
    (call,) = after.cloud.calls_for(key=KEY)
    assert (call.method, call.nodes) == ("ensure_load_balancer", ("node-a", "node-b"))


def test_a_service_edited_while_no_leader_ran_is_ensured() -> None:
    checkpoint = MemoryCheckpoint()
    before = settled_world(checkpoint)
    edited = before.stored()
    edited["spec"]["ports"].append({"port": 443, "protocol": "TCP", "nodePort": 30443})
    edited["metadata"]["generation"] = 2
    after = restarted(before, checkpoint)
    assert after.controller.trust_unchanged() == 0
    after.sync()
    assert [c.method for c in after.cloud.calls_for(key=KEY)] == ["ensure_load_balancer"]


def test_a_load_balancer_deleted_while_no_leader_ran_is_made_again() -> None:
    checkpoint = MemoryCheckpoint()
    before = settled_world(checkpoint)
    before.cloud.forget(key=KEY)  # by hand, behind the controller's back
    after = restarted(before, checkpoint)
    assert after.controller.trust_unchanged() == 0
    after.sync()
    assert [c.method for c in after.cloud.calls_for(key=KEY)] == ["ensure_load_balancer"]


def test_without_a_checkpoint_a_new_leader_ensures_every_service() -> None:
    before = settled_world(MemoryCheckpoint())
    after = restarted(before, MemoryCheckpoint())
    assert after.controller.trust_unchanged() == 0
    after.sync()
    assert [c.method for c in after.cloud.calls_for(key=KEY)] == ["ensure_load_balancer"]

"""Node changes reach load balancers through update_load_balancer, only where the host set changed."""

from __future__ import annotations

from collections.abc import Callable

from kubernetes import client

from ccm.controllers.service import ServiceController
from providers.fake import FakeCloud
from tests.support import kube

NodeFactory = Callable[..., str]


def _ready(kube_api: client.ApiClient, namespace: str, *names: str) -> None:
    for name in names:
        kube.eventually(
            lambda n=name: kube.ingress(kube.get_service(kube_api, namespace, n)),  # type: ignore[misc]
            message=f"{name} to get an address",
        )


def _updates(cloud: FakeCloud, namespace: str) -> list[tuple[str, tuple[str, ...]]]:
    return [
        (c.key, c.nodes)
        for c in cloud.calls_for(method="update_load_balancer")
        if c.key.startswith(namespace + "/")
    ]


def _settle(controller: ServiceController) -> None:
    kube.eventually(
        lambda: controller.node_queue.pending() == 0 and controller.service_queue.pending() == 0,
        message="both queues to drain",
    )


def test_adding_a_node_updates_every_load_balancer_and_nothing_else(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    first = nodes()
    kube.create_service(kube_api, namespace, "a")
    kube.create_service(kube_api, namespace, "b", externalTrafficPolicy="Local")
    kube.create_service(kube_api, namespace, "internal", type_="ClusterIP")
    _ready(kube_api, namespace, "a", "b")
    _settle(controller)
    ensures_before = len(cloud.calls_for(method="ensure_load_balancer"))
    second = nodes()
    expected = tuple(sorted((first, second)))
    kube.eventually(lambda: len(_updates(cloud, namespace)) == 2, message="two host updates")
    _settle(controller)
    assert sorted(_updates(cloud, namespace)) == [(f"{namespace}/a", expected), (f"{namespace}/b", expected)]
    assert len(cloud.calls_for(method="ensure_load_balancer")) == ensures_before


def test_readiness_flips_and_unrelated_labels_do_not_touch_load_balancers(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    node = nodes()
    kube.create_service(kube_api, namespace, "stable")
    _ready(kube_api, namespace, "stable")
    _settle(controller)
    kube.set_node_ready(kube_api, node, False)
    kube.patch_node(kube_api, node, {"metadata": {"labels": {"team": "blue"}}})
    kube.set_node_ready(kube_api, node, True)
    kube.eventually(
        lambda: (
            (controller.nodes.store.get(node) or {}).get("metadata", {}).get("labels", {}).get("team")
            == "blue"
        ),
        message="the label change to reach the cache",
    )
    controller.resync()  # even a forced level-triggered pass finds nothing to change
    _settle(controller)
    assert _updates(cloud, namespace) == []


def test_exclude_label_removes_the_node_and_false_puts_it_back(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    keep, flip = nodes(), nodes()
    kube.create_service(kube_api, namespace, "lb")
    _ready(kube_api, namespace, "lb")
    _settle(controller)
    label = "node.kubernetes.io/exclude-from-external-load-balancers"
    kube.patch_node(kube_api, flip, {"metadata": {"labels": {label: ""}}})
    kube.eventually(
        lambda: _updates(cloud, namespace) == [(f"{namespace}/lb", (keep,))],
        message="an update without the excluded node",
    )
    kube.patch_node(kube_api, flip, {"metadata": {"labels": {label: "false"}}})
    kube.eventually(lambda: len(_updates(cloud, namespace)) == 2)
    assert _updates(cloud, namespace)[1] == (f"{namespace}/lb", tuple(sorted((keep, flip))))


def test_autoscaler_deletion_taint_and_shutdown_taint_remove_the_node(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    keep, scaled, shut = nodes(), nodes(), nodes()
    kube.create_service(kube_api, namespace, "lb")
    _ready(kube_api, namespace, "lb")
    _settle(controller)
    kube.patch_node(
        kube_api,
        scaled,
        {
            "spec": {
                "taints": [
                    {"key": "ToBeDeletedByClusterAutoscaler", "value": "1700000000", "effect": "NoSchedule"}
                ]
            }
        },
    )
    kube.eventually(
        lambda: _updates(cloud, namespace)[-1:] == [(f"{namespace}/lb", tuple(sorted((keep, shut))))]
    )
    kube.patch_node(
        kube_api,
        shut,
        {"spec": {"taints": [{"key": "node.cloudprovider.kubernetes.io/shutdown", "effect": "NoSchedule"}]}},
    )
    kube.eventually(lambda: _updates(cloud, namespace)[-1:] == [(f"{namespace}/lb", (keep,))])


def test_uninitialised_nodes_are_not_targets_until_the_taint_goes(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    ready = nodes()
    fresh = nodes(
        taints=[
            {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
        ]
    )
    kube.create_service(kube_api, namespace, "lb")
    _ready(kube_api, namespace, "lb")
    ensure = cloud.calls_for(key=f"{namespace}/lb", method="ensure_load_balancer")[0]
    assert ensure.nodes == (ready,)
    kube.patch_node(kube_api, fresh, {"spec": {"taints": []}})
    kube.eventually(
        lambda: _updates(cloud, namespace) == [(f"{namespace}/lb", tuple(sorted((ready, fresh))))]
    )


def test_deleting_a_node_removes_it_and_the_last_one_warns_about_no_nodes(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    only = nodes()
    kube.create_service(kube_api, namespace, "lb")
    _ready(kube_api, namespace, "lb")
    kube.delete_node(kube_api, only)
    kube.eventually(lambda: _updates(cloud, namespace) == [(f"{namespace}/lb", ())])
    kube.eventually(lambda: "UnAvailableLoadBalancer" in kube.reasons(kube_api, namespace, "lb"))
    assert "UpdatedLoadBalancer" in kube.reasons(kube_api, namespace, "lb")


def test_provider_id_change_on_the_same_node_updates_the_host_set(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    node = nodes(provider_id="")  # a node the cloud has not initialised yet
    kube.create_service(kube_api, namespace, "lb")
    _ready(kube_api, namespace, "lb")
    _settle(controller)
    key = f"{namespace}/lb"
    assert cloud.balancers[key].request.nodes[0].provider_id == ""
    kube.patch_node(kube_api, node, {"spec": {"providerID": f"fake://zone-a/{node}"}})
    kube.eventually(lambda: _updates(cloud, namespace) == [(key, (node,))])
    assert cloud.balancers[key].request.nodes[0].provider_id == f"fake://zone-a/{node}"


def test_a_failed_host_update_emits_a_warning_and_falls_back_to_a_full_ensure(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    nodes()
    kube.create_service(kube_api, namespace, "flaky")
    _ready(kube_api, namespace, "flaky")
    _settle(controller)
    key = f"{namespace}/flaky"
    cloud.fail(key=key, method="update_load_balancer", times=1)
    added = nodes()
    kube.eventually(lambda: "UpdateLoadBalancerFailed" in kube.reasons(kube_api, namespace, "flaky"))
    kube.eventually(
        lambda: added in cloud.calls_for(key=key, method="ensure_load_balancer")[-1].nodes,
        message="a full ensure that includes the new node",
    )
    warning = next(
        e for e in kube.events(kube_api, namespace, "flaky") if e["reason"] == "UpdateLoadBalancerFailed"
    )
    assert warning["type"] == "Warning"
    assert "injected failure" in warning["message"] and "total number of nodes: 2" in warning["message"]


def test_node_sync_never_overwrites_a_newer_host_set_from_a_service_sync(
    kube_api: client.ApiClient,
    namespace: str,
    controller: ServiceController,
    cloud: FakeCloud,
    nodes: NodeFactory,
) -> None:
    """Upstream #121090 (TestSlowNodeSync): a slow update for one LB must not race another's ensure."""
    n1 = nodes()
    kube.create_service(kube_api, namespace, "slow")
    kube.create_service(kube_api, namespace, "other")
    _ready(kube_api, namespace, "slow", "other")
    _settle(controller)
    cloud.slow(key=f"{namespace}/slow", seconds=1.0, method="update_load_balancer")
    n2 = nodes()
    kube.eventually(lambda: cloud.calls_for(key=f"{namespace}/slow", method="update_load_balancer"))
    n3 = nodes()
    kube.patch_service(kube_api, namespace, "other", {"metadata": {"annotations": {"poke": "1"}}})
    every = tuple(sorted((n1, n2, n3)))
    kube.eventually(
        lambda: (
            cloud.balancers[f"{namespace}/slow"].request.nodes
            and tuple(n.name for n in cloud.balancers[f"{namespace}/slow"].request.nodes) == every
        ),
        message="the slow LB to end with all three nodes",
    )
    kube.eventually(
        lambda: tuple(n.name for n in cloud.balancers[f"{namespace}/other"].request.nodes) == every
    )
    _settle(controller)
    assert tuple(n.name for n in cloud.balancers[f"{namespace}/slow"].request.nodes) == every

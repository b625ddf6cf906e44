"""ccm.controllers.request: a Service and its target Nodes become the provider's frozen request."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ccm.cloudprovider import LoadBalancerRequest, Node, NodeAddress, ServicePort
from ccm.controllers.request import build_request, node_from_object
from tests.support.golden import assert_golden
from tests.unit.builders import Json, node, port, service

GOLDEN = Path(__file__).parent / "golden"


def to_json(value: Any) -> Any:
    """``dataclasses.asdict`` semantics, with mappings (MappingProxyType) turned into plain dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def basic_service() -> Json:
    return service(
        "web",
        namespace="shop",
        uid="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ports=[
            port(
                name="http", port=80, protocol="TCP", node_port=30080, target_port=8080, app_protocol="http"
            ),
            port(name="dns", port=53, protocol="UDP", node_port=30053, target_port="dns"),
        ],
        annotations={"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8"},
        labels={"app": "web"},
        externalTrafficPolicy="Local",
        healthCheckNodePort=32123,
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
        loadBalancerSourceRanges=["192.0.2.0/24", "2001:db8::/32"],
        loadBalancerIP="203.0.113.10",
        ipFamilies=["IPv4", "IPv6"],
        ipFamilyPolicy="PreferDualStack",
        loadBalancerClass="example.com/lb",
        allocateLoadBalancerNodePorts=False,
    )


def basic_nodes() -> list[Json]:
    return [
        node(
            "node-c",
            provider_id="fake://zone-b/node-c",
            labels={"topology.kubernetes.io/zone": "zone-b", "kubernetes.io/hostname": "node-c"},
            addresses=[
                {"type": "InternalIP", "address": "10.0.0.3"},
                {"type": "Hostname", "address": "node-c"},
            ],
        ),
        node(
            "node-a",
            provider_id="fake://zone-a/node-a",
            labels={"failure-domain.beta.kubernetes.io/zone": "zone-a"},
            addresses=[{"type": "InternalIP", "address": "10.0.0.1"}],
        ),
        node("node-b"),
    ]


def test_a_full_service_builds_the_golden_request() -> None:
    built = build_request(service=basic_service(), nodes=basic_nodes(), cluster_name="prod-eu")

    assert_golden(GOLDEN / "request_basic.json", to_json(built))


def test_the_golden_file_is_valid_json_of_a_request() -> None:
    expected = json.loads((GOLDEN / "request_basic.json").read_text())

    assert set(expected) == {f.name for f in dataclasses.fields(LoadBalancerRequest)}


def test_ports_are_passed_through_in_order() -> None:
    built = build_request(service=basic_service(), nodes=[], cluster_name="c")

    assert built.ports == (
        ServicePort(
            name="http", protocol="TCP", port=80, node_port=30080, target_port=8080, app_protocol="http"
        ),
        ServicePort(
            name="dns", protocol="UDP", port=53, node_port=30053, target_port="dns", app_protocol=None
        ),
    )


def test_a_port_without_protocol_name_or_node_port_gets_the_api_defaults() -> None:
    svc = service(ports=[{"port": 443}])

    built = build_request(service=svc, nodes=[], cluster_name="c")

    assert built.ports == (ServicePort(name="", protocol="TCP", port=443, node_port=0),)


def test_nodes_are_sorted_by_name() -> None:
    nodes = [node("node-10"), node("node-2"), node("a-node"), node("node-1")]

    built = build_request(service=service(), nodes=nodes, cluster_name="c")

    assert [n.name for n in built.nodes] == ["a-node", "node-1", "node-10", "node-2"]


def test_the_zone_comes_from_the_topology_label() -> None:
    labelled = node("n", labels={"topology.kubernetes.io/zone": "eu-west-1a"})

    assert node_from_object(labelled).zone == "eu-west-1a"


def test_the_topology_label_beats_the_deprecated_zone_label() -> None:
    labelled = node(
        "n",
        labels={
            "topology.kubernetes.io/zone": "new-zone",
            "failure-domain.beta.kubernetes.io/zone": "old-zone",
        },
    )

    assert node_from_object(labelled).zone == "new-zone"


def test_the_deprecated_zone_label_is_used_when_the_topology_label_is_missing_or_empty() -> None:
    only_old = node("n", labels={"failure-domain.beta.kubernetes.io/zone": "old-zone"})
    empty_new = node(
        "n", labels={"topology.kubernetes.io/zone": "", "failure-domain.beta.kubernetes.io/zone": "old-zone"}
    )

    assert node_from_object(only_old).zone == "old-zone"
    assert node_from_object(empty_new).zone == "old-zone"


def test_a_node_without_zone_labels_has_an_empty_zone() -> None:
    assert node_from_object(node("n")).zone == ""


def test_a_node_carries_its_provider_id_addresses_and_labels() -> None:
    raw = node(
        "n",
        provider_id="fake://n",
        labels={"a": "b"},
        addresses=[
            {"type": "InternalIP", "address": "10.1.2.3"},
            {"type": "ExternalIP", "address": "198.51.100.3"},
        ],
    )

    built = node_from_object(raw)

    assert built == Node(
        name="n",
        provider_id="fake://n",
        addresses=(NodeAddress("InternalIP", "10.1.2.3"), NodeAddress("ExternalIP", "198.51.100.3")),
        labels={"a": "b"},
    )


def test_a_node_without_provider_id_has_an_empty_one() -> None:
    assert node_from_object(node("n")).provider_id == ""


def test_the_session_affinity_timeout_is_taken_from_the_client_ip_config() -> None:
    svc = service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}})

    built = build_request(service=svc, nodes=[], cluster_name="c")

    assert built.session_affinity == "ClientIP"
    assert built.session_affinity_timeout_seconds == 10800


@pytest.mark.parametrize(
    "config",
    [None, {}, {"clientIP": None}, {"clientIP": {}}],
    ids=["absent", "empty", "clientIP null", "clientIP empty"],
)
def test_the_session_affinity_timeout_is_none_without_a_client_ip_timeout(config: Json | None) -> None:
    svc = service(sessionAffinity="ClientIP")
    if config is not None:
        svc["spec"]["sessionAffinityConfig"] = config

    assert build_request(service=svc, nodes=[], cluster_name="c").session_affinity_timeout_seconds is None


def test_a_minimal_service_gets_the_defaults() -> None:
    svc: Json = {"metadata": {"name": "min", "namespace": "ns", "uid": "u"}, "spec": {"type": "LoadBalancer"}}

    built = build_request(service=svc, nodes=[], cluster_name="c")

    assert built == LoadBalancerRequest(cluster_name="c", namespace="ns", name="min", uid="u", ports=())
    assert built.external_traffic_policy == "Cluster"
    assert built.health_check_node_port == 0
    assert built.session_affinity == "None"
    assert built.session_affinity_timeout_seconds is None
    assert built.load_balancer_ip == ""
    assert built.ip_families == ("IPv4",)
    assert built.ip_family_policy == "SingleStack"
    assert built.load_balancer_class is None
    assert built.allocate_load_balancer_node_ports is True
    assert dict(built.annotations) == {}
    assert built.load_balancer_source_ranges == ()
    assert built.key == "ns/min"


def test_the_request_does_not_alias_the_service_or_node_dicts() -> None:
    svc = service(annotations={"a": "1"})
    raw_node = node("n", labels={"l": "1"})

    built = build_request(service=svc, nodes=[raw_node], cluster_name="c")
    svc["metadata"]["annotations"]["a"] = "changed"
    raw_node["metadata"]["labels"]["l"] = "changed"

    assert built.annotations["a"] == "1"
    assert built.nodes[0].labels["l"] == "1"


def test_the_request_is_frozen_and_its_mappings_are_read_only() -> None:
    built = build_request(
        service=service(annotations={"a": "1"}), nodes=[node("n", labels={"l": "1"})], cluster_name="c"
    )

    with pytest.raises(dataclasses.FrozenInstanceError):
        built.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        built.annotations["a"] = "2"
    with pytest.raises(TypeError):
        built.nodes[0].labels["l"] = "2"


def test_the_same_inputs_build_equal_requests() -> None:
    first = build_request(service=basic_service(), nodes=basic_nodes(), cluster_name="c")
    second = build_request(service=basic_service(), nodes=list(reversed(basic_nodes())), cluster_name="c")

    assert first == second


def test_with_nodes_changes_only_the_nodes() -> None:
    built = build_request(service=basic_service(), nodes=basic_nodes(), cluster_name="c")
    only_b = (node_from_object(node("node-b")),)

    changed = built.with_nodes(only_b)

    assert changed.nodes == only_b
    assert dataclasses.replace(changed, nodes=built.nodes) == built

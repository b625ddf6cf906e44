"""providers.gcp.builder: a Service and the cluster's network → the desired GCE Stack, without GCE.

Golden files pin whole stacks (``UPDATE_GOLDEN=1`` rewrites them after an intended change; review the
diff); the other tests pin one rule each: scheme selection, names, ports, health checks, firewalls,
targets, and one InvalidSpec per kind of malformed input, naming the field, the value and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from ccm.cloudprovider import (
    SOURCE_RANGES_ANNOTATION,
    ImplementedElsewhere,
    InvalidSpec,
    LoadBalancerRequest,
    Node,
    ServicePort,
)
from providers.gcp import annotations as ann
from providers.gcp import builder
from providers.gcp.model import (
    CLUSTER_LABEL,
    HEALTH_CHECK_RANGES,
    SERVICE_UID_LABEL,
    ClusterNetwork,
    Stack,
)
from tests.support.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden"
UID = "6c8a4e1a-3f5b-4c2d-9e7f-0123456789ab"
RFC1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
NETWORK = ClusterNetwork(
    project="my-project",
    region="us-central1",
    network="default",
    network_project="my-project",
    subnetwork="nodes",
    node_tags=("gke-prod-node",),
    cluster_id="prod",
)
NODES = (
    Node(name="node-b", provider_id="gce://my-project/us-central1-b/node-b"),
    Node(name="node-a", provider_id="gce://my-project/us-central1-a/node-a"),
    Node(name="node-a2", provider_id="gce://my-project/us-central1-a/node-a2"),
    Node(name="no-provider-id", provider_id=""),
    Node(name="aws", provider_id="aws:///us-east-1a/i-0123"),
    Node(name="elsewhere", provider_id="gce://my-project/europe-west1-b/elsewhere"),
)


def tcp(port: int, node_port: int = 0, name: str = "") -> ServicePort:
    return ServicePort(name=name, protocol="TCP", port=port, node_port=node_port or 30000 + port)


def udp(port: int, node_port: int = 0, name: str = "") -> ServicePort:
    return ServicePort(name=name, protocol="UDP", port=port, node_port=node_port or 30000 + port)


BASIC_PORTS = (tcp(443, 30443, "https"), tcp(80, 30080, "http"))


def request(
    *,
    ports: tuple[ServicePort, ...] = BASIC_PORTS,
    annotations: dict[str, str] | None = None,
    **fields: Any,
) -> LoadBalancerRequest:
    values: dict[str, Any] = {
        "cluster_name": "prod",
        "namespace": "shop",
        "name": "frontend",
        "uid": UID,
        "nodes": NODES,
    }
    values.update(fields)
    return LoadBalancerRequest(ports=ports, annotations=MappingProxyType(dict(annotations or {})), **values)


def build(
    req: LoadBalancerRequest | None = None, *, network: ClusterNetwork = NETWORK, **fields: Any
) -> Stack:
    return builder.build_stack(request=req if req is not None else request(**fields), network=network)


INTERNAL = {ann.LOAD_BALANCER_TYPE: "Internal"}


# -- golden stacks ----------------------------------------------------------------------------------


def test_an_external_two_port_tcp_service_builds_the_golden_stack() -> None:
    assert_golden(GOLDEN / "external_tcp.json", build().to_json())


def test_an_external_udp_service_builds_the_golden_stack() -> None:
    assert_golden(
        GOLDEN / "external_udp.json", build(ports=(udp(53, name="dns"), udp(5353, name="mdns"))).to_json()
    )


def test_an_internal_service_with_a_subnet_and_global_access_builds_the_golden_stack() -> None:
    annotations = {
        **INTERNAL,
        ann.INTERNAL_SUBNET: "ilb-subnet",
        ann.ALLOW_GLOBAL_ACCESS: "true",
    }

    stack = build(annotations=annotations, load_balancer_source_ranges=("10.0.0.0/8", "192.168.0.0/16"))

    assert_golden(GOLDEN / "internal_subnet_global_access.json", stack.to_json())


def test_an_etp_local_service_builds_the_golden_stack() -> None:
    stack = build(external_traffic_policy="Local", health_check_node_port=31999, session_affinity="ClientIP")

    assert_golden(GOLDEN / "etp_local.json", stack.to_json())


def test_an_internal_service_with_six_ports_builds_the_golden_stack_on_all_ports() -> None:
    ports = tuple(tcp(p) for p in (8080, 8081, 8082, 9000, 443, 80))

    assert_golden(GOLDEN / "internal_six_ports.json", build(ports=ports, annotations=INTERNAL).to_json())


def test_a_reserved_load_balancer_ip_builds_the_golden_stack() -> None:
    assert_golden(GOLDEN / "reserved_ip.json", build(load_balancer_ip="203.0.113.10").to_json())


def test_a_standard_tier_service_builds_the_golden_stack() -> None:
    assert_golden(GOLDEN / "standard_tier.json", build(annotations={ann.NETWORK_TIER: "Standard"}).to_json())


# -- passthrough: service ports, not NodePorts ----------------------------------------------------------


def test_the_forwarding_rule_and_traffic_firewall_use_service_ports_not_node_ports() -> None:
    stack = build()

    assert stack.forwarding_rule.ports == (80, 443)
    traffic = stack.firewalls[0]
    assert traffic.name == f"k8s-fw-{stack.name}"
    assert traffic.protocol_ports == (("tcp", ("80", "443")),)
    assert "30080" not in json.dumps(stack.to_json())


def test_no_allocated_node_ports_are_fine_on_gce() -> None:
    stack = build(ports=(tcp(80, -1),), allocate_load_balancer_node_ports=False)

    assert stack.forwarding_rule.ports == (80,)


def test_spec_port_order_does_not_change_the_stack() -> None:
    assert build(ports=tuple(reversed(BASIC_PORTS))) == build()
    assert build(ports=tuple(reversed(BASIC_PORTS))).spec_hash() == build().spec_hash()


def test_consecutive_ports_are_merged_into_firewall_ranges() -> None:
    ports = tuple(tcp(p) for p in (80, 81, 82, 443, 8080, 8081))

    assert build(ports=ports).firewalls[0].protocol_ports == (("tcp", ("80-82", "443", "8080-8081")),)


def test_five_ports_are_listed_and_six_use_all_ports_on_an_internal_lb() -> None:
    five = build(ports=tuple(tcp(p) for p in range(8000, 8005)), annotations=INTERNAL)
    six = build(ports=tuple(tcp(p) for p in range(8000, 8006)), annotations=INTERNAL)

    assert (five.forwarding_rule.ports, five.forwarding_rule.all_ports) == (tuple(range(8000, 8005)), False)
    assert (six.forwarding_rule.ports, six.forwarding_rule.all_ports) == ((), True)
    assert six.firewalls[0].protocol_ports == (("tcp", ("8000-8005",)),)


def test_an_external_lb_with_more_than_five_ports_also_uses_all_ports() -> None:
    stack = build(ports=tuple(udp(p) for p in (1, 3, 5, 7, 9, 11)))

    assert stack.forwarding_rule.all_ports
    assert stack.forwarding_rule.ports == ()
    assert stack.firewalls[0].protocol_ports == (("udp", ("1", "3", "5", "7", "9", "11")),)


# -- scheme ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Internal", "internal", " Internal "])
def test_internal_type_values_build_an_internal_lb(value: str) -> None:
    stack = build(annotations={ann.LOAD_BALANCER_TYPE: value})

    assert stack.scheme == stack.forwarding_rule.scheme == stack.backend_service.scheme == "INTERNAL"
    assert stack.forwarding_rule.subnetwork == "nodes"
    assert stack.forwarding_rule.network_tier == ""


@pytest.mark.parametrize(
    "annotations", [{}, {ann.LOAD_BALANCER_TYPE: "External"}, {ann.LOAD_BALANCER_TYPE: ""}]
)
def test_external_is_the_default_scheme(annotations: dict[str, str]) -> None:
    stack = build(annotations=annotations)

    assert stack.scheme == "EXTERNAL"
    assert stack.forwarding_rule.network_tier == "PREMIUM"
    assert (stack.forwarding_rule.subnetwork, stack.forwarding_rule.allow_global_access) == ("", False)


def test_the_deprecated_type_annotation_still_works() -> None:
    assert build(annotations={ann.DEPRECATED_LOAD_BALANCER_TYPE: "Internal"}).scheme == "INTERNAL"


def test_the_new_type_annotation_wins_over_the_deprecated_one() -> None:
    both = {ann.LOAD_BALANCER_TYPE: "External", ann.DEPRECATED_LOAD_BALANCER_TYPE: "Internal"}
    garbage_old = {ann.LOAD_BALANCER_TYPE: "Internal", ann.DEPRECATED_LOAD_BALANCER_TYPE: "nonsense"}

    assert build(annotations=both).scheme == "EXTERNAL"
    assert build(annotations=garbage_old).scheme == "INTERNAL"


@pytest.mark.parametrize(
    ("cls", "scheme"),
    [(ann.CLASS_EXTERNAL, "EXTERNAL"), (ann.CLASS_INTERNAL, "INTERNAL"), (None, "EXTERNAL")],
)
def test_the_legacy_classes_select_the_scheme(cls: str | None, scheme: str) -> None:
    assert build(load_balancer_class=cls).scheme == scheme


def test_a_class_and_an_agreeing_type_annotation_are_fine() -> None:
    assert build(load_balancer_class=ann.CLASS_INTERNAL, annotations=INTERNAL).scheme == "INTERNAL"


def test_a_class_chosen_by_the_controller_flag_is_built_and_the_type_annotation_decides() -> None:
    """The controller only hands over Services of its own --load-balancer-class; the provider builds them."""
    assert build(load_balancer_class="example.com/ours").scheme == "EXTERNAL"
    assert build(load_balancer_class="example.com/ours", annotations=INTERNAL).scheme == "INTERNAL"


def test_l4_rbs_enabled_is_implemented_elsewhere() -> None:
    with pytest.raises(ImplementedElsewhere, match="RBS"):
        build(annotations={ann.L4_RBS: "enabled", ann.LOAD_BALANCER_TYPE: "nonsense"})


def test_other_l4_rbs_values_are_ignored_as_upstream() -> None:
    assert build(annotations={ann.L4_RBS: "disabled"}).scheme == "EXTERNAL"


def test_backend_share_is_accepted_and_ignored() -> None:
    assert build(annotations={**INTERNAL, ann.BACKEND_SHARE: "true"}) == build(annotations=INTERNAL)


# -- names ------------------------------------------------------------------------------------------------


def test_names_are_stable_and_readable() -> None:
    name = builder.load_balancer_name(cluster_id="prod", namespace="shop", name="frontend", uid=UID)

    assert re.fullmatch(r"k8s-prod-shop-frontend-[0-9a-f]{8}", name)
    assert name == build().name == build().forwarding_rule.name == build().backend_service.name


def test_two_clusters_in_one_project_never_collide() -> None:
    blue = build(network=replace(NETWORK, cluster_id="blue"))
    green = build(network=replace(NETWORK, cluster_id="green"))

    def names(stack: Stack) -> set[str]:
        return {stack.name, stack.health_check.name, *(fw.name for fw in stack.firewalls)}

    assert names(blue).isdisjoint(names(green))
    local = {"external_traffic_policy": "Local", "health_check_node_port": 31000}
    assert names(build(network=replace(NETWORK, cluster_id="blue"), **local)).isdisjoint(
        names(build(network=replace(NETWORK, cluster_id="green"), **local))
    )
    assert builder.instance_group_name(cluster_id="blue") != builder.instance_group_name(cluster_id="green")


def test_cluster_ids_that_share_a_prefix_still_get_different_names() -> None:
    long_a, long_b = "a" * 12 + "-one", "a" * 12 + "-two"

    assert builder.load_balancer_name(
        cluster_id=long_a, namespace="ns", name="svc", uid=UID
    ) != builder.load_balancer_name(cluster_id=long_b, namespace="ns", name="svc", uid=UID)


def test_a_recreated_service_with_a_new_uid_gets_a_new_name() -> None:
    assert build().name != build(uid="another-uid").name


def test_long_names_that_share_a_prefix_do_not_collide() -> None:
    one = build(namespace="n" * 40, name="s" * 40 + "a")
    two = build(namespace="n" * 40, name="s" * 40 + "b")

    assert one.name != two.name


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("default", "svc"),
        ("a-very-long-namespace-name-indeed", "and-an-even-longer-service-name-too"),
        ("abcdefghijk-x", "abcdefghijklmno-y"),  # cuts that end in a hyphen
        ("x" * 63, "y" * 63),
        ("9starts-with-digit", "1"),
        ("Upper_Case.Dots", "svc"),  # not valid Kubernetes names, sanitised anyway
        ("", "---"),
    ],
)
def test_every_name_fits_gce_limits_and_rfc1035(namespace: str, name: str) -> None:
    for policy in ({}, {"external_traffic_policy": "Local", "health_check_node_port": 31000}):
        stack = build(namespace=namespace, name=name, network=replace(NETWORK, cluster_id="c" * 10), **policy)

        names = [stack.name, stack.health_check.name, *(fw.name for fw in stack.firewalls)]
        for value in names:
            assert len(value) <= 63, value
            assert RFC1035.fullmatch(value), value
    assert len(stack.name) <= builder.MAX_LB_NAME


@pytest.mark.parametrize("cid", ["prod", "0123456789", "kubernetes", "A_Weird.Cluster-Name-That-Is-Long"])
def test_shared_names_fit_gce_limits(cid: str) -> None:
    for value in (
        builder.instance_group_name(cluster_id=cid),
        builder.node_health_check_name(cluster_id=cid),
        builder.node_health_check_firewall_name(cluster_id=cid),
        builder.load_balancer_name(cluster_id=cid, namespace="n" * 63, name="s" * 63, uid=UID),
    ):
        assert len(value) <= 63 and RFC1035.fullmatch(value), value


def test_shared_names_follow_upstream() -> None:
    assert builder.instance_group_name(cluster_id="prod") == "k8s-ig--prod"
    assert builder.node_health_check_name(cluster_id="prod") == "k8s-prod-node"
    assert builder.node_health_check_firewall_name(cluster_id="prod") == "k8s-prod-node-hc"
    assert builder.traffic_firewall_name(lb_name="lb") == "k8s-fw-lb"
    assert builder.health_check_firewall_name(lb_name="lb") == "k8s-lb-hc"
    assert builder.health_check_name(lb_name="lb") == "lb"


def test_labels_carry_the_cluster_and_the_service_uid() -> None:
    labels = dict(build(uid="ABC.def/ghi").forwarding_rule.labels)

    assert labels == {CLUSTER_LABEL: "prod", SERVICE_UID_LABEL: "abc_def_ghi"}
    assert all(len(v) <= 63 for v in dict(build(uid="x" * 100).forwarding_rule.labels).values())


@pytest.mark.parametrize(
    ("provider_id", "expected"),
    [
        ("gce://my-project/us-central1-a/node-1", ("my-project", "us-central1-a", "node-1")),
        ("gce://example.com:proj/europe-west4-b/gke-x", ("example.com:proj", "europe-west4-b", "gke-x")),
    ],
)
def test_instance_refs_come_from_gce_provider_ids(provider_id: str, expected: tuple[str, str, str]) -> None:
    assert builder.instance_ref(provider_id) == expected


@pytest.mark.parametrize(
    "provider_id",
    [
        "",
        "aws:///us-east-1a/i-0123",
        "gce://p/zone/vm",
        "gce://p/us-central1-a/",
        "gce://p/us-central1-a/a/b",
    ],
)
def test_other_provider_ids_are_not_instance_refs(provider_id: str) -> None:
    with pytest.raises(ValueError, match="providerID"):
        builder.instance_ref(provider_id)


# -- targets ----------------------------------------------------------------------------------------------


def test_instances_are_the_gce_nodes_of_the_region_sorted_and_zones_follow() -> None:
    stack = build()

    assert stack.instances == (
        ("us-central1-a", "node-a"),
        ("us-central1-a", "node-a2"),
        ("us-central1-b", "node-b"),
    )
    assert stack.backend_service.zones == ("us-central1-a", "us-central1-b")


def test_zero_nodes_still_build_a_stack_without_backends() -> None:
    stack = build(nodes=())

    assert stack.instances == ()
    assert stack.backend_service.zones == ()


def test_instances_are_outside_the_spec_hash_but_backend_zones_are_in_it() -> None:
    one_zone = build(nodes=NODES[1:2]).spec_hash()

    assert build(nodes=NODES[1:3]).spec_hash() == one_zone  # another node in the same zone
    assert build(nodes=NODES[:2]).spec_hash() != one_zone  # a new zone: a new backend


# -- health checks and firewalls ------------------------------------------------------------------------


def test_cluster_policy_uses_the_shared_node_health_check_and_firewall() -> None:
    stack = build()

    hc = stack.health_check
    assert (hc.name, hc.port, hc.path, hc.shared) == ("k8s-prod-node", 10256, "/healthz", True)
    assert (hc.check_interval_sec, hc.timeout_sec, hc.healthy_threshold, hc.unhealthy_threshold) == (
        8,
        1,
        1,
        3,
    )
    assert stack.backend_service.health_check == hc.name
    hc_fw = stack.firewalls[1]
    assert (hc_fw.name, hc_fw.shared) == ("k8s-prod-node-hc", True)
    assert hc_fw.protocol_ports == (("tcp", ("10256",)),)
    assert hc_fw.source_ranges == HEALTH_CHECK_RANGES
    assert hc_fw.target_tags == ("gke-prod-node",)


def test_local_policy_uses_its_own_health_check_on_the_health_check_node_port() -> None:
    stack = build(external_traffic_policy="Local", health_check_node_port=31999)

    hc = stack.health_check
    assert (hc.name, hc.port, hc.path, hc.shared) == (stack.name, 31999, "/healthz", False)
    hc_fw = stack.firewalls[1]
    assert (hc_fw.name, hc_fw.shared) == (f"k8s-{stack.name}-hc", False)
    assert hc_fw.protocol_ports == (("tcp", ("31999",)),)
    assert hc_fw.source_ranges == HEALTH_CHECK_RANGES


def test_source_ranges_come_from_the_spec_then_the_annotation_then_everyone() -> None:
    spec = build(
        load_balancer_source_ranges=("10.0.0.0/8",), annotations={SOURCE_RANGES_ANNOTATION: "192.168.0.0/16"}
    )
    annotated = build(annotations={SOURCE_RANGES_ANNOTATION: "192.168.0.0/16, 172.16.0.1/12"})

    assert spec.firewalls[0].source_ranges == ("10.0.0.0/8",)
    assert annotated.firewalls[0].source_ranges == ("192.168.0.0/16", "172.16.0.0/12")
    assert build().firewalls[0].source_ranges == ("0.0.0.0/0",)


def test_a_dual_stack_service_builds_its_ipv4_frontend_and_drops_ipv6_ranges() -> None:
    families = {"ip_families": ("IPv4", "IPv6"), "ip_family_policy": "PreferDualStack"}

    assert build(**families).firewalls[0].source_ranges == ("0.0.0.0/0",)
    ranges = build(load_balancer_source_ranges=("10.0.0.0/8", "2001:db8::/32"), **families)
    assert ranges.firewalls[0].source_ranges == ("10.0.0.0/8",)


def test_client_ip_affinity_maps_to_client_ip() -> None:
    assert build(session_affinity="ClientIP").backend_service.session_affinity == "CLIENT_IP"
    assert build(session_affinity="None").backend_service.session_affinity == "NONE"


def test_missing_node_tags_are_a_configuration_error_naming_the_key() -> None:
    with pytest.raises(ValueError, match="node-tags") as caught:
        build(network=replace(NETWORK, node_tags=()))

    assert not isinstance(caught.value, InvalidSpec)


def test_a_subnet_annotation_overrides_the_configured_subnetwork() -> None:
    stack = build(annotations={**INTERNAL, ann.INTERNAL_SUBNET: "other"})

    assert stack.forwarding_rule.subnetwork == "other"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("", False)])
def test_global_access_is_read_on_internal_lbs(value: str, expected: bool) -> None:
    stack = build(annotations={**INTERNAL, ann.ALLOW_GLOBAL_ACCESS: value})

    assert stack.forwarding_rule.allow_global_access is expected


def test_premium_tier_may_be_written_out() -> None:
    assert build(annotations={ann.NETWORK_TIER: "Premium"}) == build()


# -- malformed input ------------------------------------------------------------------------------------

# (id, request fields, field named, bad value shown, accepted text shown)
MALFORMED: list[tuple[str, dict[str, Any], str, str, str]] = [
    (
        "unknown type",
        {"annotations": {ann.LOAD_BALANCER_TYPE: "Private"}},
        ann.LOAD_BALANCER_TYPE,
        "Private",
        "Internal",
    ),
    (
        "unknown deprecated type",
        {"annotations": {ann.DEPRECATED_LOAD_BALANCER_TYPE: "INTERNAL"}},
        ann.DEPRECATED_LOAD_BALANCER_TYPE,
        "INTERNAL",
        "Internal",
    ),
    (
        "type annotation contradicting the class",
        {"annotations": {ann.LOAD_BALANCER_TYPE: "Internal"}, "load_balancer_class": ann.CLASS_EXTERNAL},
        ann.LOAD_BALANCER_TYPE,
        "Internal",
        "External",
    ),
    (
        "unknown network tier",
        {"annotations": {ann.NETWORK_TIER: "Gold"}},
        ann.NETWORK_TIER,
        "Gold",
        "Premium or Standard",
    ),
    (
        "network tier on an internal LB",
        {"annotations": {**INTERNAL, ann.NETWORK_TIER: "Standard"}},
        ann.NETWORK_TIER,
        "Standard",
        "external LBs only",
    ),
    (
        "subnet that is not a name",
        {"annotations": {**INTERNAL, ann.INTERNAL_SUBNET: "projects/p/regions/r/subnetworks/s"}},
        ann.INTERNAL_SUBNET,
        "projects/p/regions/r/subnetworks/s",
        "a subnetwork name",
    ),
    (
        "subnet on an external LB",
        {"annotations": {ann.INTERNAL_SUBNET: "ilb"}},
        ann.INTERNAL_SUBNET,
        "ilb",
        ann.LOAD_BALANCER_TYPE,
    ),
    (
        "global access not a boolean",
        {"annotations": {**INTERNAL, ann.ALLOW_GLOBAL_ACCESS: "True"}},
        ann.ALLOW_GLOBAL_ACCESS,
        "True",
        "true or false",
    ),
    (
        "global access on an external LB",
        {"annotations": {ann.ALLOW_GLOBAL_ACCESS: "true"}},
        ann.ALLOW_GLOBAL_ACCESS,
        "true",
        "internal LBs only",
    ),
    (
        "source range annotation not a CIDR",
        {"annotations": {SOURCE_RANGES_ANNOTATION: "10.0.0.0/8,office"}},
        SOURCE_RANGES_ANNOTATION,
        "office",
        "CIDRs",
    ),
    (
        "spec source range not a CIDR",
        {"load_balancer_source_ranges": ("10.0.0.0/33",)},
        "spec.loadBalancerSourceRanges",
        "10.0.0.0/33",
        "CIDRs",
    ),
    (
        "IPv6 source range on an IPv4 Service",
        {"load_balancer_source_ranges": ("10.0.0.0/8", "2001:db8::/32")},
        "spec.loadBalancerSourceRanges",
        "2001:db8::/32",
        "IPv4 CIDRs",
    ),
    (
        "only IPv6 source ranges on a dual-stack Service",
        {"annotations": {SOURCE_RANGES_ANNOTATION: "2001:db8::/32"}, "ip_families": ("IPv4", "IPv6")},
        SOURCE_RANGES_ANNOTATION,
        "2001:db8::/32",
        "at least one IPv4 CIDR",
    ),
    (
        "IPv6-only Service",
        {"ip_families": ("IPv6",)},
        "spec.ipFamilies",
        "IPv6",
        "dual-stack",
    ),
    (
        "mixed TCP and UDP",
        {"ports": (tcp(53), udp(53))},
        "spec.ports",
        "53/UDP",
        "all TCP or all UDP",
    ),
    (
        "SCTP",
        {"ports": (tcp(80), ServicePort(name="", protocol="SCTP", port=9, node_port=30009))},
        "spec.ports[1].protocol",
        "SCTP",
        "TCP or UDP",
    ),
    (
        "duplicate port numbers",
        {"ports": (tcp(80, 30080), tcp(443), tcp(80, 30081))},
        "spec.ports[2].port",
        "80",
        "each port number once",
    ),
    ("no ports", {"ports": ()}, "spec.ports", "[]", "TCP or UDP"),
    (
        "loadBalancerIP not an address",
        {"load_balancer_ip": "my-static-ip"},
        "spec.loadBalancerIP",
        "my-static-ip",
        "IPv4 address",
    ),
    (
        "loadBalancerIP IPv6",
        {"load_balancer_ip": "2001:db8::1"},
        "spec.loadBalancerIP",
        "2001:db8::1",
        "IPv4 address",
    ),
    (
        "unknown session affinity",
        {"session_affinity": "Cookie"},
        "spec.sessionAffinity",
        "Cookie",
        "None or ClientIP",
    ),
    (
        "Local policy without a health-check NodePort",
        {"external_traffic_policy": "Local", "health_check_node_port": 0},
        "spec.healthCheckNodePort",
        "0",
        "from 1 to 65535",
    ),
    (
        "unknown traffic policy",
        {"external_traffic_policy": "Nearest"},
        "spec.externalTrafficPolicy",
        "Nearest",
        "Cluster or Local",
    ),
]


@pytest.mark.parametrize(
    ("fields", "field", "bad", "accepted"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_input_is_an_invalid_spec_naming_field_value_and_fix(
    fields: dict[str, Any], field: str, bad: str, accepted: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        build(**fields)

    error = caught.value
    assert field in error.field
    assert bad in str(error)
    assert accepted in error.accepted


def test_an_internal_lb_without_any_subnetwork_names_the_annotation_and_the_config_key() -> None:
    with pytest.raises(InvalidSpec) as caught:
        build(annotations=INTERNAL, network=replace(NETWORK, subnetwork=""))

    assert caught.value.field == ann.INTERNAL_SUBNET
    assert "subnetwork-name" in caught.value.accepted


def test_mixed_protocols_say_why() -> None:
    with pytest.raises(InvalidSpec, match="one protocol"):
        build(ports=(tcp(80), udp(81)))


def test_the_builder_spells_no_annotation_key_outside_the_registry() -> None:
    source = (Path(builder.__file__)).read_text()

    assert not re.search(r"\"(networking\.gke\.io|cloud\.google\.com|alpha\.cloud)", source)

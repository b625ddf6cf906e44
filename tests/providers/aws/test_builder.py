"""providers.aws.builder: a Service and the account's network facts → the desired Stack, without AWS.

Golden files pin whole stacks (``UPDATE_GOLDEN=1`` rewrites them after an intended change; review
the diff); the other tests pin one rule each: names, subnet discovery, health-check defaults and
overrides, security-group rules, targets, and one InvalidSpec per kind of malformed input.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import replace
from pathlib import Path
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
from providers.aws import annotations as ann
from providers.aws import builder
from providers.aws.config import AWSConfig
from providers.aws.model import ClusterInfo, Rule, Stack, Subnet
from tests.support.aws_requests import BASIC_PORTS, make_request, tcp
from tests.support.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden"
CLUSTER = "prod"
VPC = "vpc-0a"
UID = "6c8a4e1a-3f5b-4c2d-9e7f-0123456789ab"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f6d1c5e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
VALID_NAME = re.compile(r"[a-z0-9]([a-z0-9]|-(?!-))*[a-z0-9]")


def subnet(subnet_id: str, az: str, cidr: str, *tags: tuple[str, str], zone_type: str = "") -> Subnet:
    return Subnet(
        subnet_id=subnet_id,
        vpc_id=VPC,
        availability_zone=az,
        cidr_block=cidr,
        zone_type=zone_type or "availability-zone",
        tags=tags,
    )


OURS = (f"kubernetes.io/cluster/{CLUSTER}", "shared")
PUBLIC = ("kubernetes.io/role/elb", "1")
PRIVATE = ("kubernetes.io/role/internal-elb", "1")

# Three AZs, each with a public and a private subnet tagged as the docs ask, plus distractors: an
# untagged subnet with a lower ID, another cluster's subnet, a local-zone subnet, another VPC's subnet.
SUBNETS = (
    subnet("subnet-0a0public", "us-east-1a", "10.0.0.0/20", OURS, PUBLIC, ("Name", "public-a")),
    subnet("subnet-0b0public", "us-east-1b", "10.0.16.0/20", OURS, PUBLIC, ("Name", "public-b")),
    subnet("subnet-0c0public", "us-east-1c", "10.0.32.0/20", OURS, PUBLIC, ("Name", "public-c")),
    subnet("subnet-1a0private", "us-east-1a", "10.0.64.0/20", OURS, PRIVATE, ("Name", "private-a")),
    subnet("subnet-1b0private", "us-east-1b", "10.0.80.0/20", OURS, PRIVATE, ("Name", "private-b")),
    subnet("subnet-1c0private", "us-east-1c", "10.0.96.0/20", OURS, PRIVATE, ("Name", "private-c")),
    subnet("subnet-000untagged", "us-east-1a", "10.0.128.0/24"),
    subnet(
        "subnet-000other", "us-east-1d", "10.0.129.0/24", ("kubernetes.io/cluster/other", "owned"), PUBLIC
    ),
    subnet("subnet-000local", "us-east-1-bos-1a", "10.0.130.0/24", OURS, PUBLIC, zone_type="local-zone"),
    replace(subnet("subnet-000elsewhere", "us-east-1e", "10.9.0.0/24", OURS, PUBLIC), vpc_id="vpc-0other"),
)
NETWORK = ClusterInfo(cluster_name=CLUSTER, vpc_id=VPC, subnets=SUBNETS)
NODES = (
    Node(name="node-b", provider_id="aws:///us-east-1b/i-0bbbbbbbbbbbbbbbb", labels={"pool": "web"}),
    Node(name="node-a", provider_id="aws:///us-east-1a/i-0aaaaaaaaaaaaaaaa", labels={"pool": "web"}),
    Node(name="node-c", provider_id="aws:///us-east-1c/i-0cccccccccccccccc", labels={"pool": "batch"}),
    Node(name="no-provider-id", provider_id=""),
    Node(name="fargate", provider_id="aws:///us-east-1a/fargate-ip-10-0-1-2.ec2.internal"),
)


def udp(port: int, node_port: int, name: str = "") -> ServicePort:
    return ServicePort(name=name, protocol="UDP", port=port, node_port=node_port)


def request(**fields: Any) -> LoadBalancerRequest:
    """:func:`tests.support.aws_requests.make_request` on this module's three-zone :data:`NODES`."""
    fields.setdefault("nodes", NODES)
    return make_request(**fields)


def build(req: LoadBalancerRequest | None = None, *, config: AWSConfig | None = None, **fields: Any) -> Stack:
    return builder.build_stack(
        request=req if req is not None else request(**fields),
        config=config or AWSConfig(),
        cluster=NETWORK,
    )


# -- golden stacks ----------------------------------------------------------------------------------


def test_a_basic_two_port_tcp_service_builds_the_golden_stack() -> None:
    assert_golden(GOLDEN / "basic_tcp.json", build().to_json())


def test_the_same_port_on_tcp_and_udp_builds_one_tcp_udp_listener() -> None:
    ports = (tcp(53, 30053, "dns-tcp"), udp(53, 30053, "dns-udp"), udp(5353, 30535, "mdns"))

    assert_golden(GOLDEN / "tcp_udp.json", build(ports=ports).to_json())


def test_a_tls_service_builds_the_golden_stack() -> None:
    annotations = {
        ann.SSL_CERT: CERT,
        ann.SSL_PORTS: "https",
        ann.SSL_NEGOTIATION_POLICY: "ELBSecurityPolicy-TLS13-1-2-2021-06",
        ann.BACKEND_PROTOCOL: "ssl",
    }

    assert_golden(GOLDEN / "tls.json", build(annotations=annotations).to_json())


def test_an_internal_service_with_private_ips_builds_the_golden_stack() -> None:
    annotations = {
        ann.INTERNAL: "true",
        ann.PRIVATE_IPV4_ADDRESSES: "10.0.100.10, 10.0.70.10,10.0.90.10",
        ann.ADDITIONAL_RESOURCE_TAGS: "team=payments, cost-center=42,backup",
        ann.TARGET_NODE_LABELS: "pool=web",
    }

    stack = build(annotations=annotations, load_balancer_source_ranges=("10.0.0.0/8", "2001:db8::/32"))

    assert_golden(GOLDEN / "internal_private_ips.json", stack.to_json())


def test_an_etp_local_service_builds_the_golden_stack() -> None:
    assert_golden(
        GOLDEN / "etp_local.json",
        build(external_traffic_policy="Local", health_check_node_port=31999).to_json(),
    )


def test_the_shared_probe_mode_builds_the_golden_stack() -> None:
    config = AWSConfig(health_probe_mode="Shared", shared_probe_port=10256, shared_probe_path="/healthz")

    assert_golden(GOLDEN / "shared_probe.json", build(config=config).to_json())


def test_every_attribute_annotation_builds_the_golden_stack() -> None:
    annotations = {
        ann.CROSS_ZONE: "true",
        ann.ACCESS_LOG_ENABLED: "true",
        ann.ACCESS_LOG_BUCKET: "my-logs",
        ann.ACCESS_LOG_PREFIX: "nlb/shop",
        ann.TARGET_GROUP_ATTRIBUTES: (
            "deregistration_delay.timeout_seconds=30,preserve_client_ip.enabled=False"
        ),
        ann.PROXY_PROTOCOL: "*",
        ann.EIP_ALLOCATIONS: "eipalloc-0a,eipalloc-0b,eipalloc-0c",
        ann.SECURITY_GROUPS: "sg-0123abcd, sg-0456ef",
        ann.HEALTHCHECK_PROTOCOL: "http",
        ann.HEALTHCHECK_PORT: "8080",
        ann.HEALTHCHECK_PATH: "/ready",
        ann.HEALTHCHECK_INTERVAL: "20",
        ann.HEALTHCHECK_TIMEOUT: "5",
        ann.HEALTHCHECK_HEALTHY_THRESHOLD: "4",
        ann.HEALTHCHECK_UNHEALTHY_THRESHOLD: "5",
        ann.CONNECTION_IDLE_TIMEOUT: "3600",
    }

    assert_golden(GOLDEN / "attributes.json", build(annotations=annotations).to_json())


# -- names --------------------------------------------------------------------------------------------


def test_two_clusters_with_the_same_service_and_uid_get_different_names() -> None:
    one = build(request(cluster_name="blue"))
    two = build(request(cluster_name="green"))

    assert one.load_balancer.name != two.load_balancer.name
    assert {tg.name for tg in one.target_groups}.isdisjoint(tg.name for tg in two.target_groups)
    assert one.frontend_security_group is not None and two.frontend_security_group is not None
    assert one.frontend_security_group.name != two.frontend_security_group.name


def test_the_cluster_id_of_the_cloud_config_overrides_the_cluster_name() -> None:
    stack = build(config=AWSConfig(cluster_id="kid"))

    assert stack.load_balancer.name == builder.load_balancer_name(
        cluster_name="kid", namespace="shop", name="frontend", uid=UID
    )
    assert ("kubernetes.io/cluster/kid", "owned") in stack.load_balancer.tags


def test_a_recreated_service_with_a_new_uid_gets_a_new_name() -> None:
    assert build().load_balancer.name != build(uid="another-uid").load_balancer.name


def test_names_are_stable_and_readable() -> None:
    name = builder.load_balancer_name(cluster_name=CLUSTER, namespace="shop", name="frontend", uid=UID)

    assert name == builder.load_balancer_name(
        cluster_name=CLUSTER, namespace="shop", name="frontend", uid=UID
    )
    assert re.fullmatch(r"k8s-shop-frontend-[0-9a-f]{10}", name)


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("default", "svc"),
        ("a-very-long-namespace-name-indeed", "and-an-even-longer-service-name-too"),
        ("abcdefg-x", "abcdefg-y"),  # the cut at 8 ends in a hyphen
        ("kube-system", "a"),
        ("x" * 63, "y" * 63),
        ("Upper_Case.Dots", "svc"),  # not valid Kubernetes names, sanitised anyway
    ],
)
def test_names_always_fit_aws_limits_and_characters(namespace: str, name: str) -> None:
    stack = build(namespace=namespace, name=name)

    names = [stack.load_balancer.name, *(tg.name for tg in stack.target_groups)]
    for value in names:
        assert len(value) <= 32
        assert VALID_NAME.fullmatch(value), value
    assert stack.frontend_security_group is not None
    assert len(stack.frontend_security_group.name) <= 255
    assert VALID_NAME.fullmatch(stack.frontend_security_group.name)


def test_a_target_group_name_changes_with_what_aws_cannot_modify() -> None:
    base: dict[str, Any] = {
        "cluster_name": CLUSTER,
        "namespace": "shop",
        "name": "frontend",
        "uid": UID,
        "port": 80,
        "protocol": "TCP",
        "node_port": 30080,
    }
    name = builder.target_group_name(**base)
    changes: list[dict[str, Any]] = [
        {"port": 81},
        {"protocol": "TLS"},
        {"node_port": 30081},
        {"target_type": "ip"},
        {"uid": "x"},
        {"cluster_name": "other"},
    ]

    for change in changes:
        assert builder.target_group_name(**{**base, **change}) != name, change


def test_a_health_check_change_keeps_the_target_group_name() -> None:
    before = build()
    after = build(annotations={ann.HEALTHCHECK_INTERVAL: "30"})

    assert [tg.name for tg in before.target_groups] == [tg.name for tg in after.target_groups]


def test_backend_tls_gives_the_target_group_a_new_name_but_the_same_resource_id() -> None:
    plain = build(annotations={ann.SSL_CERT: CERT})
    tls = build(annotations={ann.SSL_CERT: CERT, ann.BACKEND_PROTOCOL: "ssl"})

    assert [tg.resource_id for tg in plain.target_groups] == [tg.resource_id for tg in tls.target_groups]
    assert plain.target_groups[0].name != tls.target_groups[0].name


@pytest.mark.parametrize(
    ("provider_id", "expected"),
    [
        ("aws:///us-east-1a/i-0123", "i-0123"),
        ("aws:////i-0abc", "i-0abc"),
        ("i-0abc", "i-0abc"),
    ],
)
def test_instance_ids_come_from_aws_provider_ids(provider_id: str, expected: str) -> None:
    assert builder.instance_id(provider_id) == expected


@pytest.mark.parametrize(
    "provider_id",
    [
        "",
        "aws:///us-east-1a/fargate-ip-10-0-0-1",
        "gce://project/zone/vm",
        "aws:///a/b/i-0123",
        "aws:///us-east-1a/",
    ],
)
def test_other_provider_ids_are_not_instance_ids(provider_id: str) -> None:
    with pytest.raises(ValueError, match="providerID"):
        builder.instance_id(provider_id)


# -- type -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["external", "nlb-ip"])
def test_lbc_types_are_implemented_elsewhere_whatever_else_is_annotated(value: str) -> None:
    with pytest.raises(ImplementedElsewhere):
        build(annotations={ann.TYPE: value, ann.HEALTHCHECK_INTERVAL: "nonsense"})


@pytest.mark.parametrize("value", ["nlb", "", None])
def test_nlb_is_the_default_type(value: str | None) -> None:
    annotations = {} if value is None else {ann.TYPE: value}

    assert build(annotations=annotations).load_balancer.name.startswith("k8s-")


# -- ports ----------------------------------------------------------------------------------------------


def test_listeners_follow_port_numbers_not_the_order_of_spec_ports() -> None:
    reordered = build(ports=tuple(reversed(BASIC_PORTS)))

    assert reordered == build()
    assert reordered.spec_hash() == build().spec_hash()


def test_tcp_udp_target_groups_get_both_protocols_in_the_security_group() -> None:
    stack = build(ports=(tcp(53, 30053), udp(53, 30053)))

    assert [(lsn.port, lsn.protocol) for lsn in stack.listeners] == [(53, "TCP_UDP")]
    assert stack.frontend_security_group is not None
    protocols = {r.protocol for r in stack.frontend_security_group.rules if r.from_port == 53}
    assert protocols == {"tcp", "udp"}


def test_exactly_fifty_listeners_are_accepted() -> None:
    ports = tuple(tcp(1000 + i, 30000 + i) for i in range(50))

    assert len(build(ports=ports).listeners) == 50


# -- TLS --------------------------------------------------------------------------------------------


def test_a_certificate_applies_to_every_tcp_port_by_default_and_skips_udp_ones() -> None:
    stack = build(ports=(*BASIC_PORTS, udp(5000, 30500)), annotations={ann.SSL_CERT: CERT})

    protocols = {lsn.port: lsn.protocol for lsn in stack.listeners}
    assert protocols == {80: "TLS", 443: "TLS", 5000: "UDP"}
    assert all(tg.protocol in ("TCP", "UDP") for tg in stack.target_groups)


def test_ssl_ports_may_mix_names_and_numbers() -> None:
    ports = (*BASIC_PORTS, tcp(8443, 30843, "admin"))

    stack = build(ports=ports, annotations={ann.SSL_CERT: CERT, ann.SSL_PORTS: "https, 8443"})

    assert {lsn.port: lsn.protocol for lsn in stack.listeners} == {80: "TCP", 443: "TLS", 8443: "TLS"}
    tls = [lsn for lsn in stack.listeners if lsn.protocol == "TLS"]
    assert all(lsn.certificate_arn == CERT for lsn in tls)
    assert all(not lsn.certificate_arn for lsn in stack.listeners if lsn.protocol == "TCP")


def test_an_iam_server_certificate_is_accepted() -> None:
    arn = "arn:aws-cn:iam::123456789012:server-certificate/prod/shop"

    assert build(annotations={ann.SSL_CERT: arn}).listeners[0].certificate_arn == arn


# -- subnets ------------------------------------------------------------------------------------------


def subnet_ids(stack: Stack) -> list[str]:
    return [m.subnet_id for m in stack.load_balancer.subnet_mappings]


def test_internet_facing_discovery_prefers_the_elb_role_tag_one_subnet_per_zone() -> None:
    assert subnet_ids(build()) == ["subnet-0a0public", "subnet-0b0public", "subnet-0c0public"]


def test_internal_discovery_prefers_the_internal_elb_role_tag() -> None:
    stack = build(annotations={ann.INTERNAL: "true"})

    assert stack.load_balancer.scheme == "internal"
    assert subnet_ids(stack) == ["subnet-1a0private", "subnet-1b0private", "subnet-1c0private"]


def test_internet_facing_discovery_skips_subnets_without_a_route_to_an_internet_gateway() -> None:
    private = dataclasses.replace(SUBNETS[0], subnet_id="subnet-0000000", public=False)
    network = dataclasses.replace(NETWORK, subnets=(private, *SUBNETS))
    stack = builder.build_stack(request=request(), config=AWSConfig(), cluster=network)
    assert "subnet-0000000" not in subnet_ids(stack)
    only_private = dataclasses.replace(NETWORK, subnets=(private,))
    with pytest.raises(InvalidSpec, match="internet gateway"):
        builder.build_stack(request=request(), config=AWSConfig(), cluster=only_private)


@pytest.mark.parametrize(("value", "scheme"), [("false", "internet-facing"), ("0.0.0.0/0", "internal")])
def test_any_internal_value_but_false_is_internal(value: str, scheme: str) -> None:
    assert build(annotations={ann.INTERNAL: value}).load_balancer.scheme == scheme


def test_without_role_tags_the_cluster_tag_wins_then_the_lowest_id() -> None:
    network = ClusterInfo(
        cluster_name=CLUSTER,
        vpc_id=VPC,
        subnets=(
            subnet("subnet-0003", "us-east-1a", "10.0.3.0/24", OURS),
            subnet("subnet-0001", "us-east-1a", "10.0.1.0/24"),
            subnet("subnet-0002", "us-east-1b", "10.0.2.0/24"),
            subnet("subnet-0001b", "us-east-1b", "10.0.4.0/24"),
            subnet("subnet-0000", "us-east-1c", "10.0.5.0/24", ("kubernetes.io/cluster/other", "shared")),
            subnet("subnet-0009", "us-east-1c", "10.0.6.0/24", ("KubernetesCluster", "other")),
            subnet("subnet-0008", "us-east-1d", "10.0.7.0/24", ("KubernetesCluster", CLUSTER)),
            subnet("subnet-0007", "us-east-1d", "10.0.8.0/24"),
        ),
    )

    stack = builder.build_stack(request=request(), config=AWSConfig(), cluster=network)

    assert subnet_ids(stack) == ["subnet-0003", "subnet-0001b", "subnet-0008"]


def test_a_subnet_tagged_for_another_cluster_and_ours_is_usable() -> None:
    shared = subnet(
        "subnet-0001", "us-east-1a", "10.0.1.0/24", ("kubernetes.io/cluster/other", "shared"), OURS
    )
    network = ClusterInfo(cluster_name=CLUSTER, vpc_id=VPC, subnets=(shared,))

    stack = builder.build_stack(request=request(), config=AWSConfig(), cluster=network)

    assert subnet_ids(stack) == ["subnet-0001"]


def test_subnets_can_be_named_by_id_or_name_tag_in_annotation_order() -> None:
    stack = build(annotations={ann.SUBNETS: "public-c, subnet-0a0public"})

    assert subnet_ids(stack) == ["subnet-0c0public", "subnet-0a0public"]


def test_eips_go_to_the_subnets_in_order() -> None:
    stack = build(annotations={ann.EIP_ALLOCATIONS: "eipalloc-01, eipalloc-02, eipalloc-03"})

    pairs = [(m.subnet_id, m.allocation_id) for m in stack.load_balancer.subnet_mappings]
    assert pairs == [
        ("subnet-0a0public", "eipalloc-01"),
        ("subnet-0b0public", "eipalloc-02"),
        ("subnet-0c0public", "eipalloc-03"),
    ]


# -- attributes ---------------------------------------------------------------------------------------


def test_a_default_service_sets_no_attribute_at_all() -> None:
    stack = build()

    assert stack.load_balancer.attributes == ()
    assert all(tg.attributes == () for tg in stack.target_groups)


def test_cross_zone_false_is_sent_when_annotated() -> None:
    stack = build(annotations={ann.CROSS_ZONE: "false"})

    assert stack.load_balancer.attributes == (("load_balancing.cross_zone.enabled", "false"),)


def test_proxy_protocol_star_enables_proxy_protocol_v2_on_every_target_group() -> None:
    stack = build(annotations={ann.PROXY_PROTOCOL: "*"})

    assert all(("proxy_protocol_v2.enabled", "true") in tg.attributes for tg in stack.target_groups)


# -- health checks ------------------------------------------------------------------------------------


def test_cluster_policy_checks_tcp_on_the_traffic_port() -> None:
    check = build().target_groups[0].health_check

    assert (check.protocol, check.port, check.path) == ("TCP", "traffic-port", "")
    assert (check.interval_seconds, check.timeout_seconds) == (10, 10)
    assert (check.healthy_threshold, check.unhealthy_threshold) == (3, 3)


def test_local_policy_checks_http_healthz_on_the_health_check_node_port() -> None:
    check = build(external_traffic_policy="Local", health_check_node_port=32100).target_groups[0].health_check

    assert (check.protocol, check.port, check.path) == ("HTTP", "32100", "/healthz")
    assert (check.interval_seconds, check.timeout_seconds) == (10, 6)
    assert (check.healthy_threshold, check.unhealthy_threshold) == (2, 2)


def test_local_policy_ignores_the_shared_probe_mode() -> None:
    config = AWSConfig(health_probe_mode="Shared")

    stack = build(config=config, external_traffic_policy="Local", health_check_node_port=32100)

    assert stack.target_groups[0].health_check.port == "32100"


def test_http_on_the_traffic_port_defaults_to_the_root_path_and_the_http_timeout() -> None:
    check = build(annotations={ann.HEALTHCHECK_PROTOCOL: "HTTPS"}).target_groups[0].health_check

    assert (check.protocol, check.port, check.path, check.timeout_seconds) == (
        "HTTPS",
        "traffic-port",
        "/",
        6,
    )


def test_the_health_check_timeout_annotation_is_sent() -> None:
    assert (
        build(annotations={ann.HEALTHCHECK_TIMEOUT: "2"}).target_groups[0].health_check.timeout_seconds == 2
    )


def test_local_policy_may_be_checked_on_the_traffic_port() -> None:
    stack = build(
        external_traffic_policy="Local",
        health_check_node_port=32100,
        annotations={ann.HEALTHCHECK_PORT: "traffic-port", ann.HEALTHCHECK_PROTOCOL: "TCP"},
    )

    check = stack.target_groups[0].health_check
    assert (check.protocol, check.port, check.path, check.timeout_seconds) == ("TCP", "traffic-port", "", 10)


# -- security groups ----------------------------------------------------------------------------------


def test_the_frontend_group_opens_each_listener_and_path_mtu_per_family() -> None:
    stack = build(load_balancer_source_ranges=("203.0.113.0/24", "2001:db8::/32"))

    assert stack.frontend_security_group is not None
    rules = set(stack.frontend_security_group.rules)
    assert {(r.protocol, r.from_port, r.to_port, r.cidr) for r in rules} == {
        ("tcp", 80, 80, "203.0.113.0/24"),
        ("tcp", 80, 80, "2001:db8::/32"),
        ("tcp", 443, 443, "203.0.113.0/24"),
        ("tcp", 443, 443, "2001:db8::/32"),
        ("icmp", 3, 4, "203.0.113.0/24"),
        ("icmpv6", 2, 0, "2001:db8::/32"),
    }


def test_the_source_ranges_annotation_is_used_without_the_spec_field() -> None:
    stack = build(annotations={SOURCE_RANGES_ANNOTATION: "198.51.100.0/24"})

    assert stack.frontend_security_group is not None
    assert {r.cidr for r in stack.frontend_security_group.rules} == {"198.51.100.0/24"}


DUAL_STACK = replace(
    NETWORK,
    subnets=tuple(replace(s, ipv6_cidr_blocks=(f"2600:1f18:0:{i}::/64",)) for i, s in enumerate(SUBNETS)),
)


def test_a_dual_stack_service_without_ranges_is_open_to_both_families() -> None:
    stack = builder.build_stack(
        request=request(ip_families=("IPv4", "IPv6")), config=AWSConfig(), cluster=DUAL_STACK
    )

    assert stack.frontend_security_group is not None
    assert Rule(protocol="tcp", from_port=80, to_port=80, cidr="::/0", description="listener 80/TCP") in (
        stack.frontend_security_group.rules
    )


def test_byo_security_groups_replace_the_frontend_group() -> None:
    stack = build(annotations={ann.SECURITY_GROUPS: "sg-0abc,sg-0def,sg-0abc"})

    assert stack.frontend_security_group is None
    assert stack.byo_security_groups == ("sg-0abc", "sg-0def")


# -- tags and targets -------------------------------------------------------------------------------


def test_every_part_carries_the_ownership_tags_and_the_additional_ones() -> None:
    stack = build(annotations={ann.ADDITIONAL_RESOURCE_TAGS: "team=web,empty="})

    assert stack.frontend_security_group is not None
    parts = [
        stack.load_balancer.tags,
        stack.frontend_security_group.tags,
        *(tg.tags for tg in stack.target_groups),
        *(lsn.tags for lsn in stack.listeners),
    ]
    resources = set()
    for tags in parts:
        tag_map = dict(tags)
        assert tag_map["kubernetes.io/cluster/prod"] == "owned"
        assert tag_map["kubernetes.io/service-name"] == "shop/frontend"
        assert tag_map["ccm-lb/service-uid"] == UID
        assert (tag_map["team"], tag_map["empty"]) == ("web", "")
        resources.add(tag_map["ccm-lb/resource"])
    assert len(resources) == len(parts)  # each part is told apart by its resource id


def test_targets_are_the_sorted_instance_ids_of_nodes_with_aws_provider_ids() -> None:
    assert build().targets == ("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb", "i-0cccccccccccccccc")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("pool=web", ("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb")),
        ("pool", ("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb", "i-0cccccccccccccccc")),
        ("pool=", ("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb", "i-0cccccccccccccccc")),
        ("pool=web,zone", ()),
        ("pool=gpu", ()),
    ],
)
def test_target_node_labels_select_the_targets(selector: str, expected: tuple[str, ...]) -> None:
    assert build(annotations={ann.TARGET_NODE_LABELS: selector}).targets == expected


def test_a_node_change_changes_the_targets_but_not_the_spec_hash() -> None:
    fewer = build(nodes=NODES[:1])

    assert fewer.targets == ("i-0bbbbbbbbbbbbbbbb",)
    assert fewer.spec_hash() == build().spec_hash()


def test_the_build_is_deterministic() -> None:
    assert build().to_json() == build().to_json()


# -- malformed input ----------------------------------------------------------------------------------

FIFTY_ONE = tuple(tcp(2000 + i, 31000 + i) for i in range(51))

# (id, request fields, field named, bad value, a fragment of what is accepted)
MALFORMED: list[tuple[str, dict[str, Any], str, str, str]] = [
    (
        "non-numeric threshold",
        {"annotations": {ann.HEALTHCHECK_HEALTHY_THRESHOLD: "three"}},
        ann.HEALTHCHECK_HEALTHY_THRESHOLD,
        "three",
        "from 2 to 10",
    ),
    (
        "threshold out of range",
        {"annotations": {ann.HEALTHCHECK_UNHEALTHY_THRESHOLD: "11"}},
        ann.HEALTHCHECK_UNHEALTHY_THRESHOLD,
        "11",
        "from 2 to 10",
    ),
    (
        "interval out of range",
        {"annotations": {ann.HEALTHCHECK_INTERVAL: "1"}},
        ann.HEALTHCHECK_INTERVAL,
        "1",
        "from 5 to 300",
    ),
    (
        "non-numeric timeout",
        {"annotations": {ann.HEALTHCHECK_TIMEOUT: "5s"}},
        ann.HEALTHCHECK_TIMEOUT,
        "5s",
        "from 2 to 120",
    ),
    (
        "unknown health-check protocol",
        {"annotations": {ann.HEALTHCHECK_PROTOCOL: "SSL"}},
        ann.HEALTHCHECK_PROTOCOL,
        "SSL",
        "TCP, HTTP, HTTPS",
    ),
    (
        "health-check port not a port",
        {"annotations": {ann.HEALTHCHECK_PORT: "70000"}},
        ann.HEALTHCHECK_PORT,
        "70000",
        "traffic-port or a port from 1 to 65535",
    ),
    (
        "health-check path with TCP",
        {"annotations": {ann.HEALTHCHECK_PATH: "/ready"}},
        ann.HEALTHCHECK_PATH,
        "/ready",
        "HTTP or HTTPS",
    ),
    (
        "health-check path not absolute",
        {"annotations": {ann.HEALTHCHECK_PROTOCOL: "HTTP", ann.HEALTHCHECK_PATH: "ready"}},
        ann.HEALTHCHECK_PATH,
        "ready",
        "starting with /",
    ),
    (
        "unknown port protocol",
        {"ports": (tcp(80, 30080), ServicePort(name="s", protocol="SCTP", port=9, node_port=30009))},
        "spec.ports[1].protocol",
        "SCTP",
        "TCP or UDP",
    ),
    (
        "bad CIDR in the source-ranges annotation",
        {"annotations": {SOURCE_RANGES_ANNOTATION: "10.0.0.0/8,10.0.0.300/32"}},
        SOURCE_RANGES_ANNOTATION,
        "10.0.0.300/32",
        "CIDRs",
    ),
    (
        "bad CIDR in spec.loadBalancerSourceRanges",
        {"load_balancer_source_ranges": ("everyone",)},
        "spec.loadBalancerSourceRanges",
        "everyone",
        "CIDRs",
    ),
    (
        "EIP count is not the subnet count",
        {"annotations": {ann.EIP_ALLOCATIONS: "eipalloc-01,eipalloc-02"}},
        ann.EIP_ALLOCATIONS,
        "eipalloc-01,eipalloc-02",
        "exactly 3 eipalloc",
    ),
    (
        "EIPs on an internal NLB",
        {"annotations": {ann.INTERNAL: "true", ann.EIP_ALLOCATIONS: "eipalloc-01"}},
        ann.EIP_ALLOCATIONS,
        "eipalloc-01",
        ann.PRIVATE_IPV4_ADDRESSES,
    ),
    (
        "not an EIP allocation",
        {"annotations": {ann.EIP_ALLOCATIONS: "eipalloc-01,1.2.3.4,eipalloc-03"}},
        ann.EIP_ALLOCATIONS,
        "1.2.3.4",
        "eipalloc-",
    ),
    (
        "private IP outside every subnet",
        {"annotations": {ann.INTERNAL: "true", ann.PRIVATE_IPV4_ADDRESSES: "10.0.70.1,10.0.90.1,10.0.0.1"}},
        ann.PRIVATE_IPV4_ADDRESSES,
        "10.0.0.1",
        "subnet-1c0private 10.0.96.0/20",
    ),
    (
        "two private IPs in one subnet",
        {"annotations": {ann.INTERNAL: "true", ann.PRIVATE_IPV4_ADDRESSES: "10.0.70.1,10.0.70.2,10.0.100.1"}},
        ann.PRIVATE_IPV4_ADDRESSES,
        "10.0.70.2",
        "one inside each subnet",
    ),
    (
        "private IPs on an internet-facing NLB",
        {"annotations": {ann.PRIVATE_IPV4_ADDRESSES: "10.0.1.1,10.0.17.1,10.0.33.1"}},
        ann.PRIVATE_IPV4_ADDRESSES,
        "10.0.1.1",
        "IPv4 addresses",
    ),
    (
        "unknown subnet",
        {"annotations": {ann.SUBNETS: "subnet-0a0public,subnet-0nope"}},
        ann.SUBNETS,
        "subnet-0nope",
        "subnet IDs or Name tags",
    ),
    (
        "unknown subnet name",
        {"annotations": {ann.SUBNETS: "public-z"}},
        ann.SUBNETS,
        "public-z",
        "subnet IDs or Name tags",
    ),
    (
        "subnet of another VPC",
        {"annotations": {ann.SUBNETS: "subnet-000elsewhere"}},
        ann.SUBNETS,
        "subnet-000elsewhere",
        "in the cluster's VPC",
    ),
    (
        "two subnets in one zone",
        {"annotations": {ann.SUBNETS: "subnet-0a0public,subnet-1a0private"}},
        ann.SUBNETS,
        "subnet-1a0private",
        "subnet IDs or Name tags",
    ),
    (
        "certificate on a UDP port",
        {
            "ports": (tcp(80, 30080), udp(53, 30053, "dns")),
            "annotations": {ann.SSL_CERT: CERT, ann.SSL_PORTS: "dns"},
        },
        ann.SSL_PORTS,
        "dns",
        "TCP ports: 80",
    ),
    (
        "certificate on a service with only UDP ports",
        {"ports": (udp(53, 30053, "dns"),), "annotations": {ann.SSL_CERT: CERT}},
        ann.SSL_CERT,
        CERT,
        "Services with TCP ports",
    ),
    (
        "certificate that is no ARN",
        {"annotations": {ann.SSL_CERT: "my-cert"}},
        ann.SSL_CERT,
        "my-cert",
        "arn:aws:acm:",
    ),
    (
        "ssl-ports naming an unknown port",
        {"annotations": {ann.SSL_CERT: CERT, ann.SSL_PORTS: "https,admin"}},
        ann.SSL_PORTS,
        "admin",
        "443 (https)",
    ),
    (
        "ssl-ports naming an unknown number",
        {"annotations": {ann.SSL_CERT: CERT, ann.SSL_PORTS: "8443"}},
        ann.SSL_PORTS,
        "8443",
        "80 (http), 443 (https)",
    ),
    (
        "unknown backend protocol",
        {"annotations": {ann.BACKEND_PROTOCOL: "grpc"}},
        ann.BACKEND_PROTOCOL,
        "grpc",
        "tcp, ssl",
    ),
    (
        "more than 50 listeners",
        {"ports": FIFTY_ONE},
        "spec.ports",
        "51 listeners",
        "at most 50",
    ),
    (
        "additional tag with a reserved key",
        {"annotations": {ann.ADDITIONAL_RESOURCE_TAGS: "team=web,aws:owner=me"}},
        ann.ADDITIONAL_RESOURCE_TAGS,
        "aws:owner=me",
        "k=v,k2=,k3",
    ),
    (
        "additional tag claiming another cluster",
        {"annotations": {ann.ADDITIONAL_RESOURCE_TAGS: "kubernetes.io/cluster/other=owned"}},
        ann.ADDITIONAL_RESOURCE_TAGS,
        "kubernetes.io/cluster/other=owned",
        "k=v,k2=,k3",
    ),
    (
        "additional tag value too long",
        {"annotations": {ann.ADDITIONAL_RESOURCE_TAGS: "k=" + "v" * 257}},
        ann.ADDITIONAL_RESOURCE_TAGS,
        "v" * 257,
        "values ≤ 256",
    ),
    (
        "additional tag with an empty key",
        {"annotations": {ann.ADDITIONAL_RESOURCE_TAGS: "=v"}},
        ann.ADDITIONAL_RESOURCE_TAGS,
        "=v",
        "k=v,k2=,k3",
    ),
    (
        "unknown target-group attribute",
        {
            "annotations": {
                ann.TARGET_GROUP_ATTRIBUTES: "stickiness.enabled=true,slow_start.duration_seconds=30"
            }
        },
        ann.TARGET_GROUP_ATTRIBUTES,
        "slow_start.duration_seconds",
        "preserve_client_ip.enabled",
    ),
    (
        "target-group attribute value",
        {"annotations": {ann.TARGET_GROUP_ATTRIBUTES: "deregistration_delay.timeout_seconds=9000"}},
        ann.TARGET_GROUP_ATTRIBUTES,
        "9000",
        "0-3600",
    ),
    (
        "proxy protocol on some ports",
        {"annotations": {ann.PROXY_PROTOCOL: "80"}},
        ann.PROXY_PROTOCOL,
        "80",
        "*",
    ),
    (
        "cross-zone not a boolean",
        {"annotations": {ann.CROSS_ZONE: "yes"}},
        ann.CROSS_ZONE,
        "yes",
        "true or false",
    ),
    (
        "access logs without a bucket",
        {"annotations": {ann.ACCESS_LOG_ENABLED: "true"}},
        ann.ACCESS_LOG_ENABLED,
        "true",
        ann.ACCESS_LOG_BUCKET,
    ),
    (
        "invalid bucket name",
        {"annotations": {ann.ACCESS_LOG_ENABLED: "true", ann.ACCESS_LOG_BUCKET: "My_Bucket"}},
        ann.ACCESS_LOG_BUCKET,
        "My_Bucket",
        "lower-case letters",
    ),
    (
        "Classic ELB",
        {"annotations": {ann.TYPE: "classic"}},
        ann.TYPE,
        "classic",
        "nlb",
    ),
    (
        "unknown type",
        {"annotations": {ann.TYPE: "alb"}},
        ann.TYPE,
        "alb",
        "nlb, classic (or clb, elb), external or nlb-ip",
    ),
    (
        "security group that is no ID",
        {"annotations": {ann.SECURITY_GROUPS: "sg-0abc,web-sg"}},
        ann.SECURITY_GROUPS,
        "web-sg",
        "sg-",
    ),
    (
        "target node labels with a bad key",
        {"annotations": {ann.TARGET_NODE_LABELS: "pool=web,bad key=x"}},
        ann.TARGET_NODE_LABELS,
        "bad key",
        "k=v,k2=v2,k3",
    ),
    (
        "loadBalancerIP",
        {"load_balancer_ip": "203.0.113.10"},
        "spec.loadBalancerIP",
        "203.0.113.10",
        ann.EIP_ALLOCATIONS,
    ),
    (
        "ClientIP session affinity",
        {"session_affinity": "ClientIP"},
        "spec.sessionAffinity",
        "ClientIP",
        "None",
    ),
    (
        "no NodePorts",
        {"ports": (tcp(80, 0),), "allocate_load_balancer_node_ports": False},
        "spec.allocateLoadBalancerNodePorts",
        "False",
        "true",
    ),
    (
        "TCP and UDP on different NodePorts",
        {"ports": (tcp(53, 30053), udp(53, 30054))},
        "spec.ports[1].nodePort",
        "30054",
        "30053",
    ),
    (
        "Local policy without a health-check NodePort",
        {"external_traffic_policy": "Local", "health_check_node_port": 0},
        "spec.healthCheckNodePort",
        "0",
        "from 1 to 65535",
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
    assert accepted in str(error)
    assert accepted in error.accepted or accepted in error.reason


def test_no_usable_subnet_is_an_invalid_spec_explaining_the_tags() -> None:
    network = ClusterInfo(
        cluster_name=CLUSTER,
        vpc_id=VPC,
        subnets=(
            subnet("subnet-0001", "us-east-1a", "10.0.1.0/24", ("kubernetes.io/cluster/other", "owned")),
        ),
    )

    with pytest.raises(InvalidSpec) as caught:
        builder.build_stack(request=request(), config=AWSConfig(), cluster=network)

    assert caught.value.field == ann.SUBNETS
    assert "kubernetes.io/role/elb=1" in str(caught.value)
    assert "kubernetes.io/cluster/prod" in str(caught.value)


def test_private_ips_next_to_an_ipv6_only_subnet_are_an_invalid_spec_not_a_crash() -> None:
    network = ClusterInfo(
        cluster_name=CLUSTER,
        vpc_id=VPC,
        subnets=(
            subnet("subnet-0001", "us-east-1a", "10.0.1.0/24", OURS, PRIVATE),
            subnet("subnet-0002", "us-east-1b", "", OURS, PRIVATE),
        ),
    )
    req = request(annotations={ann.INTERNAL: "true", ann.PRIVATE_IPV4_ADDRESSES: "10.0.1.5,10.0.2.5"})

    with pytest.raises(InvalidSpec) as caught:
        builder.build_stack(request=req, config=AWSConfig(), cluster=network)

    assert caught.value.field == ann.PRIVATE_IPV4_ADDRESSES
    assert "10.0.2.5 is in none" in str(caught.value)


# -- what users carry over from the AWS Load Balancer Controller (issue 11 §3) -----------------------


def test_the_scheme_annotation_internal_builds_an_internal_nlb_on_private_subnets() -> None:
    stack = build(annotations={ann.SCHEME: "internal"})

    assert stack.load_balancer.scheme == "internal"
    assert subnet_ids(stack) == ["subnet-1a0private", "subnet-1b0private", "subnet-1c0private"]


def test_the_scheme_annotation_internet_facing_agrees_with_internal_false() -> None:
    stack = build(annotations={ann.SCHEME: "internet-facing", ann.INTERNAL: "false"})

    assert stack.load_balancer.scheme == "internet-facing"


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        ({ann.SCHEME: "internet-facing", ann.INTERNAL: "true"}, "contradicts"),
        ({ann.SCHEME: "internal", ann.INTERNAL: "false"}, "contradicts"),
        ({ann.SCHEME: "private"}, "unknown scheme"),
    ],
    ids=["facing-vs-internal", "internal-vs-false", "unknown"],
)
def test_a_scheme_that_is_unknown_or_contradicts_internal_is_an_invalid_spec(
    annotations: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidSpec, match=reason) as caught:
        build(annotations=annotations)
    assert caught.value.field == ann.SCHEME


def test_load_balancer_attributes_are_sent_as_written() -> None:
    stack = build(
        annotations={
            ann.ATTRIBUTES: "deletion_protection.enabled=true,load_balancing.cross_zone.enabled=True,"
            "dns_record.client_routing_policy=availability_zone_affinity"
        }
    )

    assert dict(stack.load_balancer.attributes) == {
        "deletion_protection.enabled": "true",
        "load_balancing.cross_zone.enabled": "true",
        "dns_record.client_routing_policy": "availability_zone_affinity",
    }


def test_load_balancer_attributes_and_upstream_annotations_that_agree_are_merged() -> None:
    stack = build(
        annotations={
            ann.ATTRIBUTES: "access_logs.s3.enabled=true",
            ann.ACCESS_LOG_BUCKET: "my-logs",
            ann.CROSS_ZONE: "true",
            ann.ACCESS_LOG_ENABLED: "true",
        }
    )

    assert dict(stack.load_balancer.attributes) == {
        "access_logs.s3.enabled": "true",
        "access_logs.s3.bucket": "my-logs",
        "load_balancing.cross_zone.enabled": "true",
    }


@pytest.mark.parametrize(
    ("annotations", "field", "reason"),
    [
        ({ann.ATTRIBUTES: "idle_timeout.timeout_seconds=60"}, ann.ATTRIBUTES, "unknown NLB attribute"),
        ({ann.ATTRIBUTES: "deletion_protection.enabled=yes"}, ann.ATTRIBUTES, "true or false"),
        (
            {ann.ATTRIBUTES: "load_balancing.cross_zone.enabled=true", ann.CROSS_ZONE: "false"},
            ann.CROSS_ZONE,
            "contradicts load_balancing.cross_zone.enabled=true",
        ),
        ({ann.ATTRIBUTES: "access_logs.s3.enabled=true"}, ann.ATTRIBUTES, "need a bucket"),
        ({ann.ATTRIBUTES: "access_logs.s3.bucket=Not_A_Bucket"}, ann.ATTRIBUTES, "S3 bucket name"),
    ],
    ids=["alb-only-key", "bad-bool", "contradiction", "no-bucket", "bad-bucket"],
)
def test_a_load_balancer_attribute_aws_would_refuse_is_an_invalid_spec_naming_the_annotation(
    annotations: dict[str, str], field: str, reason: str
) -> None:
    with pytest.raises(InvalidSpec, match=reason) as caught:
        build(annotations=annotations)
    assert caught.value.field == field


def test_the_idle_timeout_goes_to_tcp_listeners_and_not_to_tls_ones() -> None:
    stack = build(
        annotations={
            ann.CONNECTION_IDLE_TIMEOUT: "900",
            ann.SSL_CERT: "arn:aws:acm:us-east-1:123456789012:certificate/abc",
            ann.SSL_PORTS: "443",
        }
    )

    by_port = {listener.port: dict(listener.attributes) for listener in stack.listeners}
    assert by_port == {80: {"tcp.idle_timeout.seconds": "900"}, 443: {}}


def test_a_service_without_the_idle_timeout_sets_no_listener_attribute() -> None:
    assert all(listener.attributes == () for listener in build().listeners)


@pytest.mark.parametrize(
    ("ports", "value", "reason"),
    [
        (BASIC_PORTS, "59", "out of range"),
        (BASIC_PORTS, "6001", "out of range"),
        ((udp(53, 30053, "dns"),), "900", "no TCP listener"),
    ],
    ids=["too-short", "too-long", "udp-only"],
)
def test_an_idle_timeout_aws_cannot_apply_is_an_invalid_spec(
    ports: tuple[ServicePort, ...], value: str, reason: str
) -> None:
    with pytest.raises(InvalidSpec, match=reason) as caught:
        build(ports=ports, annotations={ann.CONNECTION_IDLE_TIMEOUT: value})
    assert caught.value.field == ann.CONNECTION_IDLE_TIMEOUT


@pytest.mark.parametrize("codes", ["200", "200-299", "200,202,204", "599"])
def test_success_codes_become_the_http_matcher(codes: str) -> None:
    stack = build(annotations={ann.HEALTHCHECK_PROTOCOL: "HTTP", ann.HEALTHCHECK_SUCCESS_CODES: codes})

    assert {tg.health_check.success_codes for tg in stack.target_groups} == {codes}


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        ({ann.HEALTHCHECK_SUCCESS_CODES: "200"}, "protocol is TCP"),
        ({ann.HEALTHCHECK_PROTOCOL: "HTTP", ann.HEALTHCHECK_SUCCESS_CODES: "600"}, "from 200 to 599"),
        ({ann.HEALTHCHECK_PROTOCOL: "HTTP", ann.HEALTHCHECK_SUCCESS_CODES: "399-200"}, "from 200 to 599"),
        ({ann.HEALTHCHECK_PROTOCOL: "HTTP", ann.HEALTHCHECK_SUCCESS_CODES: "2xx"}, "from 200 to 599"),
    ],
    ids=["tcp-check", "too-high", "reversed-range", "wildcard"],
)
def test_success_codes_aws_would_refuse_are_an_invalid_spec(annotations: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidSpec, match=reason) as caught:
        build(annotations=annotations)
    assert caught.value.field == ann.HEALTHCHECK_SUCCESS_CODES


def test_a_health_check_path_with_non_ascii_characters_is_an_invalid_spec() -> None:
    with pytest.raises(InvalidSpec, match="printable ASCII") as caught:
        build(annotations={ann.HEALTHCHECK_PROTOCOL: "HTTP", ann.HEALTHCHECK_PATH: "/santé"})
    assert caught.value.field == ann.HEALTHCHECK_PATH


def test_a_dual_stack_service_with_a_udp_port_is_an_invalid_spec() -> None:
    req = request(ports=(tcp(80, 30080, "http"), udp(53, 30053, "dns")), ip_families=("IPv4", "IPv6"))
    with pytest.raises(InvalidSpec, match="source-NAT") as caught:
        builder.build_stack(request=req, config=AWSConfig(), cluster=DUAL_STACK)
    assert caught.value.field == "spec.ipFamilies"


def test_a_dual_stack_service_on_subnets_without_ipv6_is_an_invalid_spec() -> None:
    with pytest.raises(InvalidSpec, match="IPv6 CIDR") as caught:
        build(ip_families=("IPv4", "IPv6"))
    assert caught.value.field == "spec.ipFamilies"
    assert "subnet-0a0public" in str(caught.value)

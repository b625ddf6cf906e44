"""providers.aws.classic.build: a Service and the account's network facts → the desired Classic ELB,
without AWS, as the upstream provider builds it.

Golden files pin whole stacks (``UPDATE_GOLDEN=1`` rewrites them after an intended change; review the
diff); the other tests pin one rule each, grouped by area: which Services are Classic ELBs, listeners,
health checks, attributes, security groups, names and tags, and one InvalidSpec per kind of refusal.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from ccm.cloudprovider import SOURCE_RANGES_ANNOTATION, ImplementedElsewhere, InvalidSpec, ServicePort
from providers.aws import annotations as ann
from providers.aws import builder
from providers.aws.classic.build import build_classic_stack, wants_classic
from providers.aws.classic.model import (
    RESOURCE_CLASSIC_LOAD_BALANCER,
    ClassicAttributes,
    ClassicHealthCheck,
    ClassicListener,
    ClassicStack,
)
from providers.aws.config import AWSConfig
from providers.aws.model import RESOURCE_LOAD_BALANCER, RESOURCE_TAG, SCOPE_TAG, Rule
from tests.support.aws_requests import CERT, NETWORK, UID, make_request, tcp
from tests.support.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden"
CLASSIC = {ann.TYPE: "classic"}
SHARED = AWSConfig(health_probe_mode="Shared")


def build(
    *,
    annotations: dict[str, str] | None = None,
    config: AWSConfig | None = None,
    adopted: bool = False,
    **fields: Any,
) -> ClassicStack:
    return build_classic_stack(
        request=make_request(annotations={**CLASSIC, **(annotations or {})}, **fields),
        config=config or AWSConfig(),
        cluster=NETWORK,
        adopted=adopted,
    )


# -- golden stacks ----------------------------------------------------------------------------------


def test_a_plain_two_port_service_matches_its_golden_stack() -> None:
    assert_golden(GOLDEN / "classic_basic.json", build().to_json())


def test_ssl_on_ports_named_by_name_and_number_matches_its_golden_stack() -> None:
    stack = build(
        annotations={
            ann.SSL_CERT: CERT,
            ann.SSL_PORTS: "https,8443",
            ann.BACKEND_PROTOCOL: "http",
            ann.SSL_NEGOTIATION_POLICY: "ELBSecurityPolicy-TLS-1-2-2017-01",
        },
        ports=(tcp(80, 30080, "http"), tcp(443, 30443, "https"), tcp(8443, 30843, "admin")),
    )

    assert_golden(GOLDEN / "classic_ssl.json", stack.to_json())


def test_a_local_service_matches_its_golden_stack() -> None:
    stack = build(external_traffic_policy="Local", health_check_node_port=31999)

    assert_golden(GOLDEN / "classic_etp_local.json", stack.to_json())


def test_the_shared_probe_mode_matches_its_golden_stack() -> None:
    assert_golden(GOLDEN / "classic_shared_probe.json", build(config=SHARED).to_json())


def test_every_attribute_and_proxy_protocol_match_their_golden_stack() -> None:
    stack = build(
        annotations={
            ann.CONNECTION_DRAINING_ENABLED: "true",
            ann.CONNECTION_DRAINING_TIMEOUT: "45",
            ann.CONNECTION_IDLE_TIMEOUT: "3600",
            ann.CROSS_ZONE: "true",
            ann.ACCESS_LOG_ENABLED: "true",
            ann.ACCESS_LOG_BUCKET: "shop-logs",
            ann.ACCESS_LOG_PREFIX: "elb/frontend",
            ann.ACCESS_LOG_EMIT_INTERVAL: "5",
            ann.PROXY_PROTOCOL: "*",
            ann.ADDITIONAL_RESOURCE_TAGS: "team=shop,cost-centre=42",
        }
    )

    assert_golden(GOLDEN / "classic_attributes.json", stack.to_json())


def test_an_internal_service_with_own_and_extra_groups_matches_its_golden_stack() -> None:
    stack = build(
        annotations={
            ann.INTERNAL: "true",
            ann.SECURITY_GROUPS: "sg-0aaa,sg-0bbb",
            ann.EXTRA_SECURITY_GROUPS: "sg-0ccc,sg-0aaa",
        }
    )

    assert_golden(GOLDEN / "classic_internal_byo.json", stack.to_json())


def test_an_adopted_classic_elb_matches_its_golden_stack() -> None:
    assert_golden(GOLDEN / "classic_adopted.json", build(adopted=True).to_json())


# -- which Services get a Classic ELB ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "default", "expected"),
    [
        ({ann.TYPE: "classic"}, "nlb", True),
        ({ann.TYPE: "clb"}, "nlb", True),
        ({ann.TYPE: "ELB"}, "nlb", True),
        ({ann.TYPE: " Classic "}, "nlb", True),
        ({}, "classic", True),
        ({ann.TYPE: ""}, "classic", True),
        ({}, "nlb", False),
        ({ann.TYPE: "nlb"}, "classic", False),
        ({ann.TYPE: "external"}, "classic", False),
        ({ann.TYPE: "nlb-ip"}, "classic", False),
    ],
)
def test_wants_classic_follows_the_type_annotation_then_the_cloud_configs_default(
    annotations: dict[str, str], default: str, expected: bool
) -> None:
    config = AWSConfig(default_load_balancer_type=default)

    assert wants_classic(annotations=annotations, config=config) is expected


def test_the_cloud_configs_default_builds_a_classic_elb_without_the_annotation() -> None:
    stack = build_classic_stack(
        request=make_request(), config=AWSConfig(default_load_balancer_type="classic"), cluster=NETWORK
    )

    assert stack.listeners[0] == ClassicListener("TCP", 80, "TCP", 30080)


def test_services_of_the_aws_load_balancer_controller_are_implemented_elsewhere() -> None:
    with pytest.raises(ImplementedElsewhere):
        build(annotations={ann.TYPE: "external"})


def test_the_classic_builder_refuses_a_service_that_asks_for_an_nlb() -> None:
    with pytest.raises(InvalidSpec) as caught:
        build_classic_stack(
            request=make_request(annotations={ann.TYPE: "nlb"}), config=AWSConfig(), cluster=NETWORK
        )

    assert caught.value.field == ann.TYPE
    assert "classic, clb or elb" in caught.value.accepted


def test_the_nlb_builder_refuses_a_classic_service_naming_it() -> None:
    with pytest.raises(InvalidSpec) as caught:
        builder.build_stack(request=make_request(annotations=CLASSIC), config=AWSConfig(), cluster=NETWORK)

    assert caught.value.field == ann.TYPE
    assert "Classic ELB" in caught.value.reason


# -- listeners --------------------------------------------------------------------------------------


def test_each_port_is_a_tcp_listener_on_its_node_port_in_spec_order() -> None:
    stack = build(ports=(tcp(8080, 31080), tcp(80, 30080)))

    assert stack.listeners == (
        ClassicListener("TCP", 8080, "TCP", 31080),
        ClassicListener("TCP", 80, "TCP", 30080),
    )


@pytest.mark.parametrize(
    ("backend", "ssl_port", "plain_port"),
    [
        (None, ("SSL", "TCP"), ("TCP", "TCP")),
        ("tcp", ("SSL", "TCP"), ("TCP", "TCP")),
        ("ssl", ("SSL", "SSL"), ("TCP", "TCP")),
        ("http", ("HTTPS", "HTTP"), ("HTTP", "HTTP")),
        ("https", ("HTTPS", "HTTPS"), ("TCP", "TCP")),
        ("HTTP", ("HTTPS", "HTTP"), ("HTTP", "HTTP")),
    ],
)
def test_the_backend_protocol_maps_listeners_as_upstreams_build_listener(
    backend: str | None, ssl_port: tuple[str, str], plain_port: tuple[str, str]
) -> None:
    annotations = {ann.SSL_CERT: CERT, ann.SSL_PORTS: "443"}
    if backend is not None:
        annotations[ann.BACKEND_PROTOCOL] = backend

    plain, tls = build(annotations=annotations).listeners

    assert (tls.protocol, tls.instance_protocol, tls.ssl_certificate_id) == (*ssl_port, CERT)
    assert (plain.protocol, plain.instance_protocol, plain.ssl_certificate_id) == (*plain_port, "")


def test_http_backend_without_a_certificate_gives_http_listeners() -> None:
    stack = build(annotations={ann.BACKEND_PROTOCOL: "http"})

    assert {(lst.protocol, lst.instance_protocol) for lst in stack.listeners} == {("HTTP", "HTTP")}


@pytest.mark.parametrize("ssl_ports", [None, "*", "http,443", "80,https", "443, *"])
def test_ssl_ports_default_to_every_port_and_take_names_and_numbers(ssl_ports: str | None) -> None:
    annotations = {ann.SSL_CERT: CERT}
    if ssl_ports is not None:
        annotations[ann.SSL_PORTS] = ssl_ports

    stack = build(annotations=annotations)

    assert [lst.protocol for lst in stack.listeners] == ["SSL", "SSL"]


def test_the_ssl_negotiation_policy_is_kept_with_a_certificate_only() -> None:
    policy = "ELBSecurityPolicy-2016-08"

    assert (
        build(annotations={ann.SSL_CERT: CERT, ann.SSL_NEGOTIATION_POLICY: policy}).ssl_negotiation_policy
        == policy
    )
    assert build(annotations={ann.SSL_NEGOTIATION_POLICY: policy}).ssl_negotiation_policy == ""


def test_one_hundred_ports_fit_a_classic_elb() -> None:
    ports = tuple(tcp(1000 + i, 30000 + i) for i in range(100))

    assert len(build(ports=ports).listeners) == 100


# -- health checks ----------------------------------------------------------------------------------


def test_a_cluster_service_is_checked_over_tcp_on_the_first_ports_node_port_with_upstreams_defaults() -> None:
    assert build(ports=(tcp(443, 30443), tcp(80, 30080))).health_check == ClassicHealthCheck(
        target="TCP:30443", interval=10, timeout=5, healthy_threshold=2, unhealthy_threshold=6
    )


@pytest.mark.parametrize(
    ("backend", "target"), [("https", "SSL:30080"), ("ssl", "SSL:30080"), ("http", "TCP:30080")]
)
def test_an_ssl_or_https_backend_makes_the_check_ssl(backend: str, target: str) -> None:
    assert build(annotations={ann.BACKEND_PROTOCOL: backend}).health_check.target == target


def test_a_local_service_is_checked_over_http_on_its_health_check_node_port() -> None:
    check = build(external_traffic_policy="Local", health_check_node_port=31999).health_check

    assert check.target == "HTTP:31999/healthz"


def test_traffic_port_on_a_local_service_means_the_first_ports_node_port() -> None:
    check = build(
        annotations={ann.HEALTHCHECK_PORT: "traffic-port"},
        external_traffic_policy="Local",
        health_check_node_port=31999,
    ).health_check

    assert check.target == "HTTP:30080/healthz"


def test_the_shared_probe_mode_checks_kube_proxy_unless_the_service_is_local() -> None:
    config = AWSConfig(health_probe_mode="Shared", shared_probe_port=10257, shared_probe_path="/livez")

    assert build(config=config).health_check.target == "HTTP:10257/livez"
    assert build(
        config=config, external_traffic_policy="Local", health_check_node_port=31999
    ).health_check.target == ("HTTP:31999/healthz")


def test_the_health_check_annotations_override_each_field() -> None:
    check = build(
        annotations={
            ann.HEALTHCHECK_PROTOCOL: "https",
            ann.HEALTHCHECK_PORT: "8443",
            ann.HEALTHCHECK_PATH: "/ready",
            ann.HEALTHCHECK_INTERVAL: "30",
            ann.HEALTHCHECK_TIMEOUT: "29",
            ann.HEALTHCHECK_HEALTHY_THRESHOLD: "3",
            ann.HEALTHCHECK_UNHEALTHY_THRESHOLD: "10",
        }
    ).health_check

    assert check == ClassicHealthCheck(
        target="HTTPS:8443/ready", interval=30, timeout=29, healthy_threshold=3, unhealthy_threshold=10
    )


def test_an_http_protocol_annotation_checks_the_root_path_by_default() -> None:
    assert build(annotations={ann.HEALTHCHECK_PROTOCOL: "HTTP"}).health_check.target == "HTTP:30080/"


def test_a_tcp_protocol_on_a_local_service_drops_the_path() -> None:
    check = build(
        annotations={ann.HEALTHCHECK_PROTOCOL: "TCP"},
        external_traffic_policy="Local",
        health_check_node_port=31999,
    ).health_check

    assert check.target == "TCP:31999"


def test_traffic_port_in_the_shared_probe_mode_is_the_first_ports_node_port() -> None:
    assert build(
        annotations={ann.HEALTHCHECK_PORT: "traffic-port", ann.HEALTHCHECK_PROTOCOL: "TCP"}, config=SHARED
    ).health_check.target == ("TCP:30080")


def test_the_default_timeout_is_cut_below_a_short_interval() -> None:
    assert build(annotations={ann.HEALTHCHECK_INTERVAL: "5"}).health_check.timeout == 4


# -- attributes and proxy protocol ------------------------------------------------------------------


def test_without_annotations_the_attributes_are_the_model_defaults_and_proxy_protocol_is_off() -> None:
    stack = build()

    assert stack.attributes == ClassicAttributes()
    assert stack.proxy_protocol is False


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        (ann.CROSS_ZONE, "true", "cross_zone", True),
        (ann.CONNECTION_DRAINING_ENABLED, "1", "connection_draining", True),
        (ann.CONNECTION_DRAINING_TIMEOUT, "3600", "connection_draining_timeout", 3600),
        (ann.CONNECTION_IDLE_TIMEOUT, "1", "idle_timeout", 1),
        (ann.CONNECTION_IDLE_TIMEOUT, "4000", "idle_timeout", 4000),
        (ann.ACCESS_LOG_EMIT_INTERVAL, "60", "access_log_interval", 60),
        (ann.ACCESS_LOG_BUCKET, "shop-logs", "access_log_bucket", "shop-logs"),
        (ann.ACCESS_LOG_PREFIX, "a/b", "access_log_prefix", "a/b"),
        (ann.ACCESS_LOG_ENABLED, "false", "access_log_enabled", False),
    ],
)
def test_each_attribute_annotation_sets_its_attribute(
    key: str, value: str, field: str, expected: object
) -> None:
    assert getattr(build(annotations={key: value}).attributes, field) == expected


def test_proxy_protocol_star_turns_the_policy_on() -> None:
    assert build(annotations={ann.PROXY_PROTOCOL: "*"}).proxy_protocol is True


# -- security groups --------------------------------------------------------------------------------


def test_the_frontend_group_opens_each_listener_port_and_path_mtu_from_the_source_ranges() -> None:
    group = build(load_balancer_source_ranges=("203.0.113.0/24",)).frontend_security_group

    assert group is not None
    assert group.rules == (
        Rule("tcp", 80, 80, "203.0.113.0/24", "listener 80/TCP"),
        Rule("tcp", 443, 443, "203.0.113.0/24", "listener 443/TCP"),
        Rule("icmp", 3, 4, "203.0.113.0/24", "path MTU discovery"),
    )


def test_the_source_ranges_annotation_applies_and_a_dual_stack_service_is_opened_to_ipv4_only() -> None:
    annotated = build(annotations={SOURCE_RANGES_ANNOTATION: "10.0.0.0/8"}).frontend_security_group
    dual = build(ip_families=("IPv4", "IPv6")).frontend_security_group

    assert annotated is not None and {r.cidr for r in annotated.rules} == {"10.0.0.0/8"}
    assert dual is not None and {r.cidr for r in dual.rules} == {"0.0.0.0/0"}


def test_own_groups_replace_the_frontend_group_and_extra_groups_are_added() -> None:
    stack = build(
        annotations={ann.SECURITY_GROUPS: "sg-0aaa", ann.EXTRA_SECURITY_GROUPS: "sg-0ccc, sg-0ddd,sg-0ccc"}
    )

    assert stack.frontend_security_group is None
    assert stack.byo_security_groups == ("sg-0aaa",)
    assert stack.extra_security_groups == ("sg-0ccc", "sg-0ddd")


def test_extra_groups_come_with_the_managed_frontend_group() -> None:
    stack = build(annotations={ann.EXTRA_SECURITY_GROUPS: "sg-0ccc"})

    assert stack.frontend_security_group is not None
    assert stack.extra_security_groups == ("sg-0ccc",)


def test_an_adopted_elbs_group_keeps_upstreams_name_and_description() -> None:
    group = build(adopted=True).frontend_security_group

    assert group is not None
    assert group.name == "k8s-elb-a6c8a4e1a3f5b4c2d9e7f0123456789a"
    assert (
        group.description
        == "Security group for Kubernetes ELB a6c8a4e1a3f5b4c2d9e7f0123456789a (shop/frontend)"
    )


# -- names, scheme, subnets, tags, targets ----------------------------------------------------------


def test_the_name_is_the_nlbs_and_upstreams_when_adopted() -> None:
    nlb = builder.build_stack(request=make_request(), config=AWSConfig(), cluster=NETWORK)

    assert build().name == nlb.load_balancer.name
    assert build(adopted=True).name == "a" + UID.replace("-", "")[:31]
    assert build(adopted=True).adopted is True


def test_an_internal_service_gets_the_internal_scheme_and_private_subnets() -> None:
    stack = build(annotations={ann.INTERNAL: "true"})

    assert stack.scheme == "internal"
    assert stack.subnets == ("subnet-1a0private", "subnet-1b0private")
    assert build().scheme == "internet-facing"
    assert build().subnets == ("subnet-0a0public", "subnet-0b0public")


def test_the_tags_are_the_nlbs_load_balancer_tags_with_the_classic_role() -> None:
    annotations = {ann.ADDITIONAL_RESOURCE_TAGS: "team=shop"}
    nlb = builder.build_stack(
        request=make_request(annotations=annotations), config=AWSConfig(), cluster=NETWORK
    )

    classic = dict(build(annotations=annotations).tags)
    expected = dict(nlb.load_balancer.tags)

    assert classic.pop(RESOURCE_TAG) == RESOURCE_CLASSIC_LOAD_BALANCER
    assert expected.pop(RESOURCE_TAG) == RESOURCE_LOAD_BALANCER
    assert classic == expected


def test_targets_are_the_selected_nodes_instances() -> None:
    assert build().targets == ("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb")
    assert build(annotations={ann.TARGET_NODE_LABELS: "pool=batch"}).targets == ()


def test_the_stack_is_deterministic_and_its_hash_ignores_targets() -> None:
    assert build() == build()
    assert build().spec_hash() == build(nodes=()).spec_hash()


# -- refusals ---------------------------------------------------------------------------------------

UDP = ServicePort(name="dns", protocol="UDP", port=53, node_port=30053)

# (id, build() arguments, field, bad value, text of what is accepted or why)
REFUSED: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("UDP port", {"ports": (tcp(80, 30080), UDP)}, "spec.ports[1].protocol", "UDP", "TCP"),
    ("no ports", {"ports": ()}, "spec.ports", "[]", "1 to 100 TCP ports"),
    (
        "101 ports",
        {"ports": tuple(tcp(1000 + i, 30000 + i) for i in range(101))},
        "spec.ports",
        "101 ports",
        "at most 100",
    ),
    ("no NodePort", {"ports": (tcp(80, 0),)}, "spec.ports[0].nodePort", "0", "an allocated NodePort"),
    (
        "NodePorts not allocated",
        {"ports": (tcp(80, 0),), "allocate_load_balancer_node_ports": False},
        "spec.allocateLoadBalancerNodePorts",
        "False",
        "true",
    ),
    ("loadBalancerIP", {"load_balancer_ip": "203.0.113.10"}, "spec.loadBalancerIP", "203.0.113.10", "empty"),
    ("ClientIP affinity", {"session_affinity": "ClientIP"}, "spec.sessionAffinity", "ClientIP", "None"),
    ("IPv6 first", {"ip_families": ("IPv6",)}, "spec.ipFamilies", "IPv6", "IPv4 first"),
    (
        "Local without a health-check NodePort",
        {"external_traffic_policy": "Local", "health_check_node_port": 0},
        "spec.healthCheckNodePort",
        "0",
        "from 1 to 65535",
    ),
    (
        "certificate that is no ARN",
        {"annotations": {ann.SSL_CERT: "my-cert"}},
        ann.SSL_CERT,
        "my-cert",
        "arn:aws:acm",
    ),
    (
        "unknown ssl port name",
        {"annotations": {ann.SSL_CERT: CERT, ann.SSL_PORTS: "https,admin"}},
        ann.SSL_PORTS,
        "admin",
        "80 (http), 443 (https)",
    ),
    (
        "unknown ssl port number",
        {"annotations": {ann.SSL_CERT: CERT, ann.SSL_PORTS: "8443"}},
        ann.SSL_PORTS,
        "8443",
        "80 (http), 443 (https)",
    ),
    (
        "bad ssl policy",
        {"annotations": {ann.SSL_CERT: CERT, ann.SSL_NEGOTIATION_POLICY: "my policy!"}},
        ann.SSL_NEGOTIATION_POLICY,
        "my policy!",
        "ELBSecurityPolicy",
    ),
    (
        "unknown backend protocol",
        {"annotations": {ann.BACKEND_PROTOCOL: "grpc"}},
        ann.BACKEND_PROTOCOL,
        "grpc",
        "tcp, ssl, http, https",
    ),
    (
        "proxy protocol on some ports",
        {"annotations": {ann.PROXY_PROTOCOL: "80"}},
        ann.PROXY_PROTOCOL,
        "80",
        "*",
    ),
    (
        "health-check protocol UDP",
        {"annotations": {ann.HEALTHCHECK_PROTOCOL: "UDP"}},
        ann.HEALTHCHECK_PROTOCOL,
        "UDP",
        "TCP, SSL, HTTP, HTTPS",
    ),
    (
        "health-check port 0",
        {"annotations": {ann.HEALTHCHECK_PORT: "0"}},
        ann.HEALTHCHECK_PORT,
        "0",
        "traffic-port",
    ),
    (
        "health-check path on TCP",
        {"annotations": {ann.HEALTHCHECK_PATH: "/ready"}},
        ann.HEALTHCHECK_PATH,
        "/ready",
        "HTTP or HTTPS",
    ),
    (
        "health-check path without a slash",
        {"annotations": {ann.HEALTHCHECK_PROTOCOL: "HTTP", ann.HEALTHCHECK_PATH: "ready"}},
        ann.HEALTHCHECK_PATH,
        "ready",
        "starting with /",
    ),
    (
        "interval 301",
        {"annotations": {ann.HEALTHCHECK_INTERVAL: "301"}},
        ann.HEALTHCHECK_INTERVAL,
        "301",
        "from 5 to 300",
    ),
    (
        "interval 4",
        {"annotations": {ann.HEALTHCHECK_INTERVAL: "4"}},
        ann.HEALTHCHECK_INTERVAL,
        "4",
        "from 5 to 300",
    ),
    (
        "timeout 61",
        {"annotations": {ann.HEALTHCHECK_TIMEOUT: "61"}},
        ann.HEALTHCHECK_TIMEOUT,
        "61",
        "from 2 to 60",
    ),
    (
        "timeout 1",
        {"annotations": {ann.HEALTHCHECK_TIMEOUT: "1"}},
        ann.HEALTHCHECK_TIMEOUT,
        "1",
        "from 2 to 60",
    ),
    (
        "timeout equal to the interval",
        {"annotations": {ann.HEALTHCHECK_TIMEOUT: "10"}},
        ann.HEALTHCHECK_TIMEOUT,
        "10",
        "less than the interval (10)",
    ),
    (
        "healthy threshold 11",
        {"annotations": {ann.HEALTHCHECK_HEALTHY_THRESHOLD: "11"}},
        ann.HEALTHCHECK_HEALTHY_THRESHOLD,
        "11",
        "from 2 to 10",
    ),
    (
        "unhealthy threshold 1",
        {"annotations": {ann.HEALTHCHECK_UNHEALTHY_THRESHOLD: "1"}},
        ann.HEALTHCHECK_UNHEALTHY_THRESHOLD,
        "1",
        "from 2 to 10",
    ),
    (
        "draining that is no boolean",
        {"annotations": {ann.CONNECTION_DRAINING_ENABLED: "yes"}},
        ann.CONNECTION_DRAINING_ENABLED,
        "yes",
        "true or false",
    ),
    (
        "draining timeout 0",
        {"annotations": {ann.CONNECTION_DRAINING_TIMEOUT: "0"}},
        ann.CONNECTION_DRAINING_TIMEOUT,
        "0",
        "from 1 to 3600",
    ),
    (
        "idle timeout 4001",
        {"annotations": {ann.CONNECTION_IDLE_TIMEOUT: "4001"}},
        ann.CONNECTION_IDLE_TIMEOUT,
        "4001",
        "from 1 to 4000",
    ),
    (
        "idle timeout 0",
        {"annotations": {ann.CONNECTION_IDLE_TIMEOUT: "0"}},
        ann.CONNECTION_IDLE_TIMEOUT,
        "0",
        "from 1 to 4000",
    ),
    (
        "cross-zone that is no boolean",
        {"annotations": {ann.CROSS_ZONE: "on"}},
        ann.CROSS_ZONE,
        "on",
        "true or false",
    ),
    (
        "access log without a bucket",
        {"annotations": {ann.ACCESS_LOG_ENABLED: "true"}},
        ann.ACCESS_LOG_ENABLED,
        "true",
        "together with a bucket",
    ),
    (
        "bad bucket name",
        {"annotations": {ann.ACCESS_LOG_BUCKET: "My_Logs"}},
        ann.ACCESS_LOG_BUCKET,
        "My_Logs",
        "lower-case letters",
    ),
    (
        "emit interval 15",
        {"annotations": {ann.ACCESS_LOG_EMIT_INTERVAL: "15"}},
        ann.ACCESS_LOG_EMIT_INTERVAL,
        "15",
        "5 or 60",
    ),
    (
        "own group that is no ID",
        {"annotations": {ann.SECURITY_GROUPS: "web"}},
        ann.SECURITY_GROUPS,
        "web",
        "sg-",
    ),
    (
        "extra group that is no ID",
        {"annotations": {ann.EXTRA_SECURITY_GROUPS: "sg-0aaa,web"}},
        ann.EXTRA_SECURITY_GROUPS,
        "web",
        "sg-",
    ),
    (
        "bad additional tags",
        {"annotations": {ann.ADDITIONAL_RESOURCE_TAGS: "aws:x=1"}},
        ann.ADDITIONAL_RESOURCE_TAGS,
        "aws:x",
        "k=v",
    ),
    (
        "unknown subnet",
        {"annotations": {ann.SUBNETS: "subnet-0nope"}},
        ann.SUBNETS,
        "subnet-0nope",
        "subnet IDs",
    ),
    (
        "contradicting scheme",
        {"annotations": {ann.INTERNAL: "true", ann.SCHEME: "internet-facing"}},
        ann.SCHEME,
        "internet-facing",
        "agrees",
    ),
]


def test_nlb_only_annotations_on_a_classic_elb_change_nothing_and_are_left_to_the_warning() -> None:
    """Upstream ignores them on a Classic ELB, so a Service it served keeps working; the provider names
    them in an UnsupportedAnnotation warning (ann.unsupported(classic=True))."""
    plain = build(annotations={})
    for key, value in (
        (ann.EIP_ALLOCATIONS, "eipalloc-0a,eipalloc-0b"),
        (ann.PRIVATE_IPV4_ADDRESSES, "10.0.64.10,10.0.80.10"),
        (ann.TARGET_GROUP_ATTRIBUTES, "preserve_client_ip.enabled=false"),
        (ann.ATTRIBUTES, "deletion_protection.enabled=true"),
        (ann.HEALTHCHECK_SUCCESS_CODES, "200"),
    ):
        assert build(annotations={key: value}).spec_hash() == plain.spec_hash(), key
        assert ann.unsupported(annotations={key: value}, classic=True) == (key,)


@pytest.mark.parametrize(
    ("fields", "field", "bad", "accepted"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_what_a_classic_elb_cannot_be_is_an_invalid_spec_naming_field_value_and_fix(
    fields: dict[str, Any], field: str, bad: str, accepted: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        build(**fields)

    error = caught.value
    assert error.field == field
    assert bad in str(error)
    assert accepted in error.accepted or accepted in error.reason


def test_a_classed_instance_tags_its_scope_on_the_elb_and_its_group() -> None:
    stack = build_classic_stack(
        request=make_request(annotations=CLASSIC),
        config=AWSConfig(),
        cluster=dataclasses.replace(NETWORK, scope="internal-lbs"),
    )

    assert (SCOPE_TAG, "internal-lbs") in stack.tags
    assert stack.frontend_security_group is not None
    assert (SCOPE_TAG, "internal-lbs") in stack.frontend_security_group.tags

"""Generated Services through both providers' pure builders (issue 17): properties, not examples.

For any Service the strategies below can make (ports, protocols, names at their length limits,
unicode, every registered annotation with valid and invalid values, source ranges, IP families):

* building either returns a model that respects the cloud's limits, or raises ``InvalidSpec`` naming
  a field (an annotation key the Service carries, or a ``spec.*`` field), or ``ImplementedElsewhere``;
  never another exception;
* building is deterministic;
* the spec hash changes exactly when the model changes.

The limits are the clouds' published ones: ELBv2 names ≤ 32 characters of letters, digits and
hyphens (CreateLoadBalancer/CreateTargetGroup ``Name``), ≤ 50 tags per resource, tag keys ≤ 128 and
values ≤ 256 characters (AWS tagging rules), health-check timeout ≤ interval; GCE names RFC 1035
≤ 63 characters, labels' values ≤ 63 characters of ``[a-z0-9_-]``.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from ccm.cloudprovider import ImplementedElsewhere, InvalidSpec, LoadBalancerRequest, Node, ServicePort
from providers.aws import builder as aws_builder
from providers.aws.config import AWSConfig
from providers.aws.model import ClusterInfo, Stack, Subnet
from providers.gcp import annotations as gcp_ann
from providers.gcp import builder as gcp_builder
from providers.gcp.model import ClusterNetwork
from tests.support.strategies import AWS_KEYS, ODD_VALUES, mostly

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ELB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
RFC1035 = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
GCE_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")

GCP_KEYS = tuple(a.key for a in gcp_ann.REGISTRY)

DNS_LABEL = st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


@st.composite
def ports(draw: st.DrawFn) -> tuple[ServicePort, ...]:
    count = draw(st.integers(min_value=0, max_value=6).filter(lambda n: n > 0 or draw(st.booleans())))
    out: list[ServicePort] = []
    for index in range(count):
        protocol = draw(mostly("TCP", "UDP", "UDP", "SCTP"))
        port = draw(st.one_of(st.sampled_from((53, 80, 443, 8080)), st.integers(1, 65535)))
        if any(p.port == port and p.protocol == protocol for p in out):
            continue  # the apiserver refuses a duplicate port and protocol
        out.append(
            ServicePort(
                name=draw(st.one_of(st.just(f"p{index}"), DNS_LABEL.map(lambda s: s[:15]))),
                protocol=protocol,
                port=port,
                node_port=draw(st.one_of(st.integers(30000, 32767), st.just(0))),
            )
        )
    return tuple(out)


def requests(keys: tuple[str, ...]) -> st.SearchStrategy[LoadBalancerRequest]:
    annotation_values = st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=40))
    return st.builds(
        LoadBalancerRequest,
        cluster_name=mostly("test", "c" * 100),
        namespace=st.one_of(DNS_LABEL, st.just("n" * 63)),
        name=st.one_of(DNS_LABEL, st.just("s" * 63)),
        uid=st.uuids().map(str),
        ports=ports(),
        nodes=st.just(
            (
                Node(
                    name="node-a", provider_id="aws:///us-east-1a/i-0aaaaaaaaaaaaaaaa", labels={"pool": "web"}
                ),
                Node(name="node-b", provider_id="gce://p/us-central1-b/node-b"),
            )
        ),
        annotations=st.dictionaries(st.sampled_from(keys), annotation_values, max_size=3).map(
            MappingProxyType
        ),
        load_balancer_source_ranges=mostly((), ("10.0.0.0/8", "2001:db8::/32"), ("bogus",), ("10.0.0.0/33",)),
        external_traffic_policy=st.sampled_from(("Cluster", "Local")),
        health_check_node_port=mostly(32100, 0),
        session_affinity=mostly("None", "ClientIP"),
        load_balancer_ip=mostly("", "203.0.113.7", "not-an-ip"),
        ip_families=mostly(("IPv4",), ("IPv6",), ("IPv4", "IPv6")),
    )


def _aws_subnet(subnet_id: str, az: str, cidr: str, *tags: tuple[str, str]) -> Subnet:
    return Subnet(
        subnet_id=subnet_id,
        vpc_id="vpc-1",
        availability_zone=az,
        cidr_block=cidr,
        tags=(("kubernetes.io/cluster/test", "owned"), *tags),
        ipv6_cidr_blocks=(f"2600:1f18:0:{cidr.split('.')[2]}::/64",),
    )


AWS_NETWORK = ClusterInfo(
    cluster_name="test",
    vpc_id="vpc-1",
    subnets=(
        _aws_subnet(
            "subnet-0a0public",
            "us-east-1a",
            "10.0.0.0/20",
            ("kubernetes.io/role/elb", "1"),
            ("Name", "public-a"),
        ),
        _aws_subnet("subnet-0b0public", "us-east-1b", "10.0.16.0/20", ("kubernetes.io/role/elb", "1")),
        _aws_subnet(
            "subnet-1a0private", "us-east-1a", "10.0.64.0/20", ("kubernetes.io/role/internal-elb", "1")
        ),
        _aws_subnet(
            "subnet-1b0private", "us-east-1b", "10.0.80.0/20", ("kubernetes.io/role/internal-elb", "1")
        ),
    ),
)
GCP_NETWORK = ClusterNetwork(
    project="my-project",
    region="us-central1",
    network="default",
    network_project="my-project",
    subnetwork="nodes",
    node_tags=("node",),
    cluster_id="prod",
)


KNOWN_KEYS = frozenset(AWS_KEYS) | frozenset(GCP_KEYS)


def _names_the_field(error: InvalidSpec, request: LoadBalancerRequest) -> bool:
    """The field is one the user can change: an annotation (the Service's, or the one that would fix
    it, such as the subnets annotation when none can be discovered) or a ``spec.*`` field."""
    field = error.field
    return field in request.annotations or field in KNOWN_KEYS or field.startswith(("spec.", "annotation "))


def _aws_build(request: LoadBalancerRequest) -> Stack | None:
    try:
        return aws_builder.build_stack(request=request, config=AWSConfig(), cluster=AWS_NETWORK)
    except ImplementedElsewhere:
        return None
    except InvalidSpec as error:
        assert _names_the_field(error, request), error.field
        assert str(error)
        return None


def _aws_within_limits(stack: Stack) -> None:
    assert ELB_NAME.fullmatch(stack.load_balancer.name), stack.load_balancer.name
    assert 1 <= len(stack.listeners) <= 50
    for tg in stack.target_groups:
        assert ELB_NAME.fullmatch(tg.name), tg.name
        check = tg.health_check
        assert 5 <= check.interval_seconds <= 300 and 2 <= check.timeout_seconds <= 120
        if check.protocol == "TCP":
            assert check.timeout_seconds <= check.interval_seconds and not check.success_codes
        else:
            assert check.timeout_seconds < check.interval_seconds
            assert check.path.startswith("/") and check.path.isascii() and len(check.path) <= 1024
    for tags in (
        stack.load_balancer.tags,
        *(tg.tags for tg in stack.target_groups),
        *(listener.tags for listener in stack.listeners),
    ):
        assert len(tags) + 1 <= 50  # + the spec-hash tag
        assert all(len(k) <= 128 and len(v) <= 256 for k, v in tags)
    for listener in stack.listeners:
        assert listener.protocol in ("TCP", "UDP", "TCP_UDP", "TLS")
        assert not listener.attributes or listener.protocol == "TCP"
    assert len({m.subnet_id for m in stack.load_balancer.subnet_mappings}) == len(
        stack.load_balancer.subnet_mappings
    )


def test_the_generated_services_are_not_all_refused() -> None:
    """The properties below are not vacuous: plenty of generated Services build on both clouds."""
    find(requests(AWS_KEYS), lambda r: _aws_build(r) is not None and len(r.annotations) >= 2)
    find(requests(GCP_KEYS), lambda r: _gcp_build(r) is not None and len(r.annotations) >= 2)


@SETTINGS
@given(request=requests(AWS_KEYS))
def test_aws_every_service_builds_within_aws_limits_or_is_an_invalid_spec_naming_the_field(
    request: LoadBalancerRequest,
) -> None:
    stack = _aws_build(request)
    if stack is not None:
        _aws_within_limits(stack)


@SETTINGS
@given(request=requests(AWS_KEYS))
def test_aws_building_is_deterministic(request: LoadBalancerRequest) -> None:
    first, second = _aws_build(request), _aws_build(request)
    assert first == second
    if first is not None and second is not None:
        assert first.spec_hash() == second.spec_hash()


@SETTINGS
@given(one=requests(AWS_KEYS), other=requests(AWS_KEYS))
def test_aws_the_spec_hash_changes_exactly_when_the_model_changes(
    one: LoadBalancerRequest, other: LoadBalancerRequest
) -> None:
    a, b = _aws_build(one), _aws_build(other)
    if a is None or b is None:
        return
    same_model = {**a.to_json(), "targets": None} == {**b.to_json(), "targets": None}
    assert same_model == (a.spec_hash() == b.spec_hash())


def _gcp_build(request: LoadBalancerRequest) -> Any:
    try:
        return gcp_builder.build_stack(request=request, network=GCP_NETWORK)
    except ImplementedElsewhere:
        return None
    except InvalidSpec as error:
        assert _names_the_field(error, request), error.field
        assert str(error)
        return None


@SETTINGS
@given(request=requests(GCP_KEYS))
def test_gcp_every_service_builds_within_gce_limits_or_is_an_invalid_spec_naming_the_field(
    request: LoadBalancerRequest,
) -> None:
    stack = _gcp_build(request)
    if stack is None:
        return
    names = [stack.name, stack.forwarding_rule.name, stack.backend_service.name, stack.health_check.name]
    names += [f.name for f in stack.firewalls]
    for name in names:
        assert RFC1035.fullmatch(name), name
    for value in getattr(stack.forwarding_rule, "labels", {}) and dict(stack.forwarding_rule.labels).values():
        assert GCE_LABEL_VALUE.fullmatch(value), value


@SETTINGS
@given(one=requests(GCP_KEYS), other=requests(GCP_KEYS))
def test_gcp_building_is_deterministic_and_the_hash_follows_the_model(
    one: LoadBalancerRequest, other: LoadBalancerRequest
) -> None:
    a, b = _gcp_build(one), _gcp_build(other)
    assert a == _gcp_build(one)
    if a is None or b is None:
        return
    same_model = {**a.to_json(), "instances": None} == {**b.to_json(), "instances": None}
    assert same_model == (a.spec_hash() == b.spec_hash())

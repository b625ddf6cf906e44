"""ccm.cloudprovider: the provider contract's helpers, errors and provider loading."""

from __future__ import annotations

import pytest

from ccm.cloudprovider import (
    SOURCE_RANGES_ANNOTATION,
    DriftChecker,
    InvalidSpec,
    LoadBalancer,
    Node,
    RetryAfter,
    UnknownProvider,
    load_provider,
    provider_names,
    scope_digest,
    source_ranges,
)
from providers.fake import FakeCloud
from tests.unit.builders import request

# -- source_ranges ----------------------------------------------------------------------------------


def test_the_source_ranges_field_beats_the_annotation() -> None:
    req = request(
        load_balancer_source_ranges=("192.0.2.0/24",),
        annotations={SOURCE_RANGES_ANNOTATION: "10.0.0.0/8"},
    )

    assert source_ranges(req) == ("192.0.2.0/24",)


def test_the_annotation_is_split_on_commas_and_trimmed() -> None:
    req = request(annotations={SOURCE_RANGES_ANNOTATION: " 10.0.0.0/8,192.0.2.0/24 , 2001:db8::/32"})

    assert source_ranges(req) == ("10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32")


def test_source_ranges_are_normalised_and_deduplicated() -> None:
    req = request(load_balancer_source_ranges=("10.1.2.3/8", "10.0.0.0/8", "2001:DB8::/32"))

    assert source_ranges(req) == ("10.0.0.0/8", "2001:db8::/32")


@pytest.mark.parametrize(
    ("families", "expected"),
    [
        (("IPv4",), ("0.0.0.0/0",)),
        (("IPv6",), ("::/0",)),
        (("IPv4", "IPv6"), ("0.0.0.0/0", "::/0")),
        (("IPv6", "IPv4"), ("::/0", "0.0.0.0/0")),
        ((), ("0.0.0.0/0",)),
    ],
    ids=["IPv4", "IPv6", "dual IPv4 first", "dual IPv6 first", "no families"],
)
def test_without_ranges_every_address_of_each_family_is_allowed(
    families: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert source_ranges(request(ip_families=families)) == expected


def test_a_blank_annotation_means_allow_all() -> None:
    assert source_ranges(request(annotations={SOURCE_RANGES_ANNOTATION: "  "})) == ("0.0.0.0/0",)


def test_an_invalid_cidr_in_the_field_raises_invalid_spec_naming_the_field_value_and_what_is_accepted() -> (
    None
):
    req = request(load_balancer_source_ranges=("10.0.0.0/8", "10.0.0.0/33"))

    with pytest.raises(InvalidSpec) as raised:
        source_ranges(req)

    err = raised.value
    assert err.field == "spec.loadBalancerSourceRanges"
    assert err.value == "10.0.0.0/33"
    assert "CIDR" in err.accepted
    message = str(err)
    assert "spec.loadBalancerSourceRanges" in message
    assert "'10.0.0.0/33'" in message
    assert "accepted: " in message
    assert "CIDR" in message.split("accepted: ", 1)[1]


def test_an_invalid_cidr_in_the_annotation_raises_invalid_spec_naming_the_annotation() -> None:
    req = request(annotations={SOURCE_RANGES_ANNOTATION: "10.0.0.0/8, office-network"})

    with pytest.raises(InvalidSpec) as raised:
        source_ranges(req)

    err = raised.value
    assert SOURCE_RANGES_ANNOTATION in err.field
    assert err.value == "office-network"
    assert SOURCE_RANGES_ANNOTATION in str(err)
    assert "'office-network'" in str(err)
    assert "accepted: " in str(err)


def test_a_trailing_comma_in_the_annotation_is_invalid_like_upstream() -> None:
    with pytest.raises(InvalidSpec):
        source_ranges(request(annotations={SOURCE_RANGES_ANNOTATION: "10.0.0.0/8,"}))


# -- errors -----------------------------------------------------------------------------------------


def test_invalid_spec_message_names_the_field_the_value_and_what_is_accepted() -> None:
    err = InvalidSpec(field="spec.ports[1].protocol", value="ICMP", accepted="TCP, UDP, SCTP")

    assert str(err) == "invalid spec.ports[1].protocol='ICMP'; accepted: TCP, UDP, SCTP"
    assert (err.field, err.value, err.accepted, err.reason) == (
        "spec.ports[1].protocol",
        "ICMP",
        "TCP, UDP, SCTP",
        "",
    )


def test_invalid_spec_message_includes_the_reason_when_given() -> None:
    err = InvalidSpec(field="annotation x", value="y", accepted="z", reason="not a CIDR")

    assert str(err) == "invalid annotation x='y': not a CIDR; accepted: z"


def test_retry_after_carries_its_delay() -> None:
    err = RetryAfter("provisioning", seconds=42)

    assert err.seconds == 42
    assert str(err) == "provisioning"


# -- requests ---------------------------------------------------------------------------------------


def test_a_request_is_keyed_namespace_slash_name() -> None:
    assert request("web", namespace="shop").key == "shop/web"


def test_with_nodes_returns_a_copy_with_only_the_nodes_changed() -> None:
    original = request()
    nodes = (Node(name="n1", provider_id="fake://n1"),)

    changed = original.with_nodes(list(nodes))

    assert changed.nodes == nodes
    assert original.nodes == ()
    assert changed.key == original.key
    assert changed.ports == original.ports


# -- providers --------------------------------------------------------------------------------------


def test_the_fake_provider_is_installed() -> None:
    assert "fake" in provider_names()


def test_load_provider_builds_the_named_provider_with_the_cluster_name() -> None:
    cloud = load_provider(name="fake", cluster_name="unit", cloud_config=None)

    assert isinstance(cloud, FakeCloud)
    assert cloud.cluster_name == "unit"
    assert isinstance(cloud, LoadBalancer)
    assert isinstance(cloud, DriftChecker)


def test_load_provider_gives_every_provider_its_scope_and_orphan_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cloud = load_provider(
        name="fake",
        cluster_name="unit",
        cloud_config=None,
        load_balancer_class="example.com/second",
        orphan_grace_seconds=2.0,
    )
    assert isinstance(cloud, FakeCloud)
    assert (cloud.load_balancer_class, cloud.orphan_grace_seconds) == ("example.com/second", 2.0)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws = load_provider(
        name="aws",
        cluster_name="unit",
        cloud_config=None,
        load_balancer_class="x/y",
        orphan_grace_seconds=3.0,
    )
    assert (getattr(aws, "load_balancer_class", None), getattr(aws, "orphan_grace_seconds", None)) == (
        "x/y",
        3.0,
    )


def test_scope_digests_fit_a_gce_label_value_and_tell_classes_apart() -> None:
    digests = {scope_digest(c) for c in ("example.com/second", "example.com/third", "x" * 300)}
    assert scope_digest("") == ""
    assert len(digests) == 3
    assert all(len(d) <= 63 and d.isalnum() and d == d.lower() for d in digests)


def test_an_unknown_provider_name_raises_unknown_provider_listing_the_installed_ones() -> None:
    with pytest.raises(UnknownProvider) as raised:
        load_provider(name="nimbus", cluster_name="unit", cloud_config=None)

    message = str(raised.value)
    assert "'nimbus'" in message
    assert "accepted:" in message
    for name in provider_names():
        assert name in message.split("accepted:", 1)[1]
    assert isinstance(raised.value, LookupError)

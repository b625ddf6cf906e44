"""providers.aws.annotations: the registry, the docs table rendered from it, the parsing helpers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ccm.cloudprovider import SOURCE_RANGES_ANNOTATION, InvalidSpec
from providers.aws import annotations as ann

UPSTREAM_CLB_ONLY = {
    "connection-draining-enabled",
    "connection-draining-timeout",
    "access-log-emit-interval",
}

# The AWS Load Balancer Controller's keys that users carry over most (issue 11): honoured too.
ALBC = {"scheme", "attributes", "healthcheck-success-codes"}

# Every annotation of reference/aws-provider.md §1 (the in-tree provider's list).
UPSTREAM = {
    "type",
    "internal",
    "proxy-protocol",
    "access-log-enabled",
    "access-log-emit-interval",
    "access-log-s3-bucket-name",
    "access-log-s3-bucket-prefix",
    "connection-draining-enabled",
    "connection-draining-timeout",
    "connection-idle-timeout",
    "cross-zone-load-balancing-enabled",
    "security-groups",
    "extra-security-groups",
    "ssl-cert",
    "ssl-ports",
    "ssl-negotiation-policy",
    "backend-protocol",
    "additional-resource-tags",
    "healthcheck-protocol",
    "healthcheck-port",
    "healthcheck-path",
    "healthcheck-healthy-threshold",
    "healthcheck-unhealthy-threshold",
    "healthcheck-timeout",
    "healthcheck-interval",
    "target-group-attributes",
    "eip-allocations",
    "private-ipv4-addresses",
    "target-node-labels",
    "subnets",
}


# -- the registry ---------------------------------------------------------------------------------------


def test_every_upstream_annotation_is_in_the_registry() -> None:
    assert {a.short_name for a in ann.REGISTRY if a.key.startswith(ann.PREFIX)} == UPSTREAM | ALBC


def test_keys_are_unique_and_use_the_upstream_prefixes() -> None:
    keys = [a.key for a in ann.REGISTRY]

    assert len(keys) == len(set(keys))
    assert all(k.startswith(ann.PREFIX) or k == SOURCE_RANGES_ANNOTATION for k in keys)
    assert SOURCE_RANGES_ANNOTATION in keys


def test_every_key_constant_of_the_module_is_registered() -> None:
    constants = {
        value
        for name, value in vars(ann).items()
        if name.isupper() and isinstance(value, str) and value.startswith("service.beta.kubernetes.io/")
    }
    constants.discard(ann.PREFIX)

    assert constants == set(ann.BY_KEY)


def test_every_entry_says_what_it_means_accepts_and_defaults_to() -> None:
    for entry in ann.REGISTRY:
        assert entry.description.strip(), entry.key
        assert entry.accepted.strip(), entry.key
        assert entry.default.strip(), entry.key


def test_the_classic_elb_only_annotations_are_honoured_and_say_so() -> None:
    assert {a.short_name for a in ann.REGISTRY if a.key in ann.CLASSIC_ONLY} == UPSTREAM_CLB_ONLY | {
        "extra-security-groups"
    }
    for key in ann.CLASSIC_ONLY:
        entry = ann.lookup(key=key)
        assert entry.support == ann.HONOURED
        assert "Classic ELB only" in entry.description
        assert "on an NLB" in entry.description


def test_the_nlb_only_annotations_say_so() -> None:
    assert {a.short_name for a in ann.REGISTRY if a.key in ann.NLB_ONLY} == {
        "eip-allocations",
        "private-ipv4-addresses",
        "target-group-attributes",
        "attributes",
        "healthcheck-success-codes",
    }
    assert all(ann.lookup(key=key).description.startswith("NLB only.") for key in ann.NLB_ONLY)


def test_no_annotation_is_ignored_or_rejected_now_that_classic_elbs_are_built() -> None:
    assert [a.key for a in ann.REGISTRY if a.support != ann.HONOURED] == []


def test_the_proxy_protocol_mapping_is_documented() -> None:
    assert "proxy_protocol_v2.enabled=true" in ann.lookup(key=ann.PROXY_PROTOCOL).description


def test_the_builders_read_only_registered_annotations() -> None:
    package = Path(ann.__file__).parent
    files = sorted([*(package / "build").glob("*.py"), *(package / "classic").glob("*.py")])
    source = "\n".join(f.read_text() for f in files)
    used = set(re.findall(r"\bann\.([A-Z][A-Z0-9_]+)\b", source))
    keys = {name for name in used if isinstance(getattr(ann, name), str)} - {"PREFIX"}

    assert {getattr(ann, name) for name in keys if getattr(ann, name).startswith("service.")} <= set(
        ann.BY_KEY
    )
    assert "service.beta.kubernetes.io" not in source  # no key spelled outside the registry


def test_unsupported_lists_unknown_keys_with_our_prefix_only() -> None:
    annotations = {
        ann.PREFIX + "healthcheck-intervall": "10",  # a typo
        ann.PREFIX + "nlb-target-type": "ip",  # the AWS Load Balancer Controller's only
        ann.CONNECTION_DRAINING_ENABLED: "true",  # Classic ELB only: honoured there, not on NLBs
        ann.EIP_ALLOCATIONS: "eipalloc-0a",  # NLB only
        ann.SCHEME: "internal",
        ann.HEALTHCHECK_INTERVAL: "10",
        "example.com/other": "x",
        "service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8",
    }

    assert ann.unsupported(annotations=annotations) == (
        ann.CONNECTION_DRAINING_ENABLED,
        ann.PREFIX + "healthcheck-intervall",
        ann.PREFIX + "nlb-target-type",
    )
    assert ann.unsupported(annotations=annotations, classic=True) == (
        ann.EIP_ALLOCATIONS,
        ann.PREFIX + "healthcheck-intervall",
        ann.PREFIX + "nlb-target-type",
    )


# -- reference_markdown ---------------------------------------------------------------------------------


def test_the_reference_table_has_one_row_per_annotation() -> None:
    lines = ann.reference_markdown().splitlines()

    assert lines[0] == "| Annotation | Accepted values | Default | Meaning |"
    assert lines[1] == "|---|---|---|---|"
    rows = lines[2:]
    assert len(rows) == len(ann.REGISTRY)
    for entry, row in zip(ann.REGISTRY, rows, strict=True):
        assert row.startswith(f"| `{entry.key}` |")


def test_every_row_of_the_reference_table_has_four_cells() -> None:
    for row in ann.reference_markdown().splitlines():
        cells = re.split(r"(?<!\\)\|", row)
        assert len(cells) == 6, row  # empty strings before the first and after the last pipe


def test_honoured_annotations_carry_no_mark_in_the_table() -> None:
    table = ann.reference_markdown()
    rows = {row.split("`")[1]: row for row in table.splitlines()[2:]}

    assert "**" not in rows[ann.CONNECTION_DRAINING_TIMEOUT]  # honoured on Classic ELBs
    assert "**" not in rows[ann.CONNECTION_IDLE_TIMEOUT]  # honoured on NLB TCP listeners and Classic ELBs
    assert "**" not in rows[ann.EXTRA_SECURITY_GROUPS]
    assert "**" not in rows[ann.SSL_CERT]


def test_the_reference_table_ends_with_a_newline() -> None:
    assert ann.reference_markdown().endswith("|\n")


# -- parsing helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("  ", None), (" x ", "x")])
def test_text_treats_blank_as_unset(raw: str | None, expected: str | None) -> None:
    annotations = {} if raw is None else {ann.SUBNETS: raw}

    assert ann.text(annotations=annotations, key=ann.SUBNETS) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("True", True), ("1", True), ("false", False), ("F", False)]
)
def test_booleans_accept_go_spellings(raw: str, expected: bool) -> None:
    assert ann.parse_bool(annotations={ann.CROSS_ZONE: raw}, key=ann.CROSS_ZONE) is expected


def test_a_bad_boolean_names_the_key_the_value_and_the_choices() -> None:
    with pytest.raises(InvalidSpec) as caught:
        ann.parse_bool(annotations={ann.CROSS_ZONE: "enabled"}, key=ann.CROSS_ZONE)

    assert caught.value.field == ann.CROSS_ZONE
    assert caught.value.value == "enabled"
    assert "true or false" in str(caught.value)


@pytest.mark.parametrize("raw", ["ten", "1.5", "", "0x10", "11"])
def test_integers_are_decimal_and_in_range(raw: str) -> None:
    annotations = {ann.HEALTHCHECK_INTERVAL: raw}

    if raw == "":
        assert ann.parse_int(annotations=annotations, key=ann.HEALTHCHECK_INTERVAL, low=5, high=10) is None
        return
    with pytest.raises(InvalidSpec) as caught:
        ann.parse_int(annotations=annotations, key=ann.HEALTHCHECK_INTERVAL, low=5, high=10)
    assert caught.value.field == ann.HEALTHCHECK_INTERVAL
    assert repr(raw) in str(caught.value)
    assert "from 5 to 10" in str(caught.value)


def test_integers_are_parsed() -> None:
    annotations = {ann.HEALTHCHECK_INTERVAL: " 30 "}

    assert ann.parse_int(annotations=annotations, key=ann.HEALTHCHECK_INTERVAL, low=5, high=300) == 30


def test_lists_drop_blanks_and_whitespace() -> None:
    annotations = {ann.SUBNETS: " a, ,b ,,c "}

    assert ann.parse_list(annotations=annotations, key=ann.SUBNETS) == ("a", "b", "c")


def test_key_values_allow_empty_and_missing_values() -> None:
    annotations = {ann.ADDITIONAL_RESOURCE_TAGS: "k=v, k2=, k3 ,k4=a=b"}

    assert ann.parse_key_values(annotations=annotations, key=ann.ADDITIONAL_RESOURCE_TAGS) == (
        ("k", "v"),
        ("k2", ""),
        ("k3", ""),
        ("k4", "a=b"),
    )


def test_a_key_given_twice_is_an_error() -> None:
    with pytest.raises(InvalidSpec, match="given twice"):
        ann.parse_key_values(
            annotations={ann.ADDITIONAL_RESOURCE_TAGS: "k=1,k=2"}, key=ann.ADDITIONAL_RESOURCE_TAGS
        )


def test_invalid_takes_the_accepted_text_from_the_registry() -> None:
    error = ann.invalid(key=ann.PROXY_PROTOCOL, value="80", reason="only *")

    assert error.accepted == ann.lookup(key=ann.PROXY_PROTOCOL).accepted
    assert str(error) == f"invalid {ann.PROXY_PROTOCOL}='80': only *; accepted: *"


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("stickiness.type", "source_ip", True),
        ("stickiness.type", "lb_cookie", False),
        ("deregistration_delay.timeout_seconds", "3600", True),
        ("deregistration_delay.timeout_seconds", "-1", False),
        ("load_balancing.cross_zone.enabled", "use_load_balancer_configuration", True),
        ("preserve_client_ip.enabled", "yes", False),
    ],
)
def test_target_group_attribute_rules(key: str, value: str, ok: bool) -> None:
    assert ann.TARGET_GROUP_ATTRIBUTE_VALUES[key].accepts(value) is ok

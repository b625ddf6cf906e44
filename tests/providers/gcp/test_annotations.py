"""providers.gcp.annotations: the registry, the docs table rendered from it, the parsing helpers."""

from __future__ import annotations

import re

import pytest

from ccm.cloudprovider import SOURCE_RANGES_ANNOTATION, InvalidSpec
from providers.gcp import annotations as ann

# Every Service annotation of reference/gcp-provider.md §2-§3 that concerns L4 LBs.
UPSTREAM = {
    "networking.gke.io/load-balancer-type",
    "cloud.google.com/load-balancer-type",
    "cloud.google.com/network-tier",
    "networking.gke.io/internal-load-balancer-subnet",
    "networking.gke.io/internal-load-balancer-allow-global-access",
    "service.beta.kubernetes.io/load-balancer-source-ranges",
    "cloud.google.com/l4-rbs",
    "alpha.cloud.google.com/load-balancer-backend-share",
}


def test_every_upstream_annotation_is_in_the_registry() -> None:
    assert set(ann.BY_KEY) == UPSTREAM


def test_keys_are_unique() -> None:
    keys = [a.key for a in ann.REGISTRY]

    assert len(keys) == len(set(keys))
    assert SOURCE_RANGES_ANNOTATION in keys


def test_every_key_constant_of_the_module_is_registered() -> None:
    constants = {
        value
        for name, value in vars(ann).items()
        if name.isupper() and isinstance(value, str) and "/" in value and not name.startswith("CLASS_")
    }

    assert constants == set(ann.BY_KEY)


def test_every_entry_says_what_it_means_accepts_and_defaults_to() -> None:
    for entry in ann.REGISTRY:
        assert entry.description.strip(), entry.key
        assert entry.accepted.strip(), entry.key
        assert entry.default.strip(), entry.key


def test_backend_share_is_the_one_ignored_annotation_and_says_why() -> None:
    assert [a.key for a in ann.REGISTRY if a.support == ann.IGNORED] == [ann.BACKEND_SHARE]
    assert "instance groups" in ann.lookup(key=ann.BACKEND_SHARE).description


def test_l4_rbs_is_left_to_another_controller() -> None:
    assert [a.key for a in ann.REGISTRY if a.support == ann.ELSEWHERE] == [ann.L4_RBS]


def test_the_legacy_classes_are_upstreams() -> None:
    assert ann.LOAD_BALANCER_CLASSES == (
        "networking.gke.io/l4-regional-external-legacy",
        "networking.gke.io/l4-regional-internal-legacy",
    )


# -- reference_markdown ---------------------------------------------------------------------------------


def table(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_the_reference_table_has_one_row_per_annotation() -> None:
    lines = table(ann.reference_markdown())

    assert lines[0] == "| Annotation | Accepted values | Default | Meaning |"
    assert lines[1] == "|---|---|---|---|"
    rows = lines[2:]
    assert len(rows) == len(ann.REGISTRY)
    for entry, row in zip(ann.REGISTRY, rows, strict=True):
        assert row.startswith(f"| `{entry.key}` |")


def test_every_row_of_the_reference_table_has_four_cells() -> None:
    for row in table(ann.reference_markdown()):
        cells = re.split(r"(?<!\\)\|", row)
        assert len(cells) == 6, row


def test_ignored_and_elsewhere_annotations_are_marked_in_the_table() -> None:
    rows = {row.split("`")[1]: row for row in table(ann.reference_markdown())[2:]}

    assert "**Ignored.**" in rows[ann.BACKEND_SHARE]
    assert "**Another controller.**" in rows[ann.L4_RBS]
    assert "**" not in rows[ann.NETWORK_TIER]


def test_the_reference_explains_the_load_balancer_classes_and_ends_with_a_newline() -> None:
    markdown = ann.reference_markdown()

    assert all(cls in markdown for cls in ann.LOAD_BALANCER_CLASSES)
    assert markdown.endswith("\n") and not markdown.endswith("\n\n")


# -- parsing helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("  ", None), (" x ", "x")])
def test_text_treats_blank_as_unset(raw: str | None, expected: str | None) -> None:
    annotations = {} if raw is None else {ann.INTERNAL_SUBNET: raw}

    assert ann.text(annotations=annotations, key=ann.INTERNAL_SUBNET) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("false", False), (" true ", True), ("", None)]
)
def test_booleans_are_the_exact_words(raw: str, expected: bool | None) -> None:
    assert ann.parse_bool(annotations={ann.ALLOW_GLOBAL_ACCESS: raw}, key=ann.ALLOW_GLOBAL_ACCESS) is expected


@pytest.mark.parametrize("raw", ["True", "1", "yes", "enabled"])
def test_other_boolean_spellings_name_the_key_the_value_and_the_choices(raw: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        ann.parse_bool(annotations={ann.ALLOW_GLOBAL_ACCESS: raw}, key=ann.ALLOW_GLOBAL_ACCESS)

    assert caught.value.field == ann.ALLOW_GLOBAL_ACCESS
    assert caught.value.value == raw
    assert "true or false" in str(caught.value)


def test_invalid_takes_the_accepted_text_from_the_registry() -> None:
    error = ann.invalid(key=ann.NETWORK_TIER, value="Gold", reason="unknown tier")

    assert error.accepted == ann.lookup(key=ann.NETWORK_TIER).accepted
    assert str(error) == f"invalid {ann.NETWORK_TIER}='Gold': unknown tier; accepted: Premium or Standard"


def test_unsupported_names_gke_load_balancer_keys_this_provider_does_not_implement() -> None:
    annotations = {
        "networking.gke.io/load-balancer-ip-addresses": "my-ip",  # GKE's, not built here
        "networking.gke.io/internal-load-balancer-allow-global-access": "true",  # honoured
        "cloud.google.com/load-balancer-type": "Internal",  # honoured (deprecated spelling)
        ann.BACKEND_SHARE: "true",  # accepted and ignored: said
        ann.NETWORK_TIER: "Standard",  # honoured
        "cloud.google.com/neg": '{"ingress": true}',  # ingress-gce's: not ours to judge
        "cloud.google.com/backend-config": "{}",
    }

    assert ann.unsupported(annotations=annotations) == (
        ann.BACKEND_SHARE,
        "networking.gke.io/load-balancer-ip-addresses",
    )

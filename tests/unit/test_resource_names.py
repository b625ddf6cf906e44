"""Resource names are part of the trust contract: pinned, so that no refactoring renames a live load balancer.

A changed name means a new load balancer (or target group, security group, forwarding rule) and a
changed address for a live Service. These names were produced by the builders before their name
sanitising moved to :mod:`providers.common.names`; the inputs cover consecutive hyphens (allowed in
DNS-1123 labels, and where the AWS and GCP algorithms disagree), names cut at each provider's length
limits (a cut landing on a hyphen), upper case, underscores and dots.
"""

from __future__ import annotations

import pytest

from providers.aws import builder as aws
from providers.gcp import builder as gcp

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

# (cluster, namespace, name, NLB name, internal NLB name, target group 443/TCP→30443, frontend SG name)
AWS_NAMES = [
    (
        "test",
        "default",
        "web",
        "k8s-default-web-f7ffc1443c",
        "k8s-default-web-d58a3fcfdb",
        "k8s-default-web-5ee10f5fe1",
        "k8s-default-web-f7ffc1443c",
    ),
    (
        "test",
        "team--prod",
        "api--v2",
        "k8s-team-pr-api-v2-dbcb6ca86c",
        "k8s-team-pr-api-v2-9d3bf784f6",
        "k8s-team-pr-api-v2-52e4ac8c63",
        "k8s-team-prod-api-v2-dbcb6ca86c",
    ),
    (
        "test",
        "a-------b",
        "x",
        "k8s-a-x-3afd1ec2e6",
        "k8s-a-x-e666f34b3b",
        "k8s-a-x-a92fba01b5",
        "k8s-a-b-x-3afd1ec2e6",
    ),
    (
        "test",
        "abcdefg-",
        "h",
        "k8s-abcdefg-h-cce5626933",
        "k8s-abcdefg-h-eef13a15be",
        "k8s-abcdefg-h-857ccf82a9",
        "k8s-abcdefg-h-cce5626933",
    ),
    (
        "test",
        "abcdefg--hij",
        "web",
        "k8s-abcdefg-web-f45c656df4",
        "k8s-abcdefg-web-d3d1073d83",
        "k8s-abcdefg-web-fb4da6f721",
        "k8s-abcdefg-hij-web-f45c656df4",
    ),
    (
        "test",
        "abcdefghijk--lmnop",
        "service-name-with--double-hyphen-and-long",
        "k8s-abcdefgh-service-0ea0f1286f",
        "k8s-abcdefgh-service-9ecc07d6c8",
        "k8s-abcdefgh-service-a1c9eb5e8f",
        "k8s-abcdefghijk-lmnop-service-name-with-double-hyphen-and-long-0ea0f1286f",
    ),
    (
        "test",
        "kube-system",
        "very-long-service-name-for-testing",
        "k8s-kube-sys-very-lon-b1a3b4753e",
        "k8s-kube-sys-very-lon-85bb2a84f9",
        "k8s-kube-sys-very-lon-f1d8f5ee34",
        "k8s-kube-system-very-long-service-name-for-testing-b1a3b4753e",
    ),
    (
        "test",
        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss",
        "k8s-nnnnnnnn-ssssssss-3eb591b724",
        "k8s-nnnnnnnn-ssssssss-b104a498be",
        "k8s-nnnnnnnn-ssssssss-cd61ec87ea",
        "k8s-nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn-sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss-3eb591b724",
    ),
    (
        "test",
        "ns",
        "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-y",
        "k8s-ns-x-x-x-x-4cab442601",
        "k8s-ns-x-x-x-x-0755b8e2dc",
        "k8s-ns-x-x-x-x-e177971852",
        "k8s-ns-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-y-4cab442601",
    ),
    (
        "test",
        "Upper_Case.Dots",
        "svc",
        "k8s-upper-ca-svc-551800b418",
        "k8s-upper-ca-svc-33bd40550b",
        "k8s-upper-ca-svc-725f03502b",
        "k8s-upper-case-dots-svc-551800b418",
    ),
    (
        "prod--eu",
        "default",
        "web",
        "k8s-default-web-da227d0619",
        "k8s-default-web-50f799b22f",
        "k8s-default-web-44b32c5dec",
        "k8s-default-web-da227d0619",
    ),
    (
        "prod--eu",
        "team--prod",
        "api--v2",
        "k8s-team-pr-api-v2-ca0ab203f0",
        "k8s-team-pr-api-v2-4d28517e4f",
        "k8s-team-pr-api-v2-3e8cf16601",
        "k8s-team-prod-api-v2-ca0ab203f0",
    ),
    (
        "prod--eu",
        "a-------b",
        "x",
        "k8s-a-x-e557fe3d2d",
        "k8s-a-x-487c2cf52c",
        "k8s-a-x-e314d03295",
        "k8s-a-b-x-e557fe3d2d",
    ),
    (
        "prod--eu",
        "abcdefg-",
        "h",
        "k8s-abcdefg-h-6040510779",
        "k8s-abcdefg-h-aacdaab1a7",
        "k8s-abcdefg-h-e1cd3f09be",
        "k8s-abcdefg-h-6040510779",
    ),
    (
        "prod--eu",
        "abcdefg--hij",
        "web",
        "k8s-abcdefg-web-f9f5cd43de",
        "k8s-abcdefg-web-3276849493",
        "k8s-abcdefg-web-96ff87d321",
        "k8s-abcdefg-hij-web-f9f5cd43de",
    ),
    (
        "prod--eu",
        "abcdefghijk--lmnop",
        "service-name-with--double-hyphen-and-long",
        "k8s-abcdefgh-service-8a9ccf91ff",
        "k8s-abcdefgh-service-4644613800",
        "k8s-abcdefgh-service-832aef2a3c",
        "k8s-abcdefghijk-lmnop-service-name-with-double-hyphen-and-long-8a9ccf91ff",
    ),
    (
        "prod--eu",
        "kube-system",
        "very-long-service-name-for-testing",
        "k8s-kube-sys-very-lon-47d7b17185",
        "k8s-kube-sys-very-lon-a7976207c2",
        "k8s-kube-sys-very-lon-677e921156",
        "k8s-kube-system-very-long-service-name-for-testing-47d7b17185",
    ),
    (
        "prod--eu",
        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss",
        "k8s-nnnnnnnn-ssssssss-1f527cb837",
        "k8s-nnnnnnnn-ssssssss-fa6b5ab3b0",
        "k8s-nnnnnnnn-ssssssss-eb3019d960",
        "k8s-nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn-sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss-1f527cb837",
    ),
    (
        "prod--eu",
        "ns",
        "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-y",
        "k8s-ns-x-x-x-x-a5247b72cd",
        "k8s-ns-x-x-x-x-30112ad666",
        "k8s-ns-x-x-x-x-5452432ee6",
        "k8s-ns-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-y-a5247b72cd",
    ),
    (
        "prod--eu",
        "Upper_Case.Dots",
        "svc",
        "k8s-upper-ca-svc-6c05b3dbeb",
        "k8s-upper-ca-svc-af44f01c44",
        "k8s-upper-ca-svc-aed3f22b79",
        "k8s-upper-case-dots-svc-6c05b3dbeb",
    ),
]
# (cluster id, namespace, name, load balancer name)
GCP_NAMES = [
    ("kubernetes", "default", "web", "k8s-kubernetes-default-web-7f9c9092"),
    ("kubernetes", "team--prod", "api--v2", "k8s-kubernetes-team-prod-api-v2-1543519f"),
    ("kubernetes", "a-------b", "x", "k8s-kubernetes-a-b-x-f8ee7536"),
    ("kubernetes", "abcdefg-", "h", "k8s-kubernetes-abcdefg-h-5c6f8c9f"),
    ("kubernetes", "abcdefg--hij", "web", "k8s-kubernetes-abcdefg-hij-web-8d6169e9"),
    (
        "kubernetes",
        "abcdefghijk--lmnop",
        "service-name-with--double-hyphen-and-long",
        "k8s-kubernetes-abcdefghijk-service-name-wit-6515ffff",
    ),
    (
        "kubernetes",
        "kube-system",
        "very-long-service-name-for-testing",
        "k8s-kubernetes-kube-system-very-long-servic-0eb2faa0",
    ),
    (
        "kubernetes",
        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss",
        "k8s-kubernetes-nnnnnnnnnnnn-ssssssssssssssss-e3a5d919",
    ),
    (
        "kubernetes",
        "ns",
        "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-y",
        "k8s-kubernetes-ns-x-x-x-x-x-x-x-x-0695b1e0",
    ),
    ("kubernetes", "Upper_Case.Dots", "svc", "k8s-kubernetes-upper-case-d-svc-2e5810ab"),
    ("prod--eu--west", "default", "web", "k8s-prod-eu-west-default-web-fc652c12"),
    ("prod--eu--west", "team--prod", "api--v2", "k8s-prod-eu-west-team-prod-api-v2-f6cf804d"),
    ("prod--eu--west", "a-------b", "x", "k8s-prod-eu-west-a-b-x-14179558"),
    ("prod--eu--west", "abcdefg-", "h", "k8s-prod-eu-west-abcdefg-h-cd4dc734"),
    ("prod--eu--west", "abcdefg--hij", "web", "k8s-prod-eu-west-abcdefg-hij-web-e3036475"),
    (
        "prod--eu--west",
        "abcdefghijk--lmnop",
        "service-name-with--double-hyphen-and-long",
        "k8s-prod-eu-west-abcdefghijk-service-name-wit-d56734e9",
    ),
    (
        "prod--eu--west",
        "kube-system",
        "very-long-service-name-for-testing",
        "k8s-prod-eu-west-kube-system-very-long-servic-6f11fb8d",
    ),
    (
        "prod--eu--west",
        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss",
        "k8s-prod-eu-west-nnnnnnnnnnnn-ssssssssssssssss-a40f9bf0",
    ),
    (
        "prod--eu--west",
        "ns",
        "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-y",
        "k8s-prod-eu-west-ns-x-x-x-x-x-x-x-x-64ee1119",
    ),
    ("prod--eu--west", "Upper_Case.Dots", "svc", "k8s-prod-eu-west-upper-case-d-svc-c966ecee"),
    ("a1b2c3d4e5", "default", "web", "k8s-a1b2c3d4e5-default-web-eb8566c0"),
    ("a1b2c3d4e5", "team--prod", "api--v2", "k8s-a1b2c3d4e5-team-prod-api-v2-bf360a42"),
    ("a1b2c3d4e5", "a-------b", "x", "k8s-a1b2c3d4e5-a-b-x-47626e13"),
    ("a1b2c3d4e5", "abcdefg-", "h", "k8s-a1b2c3d4e5-abcdefg-h-65292c2e"),
    ("a1b2c3d4e5", "abcdefg--hij", "web", "k8s-a1b2c3d4e5-abcdefg-hij-web-43fd5a04"),
    (
        "a1b2c3d4e5",
        "abcdefghijk--lmnop",
        "service-name-with--double-hyphen-and-long",
        "k8s-a1b2c3d4e5-abcdefghijk-service-name-wit-4c822a46",
    ),
    (
        "a1b2c3d4e5",
        "kube-system",
        "very-long-service-name-for-testing",
        "k8s-a1b2c3d4e5-kube-system-very-long-servic-6ec69982",
    ),
    (
        "a1b2c3d4e5",
        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss",
        "k8s-a1b2c3d4e5-nnnnnnnnnnnn-ssssssssssssssss-a8284696",
    ),
    (
        "a1b2c3d4e5",
        "ns",
        "x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-y",
        "k8s-a1b2c3d4e5-ns-x-x-x-x-x-x-x-x-d443cd8a",
    ),
    ("a1b2c3d4e5", "Upper_Case.Dots", "svc", "k8s-a1b2c3d4e5-upper-case-d-svc-86ad2d18"),
]
# (cluster id, name prefix, instance group, node health check)
GCP_SHARED_NAMES = [
    ("kubernetes", "k8s-kubernetes-", "k8s-ig--kubernetes", "k8s-kubernetes-node"),
    ("prod--eu--west", "k8s-prod-eu-west-", "k8s-ig--prod-eu-west", "k8s-prod-eu-west-node"),
    ("a1b2c3d4e5", "k8s-a1b2c3d4e5-", "k8s-ig--a1b2c3d4e5", "k8s-a1b2c3d4e5-node"),
    ("Cluster_Name.With-Dots-And-More", "k8s-cluster-name-", "k8s-ig--cluster-name", "k8s-cluster-name-node"),
]


@pytest.mark.parametrize(("cluster", "namespace", "name", "lb", "internal_lb", "tg", "sg"), AWS_NAMES)
def test_aws_names_never_change(
    cluster: str, namespace: str, name: str, lb: str, internal_lb: str, tg: str, sg: str
) -> None:
    names = dict(cluster_name=cluster, namespace=namespace, name=name, uid=UID)
    assert aws.load_balancer_name(**names) == lb
    assert aws.load_balancer_name(**names, internal=True) == internal_lb
    assert aws.target_group_name(**names, port=443, protocol="TCP", node_port=30443) == tg
    assert aws.frontend_security_group_name(**names) == sg
    assert max(len(lb), len(internal_lb), len(tg)) <= 32


@pytest.mark.parametrize(("cluster_id", "namespace", "name", "lb"), GCP_NAMES)
def test_gcp_names_never_change(cluster_id: str, namespace: str, name: str, lb: str) -> None:
    assert gcp.load_balancer_name(cluster_id=cluster_id, namespace=namespace, name=name, uid=UID) == lb
    assert len(gcp.traffic_firewall_name(lb_name=lb)) <= 63


@pytest.mark.parametrize(("cluster_id", "prefix", "instance_group", "node_check"), GCP_SHARED_NAMES)
def test_gcp_shared_names_never_change(
    cluster_id: str, prefix: str, instance_group: str, node_check: str
) -> None:
    assert gcp.name_prefix(cluster_id=cluster_id) == prefix
    assert gcp.instance_group_name(cluster_id=cluster_id) == instance_group
    assert gcp.node_health_check_name(cluster_id=cluster_id) == node_check

"""terraform/aws/policy.json and upstream-policy.json, read as documents: templates Terraform can render,
that grant exactly the operations the provider's code calls, fenced by the cluster tag wherever AWS lets
a policy say so.

These checks need no AWS; :mod:`tests.iam.test_aws_least_privilege` shows the same policy at work.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3

from tests.iam.aws_iam import actions_of
from tests.iam.aws_policy import (
    POLICY_FILES,
    TERRAFORM,
    policy_document,
    policy_documents,
    policy_template,
    sids,
)

PROVIDER = Path(__file__).resolve().parents[2] / "providers" / "aws"
CLUSTER_KEY = "kubernetes.io/cluster/${cluster_name}"
# Statements without the cluster tag in their condition, and why that is the tightest AWS allows.
UNFENCED = {
    "Describe": "Describe* and tag:GetResources have no resource-level permissions: Resource must be *",
    "CreateSecurityGroupsInVpcs": "the VPC a group is made in is not ours to tag; the group itself is fenced",
    "CreateElbServiceLinkedRole": "ELB's own role (one ARN, iam:AWSServiceName fixed), made once per account",
}
MANAGED_POLICY_LIMIT = 6144  # characters, whitespace not counted


def _template_variables(path: Path) -> set[str]:
    return set(re.findall(r"\$\{([^}]*)\}", path.read_text()))


def _templatefile_arguments(template: str) -> set[str]:
    """The variables main.tf passes to ``templatefile("${path.module}/<template>", {...})``."""
    main = (TERRAFORM / "main.tf").read_text()
    match = re.search(
        r'templatefile\("\$\{path\.module\}/' + re.escape(template) + r'", \{(.*?)\}\)', main, re.S
    )
    assert match, f"main.tf does not render {template} with templatefile()"
    return set(re.findall(r"^\s*(\w+)\s*=", match.group(1), re.M))


def test_the_templates_use_only_the_variables_main_tf_passes_them() -> None:
    for name in POLICY_FILES:
        assert _template_variables(TERRAFORM / name) == {"cluster_name", "partition"}, name
        assert _templatefile_arguments(name) == {"cluster_name", "partition"}, name
    trust = {"oidc_provider_arn", "oidc_host", "namespace", "service_account"}
    assert _template_variables(TERRAFORM / "trust-policy.json") == trust
    assert _templatefile_arguments("trust-policy.json") == trust
    for name in (*POLICY_FILES, "trust-policy.json"):
        assert "%{" not in (TERRAFORM / name).read_text(), (
            f"{name}: templatefile() would read %{{ as a directive"
        )


def test_every_statement_has_a_sid_of_its_own_and_the_readme_explains_it() -> None:
    statements = policy_document()["Statement"]
    names = sids()
    assert len(names) == len(statements) == len(set(names))
    assert all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in names), names
    readme = (TERRAFORM / "README.md").read_text()
    missing = [sid for sid in names if f"`{sid}`" not in readme]
    assert not missing, f"terraform/aws/README.md does not explain {missing}"


def test_actions_are_named_one_by_one_and_star_resources_only_serve_read_only_calls() -> None:
    for statement in policy_document()["Statement"]:
        actions = actions_of(policy_document(), statement["Sid"])
        assert not [a for a in actions if "*" in a or "?" in a], f"{statement['Sid']}: wildcard actions"
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if "*" in resources:
            assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in actions), statement["Sid"]


def test_every_statement_that_changes_something_is_fenced_by_the_cluster_tag() -> None:
    # the templates: the key still reads ${cluster_name}
    statements = [s for name in POLICY_FILES for s in json.loads(policy_template(name))["Statement"]]
    for statement in statements:
        fenced = CLUSTER_KEY in json.dumps(statement.get("Condition", {}))
        assert fenced != (statement["Sid"] in UNFENCED), statement["Sid"]


def _operations_called_by_the_provider() -> set[str]:
    """Every boto3 operation in providers/aws, as IAM actions (from the botocore service models)."""
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    services = {
        "ec2": ("ec2", "ec2"),
        "elbv2": ("elbv2", "elasticloadbalancing"),
        "elb": ("elb", "elasticloadbalancing"),  # Classic ELB: the same IAM prefix and action names
        "tagging": ("resourcegroupstaggingapi", "tag"),
    }
    found: set[str] = set()
    for path in PROVIDER.rglob("*.py"):
        source = path.read_text()
        calls = re.findall(r"\b(ec2|elbv2|elb|tagging)\.(\w+)\(", source)
        calls += re.findall(r"\b(ec2|elbv2|elb|tagging)\.get_paginator\(\s*\"(\w+)\"", source)
        for alias, method in calls:
            if method in ("get_paginator", "meta"):
                continue
            service, prefix = services[alias]
            mapping: dict[str, Any] = session.client(service).meta.method_to_api_mapping
            assert method in mapping, f"{path.name}: {alias}.{method} is not a {service} operation"
            found.add(f"{prefix}:{mapping[method]}")
    return found


def test_the_policy_grants_exactly_the_operations_the_provider_calls() -> None:
    called = _operations_called_by_the_provider()
    assert "elasticloadbalancing:CreateLoadBalancer" in called and "ec2:DescribeSubnets" in called
    assert "elasticloadbalancing:DeleteLoadBalancer" in called  # also Classic: upstream's, once replaced
    # Tagging at creation is authorized as the tagging action too (ec2:CreateTags is also called directly),
    # and the first CreateLoadBalancer of an account makes ELB's service-linked role as the caller.
    needed = called | {"elasticloadbalancing:AddTags", "ec2:CreateTags", "iam:CreateServiceLinkedRole"}
    granted = {a for sid in sids() for a in actions_of(policy_document(), sid)}
    assert granted == needed, (
        f"not granted: {sorted(needed - granted)}; never called: {sorted(granted - needed)}"
    )


def test_each_rendered_policy_fits_in_a_managed_policy() -> None:
    longest_cluster_name = "c" * 100  # variables.tf allows up to 100 characters
    documents = policy_documents(longest_cluster_name)
    assert len(documents) == len(POLICY_FILES)
    for name, document in zip(POLICY_FILES, documents, strict=True):
        text = json.dumps(document, separators=(",", ":"))
        assert len(text) <= MANAGED_POLICY_LIMIT, f"{name}: {len(text)} characters"


def _upstream_template_statements() -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = json.loads(policy_template("upstream-policy.json"))["Statement"]
    return statements


def test_every_statement_that_takes_something_away_also_needs_the_controllers_own_tag() -> None:
    """EKS's cluster security group and upstream cloud-provider-aws's load balancers carry the cluster's
    ``owned`` tag too; only ``ccm-lb/resource`` is written by this controller alone
    (terraform/aws/README.md). upstream-policy.json is the one exception, tested below."""
    upstream = {s["Sid"] for s in _upstream_template_statements()}
    destructive = ("Delete", "Revoke", "Modify", "Set", "Register", "Deregister", "Remove")
    for statement in policy_document()["Statement"]:
        if statement["Sid"] in upstream:
            continue
        actions = [a.split(":")[1] for a in actions_of(policy_document(), statement["Sid"])]
        condition = statement.get("Condition", {})
        retag = "CreateAction" not in json.dumps(condition) and any(
            a in ("AddTags", "CreateTags") for a in actions
        )
        if retag or any(a.startswith(destructive) for a in actions):
            assert condition.get("Null", {}).get("aws:ResourceTag/ccm-lb/resource") == "false", statement[
                "Sid"
            ]


UPSTREAM_NAME = "a" + "?" * 31  # "a" + the Service's UID without dashes, cut to 32 (DefaultLoadBalancerName)


def test_the_upstream_statements_only_delete_and_revoke_what_is_not_ours_and_fenced_like_upstream() -> None:
    """upstream-policy.json reaches what the upstream provider built, never this controller's own: each
    statement requires ``ccm-lb/resource`` to be absent, and may only delete, revoke or (to take a load
    balancer over) add tags that keep this cluster's ``owned`` and attach a group to a Classic ELB, on
    upstream's
    shapes: load balancers named ``a`` + 31 characters and target groups ``k8s-*``, tagged with this
    cluster's ``owned`` and a ``kubernetes.io/service-name``; ``k8s-elb-*`` groups tagged ``owned`` (not
    EKS's cluster security group, which has ``aws:eks:cluster-name``); rules on the cluster's groups."""
    owned = {"aws:ResourceTag/kubernetes.io/cluster/${cluster_name}": "owned"}
    expected = {
        "RevokeUpstreamRulesOnClusterSecurityGroups": (
            ["ec2:RevokeSecurityGroupIngress"],
            ["arn:${partition}:ec2:*:*:security-group/*"],
            {"Null": {"aws:ResourceTag/kubernetes.io/cluster/${cluster_name}": "false"}},
        ),
        "DeleteUpstreamElbSecurityGroups": (
            ["ec2:DeleteSecurityGroup"],
            ["arn:${partition}:ec2:*:*:security-group/*"],
            {"Null": {"aws:ResourceTag/aws:eks:cluster-name": "true"}, "StringEquals": owned},
        ),
        "DeleteUpstreamLoadBalancers": (
            ["elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup"],
            [
                f"arn:${{partition}}:elasticloadbalancing:*:*:loadbalancer/net/{UPSTREAM_NAME}/*",
                f"arn:${{partition}}:elasticloadbalancing:*:*:loadbalancer/{UPSTREAM_NAME}",
                "arn:${partition}:elasticloadbalancing:*:*:targetgroup/k8s-*",
            ],
            {"Null": {"aws:ResourceTag/kubernetes.io/service-name": "false"}, "StringEquals": owned},
        ),
        "AdoptUpstreamLoadBalancers": (
            ["elasticloadbalancing:AddTags"],
            [
                f"arn:${{partition}}:elasticloadbalancing:*:*:loadbalancer/net/{UPSTREAM_NAME}/*",
                f"arn:${{partition}}:elasticloadbalancing:*:*:loadbalancer/{UPSTREAM_NAME}",
                f"arn:${{partition}}:elasticloadbalancing:*:*:listener/net/{UPSTREAM_NAME}/*",
                "arn:${partition}:elasticloadbalancing:*:*:targetgroup/k8s-*",
            ],
            {
                "Null": {"aws:ResourceTag/kubernetes.io/service-name": "false"},
                "StringEquals": {**owned, "aws:RequestTag/kubernetes.io/cluster/${cluster_name}": "owned"},
            },
        ),
        "AttachBackendGroupToUpstreamClassicLoadBalancers": (
            ["elasticloadbalancing:ApplySecurityGroupsToLoadBalancer"],
            [f"arn:${{partition}}:elasticloadbalancing:*:*:loadbalancer/{UPSTREAM_NAME}"],
            {"Null": {"aws:ResourceTag/kubernetes.io/service-name": "false"}, "StringEquals": owned},
        ),
        "AdoptUpstreamElbSecurityGroups": (
            ["ec2:CreateTags"],
            ["arn:${partition}:ec2:*:*:security-group/*"],
            {
                "Null": {"aws:ResourceTag/aws:eks:cluster-name": "true"},
                "StringEquals": owned,
                "StringEqualsIfExists": {"aws:RequestTag/kubernetes.io/cluster/${cluster_name}": "owned"},
            },
        ),
    }
    statements = {s["Sid"]: s for s in _upstream_template_statements()}
    assert set(statements) == set(expected)
    for sid, (actions, resources, condition) in expected.items():
        statement = statements[sid]
        assert statement["Effect"] == "Allow", sid
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert sorted(listed) == sorted(actions), sid
        named = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert named == resources, sid
        got = json.loads(json.dumps(statement["Condition"]))
        assert got["Null"].pop("aws:ResourceTag/ccm-lb/resource") == "true", sid  # never ours
        assert got == condition, sid

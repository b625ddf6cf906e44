"""The test-side IAM evaluator decides as AWS does, and refuses to guess.

Small policies against single checks (so the evaluator cannot be a no-op that allows everything),
the request model of the calls the AWS provider makes, and the moto hook itself.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from providers.aws.client import error_code
from tests.iam.aws_enforcement import Enforcement
from tests.iam.aws_iam import Check, UnknownAction, UnsupportedPolicy, authorization_requests, evaluate
from tests.iam.aws_policy import controller_role, restricted_client, role_session

SG = "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1"
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/web/1"
OWNED = "kubernetes.io/cluster/test"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str = "ec2:CreateTags", resource: str = "*", **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def decide(statements: list[dict[str, Any]], check: Check) -> bool:
    return evaluate([policy(*statements)], check).allowed


def tags_check(request: dict[str, str] | None = None, resource: dict[str, str] | None = None) -> Check:
    context: dict[str, str | tuple[str, ...]] = {f"aws:RequestTag/{k}": v for k, v in (request or {}).items()}
    if request is not None:
        context["aws:TagKeys"] = tuple(request)
    context.update({f"aws:ResourceTag/{k}": v for k, v in (resource or {}).items()})
    return Check("ec2:CreateTags", SG, context)


# -- effect, action, resource --------------------------------------------------------------------------


def test_nothing_is_allowed_without_a_statement_that_allows_it() -> None:
    assert not evaluate([], Check("ec2:DescribeSubnets", "*")).allowed
    assert not decide([allow("ec2:DescribeInstances")], Check("ec2:DescribeSubnets", "*"))
    assert decide([allow("ec2:DescribeSubnets")], Check("ec2:DescribeSubnets", "*"))


def test_an_explicit_deny_wins_over_any_allow() -> None:
    statements = [allow("ec2:*"), {"Effect": "Deny", "Action": "ec2:DeleteSecurityGroup", "Resource": "*"}]
    decision = evaluate([policy(*statements)], Check("ec2:DeleteSecurityGroup", SG))
    assert (decision.allowed, decision.reason) == (False, "explicit deny")
    assert decide(statements, Check("ec2:CreateSecurityGroup", SG))


def test_actions_match_with_wildcards_and_without_case_and_not_action_inverts() -> None:
    assert decide([allow("EC2:describe*")], Check("ec2:DescribeSubnets", "*"))
    assert decide([allow("ec2:Describe?ubnets")], Check("ec2:DescribeSubnets", "*"))
    assert not decide([allow("ec2:Describe")], Check("ec2:DescribeSubnets", "*"))
    not_action = {"Effect": "Allow", "NotAction": "ec2:Delete*", "Resource": "*"}
    assert decide([not_action], Check("ec2:CreateTags", SG))
    assert not decide([not_action], Check("ec2:DeleteSecurityGroup", SG))


def test_resources_match_arn_patterns_and_a_star_only_matches_with_a_star() -> None:
    assert decide([allow(resource="arn:aws:ec2:*:*:security-group/*")], Check("ec2:CreateTags", SG))
    assert not decide([allow(resource="arn:aws:ec2:*:*:vpc/*")], Check("ec2:CreateTags", SG))
    assert not decide(
        [
            allow(
                "elasticloadbalancing:DeleteLoadBalancer",
                "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
            )
        ],
        Check("elasticloadbalancing:DeleteLoadBalancer", LB),
    )
    assert not decide(
        [allow("ec2:DescribeSubnets", "arn:aws:ec2:*:*:subnet/*")], Check("ec2:DescribeSubnets", "*")
    )
    assert decide(
        [allow(resource="arn:aws:ec2:us-east-1:123456789012:security-group/sg-?")],
        Check("ec2:CreateTags", SG),
    )


# -- conditions ---------------------------------------------------------------------------------------


def test_string_equals_needs_the_key_with_that_value() -> None:
    owned = [allow(StringEquals={f"aws:ResourceTag/{OWNED}": "owned"})]
    assert decide(owned, tags_check(resource={OWNED: "owned"}))
    assert not decide(owned, tags_check(resource={OWNED: "shared"}))
    assert not decide(owned, tags_check(resource={}))  # absent key: a positive operator fails


def test_several_values_of_a_key_are_ored_and_several_keys_anded() -> None:
    either = [allow(StringEquals={f"aws:ResourceTag/{OWNED}": ["owned", "shared"]})]
    assert decide(either, tags_check(resource={OWNED: "shared"}))
    both = [allow(StringEquals={f"aws:ResourceTag/{OWNED}": "owned", "aws:RequestTag/team": "web"})]
    assert decide(both, tags_check(request={"team": "web"}, resource={OWNED: "owned"}))
    assert not decide(both, tags_check(request={"team": "db"}, resource={OWNED: "owned"}))
    two_operators = [
        allow(
            StringEquals={f"aws:ResourceTag/{OWNED}": "owned"},
            StringLike={"aws:RequestTag/team": "w*"},
        )
    ]
    assert decide(two_operators, tags_check(request={"team": "web"}, resource={OWNED: "owned"}))
    assert not decide(two_operators, tags_check(request={"team": "web"}, resource={}))


def test_negated_operators_hold_for_an_absent_key_and_if_exists_only_checks_a_present_one() -> None:
    not_shared = [allow(StringNotEquals={f"aws:RequestTag/{OWNED}": ["shared", "x"]})]
    assert decide(not_shared, tags_check(request={}))
    assert decide(not_shared, tags_check(request={OWNED: "owned"}))
    assert not decide(not_shared, tags_check(request={OWNED: "x"}))
    if_exists = [allow(StringEqualsIfExists={f"aws:RequestTag/{OWNED}": "owned"})]
    assert decide(if_exists, tags_check(request={"team": "web"}))
    assert decide(if_exists, tags_check(request={OWNED: "owned"}))
    assert not decide(if_exists, tags_check(request={OWNED: "shared"}))
    not_like = [allow(StringNotLike={"aws:RequestTag/team": "w*"})]
    assert not decide(not_like, tags_check(request={"team": "web"}))
    assert decide(not_like, tags_check(request={"team": "db"}))


def test_null_tests_whether_a_key_is_in_the_request() -> None:
    tagged = [allow(Null={f"aws:ResourceTag/{OWNED}": "false"})]
    assert decide(tagged, tags_check(resource={OWNED: "shared"}))
    assert not decide(tagged, tags_check(resource={"other": "x"}))
    untagged = [allow(Null={f"aws:RequestTag/{OWNED}": True})]
    assert decide(untagged, tags_check(request={"team": "web"}))
    assert not decide(untagged, tags_check(request={OWNED: "owned"}))


def test_set_operators_on_tag_keys() -> None:
    never_ours = [allow(**{"ForAllValues:StringNotEquals": {"aws:TagKeys": OWNED}})]
    assert decide(never_ours, tags_check(request={"team": "web", "env": "x"}))
    assert not decide(never_ours, tags_check(request={"team": "web", OWNED: "owned"}))
    assert decide(never_ours, tags_check())  # no keys at all: ForAllValues holds
    any_ours = [allow(**{"ForAnyValue:StringEquals": {"aws:TagKeys": [OWNED, "team"]}})]
    assert decide(any_ours, tags_check(request={"team": "web"}))
    assert not decide(any_ours, tags_check(request={"env": "x"}))
    assert not decide(any_ours, tags_check())  # no keys: ForAnyValue fails


def test_create_action_keys_tell_tag_on_create_from_tagging_later() -> None:
    on_create = [allow(StringEquals={"ec2:CreateAction": "CreateSecurityGroup"})]
    assert decide(on_create, Check("ec2:CreateTags", SG, {"ec2:CreateAction": "CreateSecurityGroup"}))
    assert not decide(on_create, Check("ec2:CreateTags", SG, {}))


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (allow(NumericLessThan={"aws:RequestTag/x": "3"}), "operator"),
        (allow(StringEquals={"aws:SourceIp": "10.0.0.0/8"}), "not modelled"),
        (allow(StringEquals={"aws:TagKeys": OWNED}), "multivalued"),
        (allow(**{"ForSomeValues:StringEquals": {"aws:TagKeys": OWNED}}), "operator"),
        (allow(Null={"aws:RequestTag/x": "maybe"}), "Null"),
        (allow(resource="arn:aws:ec2:*:${aws:userid}:security-group/*"), "variables"),
        ({**allow(), "Principal": "*"}, "Principal"),
        ({"Effect": "Allow", "Action": "ec2:CreateTags"}, "Resource"),
        ({**allow(), "Effect": "Maybe"}, "Effect"),
    ],
)
def test_what_the_evaluator_does_not_model_fails_loudly(statement: dict[str, Any], problem: str) -> None:
    with pytest.raises(UnsupportedPolicy, match=problem):
        evaluate([policy(statement)], tags_check(request={"x": "1"}))


def test_conditions_are_checked_even_in_statements_that_do_not_apply() -> None:
    unrelated = allow("s3:GetObject", StringEquals={"s3:prefix": "x"})
    with pytest.raises(UnsupportedPolicy, match="not modelled"):
        evaluate([policy(allow("ec2:CreateTags"), unrelated)], tags_check())


def test_set_operators_with_if_exists_hold_for_an_absent_key() -> None:
    statement = [allow(**{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "team"}})]
    assert decide(statement, Check("ec2:CreateTags", SG, {}))
    assert not decide(statement, tags_check(request={"env": "x"}))


def test_trust_policies_match_the_principal_and_the_token_claims() -> None:
    trust = {
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/oidc.example/id/X"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:kube-system:ccm-lb"}},
    }
    keys = ["oidc.example/id/X:sub"]

    def check(principal: str, sub: str) -> bool:
        context = {"oidc.example/id/X:sub": sub}
        c = Check("sts:AssumeRoleWithWebIdentity", "arn:aws:iam::1:role/r", context, {"Federated": principal})
        return evaluate([policy(trust)], c, trust=True, extra_condition_keys=keys).allowed

    assert check("arn:aws:iam::1:oidc-provider/oidc.example/id/X", "system:serviceaccount:kube-system:ccm-lb")
    assert not check("arn:aws:iam::1:oidc-provider/oidc.example/id/X", "system:serviceaccount:default:ccm-lb")
    assert not check("arn:aws:iam::1:oidc-provider/other/id/X", "system:serviceaccount:kube-system:ccm-lb")


# -- the request model -----------------------------------------------------------------------------


def _requests(
    action: str, params: dict[str, str], tags: dict[str, dict[str, str]] | None = None
) -> list[Check]:
    found = tags or {}
    return authorization_requests(
        action, params, partition="aws", region="us-east-1", account="123456789012", tags=found.get
    )


def test_a_tagged_create_security_group_is_authorized_on_the_group_the_vpc_and_as_create_tags() -> None:
    checks = _requests(
        "ec2:CreateSecurityGroup",
        {
            "GroupName": "g",
            "VpcId": "vpc-1",
            "TagSpecification.1.ResourceType": "security-group",
            "TagSpecification.1.Tag.1.Key": OWNED,
            "TagSpecification.1.Tag.1.Value": "owned",
        },
        {"arn:aws:ec2:us-east-1:123456789012:vpc/vpc-1": {"Name": "main"}},
    )
    assert [(c.action, c.resource) for c in checks] == [
        ("ec2:CreateSecurityGroup", "arn:aws:ec2:us-east-1:123456789012:security-group/*"),
        ("ec2:CreateSecurityGroup", "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-1"),
        ("ec2:CreateTags", "arn:aws:ec2:us-east-1:123456789012:security-group/*"),
    ]
    assert checks[0].context == {f"aws:RequestTag/{OWNED}": "owned", "aws:TagKeys": (OWNED,)}
    assert checks[1].context == {"aws:ResourceTag/Name": "main"}
    assert checks[2].context["ec2:CreateAction"] == "CreateSecurityGroup"


def test_an_untagged_create_needs_no_tagging_permission() -> None:
    checks = _requests("elasticloadbalancing:CreateTargetGroup", {"Name": "tg", "Protocol": "TCP"})
    assert [(c.action, c.resource, dict(c.context)) for c in checks] == [
        (
            "elasticloadbalancing:CreateTargetGroup",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/*",
            {},
        )
    ]


def test_elbv2_tag_on_create_also_authorizes_add_tags_with_the_create_action() -> None:
    checks = _requests(
        "elasticloadbalancing:CreateListener",
        {"LoadBalancerArn": LB, "Port": "80", "Tags.member.1.Key": OWNED, "Tags.member.1.Value": "owned"},
        {LB: {OWNED: "owned"}},
    )
    assert [(c.action, c.resource) for c in checks] == [
        ("elasticloadbalancing:CreateListener", LB),
        ("elasticloadbalancing:AddTags", LB.replace(":loadbalancer/", ":listener/") + "/*"),
    ]
    assert checks[0].context[f"aws:ResourceTag/{OWNED}"] == "owned"
    assert checks[1].context["elasticloadbalancing:CreateAction"] == "CreateListener"


def test_tag_removal_is_authorized_with_the_keys_on_each_resource() -> None:
    checks = _requests(
        "elasticloadbalancing:RemoveTags",
        {"ResourceArns.member.1": LB, "TagKeys.member.1": "team", "TagKeys.member.2": "env"},
        {LB: {OWNED: "owned"}},
    )
    assert [(c.resource, dict(c.context)) for c in checks] == [
        (LB, {f"aws:ResourceTag/{OWNED}": "owned", "aws:TagKeys": ("team", "env")})
    ]


def test_describes_are_authorized_on_star_and_unknown_calls_fail_loudly() -> None:
    assert [c.resource for c in _requests("ec2:DescribeSecurityGroups", {})] == ["*"]
    assert [c.resource for c in _requests("tag:GetResources", {})] == ["*"]
    for action, params in [
        ("ec2:RunInstances", {}),
        ("elasticloadbalancing:CreateRule", {}),
        ("ec2:CreateSecurityGroup", {"GroupName": "g"}),
        ("ec2:CreateTags", {"ResourceId.1": "ami-1"}),
        ("iam:CreateRole", {}),
    ]:
        with pytest.raises(UnknownAction):
            _requests(action, params)


# -- the moto hook ------------------------------------------------------------------------------------


def test_moto_enforces_the_evaluators_decisions_for_role_sessions_only(
    aws_iam: Enforcement, monkeypatch: pytest.MonkeyPatch
) -> None:
    only = policy(
        allow("ec2:DescribeVpcs"),
        allow("ec2:CreateTags", "arn:aws:ec2:*:*:vpc/*", StringEquals={"aws:RequestTag/team": "web"}),
    )
    ec2 = restricted_client(monkeypatch, "ec2", role_session(controller_role(only)))
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "team", "Value": "web"}])  # moto alone would deny
    with pytest.raises(ClientError) as denied:
        ec2.create_tags(Resources=[vpc], Tags=[{"Key": "team", "Value": "db"}])
    assert error_code(denied.value) == "UnauthorizedOperation"
    with pytest.raises(ClientError) as denied:
        ec2.describe_subnets()
    assert error_code(denied.value) == "UnauthorizedOperation"
    elbv2 = restricted_client(monkeypatch, "elbv2", role_session(controller_role(only, name="other")))
    with pytest.raises(ClientError) as denied:
        elbv2.describe_load_balancers()
    assert error_code(denied.value) == "AccessDenied"

    assert [(c.action, c.allowed) for c in aws_iam.calls] == [
        ("ec2:DescribeVpcs", True),
        ("ec2:CreateTags", True),
        ("ec2:CreateTags", False),
        ("ec2:DescribeSubnets", False),
        ("elasticloadbalancing:DescribeLoadBalancers", False),
    ]
    # the account's root is not restricted, and its calls are not recorded
    boto3.client("ec2").create_tags(Resources=[vpc], Tags=[{"Key": "team", "Value": "db"}])
    assert len(aws_iam.calls) == 5


def test_a_call_the_evaluator_cannot_model_fails_the_request_and_the_test(
    aws_iam: Enforcement, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2 = restricted_client(monkeypatch, "ec2", role_session(controller_role(policy(allow("ec2:*")))))
    with pytest.raises(ClientError) as failure:
        ec2.create_vpc(CidrBlock="10.9.0.0/16")
    assert error_code(failure.value) == "IamEvaluatorFailure"
    assert aws_iam.errors == ["ec2:CreateVpc: UnknownAction: ec2:CreateVpc"]
    aws_iam.errors.clear()  # expected here; the fixture fails any other test that has one


def test_only_the_first_load_balancer_of_an_account_needs_the_elb_service_linked_role() -> None:
    from tests.iam.aws_iam import service_linked_role_check

    first = service_linked_role_check(
        "elasticloadbalancing:CreateLoadBalancer", partition="aws", account="123456789012", role_exists=False
    )
    assert first is not None and first.action == "iam:CreateServiceLinkedRole"
    assert first.context == {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}
    assert first.resource.endswith(
        ":role/aws-service-role/elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing"
    )
    assert (
        service_linked_role_check(
            "elasticloadbalancing:CreateLoadBalancer",
            partition="aws",
            account="123456789012",
            role_exists=True,
        )
        is None
    )
    assert (
        service_linked_role_check(
            "elasticloadbalancing:CreateTargetGroup",
            partition="aws",
            account="123456789012",
            role_exists=False,
        )
        is None
    )
    allow = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
            }
        ],
    }
    assert evaluate([allow], first).allowed
    other = Check("iam:CreateServiceLinkedRole", first.resource, {"iam:AWSServiceName": "ec2.amazonaws.com"})
    assert not evaluate([allow], other).allowed

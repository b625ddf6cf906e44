"""The IRSA trust policy (terraform/aws/trust-policy.json) lets exactly the controller's ServiceAccount in.

As on EKS: the pod's projected ServiceAccount token goes to ``sts:AssumeRoleWithWebIdentity``
(unsigned), STS checks the role's trust policy against the token's issuer, ``sub`` and ``aud``
(:meth:`tests.iam.aws_enforcement.Enforcement.check_web_identity`), and the session it returns has
the controller's policy.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.config
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from providers.aws.client import error_code
from tests.iam.aws_enforcement import Enforcement
from tests.iam.aws_policy import (
    ROLE_NAME,
    irsa_role,
    oidc_token,
    policy_documents,
    restricted_client,
)
from tests.plugins.moto_server import REGION

SERVICE_ACCOUNT = f"system:serviceaccount:kube-system:{ROLE_NAME}"


def _assume(role_arn: str, token: str) -> dict[str, Any]:
    sts = boto3.session.Session(region_name=REGION).client(
        "sts", config=botocore.config.Config(signature_version=UNSIGNED)
    )
    credentials: dict[str, Any] = sts.assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName="ccm-lb", WebIdentityToken=token
    )["Credentials"]
    return credentials


def test_the_controllers_service_account_gets_a_session_with_the_controller_policy(
    aws_iam: Enforcement, monkeypatch: pytest.MonkeyPatch
) -> None:
    role_arn = irsa_role(policy_documents())
    creds = _assume(role_arn, oidc_token(sub=SERVICE_ACCOUNT))
    env = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }
    ec2 = restricted_client(monkeypatch, "ec2", env)
    ec2.describe_subnets()
    with pytest.raises(ClientError) as denied:
        ec2.delete_security_group(GroupId="sg-12345678")
    assert error_code(denied.value) == "UnauthorizedOperation"
    assert [(c.principal, c.action, c.allowed) for c in aws_iam.calls] == [
        (f"web-identity:{SERVICE_ACCOUNT}", "sts:AssumeRoleWithWebIdentity", True),
        (f"arn:aws:sts::123456789012:assumed-role/{ROLE_NAME}/ccm-lb", "ec2:DescribeSubnets", True),
        (f"arn:aws:sts::123456789012:assumed-role/{ROLE_NAME}/ccm-lb", "ec2:DeleteSecurityGroup", False),
    ]


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"sub": "system:serviceaccount:default:ccm-lb"}, "AccessDenied"),
        ({"sub": "system:serviceaccount:kube-system:other"}, "AccessDenied"),
        ({"sub": "system:serviceaccount:kube-system:ccm-lb-x"}, "AccessDenied"),
        ({"sub": SERVICE_ACCOUNT, "aud": "https://kubernetes.default.svc"}, "AccessDenied"),
        (
            {"sub": SERVICE_ACCOUNT, "issuer": "https://oidc.eks.us-east-1.amazonaws.com/id/OTHER"},
            "InvalidIdentityToken",
        ),
    ],
    ids=[
        "another namespace",
        "another service account",
        "a longer name",
        "another audience",
        "another cluster",
    ],
)
def test_any_other_identity_is_refused(aws_iam: Enforcement, claims: dict[str, str], code: str) -> None:
    role_arn = irsa_role(policy_documents())
    with pytest.raises(ClientError) as refused:
        _assume(role_arn, oidc_token(**claims))
    assert error_code(refused.value) == code

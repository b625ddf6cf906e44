"""The shipped IAM policy, rendered as Terraform renders it, and the controller running under it.

``render`` does what Terraform's ``templatefile()`` does with ``terraform/aws/policy.json`` and
``upstream-policy.json``, the two managed policies main.tf attaches to the role (only
``${name}`` interpolation is used there, and nothing else may appear). The ``aws_iam`` fixture turns
on enforcement in the test's moto server (:mod:`tests.iam.aws_enforcement`); ``controller_role`` makes
the role the controller runs as (the rendered policies, nothing else) and returns its session
credentials, obtained through moto STS; ``restricted_provider`` is the AWS provider with those
credentials, while the test itself keeps the account's root credentials to seed and inspect.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from providers.aws.client import AWSClients
from providers.aws.config import AWSConfig
from providers.aws.provider import AWSProvider
from tests.iam.aws_enforcement import PARTITION, Enforcement, credentials_env, network_load_balancer_arns
from tests.plugins.moto_server import REGION
from tests.providers.aws.aws_behaviour import AWSBehaviour
from tests.support.aws import CLUSTER, CLUSTER_TAG, Network, seed_network

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform" / "aws"
ROLE_NAME = "ccm-lb"
OIDC_HOST = "oidc.eks.us-east-1.amazonaws.com/id/5C5C0C5CC0CC0B0C0C0C0C0C0C0C0C0C"
_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def render(template: str, **values: str) -> str:
    """Terraform's ``templatefile()`` for templates that only interpolate plain variables."""
    if "%{" in template:
        raise ValueError("template directives (%{...}) are not used in these templates")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"the template uses ${{{name}}}, which is not a template variable")
        return values[name]

    return _INTERPOLATION.sub(substitute, template)


# The managed policies main.tf attaches to the role: policy.json is full (a managed policy holds 6,144
# characters), so Classic ELBs have one of their own, and so do the upstream provider's load balancers
# a replaced or taken-over Service leaves.
POLICY_FILES = ("policy.json", "classic-policy.json", "upstream-policy.json")


def policy_template(name: str = "policy.json") -> str:
    return (TERRAFORM / name).read_text()


def policy_documents(cluster_name: str = CLUSTER, *, without: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Each rendered policy the role has (:data:`POLICY_FILES`), optionally without some statements (by
    Sid); a policy left with none is left out, as an empty policy cannot be attached."""
    documents: list[dict[str, Any]] = [
        json.loads(render(policy_template(name), cluster_name=cluster_name, partition=PARTITION))
        for name in POLICY_FILES
    ]
    found = {s["Sid"] for d in documents for s in d["Statement"]}
    missing = set(without) - found
    assert not missing, f"no statements {missing} in {', '.join(POLICY_FILES)}"
    for document in documents:
        document["Statement"] = [s for s in document["Statement"] if s["Sid"] not in without]
    return [d for d in documents if d["Statement"]]


def policy_document(cluster_name: str = CLUSTER, *, without: Sequence[str] = ()) -> dict[str, Any]:
    """Every statement the role has, as one document (to read; roles get :func:`policy_documents`)."""
    documents = policy_documents(cluster_name, without=without)
    return {"Version": "2012-10-17", "Statement": [s for d in documents for s in d["Statement"]]}


def trust_policy_document(*, oidc_provider_arn: str, namespace: str, service_account: str) -> dict[str, Any]:
    """The IRSA trust policy, with the OIDC host derived from the provider ARN as main.tf does."""
    oidc_host = oidc_provider_arn.split(":oidc-provider/", 1)[1]
    text = render(
        (TERRAFORM / "trust-policy.json").read_text(),
        oidc_provider_arn=oidc_provider_arn,
        oidc_host=oidc_host,
        namespace=namespace,
        service_account=service_account,
    )
    document: dict[str, Any] = json.loads(text)
    return document


def sids() -> list[str]:
    return [s["Sid"] for s in policy_document()["Statement"]]


@pytest.fixture(name="aws_iam")
def aws_iam_fixture(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Enforcement]:
    """IAM enforced for IAM users and role sessions in the test's moto account."""
    network_load_balancer_arns(monkeypatch)
    enforcement = Enforcement()
    enforcement.install(monkeypatch)
    yield enforcement
    assert not enforcement.errors, f"the IAM evaluator could not decide: {enforcement.errors}"


Policies = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def _attach(iam: Any, role: str, policies: Policies) -> None:
    """Each policy as a managed policy of its own, attached to ``role`` (as main.tf attaches them)."""
    documents = [policies] if isinstance(policies, Mapping) else list(policies)
    for index, document in enumerate(documents):
        arn = iam.create_policy(PolicyName=f"{role}-policy-{index}", PolicyDocument=json.dumps(document))[
            "Policy"
        ]["Arn"]
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)


def controller_role(policy: Policies, *, name: str = ROLE_NAME) -> str:
    """A role with exactly ``policy`` (or each of several) attached, as Terraform attaches them; returns
    its ARN."""
    iam = boto3.client("iam")  # the account's root credentials
    account = boto3.client("sts").get_caller_identity()["Account"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{PARTITION}:iam::{account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role_arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    _attach(iam, name, policy)
    return role_arn


def oidc_token(*, sub: str, aud: str = "sts.amazonaws.com", issuer: str = f"https://{OIDC_HOST}") -> str:
    """A ServiceAccount token as EKS projects it for IRSA (unsigned: moto STS does not verify it)."""

    def part(data: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {
        "iss": issuer,
        "sub": sub,
        "aud": [aud],
        "exp": int(time.time()) + 3600,
        "iat": int(time.time()),
    }
    return f"{part({'alg': 'RS256', 'kid': 'test'})}.{part(claims)}.c2lnbmF0dXJl"


def irsa_role(
    policy: Policies,
    *,
    namespace: str = "kube-system",
    service_account: str = ROLE_NAME,
    issuer: str = f"https://{OIDC_HOST}",
) -> str:
    """The cluster's OIDC provider (``issuer``, the cluster's service-account issuer) and the role
    Terraform makes (trust-policy.json, policy attached)."""
    iam = boto3.client("iam")
    provider_arn: str = iam.create_open_id_connect_provider(
        Url=issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9" * 40]
    )["OpenIDConnectProviderArn"]
    trust = trust_policy_document(
        oidc_provider_arn=provider_arn, namespace=namespace, service_account=service_account
    )
    role_arn: str = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    _attach(iam, ROLE_NAME, policy)
    return role_arn


def irsa_env(*, role_arn: str, token_file: Path) -> dict[str, str | None]:
    """What EKS's pod identity webhook gives a pod (and no access key): boto3 then exchanges the token
    for a session of the role through ``sts:AssumeRoleWithWebIdentity``."""
    return {
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_ROLE_ARN": role_arn,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_SESSION_NAME": "ccm-lb",
    }


def role_session(role_arn: str) -> dict[str, str]:
    """Session credentials of the role, from moto STS, as environment variables."""
    creds = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="ccm-lb")["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }


def session_clients(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> AWSClients:
    """The provider's clients, holding the role session's credentials (botocore reads them once)."""
    with credentials_env(monkeypatch, env):
        return AWSClients(region=REGION)


def provider_with(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> AWSProvider:
    """The AWS provider with these credentials (moto made AWS-like; it looks things up as root)."""
    clients = session_clients(monkeypatch, env)
    provider = AWSProvider(
        cluster_name=CLUSTER, config=AWSConfig(), clients=clients, orphan_grace_seconds=0.0
    )
    AWSBehaviour(provider.clients).install()
    return provider


class RestrictedProviders:
    """Providers running as one role that has exactly ``policy``; each call is a controller (re)start."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, policy: Policies) -> None:
        self.monkeypatch = monkeypatch
        self.env = role_session(controller_role(policy))

    def __call__(self) -> AWSProvider:
        return provider_with(self.monkeypatch, self.env)


def restricted_client(monkeypatch: pytest.MonkeyPatch, service: str, env: Mapping[str, str]) -> Any:
    """A boto3 client with these credentials (a session of its own: the default one caches root's)."""
    with credentials_env(monkeypatch, env):
        return boto3.session.Session(region_name=REGION).client(service)


@pytest.fixture(name="aws_network")
def aws_network_fixture(aws: str) -> Network:
    """The seeded VPC, a third subnet, and the node security group tagged ``shared`` (as eksctl does)."""
    network = seed_network()
    ec2 = boto3.client("ec2")
    ec2.create_tags(Resources=[network.node_sg], Tags=[{"Key": CLUSTER_TAG, "Value": "shared"}])
    network.subnets["us-east-1c"] = ec2.create_subnet(
        VpcId=network.vpc_id,
        CidrBlock="10.0.3.0/24",
        AvailabilityZone="us-east-1c",
        TagSpecifications=[
            {
                "ResourceType": "subnet",
                "Tags": [
                    {"Key": CLUSTER_TAG, "Value": "owned"},
                    {"Key": "kubernetes.io/role/elb", "Value": "1"},
                ],
            }
        ],
    )["Subnet"]["SubnetId"]
    return network

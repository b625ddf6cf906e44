"""The real ``ccm run --cloud-provider=aws`` process, with IRSA credentials and only the shipped policy.

As deployed on EKS: no access key in the environment, only ``AWS_ROLE_ARN`` and
``AWS_WEB_IDENTITY_TOKEN_FILE`` (what the pod identity webhook sets), so boto3 exchanges the
ServiceAccount token for a session of the role that ``terraform/aws`` makes (its trust policy and its
policy, rendered from the module's templates). The process is started the way tests/e2e starts it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests import kube
from tests.e2e.test_aws_lifecycle import _lb, _node, _targets_of, run_ccm  # noqa: F401 - run_ccm is a fixture
from tests.iam.aws_enforcement import Enforcement, credentials_env
from tests.iam.aws_policy import (  # noqa: F401 - fixtures
    ROLE_NAME,
    aws_iam_fixture,
    aws_network_fixture,
    irsa_env,
    irsa_role,
    oidc_token,
    policy_document,
)
from tests.providers.aws.conftest import Network, add_instance, service_resources

SERVICE_ACCOUNT = f"system:serviceaccount:kube-system:{ROLE_NAME}"


def test_ccm_run_takes_a_service_from_creation_to_deletion_with_irsa_and_only_the_shipped_policy(
    aws_iam: Enforcement,
    aws_network: Network,
    kube_api: client.ApiClient,
    namespace: str,
    run_ccm: Callable[..., Any],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role_arn = irsa_role(policy_document())
    token = tmp_path / "token"
    token.write_text(oidc_token(sub=SERVICE_ACCOUNT))
    nodes = [_node(kube_api, instance) for instance in aws_network.instances]
    try:
        # the process's environment only; the test stays root
        with credentials_env(monkeypatch, irsa_env(role_arn=role_arn, token_file=token)):
            run_ccm()
        ports = [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
        ]
        kube.create_service(kube_api, namespace, "web", ports=ports)

        # created: the hostname of the one NLB in the status, every node a target of both ports
        points = kube.eventually(
            lambda: kube.ingress(kube.get_service(kube_api, namespace, "web")),
            timeout=60,
            message="an address from the AWS provider",
        )
        lb = _lb()
        assert lb is not None and points[0]["hostname"] == lb["DNSName"]
        instances = sorted(i for i, _ in aws_network.instances)
        assert _targets_of(80) == _targets_of(443) == instances

        # a node added, then one removed
        added = add_instance(aws_network)
        nodes.append(_node(kube_api, added))
        kube.eventually(
            lambda: _targets_of(443) == sorted([*instances, added[0]]), timeout=60, message="the new node"
        )
        kube.delete_node(kube_api, nodes.pop(0))
        remaining = sorted(i for i, _ in aws_network.instances[1:])
        kube.eventually(lambda: _targets_of(80) == remaining, timeout=60, message="the removed node gone")

        # deleted: nothing of the Service is left
        kube.delete_service(kube_api, namespace, "web")
        kube.eventually(lambda: kube.get_service(kube_api, namespace, "web") is None, timeout=60)
        assert service_resources() == []
        assert _lb() is None
    finally:
        for name in nodes:
            kube.delete_node(kube_api, name)

    assert aws_iam.denials == []
    session = f"arn:aws:sts::123456789012:assumed-role/{ROLE_NAME}/ccm-lb"
    assert {c.principal for c in aws_iam.calls} == {f"web-identity:{SERVICE_ACCOUNT}", session}
    assert {"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer"} <= {
        c.action for c in aws_iam.calls if c.principal == session
    }

"""The real ``ccm run --cloud-provider=aws`` process, with IRSA credentials and only the shipped policy.

As deployed on EKS: no access key in the environment, only ``AWS_ROLE_ARN`` and
``AWS_WEB_IDENTITY_TOKEN_FILE`` (what the pod identity webhook sets), so boto3 exchanges the
ServiceAccount token for a session of the role that ``terraform/aws`` makes (its trust policy and its
policy, rendered from the module's templates). The process is started the way tests/e2e starts it
(:mod:`tests.support.ccm_run`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane
from tests.iam.aws_enforcement import Enforcement, credentials_env
from tests.iam.aws_policy import (
    ROLE_NAME,
    irsa_env,
    irsa_role,
    oidc_token,
    policy_documents,
)
from tests.support import kube
from tests.support.aws import (
    Network,
    add_instance,
    ccm_flags,
    load_balancer,
    register_node,
    service_resources,
    targets_of,
)
from tests.support.ccm_run import CcmProcesses

SERVICE_ACCOUNT = f"system:serviceaccount:kube-system:{ROLE_NAME}"


def test_ccm_run_takes_a_service_from_creation_to_deletion_with_irsa_and_only_the_shipped_policy(
    aws_iam: Enforcement,
    aws_network: Network,
    kube_api: client.ApiClient,
    namespace: str,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role_arn = irsa_role(policy_documents())
    token = tmp_path / "token"
    token.write_text(oidc_token(sub=SERVICE_ACCOUNT))
    nodes = [register_node(kube_api, instance) for instance in aws_network.instances]
    try:
        # the process's environment only; the test stays root
        with credentials_env(monkeypatch, irsa_env(role_arn=role_arn, token_file=token)):
            ccm_run.start(*ccm_flags(control_plane))
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
        lb = load_balancer()
        assert lb is not None and points[0]["hostname"] == lb["DNSName"]
        instances = sorted(i for i, _ in aws_network.instances)
        assert targets_of(80) == targets_of(443) == instances

        # a node added, then one removed
        added = add_instance(aws_network)
        nodes.append(register_node(kube_api, added))
        kube.eventually(
            lambda: targets_of(443) == sorted([*instances, added[0]]), timeout=60, message="the new node"
        )
        kube.delete_node(kube_api, nodes.pop(0))
        remaining = sorted(i for i, _ in aws_network.instances[1:])
        kube.eventually(lambda: targets_of(80) == remaining, timeout=60, message="the removed node gone")

        # deleted: nothing of the Service is left
        kube.delete_service(kube_api, namespace, "web")
        kube.eventually(lambda: kube.get_service(kube_api, namespace, "web") is None, timeout=60)
        assert service_resources() == []
        assert load_balancer() is None
    finally:
        for name in nodes:
            kube.delete_node(kube_api, name)

    assert aws_iam.denials == []
    session = f"arn:aws:sts::123456789012:assumed-role/{ROLE_NAME}/ccm-lb"
    assert {c.principal for c in aws_iam.calls} == {f"web-identity:{SERVICE_ACCOUNT}", session}
    assert {"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer"} <= {
        c.action for c in aws_iam.calls if c.principal == session
    }

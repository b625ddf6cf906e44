"""The whole install: the chart's arguments, its RBAC, and the Terraform IAM role reached through IRSA.

The chart is applied to the real apiserver; ``ccm run`` gets the container's arguments from the
rendered Deployment, the ServiceAccount's token as its only Kubernetes credential, the ConfigMap's cloud
config at a local path (as the kubelet would mount it) and moto, with IAM enforced, as its AWS. Its only
AWS credential is what EKS's pod identity webhook gives a pod: ``AWS_ROLE_ARN`` and a token file holding
a token the API server issued to the chart's ServiceAccount for audience ``sts.amazonaws.com``, which
boto3 exchanges for a session of the role ``terraform/aws`` makes (its trust policy, checked against the
token's claims, and exactly its policy). It must elect itself on the chart's Lease and take a Service
through create, a node change and delete. Anything the chart's RBAC or the IAM policy forgot would show
as a 403 or a denied call here.
"""

from __future__ import annotations

import socket
from pathlib import Path

import boto3
import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane, free_port
from tests.deploy import chart
from tests.deploy.chart import FINALIZER, Release, lease
from tests.iam.aws_enforcement import Enforcement, credentials_env
from tests.iam.aws_policy import (
    irsa_env,
    irsa_role,
    policy_documents,
)
from tests.support import kube
from tests.support.aws import Network, ccm_flags, register_node, service_resources, targets_of
from tests.support.ccm_run import CcmProcesses


def controller_args(release: Release, tmp_path: Path) -> list[str]:
    """The container's args, with the mounted cloud config at a local path, serving on loopback."""
    args = chart.args_of(release.docs)
    mount = chart.flag(args, "cloud-config")
    assert mount, "the release has a cloud config"
    local = tmp_path / "cloud.conf"
    local.write_text(chart.one(release.docs, "ConfigMap")["data"][Path(mount).name])
    return [
        *(f"--cloud-config={local}" if a.startswith("--cloud-config=") else a for a in args),
        f"--kubeconfig={release.kubeconfig}",
        "--bind-address=127.0.0.1",
    ]


def irsa_environment(
    *, release: Release, kube_api: client.ApiClient, control_plane: ControlPlane, tmp_path: Path
) -> dict[str, str | None]:
    """What the pod identity webhook gives the chart's pod: the role and a token for STS, nothing else."""
    role_arn = irsa_role(
        policy_documents(),
        namespace=release.namespace,
        service_account=release.service_account,
        issuer=control_plane.service_account_issuer,
    )
    token = client.CoreV1Api(kube_api).create_namespaced_service_account_token(
        release.service_account,
        release.namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=["sts.amazonaws.com"], expiration_seconds=3600)
        ),
    )
    token_file = tmp_path / "aws-web-identity-token"
    token_file.write_text(token.status.token)
    return irsa_env(role_arn=role_arn, token_file=token_file)


def test_the_controller_with_the_charts_args_identity_and_iam_role_runs_a_service_through_its_life(
    release: Release,
    kube_api: client.ApiClient,
    control_plane: ControlPlane,
    aws_iam: Enforcement,
    aws_network: Network,
    ccm_run: CcmProcesses,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = release.namespace
    network = aws_network
    nodes = [register_node(kube_api, instance) for instance in network.instances[:2]]
    try:
        args = controller_args(release, tmp_path)
        assert chart.flag(args, "leader-elect") == "true"
        assert chart.flag(args, "leader-elect-resource-namespace") == ns
        port = free_port()
        irsa = irsa_environment(
            release=release, kube_api=kube_api, control_plane=control_plane, tmp_path=tmp_path
        )
        with credentials_env(monkeypatch, irsa):  # the process's environment only; the test stays root
            process = ccm_run.start(*ccm_flags(control_plane), *args, f"--secure-port={port}", port=port)

        # Leader on the chart's Lease, in the release namespace: the Role allowed create and update.
        held = kube.eventually(
            lambda: (lease(kube_api, release) or {}).get("spec", {}).get("holderIdentity"),
            timeout=60,
            message=f"the Lease {ns}/{release.lease} to be held",
        )
        assert held.startswith(f"{socket.gethostname()}_")

        # The probes the chart points the kubelet at answer on the secure port.
        def probe(path: str) -> bool:
            process.assert_running()
            try:
                return process.get(path)[0] == 200
            except OSError:
                return False

        kube.eventually(
            lambda: probe("/healthz") and probe("/readyz"), timeout=60, message="/healthz and /readyz 200"
        )

        # Create: an address in the status and the finalizer, written with the ServiceAccount's rights.
        kube.create_service(kube_api, ns, "web")
        points = kube.eventually(
            lambda: kube.ingress(kube.get_service(kube_api, ns, "web")), timeout=60, message="an address"
        )
        lbs = boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]
        assert [lb["DNSName"] for lb in lbs] == [points[0]["hostname"]]
        service = kube.get_service(kube_api, ns, "web")
        assert FINALIZER in service["metadata"]["finalizers"]
        assert sorted(targets_of(80)) == sorted(iid for iid, _ in network.instances[:2])
        kube.eventually(
            lambda: "EnsuredLoadBalancer" in kube.reasons(kube_api, ns, "web"),
            message="an EnsuredLoadBalancer event",
        )

        # A node change: the third instance becomes a target.
        nodes.append(register_node(kube_api, network.instances[2]))
        everyone = sorted(iid for iid, _ in network.instances)
        kube.eventually(lambda: targets_of(80) == everyone, timeout=60, message="the new node as a target")

        # Delete: the finalizer is removed once the load balancer is gone; nothing is left in AWS.
        kube.delete_service(kube_api, ns, "web")
        kube.eventually(
            lambda: kube.get_service(kube_api, ns, "web") is None, timeout=60, message="the Service gone"
        )
        assert service_resources() == []
        assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []

        assert (lease(kube_api, release) or {})["spec"]["holderIdentity"] == held
        process.assert_running()
        log = process.log()
        assert "forbidden" not in log.lower(), "the controller was refused something:\n" + log[-5000:]
    finally:
        for name in nodes:
            kube.delete_node(kube_api, name)

    # Every AWS call was the chart's ServiceAccount, through the role, and none was denied.
    assert aws_iam.denials == []
    web_identity = f"web-identity:system:serviceaccount:{ns}:{release.service_account}"
    principals = {c.principal for c in aws_iam.calls}
    assert web_identity in principals and len(principals) == 2, principals
    assert "elasticloadbalancing:CreateLoadBalancer" in {c.action for c in aws_iam.calls}

"""Fixtures for the deploy tests: the tools, and the chart installed on the real apiserver.

``release`` renders the chart with the real helm into a namespace of its own (one per test module, a
release name per namespace, so cluster-scoped names never clash), applies it with the real
``kubectl apply --server-side`` as admin, and gives the ServiceAccount's identity: a token from the
TokenRequest API, as the kubelet would mount it, in a kubeconfig. The Deployment's pods never run
(there is no scheduler or kubelet); the tests act as the ServiceAccount instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane
from tests.deploy import chart
from tests.deploy.chart import Release
from tests.deploy.image import built_image, summary
from tests.iam.aws_policy import aws_iam_fixture, aws_network_fixture
from tests.plugins.controlplane import api_client_for
from tests.support import kube
from tests.support.aws import CLUSTER

# IAM enforced in moto, for the end-to-end test; the session's image, for the tests of the image
__all__ = ["aws_iam_fixture", "aws_network_fixture", "built_image"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The image's build report (its size against the budget) in the run's output, CI's included."""
    lines = summary()
    if lines:
        terminalreporter.section("the image (hack/build-image)")
        for line in lines:
            terminalreporter.write_line(line)


# The chart's values for the AWS tests: moto's region in the cloud config (so a ConfigMap is rendered,
# applied and, in the end-to-end test, read by the controller), and the cluster name moto is seeded with.
VALUES = {
    "cloudProvider": "aws",
    "clusterName": CLUSTER,
    "cloudConfig": "[Global]\nRegion = us-east-1\n",
}


@pytest.fixture(scope="session")
def helm(tool: Callable[[str], Path]) -> Path:
    return tool("helm")


@pytest.fixture(scope="session")
def kubectl(tool: Callable[[str], Path]) -> Path:
    return tool("kubectl")


@pytest.fixture(scope="module")
def release(
    helm: Path,
    kubectl: Path,
    control_plane: ControlPlane,
    kube_api: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    kube.raw(kube_api, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    name = f"ccm-lb-{namespace}"
    folder = tmp_path_factory.mktemp("release")
    values = folder / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))
    text = chart.render_text(helm, "--values", str(values), release=name, namespace=namespace)
    manifest = folder / "release.yaml"
    manifest.write_text(text)
    docs = chart.parse(text)
    admin = ["--kubeconfig", str(control_plane.kubeconfig)]
    applied = chart.run(
        [kubectl, *admin, "apply", "--server-side", "--field-manager=ccm-lb-tests", "-f", manifest]
    )
    try:
        assert applied.returncode == 0, (
            f"kubectl apply --server-side failed:\n{applied.stdout}{applied.stderr}"
        )
        service_account = chart.one(docs, "ServiceAccount")["metadata"]["name"]
        lease = chart.flag(chart.args_of(docs), "leader-elect-resource-name")
        assert lease, "the workload names no lease"
        token = client.CoreV1Api(kube_api).create_namespaced_service_account_token(
            service_account,
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
            ),
        )
        kubeconfig = control_plane.token_kubeconfig(
            name=f"{namespace}-{service_account}", token=token.status.token
        )
        api = api_client_for(kubeconfig)
        yield Release(
            name=name,
            namespace=namespace,
            docs=docs,
            manifest=manifest,
            apply_output=applied.stdout,
            service_account=service_account,
            lease=lease,
            kubeconfig=kubeconfig,
            api=api,
        )
        api.close()
    finally:
        # The ClusterRole and its binding outlive the namespace: remove everything that was applied.
        chart.run([kubectl, *admin, "delete", "--ignore-not-found", "--wait=false", "-f", manifest])

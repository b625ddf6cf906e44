"""Rendering the Helm chart with the real helm, and reading what it rendered, for the deploy tests."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import kube

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "ccm-lb"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
MANIFESTS = REPO / "deploy" / "manifests"
UPDATE_MANIFESTS = REPO / "hack" / "update-manifests.sh"
LEASE = (
    "ccm-lb-controller"  # ccm run's default --leader-elect-resource-name, and the chart's for release ccm-lb
)

Doc = dict[str, Any]


def run(
    cmd: Sequence[str | Path], *, timeout: float = 120.0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text; the caller judges the exit code."""
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def template(
    helm: Path, *args: str, release: str = "ccm-lb", namespace: str = "kube-system"
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart; ``args`` are more helm flags (``--set``, ``-f``)."""
    return run([helm, "template", release, CHART, "--namespace", namespace, *args])


def render_text(helm: Path, *args: str, release: str = "ccm-lb", namespace: str = "kube-system") -> str:
    result = template(helm, *args, release=release, namespace=namespace)
    assert result.returncode == 0, f"helm template {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def render(helm: Path, *args: str, release: str = "ccm-lb", namespace: str = "kube-system") -> list[Doc]:
    """The rendered objects, parsed."""
    return parse(render_text(helm, *args, release=release, namespace=namespace))


def parse(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def of_kind(docs: Sequence[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: Sequence[Doc], kind: str) -> Doc:
    found = of_kind(docs, kind)
    assert len(found) == 1, (
        f"expected one {kind}, rendered: {[(d['kind'], d['metadata']['name']) for d in docs]}"
    )
    return found[0]


def workload(docs: Sequence[Doc]) -> Doc:
    found = [doc for doc in docs if doc["kind"] in ("Deployment", "DaemonSet")]
    assert len(found) == 1, f"expected one workload, rendered: {[d['kind'] for d in docs]}"
    return found[0]


def container(docs: Sequence[Doc]) -> Doc:
    containers = workload(docs)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Doc = containers[0]
    return result


def args_of(docs: Sequence[Doc]) -> list[str]:
    return list(container(docs)["args"])


def flag(args: Sequence[str], name: str) -> str | None:
    """The value of the last ``--name=value`` in ``args`` (None when absent), as argparse reads it."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return values[-1] if values else None


@dataclass(frozen=True)
class Release:
    """The chart as applied to the apiserver, and the identity of its ServiceAccount."""

    name: str
    namespace: str
    docs: list[Doc]
    manifest: Path
    apply_output: str
    service_account: str
    lease: str
    kubeconfig: Path  # the ServiceAccount's token, nothing else
    api: client.ApiClient  # the same identity


FINALIZER = "service.kubernetes.io/load-balancer-cleanup"  # the service controller's


def lease(api: client.ApiClient, release: Release) -> dict[str, Any] | None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{release.namespace}/leases/{release.lease}"
    try:
        result: dict[str, Any] = kube.raw(api, "GET", path)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return result

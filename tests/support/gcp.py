"""The fake GCE project seeded like a cluster's, the GCP provider on it, and ``ccm run`` against it.

Project ``test-project`` in ``us-central1``, the network ``default`` with the subnetwork ``nodes``,
and instances tagged ``k8s-node`` in two zones (the fixtures seed them); :func:`gce_config` is the
provider's configuration for it and :func:`write_cloud_config` the same as the ``--cloud-config``
file ``ccm run --cloud-provider=gcp`` reads (:func:`ccm_flags`).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ccm.cloudprovider import LoadBalancerRequest, Node
from ccm.envtest.controlplane import ControlPlane
from fakegce import FakeCompute
from providers.gcp.config import GCEConfig
from providers.gcp.provider import GCEProvider

PROJECT, REGION = "test-project", "us-central1"
ZONES = ("us-central1-a", "us-central1-b")
NODE_TAG = "k8s-node"

RequestFactory = Callable[..., LoadBalancerRequest]


@contextlib.contextmanager
def seeded_gce(*, instances: int = 4, prefix: str = "node") -> Iterator[FakeCompute]:
    """The fake project: network ``default``, subnetwork ``nodes`` (10.128.0.0/20), and ``instances``
    instances ``<prefix>-<i>`` tagged :data:`NODE_TAG`, alternating between the two :data:`ZONES`."""
    with FakeCompute(project=PROJECT, region=REGION) as fake:
        fake.seed_network("default")
        fake.seed_subnetwork("nodes", "default", "10.128.0.0/20")
        for i in range(instances):
            fake.seed_instance(
                ZONES[i % 2], f"{prefix}-{i}", tags=(NODE_TAG,), network="default", subnetwork="nodes"
            )
        yield fake


def gce_config(url: str, *, upstream_cluster_id: str = "") -> GCEConfig:
    """The GCP provider's configuration for the seeded project, its API at ``url`` (no credentials)."""
    return GCEConfig(
        upstream_cluster_id=upstream_cluster_id,
        project_id=PROJECT,
        region=REGION,
        network_name="default",
        subnetwork_name="nodes",
        node_tags=(NODE_TAG,),
        api_endpoint=url,
        token_url="nil",
    )


def new_provider(gce: FakeCompute, *, upstream_cluster_id: str = "") -> GCEProvider:
    """A GCP provider of cluster ``test`` on the fake, sweeping orphans at once (no grace);
    ``upstream_cluster_id``: the cloud config's, sharing upstream's instance groups."""
    return GCEProvider(
        cluster_name="test",
        config=gce_config(gce.url, upstream_cluster_id=upstream_cluster_id),
        orphan_grace_seconds=0.0,
    )


def nodes(*indexes: int) -> tuple[Node, ...]:
    """The Nodes of the seeded instances ``node-<i>`` (zones alternate), as a request carries them."""
    return tuple(
        Node(name=f"node-{i}", provider_id=f"gce://{PROJECT}/{ZONES[i % 2]}/node-{i}", zone=ZONES[i % 2])
        for i in indexes
    )


def lb_resources(gce: FakeCompute) -> dict[str, list[str]]:
    """Names of every LB-related resource in the fake project."""
    kinds = ("forwardingRules", "backendServices", "healthChecks", "firewalls", "instanceGroups", "addresses")
    return {kind: sorted(r["name"] for r in gce.resources(kind)) for kind in kinds if gce.resources(kind)}


def write_cloud_config(path: Path, gce: FakeCompute, *, upstream_cluster_id: str = "") -> Path:
    """The ``--cloud-config`` of :func:`gce_config`, in the upstream GCE provider's format."""
    path.write_text(
        f"[global]\nproject-id = {PROJECT}\nregion = {REGION}\nnetwork-name = default\n"
        f"subnetwork-name = nodes\nnode-tags = {NODE_TAG}\napi-endpoint = {gce.url}\ntoken-url = nil\n"
        + (f"upstream-cluster-id = {upstream_cluster_id}\n" if upstream_cluster_id else "")
    )
    return path


def ccm_migrate(
    control_plane: ControlPlane, cloud_config: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    """``ccm migrate --cloud-provider=gcp`` on the fake project of ``cloud_config``, as a process, with
    :func:`ccm_flags`' cluster name."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ccm.cli",
            "migrate",
            "--cloud-provider=gcp",
            f"--cloud-config={cloud_config}",
            f"--kubeconfig={control_plane.kubeconfig}",
            "--cluster-name=e2e",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ccm_flags(control_plane: ControlPlane, cloud_config: Path) -> tuple[str, ...]:
    """``ccm run`` on the fake project of ``cloud_config`` (:func:`write_cloud_config`), cluster ``e2e``."""
    return (
        "--cloud-provider=gcp",
        f"--cloud-config={cloud_config}",
        f"--kubeconfig={control_plane.kubeconfig}",
        "--cluster-name=e2e",
        "--leader-elect=false",
        "--secure-port=0",
        "--concurrent-service-syncs=2",
        "--v=2",
    )


class Crash(Exception):
    """The process dies right after a call GCE carried out."""


def crash_after(provider: GCEProvider, mutations: int) -> list[str]:
    """Raise :class:`Crash` right after the ``mutations``-th mutation succeeded (every mutation of the
    provider, upstream's deletions included, goes through ``clients.mutate``); returns the list of
    mutations seen."""
    done: list[str] = []
    real = provider.clients.mutate

    def crashing(operation: str, fn: Any, req: Any, *, scope: str, location: str = "") -> Any:
        result = real(operation, fn, req, scope=scope, location=location)
        done.append(operation)
        if len(done) == mutations:
            raise Crash(operation)
        return result

    provider.clients.mutate = crashing  # type: ignore[method-assign,assignment]
    return done

"""The fake Compute Engine server seeded like a cluster's project, and the GCP provider pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any

import pytest

from ccm.cloudprovider import LoadBalancerRequest, Node, ServicePort
from fakegce import FakeCompute
from providers.gcp.config import GCEConfig
from providers.gcp.provider import GCEProvider

PROJECT, REGION = "test-project", "us-central1"
ZONES = ("us-central1-a", "us-central1-b")
NODE_TAG = "k8s-node"


@pytest.fixture
def gce() -> Iterator[FakeCompute]:
    with FakeCompute(project=PROJECT, region=REGION) as fake:
        fake.seed_network("default")
        fake.seed_subnetwork("nodes", "default", "10.128.0.0/20")
        for i in range(4):
            fake.seed_instance(
                ZONES[i % 2], f"node-{i}", tags=(NODE_TAG,), network="default", subnetwork="nodes"
            )
        yield fake


def gce_config(url: str) -> GCEConfig:
    return GCEConfig(
        project_id=PROJECT,
        region=REGION,
        network_name="default",
        subnetwork_name="nodes",
        node_tags=(NODE_TAG,),
        api_endpoint=url,
        token_url="nil",
    )


@pytest.fixture
def provider(gce: FakeCompute) -> GCEProvider:
    return new_provider(gce)


def new_provider(gce: FakeCompute) -> GCEProvider:
    return GCEProvider(cluster_name="test", config=gce_config(gce.url), orphan_grace_seconds=0.0)


def nodes(*indexes: int) -> tuple[Node, ...]:
    return tuple(
        Node(name=f"node-{i}", provider_id=f"gce://{PROJECT}/{ZONES[i % 2]}/node-{i}", zone=ZONES[i % 2])
        for i in indexes
    )


RequestFactory = Callable[..., LoadBalancerRequest]


@pytest.fixture
def make_request() -> RequestFactory:
    counter = iter(range(1, 10_000))

    def make(
        name: str | None = None,
        *,
        ports: tuple[tuple[int, str], ...] = ((80, "TCP"), (443, "TCP")),
        annotations: dict[str, str] | None = None,
        node_indexes: tuple[int, ...] = (0, 1, 2),
        uid: str | None = None,
        **fields: Any,
    ) -> LoadBalancerRequest:
        n = next(counter)
        return LoadBalancerRequest(
            cluster_name="test",
            namespace="default",
            name=name or f"svc-{n}",
            uid=uid or f"00000000-0000-0000-0000-{n:012d}",
            ports=tuple(
                ServicePort(name=f"p{p}", protocol=proto, port=p, node_port=30000 + p) for p, proto in ports
            ),
            nodes=nodes(*node_indexes),
            annotations=MappingProxyType(dict(annotations or {})),
            **fields,
        )

    return make


def lb_resources(gce: FakeCompute) -> dict[str, list[str]]:
    """Names of every LB-related resource in the fake project."""
    kinds = ("forwardingRules", "backendServices", "healthChecks", "firewalls", "instanceGroups", "addresses")
    return {kind: sorted(r["name"] for r in gce.resources(kind)) for kind in kinds if gce.resources(kind)}

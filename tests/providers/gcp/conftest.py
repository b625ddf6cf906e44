"""Fixtures: the fake Compute Engine server seeded like a cluster's project, requests for it, and the GCP
provider pointed at it (the helpers are in :mod:`tests.support.gcp`)."""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest

from ccm.cloudprovider import LoadBalancerRequest, ServicePort
from fakegce import FakeCompute
from providers.gcp.provider import GCEProvider
from tests.support.gcp import (
    RequestFactory,
    new_provider,
    nodes,
    seeded_gce,
)


@pytest.fixture
def gce() -> Iterator[FakeCompute]:
    with seeded_gce() as fake:
        yield fake


@pytest.fixture
def provider(gce: FakeCompute) -> GCEProvider:
    return new_provider(gce)


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

"""Fixtures: moto seeded like a real cluster's account, requests for it, and the AWS provider over HTTP."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from ccm.cloudprovider import LoadBalancerRequest, Node, ServicePort
from providers.aws.provider import AWSProvider
from tests.support.aws import CLUSTER, Network, RequestFactory, new_provider, seed_network


@pytest.fixture
def network(aws: str) -> Network:
    return seed_network()


@pytest.fixture
def make_request(network: Network) -> RequestFactory:
    counter = iter(range(1, 10_000))

    def make(
        name: str | None = None,
        *,
        ports: tuple[tuple[int, str], ...] = ((80, "TCP"), (443, "TCP")),
        annotations: dict[str, str] | None = None,
        nodes: tuple[Node, ...] | None = None,
        uid: str | None = None,
        **fields: Any,
    ) -> LoadBalancerRequest:
        n = next(counter)
        return LoadBalancerRequest(
            cluster_name=CLUSTER,
            namespace="default",
            name=name or f"svc-{n}",
            uid=uid or f"00000000-0000-0000-0000-{n:012d}",
            ports=tuple(
                ServicePort(
                    name=f"p{port}-{proto.lower()}",
                    protocol=proto,
                    port=port,
                    node_port=30000 + port + (1 if proto == "UDP" else 0),
                )
                for port, proto in ports
            ),
            nodes=network.nodes() if nodes is None else nodes,
            annotations=MappingProxyType(dict(annotations or {})),
            **fields,
        )

    return make


@pytest.fixture
def provider(aws: str, network: Network) -> AWSProvider:
    return new_provider()

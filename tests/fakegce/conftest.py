"""Fixtures: a started FakeCompute with a network, subnetwork and nodes, and the real compute_v1 clients
on it (:class:`tests.support.fakegce.Gce`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakegce import FakeCompute
from tests.support.fakegce import PROJECT, REGION, ZONE, Gce


@pytest.fixture
def fake() -> Iterator[FakeCompute]:
    with FakeCompute(project=PROJECT, region=REGION) as server:
        server.seed_network("default")
        server.seed_subnetwork("default", "default", "10.128.0.0/20")
        for zone, name in ((ZONE, "node-a-1"), (ZONE, "node-a-2"), ("us-central1-b", "node-b-1")):
            server.seed_instance(zone, name, tags=("gke-cluster-node",))
        yield server


@pytest.fixture
def gce(fake: FakeCompute) -> Gce:
    return Gce.connect(fake)

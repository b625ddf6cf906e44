"""fakegce: a strict fake of the Compute Engine v1 REST API (L4 load-balancer resources) for tests.

Test infrastructure only: never imported by ``ccm`` or ``providers``. Stdlib only at run time.

    with FakeCompute(project="test-project", region="us-central1") as fake:
        fake.seed_network("default")
        fake.seed_subnetwork("default", "default", "10.128.0.0/20")
        fake.seed_instance("us-central1-a", "node-1", tags=("node",))
        options = ClientOptions(api_endpoint=fake.url)
        client = compute_v1.ForwardingRulesClient(client_options=options, credentials=AnonymousCredentials())
        op = client.insert_unary(...)  # then RegionOperationsClient(client_options=options, ...).wait(...)
        assert fake.mutations() == {("POST", "regions/{region}/forwardingRules"): 1}

Modules: :mod:`fakegce.server` (HTTP, routes, counters, permissions, faults, seeding),
:mod:`fakegce.compute` (state and per-resource semantics), :mod:`fakegce.validate` (JSON shape, names,
labels, ports, filters), :mod:`fakegce.schema` (field names/types/enum values generated from the client's
types by :mod:`fakegce._generate_schema`).
"""

from fakegce.errors import ApiError
from fakegce.server import CONDITIONAL_PERMISSIONS, GOOGLE, PERMISSIONS, FakeCompute

__all__ = ["CONDITIONAL_PERMISSIONS", "GOOGLE", "PERMISSIONS", "ApiError", "FakeCompute"]

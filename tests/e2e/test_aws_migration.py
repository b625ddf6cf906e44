"""End to end: a cluster that the upstream AWS provider served, reviewed with ``ccm migrate`` and then
taken over by ``ccm run`` (real apiserver, moto server, the real processes).

Upstream's NLB and Classic ELB are made as upstream makes them (``tests/support/upstream_aws.py``), and
the Services carry what upstream leaves on them: the address in status and the cleanup finalizer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from ccm.cloudprovider import REPLACE_FOREIGN_ANNOTATION
from ccm.envtest.controlplane import ControlPlane
from tests.support import kube
from tests.support.aws import (
    Network,
    ccm_flags,
    ccm_migrate,
    register_node,
    seed_network,
    service_resources,
)
from tests.support.ccm_run import CcmProcesses
from tests.support.upstream_aws import Upstream, clb_exists, make_upstream_clb, make_upstream_nlb, nlb_exists

UPSTREAM_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"


@pytest.fixture
def network(aws: str) -> Network:
    return seed_network()


def _served_by_upstream(
    kube_api: client.ApiClient, namespace: str, name: str, network: Network, *, kind: str, **kwargs: Any
) -> Upstream:
    """A Service as upstream leaves it: its load balancer, its address in status, its finalizer."""
    service = kube.create_service(kube_api, namespace, name, **kwargs)
    ports = tuple((p["port"], p["nodePort"]) for p in service["spec"]["ports"])
    make = make_upstream_nlb if kind == "nlb" else make_upstream_clb
    upstream = make(network, namespace=namespace, name=name, uid=service["metadata"]["uid"], ports=ports)
    kube.patch_service(kube_api, namespace, name, {"metadata": {"finalizers": [UPSTREAM_FINALIZER]}})
    kube.raw(
        kube_api,
        "PATCH",
        f"/api/v1/namespaces/{namespace}/services/{name}/status",
        {"status": {"loadBalancer": {"ingress": [{"hostname": upstream.dns_name}]}}},
        content_type="application/merge-patch+json",
    )
    return upstream


def test_migrate_reviews_then_ccm_run_adopts_keeps_refused_addresses_and_replaces_what_was_asked(
    kube_api: client.ApiClient,
    namespace: str,
    network: Network,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
    node_names: list[str],
) -> None:
    node_names.extend(register_node(kube_api, instance) for instance in network.instances)
    web = _served_by_upstream(kube_api, namespace, "web", network, kind="nlb")
    # upstream's Classic ELB serves it, and it now asks for an NLB: the type cannot change in place
    old = _served_by_upstream(kube_api, namespace, "old", network, kind="clb", annotations={_TYPE: "nlb"})
    legacy = _served_by_upstream(
        kube_api, namespace, "legacy", network, kind="clb", annotations={REPLACE_FOREIGN_ANNOTATION: "true"}
    )
    kube.create_service(kube_api, namespace, "fresh")

    # 1. the review: JSON for a script, a table for a person; nothing changes
    reviewed = ccm_migrate(control_plane, "-o", "json")
    assert reviewed.returncode == 0, reviewed.stderr
    rows = {
        r["service"].split("/", 1)[1]: r
        for r in json.loads(reviewed.stdout)["services"]
        if r["service"].startswith(f"{namespace}/")
    }
    assert {name: (r["action"], r["addressChanges"]) for name, r in rows.items()} == {
        "web": ("adopt", False),
        "old": ("refuse", False),
        "legacy": ("replace", True),
        "fresh": ("create", False),
    }
    assert rows["web"]["foreign"][0] == {"kind": "NLB", "name": web.name, "detail": web.dns_name}
    assert rows["old"]["foreign"][0]["kind"] == "Classic ELB"
    assert "cannot change in place" in rows["old"]["reason"]
    table = ccm_migrate(control_plane)
    assert table.returncode == 0, table.stderr
    assert f"{namespace}/old" in table.stdout and old.dns_name in table.stdout
    assert "would change address" in table.stdout
    assert service_resources() == [] and nlb_exists(web.name) and clb_exists(legacy.name)

    # 2. the controller takes over
    ccm_run.start(*ccm_flags(control_plane))
    fresh_host = kube.eventually(lambda: kube.lb_hostname(kube_api, namespace, "fresh"), timeout=60)
    assert fresh_host
    legacy_host = kube.eventually(
        lambda: (h := kube.lb_hostname(kube_api, namespace, "legacy")) != legacy.dns_name and h, timeout=60
    )
    assert legacy_host and not clb_exists(legacy.name)
    assert "LoadBalancerReplaced" in kube.reasons(kube_api, namespace, "legacy")
    kube.eventually(lambda: "ForeignLoadBalancer" in kube.reasons(kube_api, namespace, "old"), timeout=60)
    refused = kube.get_service(kube_api, namespace, "old")
    assert kube.ingress(refused) == [{"hostname": old.dns_name}]
    condition = kube.condition(refused)
    assert condition is not None and condition["reason"] == "ForeignLoadBalancer"
    kube.eventually(lambda: "EnsuredLoadBalancer" in kube.reasons(kube_api, namespace, "web"), timeout=60)
    assert kube.lb_hostname(kube_api, namespace, "web") == web.dns_name  # taken over in place
    assert any(r["ResourceARN"] == web.arn for r in service_resources())

    # 3. deleted: the adopted NLB and the refused Classic ELB go with their Services, nothing is left
    kube.delete_service(kube_api, namespace, "web")
    kube.delete_service(kube_api, namespace, "old")
    kube.eventually(lambda: kube.get_service(kube_api, namespace, "web") is None, timeout=60)
    kube.eventually(lambda: kube.get_service(kube_api, namespace, "old") is None, timeout=60)
    assert not nlb_exists(web.name) and not clb_exists(old.name)

"""The chart's RBAC on a real apiserver, proven with real requests made as its ServiceAccount.

The chart is applied with ``kubectl apply --server-side``; then every request the service controller
makes is made with the ServiceAccount's token and must succeed, and requests it must never be able to
make (secrets, pods, other Leases, deletions) must be refused with 403.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client

from tests.deploy.chart import Release
from tests.support import kube

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
MERGE = "application/merge-patch+json"
Call = tuple[str, str, str, Any]  # what it is, method, path, body


def request(
    api: client.ApiClient, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, str]:
    """A request as ``api``'s identity: its status and body text, whatever the status."""
    status, data = kube.request(api, method, path, body, content_type)
    return status, data.decode(errors="replace")


def lease_body(name: str, holder: str = "rbac-test") -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


def outcomes(api: client.ApiClient, calls: list[Call]) -> list[str]:
    """``method path -> status`` for each call (description, method, path, body)."""
    results = []
    for what, method, path, body in calls:
        status, text = request(api, method, path, body, MERGE if method == "PATCH" else "application/json")
        reason = json.loads(text).get("reason", "") if status >= 300 and text.startswith("{") else ""
        results.append(f"{what}: {method} {path} -> {status} {reason}".rstrip())
    return results


@pytest.fixture(scope="module")
def other_namespace(kube_api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.raw(kube_api, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def test_the_chart_is_accepted_by_server_side_apply(release: Release, kube_api: client.ApiClient) -> None:
    applied = release.apply_output
    for doc in release.docs:
        group = doc["apiVersion"].rpartition("/")[0]  # kubectl prints kind.group/name, or kind/name for core
        resource = f"{doc['kind'].lower()}.{group}" if group else doc["kind"].lower()
        line = f"{resource}/{doc['metadata']['name']} serverside-applied"
        assert line in applied.splitlines(), f"{line!r} not in:\n{applied}"
    kinds = {doc["kind"] for doc in release.docs}
    assert kinds >= {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    }
    deployment = kube.raw(
        kube_api, "GET", f"/apis/apps/v1/namespaces/{release.namespace}/deployments/{release.name}"
    )
    assert deployment["spec"]["replicas"] == 2
    managers = {m["manager"]: m["operation"] for m in deployment["metadata"]["managedFields"]}
    assert managers["ccm-lb-tests"] == "Apply"  # server-side apply, not a client-side patch


def test_the_service_account_can_do_what_the_service_controller_does(
    release: Release, kube_api: client.ApiClient
) -> None:
    ns, sa = release.namespace, release.api
    kube.create_service(kube_api, ns, "probe")
    node = kube.node_name("rbac")
    kube.create_node(kube_api, node)
    try:
        allowed: list[Call] = [
            ("list services", "GET", "/api/v1/services", None),
            ("watch services", "GET", "/api/v1/services?watch=1&timeoutSeconds=1", None),
            ("get a service", "GET", f"/api/v1/namespaces/{ns}/services/probe", None),
            (
                "add the finalizer",
                "PATCH",
                f"/api/v1/namespaces/{ns}/services/probe",
                {"metadata": {"finalizers": ["service.kubernetes.io/load-balancer-cleanup"]}},
            ),
            (
                "write the address",
                "PATCH",
                f"/api/v1/namespaces/{ns}/services/probe/status",
                {"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}},
            ),
            (
                "remove the finalizer",
                "PATCH",
                f"/api/v1/namespaces/{ns}/services/probe",
                {"metadata": {"finalizers": None}},
            ),
            ("list nodes", "GET", "/api/v1/nodes", None),
            ("watch nodes", "GET", "/api/v1/nodes?watch=1&timeoutSeconds=1", None),
            ("get a node", "GET", f"/api/v1/nodes/{node}", None),
            ("create an event", "POST", f"/api/v1/namespaces/{ns}/events", _core_event(ns)),
            ("count an event", "PATCH", f"/api/v1/namespaces/{ns}/events/probe.rbac", {"count": 2}),
            (
                "create an events.k8s.io event",
                "POST",
                f"/apis/events.k8s.io/v1/namespaces/{ns}/events",
                _new_event(ns),
            ),
            ("create its lease", "POST", LEASES.format(namespace=ns), lease_body(release.lease)),
            ("get its lease", "GET", f"{LEASES.format(namespace=ns)}/{release.lease}", None),
            (
                "renew its lease",
                "PATCH",
                f"{LEASES.format(namespace=ns)}/{release.lease}",
                {"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}},
            ),
            (
                "create its checkpoint",
                "POST",
                f"/api/v1/namespaces/{ns}/configmaps",
                {"metadata": {"name": f"{release.lease}-state"}, "data": {"nodeSet": "a"}},
            ),
            ("read its checkpoint", "GET", f"/api/v1/namespaces/{ns}/configmaps/{release.lease}-state", None),
            (
                "write its checkpoint",
                "PATCH",
                f"/api/v1/namespaces/{ns}/configmaps/{release.lease}-state",
                {"data": {"nodeSet": "b"}},
            ),
        ]
        results = outcomes(sa, allowed)
        refused = [r for r in results if not r.split(" -> ")[1].startswith("20")]
        assert not refused, "refused to the ServiceAccount:\n" + "\n".join(refused)
        lease = kube.raw(kube_api, "GET", f"{LEASES.format(namespace=ns)}/{release.lease}")
        lease["spec"]["holderIdentity"] = "rbac-test-2"
        (result,) = outcomes(
            sa, [("update its lease", "PUT", f"{LEASES.format(namespace=ns)}/{release.lease}", lease)]
        )
        assert " -> 200" in result, f"refused to the ServiceAccount: {result}"

        service = kube.get_service(kube_api, ns, "probe")
        assert kube.ingress(service) == [{"hostname": "lb.example.com"}]
        assert (
            kube.raw(kube_api, "GET", f"{LEASES.format(namespace=ns)}/{release.lease}")["spec"][
                "holderIdentity"
            ]
            == "rbac-test-2"
        )
    finally:
        kube.delete_node(kube_api, node)
        kube.delete_service(kube_api, ns, "probe")


def test_the_service_account_is_refused_everything_else(
    release: Release, kube_api: client.ApiClient, other_namespace: str
) -> None:
    ns, sa = release.namespace, release.api
    kube.raw(
        kube_api,
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "cloud-key"}, "stringData": {"k": "v"}},
    )
    kube.raw(kube_api, "POST", LEASES.format(namespace=ns), lease_body("someone-elses-lease", holder="other"))
    kube.raw(kube_api, "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "settings"}})
    kube.create_service(kube_api, ns, "victim")
    node = kube.node_name("rbac")
    kube.create_node(kube_api, node)
    other_lease = kube.raw(kube_api, "GET", f"{LEASES.format(namespace=ns)}/someone-elses-lease")
    try:
        forbidden: list[Call] = [
            ("list secrets in its namespace", "GET", f"/api/v1/namespaces/{ns}/secrets", None),
            ("get a secret in its namespace", "GET", f"/api/v1/namespaces/{ns}/secrets/cloud-key", None),
            ("list secrets in kube-system", "GET", "/api/v1/namespaces/kube-system/secrets", None),
            ("list secrets everywhere", "GET", "/api/v1/secrets", None),
            ("list pods in its namespace", "GET", f"/api/v1/namespaces/{ns}/pods", None),
            ("list pods everywhere", "GET", "/api/v1/pods", None),
            (
                "create its lease elsewhere",
                "POST",
                LEASES.format(namespace=other_namespace),
                lease_body(release.lease),
            ),
            (
                "get its lease elsewhere",
                "GET",
                f"{LEASES.format(namespace=other_namespace)}/{release.lease}",
                None,
            ),
            (
                "update another lease",
                "PUT",
                f"{LEASES.format(namespace=ns)}/someone-elses-lease",
                {**other_lease, "spec": {**other_lease["spec"], "holderIdentity": "rbac-test"}},
            ),
            (
                "patch another lease",
                "PATCH",
                f"{LEASES.format(namespace=ns)}/someone-elses-lease",
                {"spec": {"holderIdentity": "rbac-test"}},
            ),
            ("get another lease", "GET", f"{LEASES.format(namespace=ns)}/someone-elses-lease", None),
            ("list leases", "GET", LEASES.format(namespace=ns), None),
            ("delete its lease", "DELETE", f"{LEASES.format(namespace=ns)}/{release.lease}", None),
            ("delete a service", "DELETE", f"/api/v1/namespaces/{ns}/services/victim", None),
            ("create a service", "POST", f"/api/v1/namespaces/{ns}/services", kube.service_body("intruder")),
            (
                "create a configmap elsewhere",
                "POST",
                f"/api/v1/namespaces/{other_namespace}/configmaps",
                {"metadata": {"name": f"{release.lease}-state"}},
            ),
            ("get another configmap", "GET", f"/api/v1/namespaces/{ns}/configmaps/settings", None),
            (
                "patch another configmap",
                "PATCH",
                f"/api/v1/namespaces/{ns}/configmaps/settings",
                {"data": {"k": "v"}},
            ),
            ("list configmaps", "GET", f"/api/v1/namespaces/{ns}/configmaps", None),
            (
                "delete its checkpoint",
                "DELETE",
                f"/api/v1/namespaces/{ns}/configmaps/{release.lease}-state",
                None,
            ),
            ("label a node", "PATCH", f"/api/v1/nodes/{node}", {"metadata": {"labels": {"x": "y"}}}),
            ("write a node's status", "PATCH", f"/api/v1/nodes/{node}/status", {"status": {"phase": "x"}}),
            ("delete a node", "DELETE", f"/api/v1/nodes/{node}", None),
            ("list endpointslices", "GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", None),
            (
                "create a service account token",
                "POST",
                f"/api/v1/namespaces/{ns}/serviceaccounts/{release.service_account}/token",
                {"spec": {}},
            ),
        ]
        results = outcomes(sa, forbidden)
        allowed = [r for r in results if " -> 403 Forbidden" not in r]
        assert not allowed, "not refused with 403 to the ServiceAccount:\n" + "\n".join(allowed)
        assert kube.get_service(kube_api, ns, "victim") is not None
        assert (
            kube.raw(kube_api, "GET", f"{LEASES.format(namespace=ns)}/someone-elses-lease")["spec"][
                "holderIdentity"
            ]
            == "other"
        )
    finally:
        kube.delete_node(kube_api, node)
        kube.delete_service(kube_api, ns, "victim")


def test_the_service_account_identity_is_the_charts_and_nothing_more(release: Release) -> None:
    status, text = request(
        release.api,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert status == 201, text
    user = json.loads(text)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{release.namespace}:{release.service_account}"
    assert "system:masters" not in user.get("groups", [])


def _core_event(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "probe.rbac"},
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": namespace, "name": "probe"},
        "reason": "EnsuringLoadBalancer",
        "message": "Ensuring load balancer",
        "type": "Normal",
        "source": {"component": "service-controller"},
        "count": 1,
    }


def _new_event(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "probe.rbac-new"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "service-controller",
        "reportingInstance": "rbac-test",
        "action": "Ensuring",
        "reason": "EnsuringLoadBalancer",
        "note": "Ensuring load balancer",
        "type": "Normal",
        "regarding": {"apiVersion": "v1", "kind": "Service", "namespace": namespace, "name": "probe"},
    }

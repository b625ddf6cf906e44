"""The control plane the other tests stand on is a real kube-apiserver, not a stand-in."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ccm.envtest.assets import AssetsNotFound, find_assets
from ccm.envtest.controlplane import ControlPlane
from tests.plugins.controlplane import api_client_for


def test_kube_apiserver_reports_its_real_version(kube_api: client.ApiClient) -> None:
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version.startswith("v1.3"), info.git_version
    assert "master" not in info.git_version
    assert info.major == "1"


def test_load_balancer_service_gets_node_ports_from_the_apiserver(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    svc = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(
                type="LoadBalancer",
                selector={"app": "web"},
                external_traffic_policy="Local",
                ports=[
                    client.V1ServicePort(name="http", port=80, target_port=8080, protocol="TCP"),
                    client.V1ServicePort(name="dns", port=53, protocol="UDP"),
                ],
            ),
        ),
    )
    node_ports = [p.node_port for p in svc.spec.ports]
    assert all(30000 <= p <= 32767 for p in node_ports), node_ports
    assert len(set(node_ports)) == 2
    assert 30000 <= svc.spec.health_check_node_port <= 32767
    assert svc.spec.cluster_ip.startswith("10.96.")


def test_node_created_by_hand_keeps_its_provider_id(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    name = f"node-{os.getpid()}-provider"
    core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(name=name, labels={"topology.kubernetes.io/zone": "us-east-1a"}),
            spec=client.V1NodeSpec(provider_id="aws:///us-east-1a/i-0123456789abcdef0"),
        )
    )
    try:
        core.patch_node_status(
            name,
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "10.0.1.5"}],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "Test",
                            "message": "set by test",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                        }
                    ],
                }
            },
        )
        node = core.read_node(name)
        assert node.spec.provider_id == "aws:///us-east-1a/i-0123456789abcdef0"
        assert node.status.addresses[0].address == "10.0.1.5"
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    finally:
        core.delete_node(name)


def test_service_status_can_be_patched_without_touching_the_spec(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="lb"),
            spec=client.V1ServiceSpec(type="LoadBalancer", ports=[client.V1ServicePort(port=443)]),
        ),
    )
    core.patch_namespaced_service_status(
        "lb", namespace, {"status": {"loadBalancer": {"ingress": [{"hostname": "lb-1.elb.example.com"}]}}}
    )
    svc = core.read_namespaced_service("lb", namespace)
    assert svc.status.load_balancer.ingress[0].hostname == "lb-1.elb.example.com"
    assert svc.spec.type == "LoadBalancer"


def test_lease_can_be_created_and_renewed(kube_api: client.ApiClient, namespace: str) -> None:
    coord = client.CoordinationV1Api(kube_api)
    now = datetime.datetime.now(datetime.UTC)
    lease = coord.create_namespaced_lease(
        namespace,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15, renew_time=now),
        ),
    )
    lease.spec.renew_time = now + datetime.timedelta(seconds=5)
    renewed = coord.replace_namespaced_lease("leader", namespace, lease)
    assert renewed.spec.renew_time > now
    assert int(renewed.metadata.resource_version) > int(lease.metadata.resource_version)
    lease.spec.holder_identity = "b"  # stale resourceVersion: optimistic concurrency must refuse it
    with pytest.raises(ApiException) as err:
        coord.replace_namespaced_lease("leader", namespace, lease)
    assert err.value.status == 409


def test_rbac_denies_the_unprivileged_identity(unprivileged_kubeconfig: Path, namespace: str) -> None:
    api = api_client_for(unprivileged_kubeconfig)
    try:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_service(namespace)
        assert err.value.status == 403
        assert "unprivileged-user" in (err.value.body or "")
    finally:
        api.close()


def test_rbac_allows_the_unprivileged_identity_once_bound(
    kube_api: client.ApiClient, control_plane: ControlPlane, namespace: str
) -> None:
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="svc-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["services"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="svc-reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="svc-reader"),
            subjects=[
                client.RbacV1Subject(kind="User", name="bound-user", api_group="rbac.authorization.k8s.io")
            ],
        ),
    )
    api = api_client_for(control_plane.user_kubeconfig(user="bound-user"))
    try:
        assert client.CoreV1Api(api).list_namespaced_service(namespace).items == []
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_config_map(namespace)
        assert err.value.status == 403
    finally:
        api.close()


def test_stopping_a_control_plane_leaves_no_process_and_no_directory() -> None:
    plane = ControlPlane(assets=find_assets())
    plane.start()
    pids, workdir = plane.pids(), plane.workdir
    assert len(pids) == 2 and workdir.is_dir()
    plane.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid)
    assert not workdir.exists()


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_a_restarted_apiserver_serves_the_same_objects_on_the_same_port(kill: bool) -> None:
    with ControlPlane(assets=find_assets()) as plane:
        api = api_client_for(plane.kubeconfig)
        try:
            core = client.CoreV1Api(api)
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="kept")))
            old_pids, server = set(plane.pids()), plane.server

            assert plane.restart_apiserver(kill=kill) > 0

            assert plane.server == server
            new_pids = set(plane.pids())
            assert len(new_pids) == 2 and len(new_pids & old_pids) == 1  # etcd kept, apiserver new
            assert core.read_namespace("kept").metadata.name == "kept"
        finally:
            api.close()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"


def test_a_missing_binary_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TEST_ASSET_KUBE_APISERVER", str(tmp_path / "nope"))
    with pytest.raises(AssetsNotFound) as err:
        find_assets()
    assert "TEST_ASSET_KUBE_APISERVER" in str(err.value)
    assert "hack/ensure-control-plane.sh" in str(err.value)


def test_build_script_finds_binaries_given_through_kubebuilder_assets(tmp_path: Path) -> None:
    assets = find_assets()
    (tmp_path / "etcd").symlink_to(assets.etcd)
    (tmp_path / "kube-apiserver").symlink_to(assets.kube_apiserver)
    script = Path(__file__).resolve().parents[2] / "hack" / "ensure-control-plane.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_ASSET_")}
    env["KUBEBUILDER_ASSETS"] = str(tmp_path)
    env["CCM_KUBEBINS"] = str(tmp_path / "must-not-be-built")
    out = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path)
    assert "building" not in out.stderr

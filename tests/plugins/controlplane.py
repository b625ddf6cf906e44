"""pytest plugin: one real etcd + kube-apiserver for the session, a fresh namespace per test.

A missing binary is a test failure whose message says how to get it; never a skip, so a machine
without the control plane cannot pass by testing nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ccm.envtest.assets import AssetsNotFound, find_assets
from ccm.envtest.controlplane import ControlPlane


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """The session's control plane; its ``kubeconfig`` is a ``system:masters`` identity."""
    try:
        assets = find_assets()
    except AssetsNotFound as exc:
        pytest.fail(str(exc), pytrace=False)
    with ControlPlane(assets=assets) as plane:
        yield plane


def api_client_for(kubeconfig: Path) -> client.ApiClient:
    """An ApiClient for a kubeconfig file, independent of the global default configuration."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture(scope="session")
def kube_api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """An admin ApiClient for the session's control plane."""
    api = api_client_for(control_plane.kubeconfig)
    yield api
    api.close()


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    """A namespace of the test's own (namespaces stay Terminating without a controller-manager).

    Its Services are removed afterwards, finalizers and all: the session's API server is shared, and a
    LoadBalancer Service left behind would be work for the next test's controller (a cluster-wide one).
    """
    core = client.CoreV1Api(kube_api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    for service in core.list_namespaced_service(name).items:
        with contextlib.suppress(ApiException):
            if service.metadata.finalizers:
                core.patch_namespaced_service(service.metadata.name, name, {"metadata": {"finalizers": None}})
            core.delete_namespaced_service(service.metadata.name, name)


@pytest.fixture(scope="session")
def unprivileged_kubeconfig(control_plane: ControlPlane) -> Path:
    """A client-certificate identity in no group: RBAC allows it nothing until a test binds it."""
    return control_plane.user_kubeconfig(user="unprivileged-user")


@pytest.fixture
def node_names(kube_api: client.ApiClient) -> Iterator[list[str]]:
    """Names of the Nodes a test registers (it appends them); deleted afterwards, so that no later
    test's controller on the session's apiserver meets them."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(ApiException):
            client.CoreV1Api(kube_api).delete_node(name)

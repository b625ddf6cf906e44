"""Fixtures for tests of the real ``ccm run`` process against the session's control plane.

``ccm`` starts ``ccm run --cloud-provider=fake`` (processes from :mod:`tests.support.ccm_run`, stopped
at the end of the test whatever happened); Services made in the test's namespace are stripped of
finalizers and deleted afterwards, so later tests' controllers do not keep reconciling them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane, free_port
from tests.support import kube
from tests.support.ccm_run import CcmProcess, CcmProcesses, StartCcm, fake_flags
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def ccm(
    ccm_run: CcmProcesses, control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str
) -> Iterator[StartCcm]:
    """``ccm(*flags, kubeconfig=None, port=None)`` starts ``ccm run --cloud-provider=fake``.

    By default it talks to the control plane as admin and serves on a free loopback port; the
    flags given come last, so they override these. It depends on ``namespace`` so that the
    processes stop before the test's Services are cleaned up.
    """

    def start(*flags: str, kubeconfig: Path | None = None, port: int | None = None) -> CcmProcess:
        secure_port = free_port() if port is None else port
        base = fake_flags(control_plane, port=secure_port, kubeconfig=kubeconfig)
        return ccm_run.start(*base, *flags, port=secure_port)

    yield start
    ccm_run.stop_all()
    kube.delete_services(kube_api, namespace)


@pytest.fixture
def api_proxy(control_plane: ControlPlane) -> Iterator[TcpProxy]:
    port = int(control_plane.server.rsplit(":", 1)[1])
    proxy = TcpProxy(upstream=("127.0.0.1", port))
    yield proxy
    proxy.close()

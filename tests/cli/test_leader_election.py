"""Two ``ccm run`` processes on one Lease: only the leader acts, and a standby takes over.

The processes tell themselves apart by the hostname suffix of their fake provider (``--cloud-config``),
so the Service status shows which process provisioned it. Waits are bounds for a hung test, generous
next to the 4 s lease; nothing here measures how fast a takeover is.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane
from tests.support import kube
from tests.support.ccm_run import FAST_ELECTION, CcmProcess, StartCcm, lease_holder, write_fake_cloud_config
from tests.support.kube import lb_hostname
from tests.support.tcp_proxy import TcpProxy

TAKEOVER_BOUND = 30.0


def candidate(
    ccm: StartCcm,
    tmp_path: Path,
    namespace: str,
    suffix: str,
    *,
    election: tuple[str, ...] = FAST_ELECTION,
    kubeconfig: Path | None = None,
) -> CcmProcess:
    config = write_fake_cloud_config(tmp_path / f"{suffix}.conf", suffix)
    return ccm(
        *election,
        f"--leader-elect-resource-namespace={namespace}",
        f"--cloud-config={config}",
        kubeconfig=kubeconfig,
    )


def wait_holder(api: client.ApiClient, namespace: str, identity: str, *, timeout: float) -> None:
    kube.eventually(
        lambda: lease_holder(api, namespace) == identity,
        timeout=timeout,
        interval=0.1,
        message=f"the Lease to be held by {identity}",
    )


def hostname_of(api: client.ApiClient, namespace: str, name: str) -> str:
    return kube.eventually(
        lambda: lb_hostname(api, namespace, name), timeout=30, message=f"{name}'s load balancer"
    )


def master_status(process: CcmProcess) -> str:
    code, body = process.get("/metrics")
    assert code == 200
    lines = [line for line in body.splitlines() if line.startswith("leader_election_master_status{")]
    assert lines == [lines[0]] and 'name="ccm-lb-controller"' in lines[0], body
    return lines[0].rsplit(" ", 1)[1]


def start_a_then_b(
    ccm: StartCcm,
    kube_api: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    *,
    a_kubeconfig: Path | None = None,
) -> tuple[CcmProcess, CcmProcess]:
    """A first (it becomes the leader), then B once A holds the Lease (B stands by)."""
    a = candidate(ccm, tmp_path, namespace, "a.fake.invalid", kubeconfig=a_kubeconfig)
    wait_holder(kube_api, namespace, a.identity(), timeout=30)
    b = candidate(ccm, tmp_path, namespace, "b.fake.invalid")
    b.wait_ready()
    a.wait_ready()
    return a, b


def test_only_the_leader_acts_and_a_standby_takes_over_when_the_leader_is_killed(
    ccm: StartCcm, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    a, b = start_a_then_b(ccm, kube_api, namespace, tmp_path)

    kube.create_service(kube_api, namespace, "first")
    assert hostname_of(kube_api, namespace, "first").endswith(".a.fake.invalid")
    assert lease_holder(kube_api, namespace) == a.identity()
    assert a.get("/healthz/leaderElection") == (200, "ok")
    assert b.get("/healthz/leaderElection") == (200, "ok")  # a standby is healthy too
    assert b.get("/readyz") == (200, "ok")
    assert (master_status(a), master_status(b)) == ("1.0", "0.0")
    assert "caches synced" not in b.log()  # the standby started no controller

    a.signal(signal.SIGKILL)
    a.wait(timeout=10)
    wait_holder(kube_api, namespace, b.identity(), timeout=TAKEOVER_BOUND)
    kube.create_service(kube_api, namespace, "second")

    assert hostname_of(kube_api, namespace, "second").endswith(".b.fake.invalid")
    assert master_status(b) == "1.0"
    assert b.get("/healthz/leaderElection") == (200, "ok")
    b.assert_running()


def test_a_leader_stopped_with_sigterm_releases_the_lease_so_the_standby_need_not_wait_it_out(
    ccm: StartCcm, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    # A long lease: B could only take over this soon if A gave the Lease up.
    slow = (
        "--leader-elect=true",
        "--leader-elect-lease-duration=60s",
        "--leader-elect-renew-deadline=40s",
        "--leader-elect-retry-period=1s",
    )
    a = candidate(ccm, tmp_path, namespace, "a.fake.invalid", election=slow)
    wait_holder(kube_api, namespace, a.identity(), timeout=30)
    b = candidate(ccm, tmp_path, namespace, "b.fake.invalid", election=slow)
    b.wait_ready()
    a.wait_ready()

    a.signal(signal.SIGTERM)

    assert a.wait(timeout=20) == 0
    assert lease_holder(kube_api, namespace) != a.identity()  # released before exiting
    assert "released leader lease" in a.log()
    wait_holder(kube_api, namespace, b.identity(), timeout=TAKEOVER_BOUND)  # well inside the 60 s lease
    kube.create_service(kube_api, namespace, "after")
    assert hostname_of(kube_api, namespace, "after").endswith(".b.fake.invalid")


@pytest.mark.parametrize("cut", ["refuse", "blackhole"])
def test_a_leader_cut_off_from_the_api_server_exits_1_and_the_standby_takes_over(
    ccm: StartCcm,
    kube_api: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    control_plane: ControlPlane,
    api_proxy: TcpProxy,
    cut: str,
) -> None:
    kubeconfig = api_proxy.kubeconfig(control_plane, tmp_path / "proxied.kubeconfig")
    a, b = start_a_then_b(ccm, kube_api, namespace, tmp_path, a_kubeconfig=kubeconfig)
    kube.create_service(kube_api, namespace, "first")
    assert hostname_of(kube_api, namespace, "first").endswith(".a.fake.invalid")

    if cut == "refuse":
        api_proxy.refuse()
    else:
        api_proxy.blackhole()

    # A cannot renew: it must stop acting (exit 1, as upstream's klog.Fatal) rather than lead on.
    assert a.wait(timeout=TAKEOVER_BOUND) == 1
    assert "leader election lost" in a.log()
    wait_holder(kube_api, namespace, b.identity(), timeout=TAKEOVER_BOUND)
    kube.create_service(kube_api, namespace, "second")
    assert hostname_of(kube_api, namespace, "second").endswith(".b.fake.invalid")

"""Fixtures for tests of the real ``ccm run`` process against the session's control plane.

Every process is started in a session (process group) of its own, its stdout and stderr go to a file
that is printed when the test ends (pytest shows it for failing tests), and it is terminated, then
killed, at the end of the test whatever happened. Services made in the test's namespace are stripped
of finalizers and deleted afterwards, so later tests' controllers do not keep reconciling them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ccm.envtest.controlplane import ControlPlane, free_port
from tests import kube

REPO = Path(__file__).resolve().parents[2]
LEASE_NAME = "ccm-lb-controller"
FAST_ELECTION = (
    "--leader-elect=true",
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=1s",
)


def ccm_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ccm.cli", "run", *args]


class CcmProcess:
    """One running ``ccm run``; ``port`` is its --secure-port (0 when it serves nothing)."""

    def __init__(self, *, args: Sequence[str], log: Path, port: int) -> None:
        self.args = list(args)
        self.log_path = log
        self.port = port
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            ccm_command(*args),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def identity(self) -> str:
        """The leader-election identity the process logged."""

        def find() -> str | None:
            match = re.search(r"attempting to acquire leader lease \S+ as (\S+)", self.log())
            return match.group(1) if match else None

        return kube.eventually(find, timeout=30, message=f"ccm (pid {self.pid}) to log its identity")

    def get(self, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
        """GET over HTTPS on the secure port, not verifying the (self-signed) certificate."""
        return https_get(self.port, path, timeout=timeout)

    def wait_ready(self, *, timeout: float = 30.0) -> None:
        def ready() -> bool:
            self.assert_running()
            try:
                return self.get("/readyz")[0] == 200
            except OSError:
                return False

        kube.eventually(ready, timeout=timeout, interval=0.1, message=f"ccm (pid {self.pid}) /readyz 200")

    def assert_running(self) -> None:
        code = self.proc.poll()
        assert code is None, f"ccm (pid {self.pid}) exited with {code}:\n{self.log()}"

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    def wait(self, *, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"ccm (pid {self.pid}) still running after {timeout}s:\n{self.log()}"
            ) from None

    def group_alive(self) -> bool:
        """Whether any process is left in the process's group (it and any children it made)."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def terminate(self) -> None:
        """SIGTERM to the whole group, without waiting."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Terminate, then kill, the whole group; idempotent."""
        if self.proc.poll() is None:
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log.close()

    def dump(self) -> None:
        """Print the command line and the log (pytest shows it when the test fails)."""
        sys.stdout.write(f"--- ccm {' '.join(self.args)} (exit {self.proc.returncode})\n")
        sys.stdout.write(self.log()[-20000:])


def https_get(port: int, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on, from /proc (its socket inodes matched to LISTEN rows)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class StartCcm(Protocol):
    def __call__(
        self, *flags: str, kubeconfig: Path | None = None, port: int | None = None
    ) -> CcmProcess: ...


@pytest.fixture
def ccm(
    tmp_path: Path, control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str
) -> Iterator[StartCcm]:
    """``ccm(*flags, kubeconfig=None, port=None)`` starts ``ccm run --cloud-provider=fake``.

    By default it talks to the control plane as admin and serves on a free loopback port; the
    flags given come last, so they override these. It depends on ``namespace`` so that the
    processes stop before the test's Services are cleaned up.
    """
    started: list[CcmProcess] = []

    def start(*flags: str, kubeconfig: Path | None = None, port: int | None = None) -> CcmProcess:
        process = start_ccm(
            control_plane, tmp_path / f"ccm-{len(started)}.log", *flags, kubeconfig=kubeconfig, port=port
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
    for process in started:
        process.stop()
    for process in started:
        process.dump()
    delete_services(kube_api, namespace)


def start_ccm(
    control_plane: ControlPlane,
    log: Path,
    *flags: str,
    kubeconfig: Path | None = None,
    port: int | None = None,
) -> CcmProcess:
    """``ccm run --cloud-provider=fake`` as admin, serving on a free loopback port; ``flags`` override."""
    secure_port = free_port() if port is None else port
    args = [
        "--cloud-provider=fake",
        f"--kubeconfig={kubeconfig or control_plane.kubeconfig}",
        f"--secure-port={secure_port}",
        "--bind-address=127.0.0.1",
        *flags,
    ]
    return CcmProcess(args=args, log=log, port=secure_port)


def make_namespace(api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.raw(api, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def delete_services(api: client.ApiClient, namespace: str) -> None:
    items = kube.raw(api, "GET", f"/api/v1/namespaces/{namespace}/services")["items"]
    for item in items:
        name = item["metadata"]["name"]
        with contextlib.suppress(ApiException):
            kube.patch_service(api, namespace, name, {"metadata": {"finalizers": None}})
            kube.delete_service(api, namespace, name)


def lease_holder(api: client.ApiClient, namespace: str) -> str | None:
    try:
        lease = kube.raw(
            api, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE_NAME}"
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    holder: str | None = (lease.get("spec") or {}).get("holderIdentity")
    return holder


def lb_hostname(api: client.ApiClient, namespace: str, name: str) -> str | None:
    points = kube.ingress(kube.get_service(api, namespace, name))
    return str(points[0].get("hostname")) if points else None


def write_cloud_config(path: Path, suffix: str) -> Path:
    path.write_text(f"[Global]\nhostname-suffix = {suffix}\n")
    return path


class TcpProxy:
    """A loopback TCP proxy to the API server that a test can cut off.

    ``refuse()`` closes the listener and every connection (new ones are refused); ``blackhole()``
    keeps accepting but forwards nothing more in either direction, so requests hang.
    """

    def __init__(self, *, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stalled = threading.Event()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(downstream)
            if self._stalled.is_set():
                continue  # hold it open, answer nothing
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._sockets.append(upstream)
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                if self._stalled.is_set():
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select([src], [], [], 0.05)
                if not readable or self._stalled.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def kubeconfig(self, control_plane: ControlPlane, path: Path) -> Path:
        """The admin kubeconfig, pointed at this proxy (the serving certificate is for 127.0.0.1)."""
        text = control_plane.kubeconfig.read_text()
        assert control_plane.server in text
        path.write_text(text.replace(control_plane.server, f"https://127.0.0.1:{self.port}"))
        return path

    def blackhole(self) -> None:
        self._stalled.set()

    def refuse(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.refuse()


@pytest.fixture
def api_proxy(control_plane: ControlPlane) -> Iterator[TcpProxy]:
    port = int(control_plane.server.rsplit(":", 1)[1])
    proxy = TcpProxy(upstream=("127.0.0.1", port))
    yield proxy
    proxy.close()

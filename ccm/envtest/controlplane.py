"""Running etcd and kube-apiserver on free loopback ports, with TLS, client certificates and RBAC.

This is what envtest does for Go controllers: everything that lives inside the apiserver (NodePort
allocation, status subresources, finalizers, Leases, Events, RBAC) is real; there is no
controller-manager and no kubelet. A :class:`ControlPlane` owns one temporary directory and two
process groups, and :meth:`ControlPlane.stop` removes all of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from ccm.envtest import pki
from ccm.envtest.assets import Assets

logger = logging.getLogger(__name__)

START_TIMEOUT = float(os.environ.get("CCM_CONTROLPLANE_START_TIMEOUT", "90"))
ADMIN_USER = "envtest-admin"


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message carries the tail of the failing log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _has_default_route() -> bool:
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return True
    return any(line.split()[1] == "00000000" for line in lines if len(line.split()) > 1)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def kubeconfig_text(
    *,
    server: str,
    ca: Path,
    user: str,
    cert: Path | None = None,
    key: Path | None = None,
    token: str | None = None,
) -> str:
    """A kubeconfig with one cluster, one user (certificate or token) and one context."""
    if token is not None:
        user_block = f"    token: {token}\n"
    else:
        user_block = f"    client-certificate: {cert}\n    client-key: {key}\n"
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: envtest\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: {user}\n  user:\n{user_block}"
        f"contexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: {user}\n"
        "current-context: envtest\n"
    )


class ControlPlane:
    """etcd + kube-apiserver on loopback. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        *,
        assets: Assets,
        workdir: Path | None = None,
        service_cidr: str = "10.96.0.0/16",
        extra_apiserver_args: tuple[str, ...] = (),
    ) -> None:
        self.assets = assets
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ccm-envtest-"))
        self.pki_dir = self.workdir / "pki"
        self.service_cidr = service_cidr
        self.extra_apiserver_args = extra_apiserver_args
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.port = 0
        self.etcd_url = ""
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self._ca: pki.CertificateAuthority | None = None
        self._apiserver_args: list[str] = []
        self._probe_context: ssl.SSLContext | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def service_account_issuer(self) -> str:
        """The ``iss`` of the ServiceAccount tokens it issues (no trailing slash, like EKS's)."""
        return self.server

    @property
    def ca_cert(self) -> Path:
        assert self._ca is not None, "start() first"
        return self._ca.cert_path

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- starting ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start etcd, then the apiserver, and wait until ``/readyz`` says ok (RBAC bootstrapped)."""
        try:
            self.pki_dir.mkdir(parents=True, exist_ok=True)
            self._ca = pki.CertificateAuthority(directory=self.pki_dir)
            serving = self._ca.issue_server(stem="apiserver")
            admin = self._ca.issue_client(user=ADMIN_USER, groups=("system:masters",))
            sa_key = pki.write_service_account_key(path=self.pki_dir / "sa.key")
            etcd_url = self.etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url=etcd_url, serving=serving, sa_key=sa_key, admin=admin)
            self.kubeconfig.write_text(
                kubeconfig_text(
                    server=self.server, ca=self.ca_cert, user=ADMIN_USER, cert=admin.cert, key=admin.key
                )
            )
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            log.close()
        self._procs.append((name, proc))
        return proc

    def _wait(
        self,
        *,
        name: str,
        proc: subprocess.Popen[bytes],
        probe: urllib.request.Request,
        context: ssl.SSLContext | None,
    ) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError, urllib.error.URLError, ssl.SSLError),
                urllib.request.urlopen(probe, timeout=2, context=context) as resp,
            ):
                if resp.status == 200:
                    return True
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} did not become ready within {START_TIMEOUT:.0f}s "
            f"(set CCM_CONTROLPLANE_START_TIMEOUT to wait longer); last log lines:\n"
            f"{_tail(self.workdir / f'{name}.log')}"
        )

    def _start_etcd(self) -> str:
        for _attempt in range(3):
            client, peer = free_port(), free_port()
            url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
            data = self.workdir / "etcd"
            shutil.rmtree(data, ignore_errors=True)
            proc = self._spawn(
                "etcd",
                [
                    str(self.assets.etcd),
                    "--name=default",
                    f"--data-dir={data}",
                    f"--listen-client-urls={url}",
                    f"--advertise-client-urls={url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=default={peer_url}",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                    "--quota-backend-bytes=4294967296",
                ],
            )
            if self._wait(
                name="etcd", proc=proc, probe=urllib.request.Request(f"{url}/health"), context=None
            ):
                return url
            self._procs.remove(("etcd", proc))  # port race: try other ports
        raise ControlPlaneError(f"etcd exited at start; last log lines:\n{_tail(self.workdir / 'etcd.log')}")

    def _start_apiserver(
        self, *, etcd_url: str, serving: pki.KeyPair, sa_key: Path, admin: pki.KeyPair
    ) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        for _attempt in range(3):
            self.port = free_port()
            args = [
                str(self.assets.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.pki_dir}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.ca_cert}",
                f"--service-account-issuer={self.service_account_issuer}",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={self.service_cidr}",
                "--service-node-port-range=30000-32767",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--event-ttl=1h",
                *self.extra_apiserver_args,
            ]
            if not _has_default_route():
                args.append("--advertise-address=127.0.0.1")
            proc = self._spawn("kube-apiserver", args)
            probe = urllib.request.Request(f"{self.server}/readyz")
            if self._wait(name="kube-apiserver", proc=proc, probe=probe, context=context):
                self._apiserver_args, self._probe_context = args, context
                return
            self._procs.remove(("kube-apiserver", proc))
        raise ControlPlaneError(
            f"kube-apiserver exited at start; last log lines:\n{_tail(self.workdir / 'kube-apiserver.log')}"
        )

    def restart_apiserver(self, *, kill: bool = False) -> float:
        """Stop kube-apiserver (SIGTERM, or SIGKILL when ``kill``) and start it again on the same port.

        etcd keeps running, so every object survives; clients see their connections drop and then
        refused until the new process is ready (what a control-plane upgrade or a crash does to a
        controller). Returns the seconds the API was down.
        """
        assert self._apiserver_args, "start() first"
        started = time.monotonic()
        for entry in [e for e in self._procs if e[0] == "kube-apiserver"]:
            _name, proc = entry
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            else:
                _terminate(proc)
            self._procs.remove(entry)
        for _attempt in range(10):  # the port may linger for a moment after the old process
            proc = self._spawn("kube-apiserver", self._apiserver_args)
            probe = urllib.request.Request(f"{self.server}/readyz")
            if self._wait(name="kube-apiserver", proc=proc, probe=probe, context=self._probe_context):
                return time.monotonic() - started
            self._procs.remove(("kube-apiserver", proc))
            time.sleep(0.5)
        raise ControlPlaneError(
            f"kube-apiserver did not restart on port {self.port}; last log lines:\n"
            f"{_tail(self.workdir / 'kube-apiserver.log')}"
        )

    def compact_etcd(self) -> int:
        """Compact etcd's history up to now, so watches from older resourceVersions get 410 Gone."""

        def post(path: str, body: dict[str, object]) -> dict[str, object]:
            req = urllib.request.Request(
                f"{self.etcd_url}{path}", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                result: dict[str, object] = json.loads(resp.read())
                return result

        header = post("/v3/kv/range", {"key": "AA=="})["header"]
        revision = int(header["revision"])  # type: ignore[index]
        post("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    # -- identities -------------------------------------------------------------------------------

    def user_kubeconfig(self, *, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for a client-certificate identity (no groups = nothing allowed until bound)."""
        assert self._ca is not None, "start() first"
        pair = self._ca.issue_client(user=user, groups=groups)
        path = self.workdir / f"{pair.cert.stem}.kubeconfig"
        path.write_text(
            kubeconfig_text(server=self.server, ca=self.ca_cert, user=user, cert=pair.cert, key=pair.key)
        )
        return path

    def token_kubeconfig(self, *, name: str, token: str) -> Path:
        """A kubeconfig for a bearer token (for example one from the TokenRequest API)."""
        path = self.workdir / f"token-{name}.kubeconfig"
        path.write_text(kubeconfig_text(server=self.server, ca=self.ca_cert, user=name, token=token))
        return path

    # -- stopping ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop both processes (apiserver first) and remove the working directory. Idempotent."""
        for _name, proc in reversed(self._procs):
            _terminate(proc)
        self._procs.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [proc.pid for _name, proc in self._procs if proc.poll() is None]


def _terminate(proc: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)

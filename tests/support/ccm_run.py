"""``ccm run`` as a process, as the tests start it: the command line, a running process, and the set of
processes a test started.

Every process is started in a session (process group) of its own, its stdout and stderr go to a log
file, and :meth:`CcmProcesses.stop_all` terminates, then kills, each whole group and prints each log
(pytest shows it for a failing test). The ``ccm_run`` fixture (``tests/plugins/ccm_run.py``) gives a
test such a set, stopped at its end whatever happened; the flags for a cloud come from
:func:`fake_flags`, :func:`tests.support.aws.ccm_flags` or :func:`tests.support.gcp.ccm_flags`.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ccm.envtest.controlplane import ControlPlane
from tests.support import kube

REPO = Path(__file__).resolve().parents[2]
LEASE_NAME = "ccm-lb-controller"
FAST_ELECTION = (
    "--leader-elect=true",
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=1s",
)


def ccm_command(*args: str) -> list[str]:
    """The command line of ``ccm run`` with ``args``, run by this Python from the checkout."""
    return [sys.executable, "-m", "ccm.cli", "run", *args]


def fake_flags(control_plane: ControlPlane, *, port: int, kubeconfig: Path | None = None) -> tuple[str, ...]:
    """``--cloud-provider=fake`` as admin (or ``kubeconfig``), serving on ``port`` of the loopback."""
    return (
        "--cloud-provider=fake",
        f"--kubeconfig={kubeconfig or control_plane.kubeconfig}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
    )


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


class StartCcm(Protocol):
    """The ``ccm`` fixture of tests/cli: ``ccm run --cloud-provider=fake`` with ``flags`` last."""

    def __call__(
        self, *flags: str, kubeconfig: Path | None = None, port: int | None = None
    ) -> CcmProcess: ...


class CcmProcesses:
    """The ``ccm run`` processes of one test (or module), each logging to a file of ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[CcmProcess] = []
        self._stopped = 0

    def start(self, *args: str, name: str = "", port: int = 0) -> CcmProcess:
        """``ccm run args`` (later flags override earlier ones); ``port`` is the --secure-port given."""
        log = self.folder / f"ccm-{name or len(self.started)}.log"
        process = CcmProcess(args=args, log=log, port=port)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """SIGTERM to every group at once, then wait (and kill) each, then print each log; idempotent."""
        fresh = self.started[self._stopped :]
        self._stopped = len(self.started)
        for process in fresh:
            process.terminate()
        for process in fresh:
            process.stop()
        for process in fresh:
            process.dump()


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


def write_fake_cloud_config(path: Path, suffix: str) -> Path:
    """The fake provider's --cloud-config, naming the load balancers' hostname suffix."""
    path.write_text(f"[Global]\nhostname-suffix = {suffix}\n")
    return path

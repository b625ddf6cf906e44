"""Two leader-elected ``ccm run`` replicas, as a Deployment of two would run them, and SIGKILL for the leader.

Each replica is a real process (``python -m ccm.cli run``) with its own log. A replica that exits is
started again after a short delay, as the kubelet restarts a container; an exit after "leader election
lost" is the designed reaction to losing the Lease (an apiserver restart or a cut can cost it), any
other exit we did not cause is a crash and is counted as one.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.soak.workload import UNREACHABLE
from tests.support import kube

REPO = Path(__file__).resolve().parents[2]
LEASE = "ccm-lb-controller"
LEASE_NAMESPACE = "kube-system"
ELECTION = (
    "--leader-elect=true",
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=1s",
    f"--leader-elect-resource-namespace={LEASE_NAMESPACE}",
)
LOST_LEADERSHIP = "leader election lost"
# What a process prints when an exception escapes where nothing catches it (a thread or main).
UNCAUGHT = ("Exception in thread", "Traceback (most recent call last)")


class Replica:
    """One ``ccm run`` process; restarted as the same replica (same log file, appended)."""

    def __init__(self, *, index: int, args: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.index = index
        self.args = list(args)
        self.env = dict(env)
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed_by_us = False
        self.starts = 0
        self._log_offset = 0  # where the current process's output starts in the log

    def start(self) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ccm.cli", "run", *self.args],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        self.killed_by_us = False
        self.starts += 1

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def current_log(self) -> str:
        with self.log_path.open("rb") as fh:
            fh.seek(self._log_offset)
            return fh.read().decode(errors="replace")

    def identity(self) -> str | None:
        match = re.search(r"attempting to acquire leader lease \S+ as (\S+)", self.current_log())
        return match.group(1) if match else None

    def sigkill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.killed_by_us = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 15 s; the exit code (None if it was not running)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.killed_by_us = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        return proc.returncode


class ReplicaSet:
    """Two replicas on one Lease; a supervisor thread restarts whichever exits (after ``restart_delay``)."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        common_args: Sequence[str],
        env: Mapping[str, str],
        workdir: Path,
        replicas: int = 2,
        restart_delay: float = 2.0,
    ) -> None:
        self.api = api
        self.restart_delay = restart_delay
        self.replicas = [
            Replica(
                index=i,
                args=[*ELECTION, *common_args],
                env=env,
                log=workdir / f"ccm-{i}.log",
            )
            for i in range(replicas)
        ]
        self.exits: Counter[str] = Counter()  # "sigkill", "lost-leadership", "crash"
        self.crash_logs: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="replica-supervisor", daemon=True)

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()
        self._thread.start()

    def _supervise(self) -> None:
        died: dict[int, float] = {}
        while not self._stop.wait(0.2):
            with self._lock:
                for replica in self.replicas:
                    if replica.running() or replica.proc is None:
                        died.pop(replica.index, None)
                        continue
                    if replica.index not in died:
                        died[replica.index] = time.monotonic()
                        self._classify(replica)
                    elif time.monotonic() - died[replica.index] >= self.restart_delay:
                        died.pop(replica.index)
                        replica.start()

    def _classify(self, replica: Replica) -> None:
        log = replica.current_log()
        if replica.killed_by_us:
            self.exits["sigkill"] += 1
        elif LOST_LEADERSHIP in log and replica.proc is not None and replica.proc.returncode == 1:
            self.exits["lost-leadership"] += 1
        else:
            code = replica.proc.returncode if replica.proc is not None else None
            self.exits["crash"] += 1
            self.crash_logs.append(f"replica {replica.index} exited with {code}:\n{log[-6000:]}")

    def leader(self) -> Replica | None:
        """The replica whose identity holds the Lease (None while nobody does, or a dead one does)."""
        try:
            lease = kube.raw(
                self.api, "GET", f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{LEASE}"
            )
        except (ApiException, *UNREACHABLE):
            return None
        holder = (lease.get("spec") or {}).get("holderIdentity")
        for replica in self.replicas:
            if replica.running() and holder and replica.identity() == holder:
                return replica
        return None

    def kill_leader(self) -> bool:
        """SIGKILL the current leader (the supervisor starts it again); False when there was none."""
        with self._lock:
            leader = self.leader()
            if leader is None:
                return False
            leader.sigkill()
            return True

    def wait_all_running(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(r.running() for r in self.replicas) and self.leader() is not None:
                return
            time.sleep(0.2)
        raise AssertionError(f"the replicas and a leader were not all up within {timeout:.0f}s")

    def uncaught(self) -> list[str]:
        """Lines of every replica's log (all its runs) saying an exception escaped."""
        found = []
        for replica in self.replicas:
            text = replica.log_path.read_text(errors="replace") if replica.log_path.exists() else ""
            lines = text.splitlines()
            for index, line in enumerate(lines):
                if line.startswith("Exception in thread"):
                    found.append("\n".join(lines[index : index + 30]))
        return found

    def log_count(self, needle: str) -> int:
        return sum(
            r.log_path.read_text(errors="replace").count(needle) for r in self.replicas if r.log_path.exists()
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            for replica in self.replicas:
                replica.stop()

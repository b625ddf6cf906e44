"""The controller under test, run as production runs it: ``python -m ccm.cli run`` in its own process.

Running it in-process would share boto3 state and signal handlers with the sandbox and hide start-up
problems; a child process with its own log is what users deploy. It gets a session of its own so a
Ctrl-C in the terminal reaches only the sandbox, which then stops it first (SIGTERM, as the kubelet
does), before the API server and the fake cloud disappear under it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

STARTED_MARKER = "starting: provider="  # the line ``ccm run`` logs once its flags are good


def command(*, kubeconfig: Path, cluster: str, provider: str, cloud_args: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ccm.cli",
        "run",
        f"--cloud-provider={provider}",
        *cloud_args,
        f"--kubeconfig={kubeconfig}",
        f"--cluster-name={cluster}",
        "--leader-elect=false",
        "--secure-port=0",
    ]


class ControllerProcess:
    """One ``ccm run`` child whose stdout and stderr go to ``log``."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        cluster: str,
        provider: str,
        cloud_args: Sequence[str] = (),
        log: Path,
        env: Mapping[str, str],
    ) -> None:
        self.args = command(kubeconfig=kubeconfig, cluster=cluster, provider=provider, cloud_args=cloud_args)
        self.log = log
        self.env = dict(env)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "start() first"
        return self._proc.pid

    def start(self) -> None:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_started(self, *, timeout: float) -> bool:
        """True once the controller logged that it starts; False if it exited or took too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exit_code() is not None:
                return False
            with contextlib.suppress(OSError):
                if STARTED_MARKER in self.log.read_text(errors="replace"):
                    return True
            time.sleep(0.1)
        return False

    def stop(self, *, grace: float = 15.0) -> None:
        """SIGTERM to its process group, SIGKILL after ``grace`` seconds. Idempotent."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            logger.warning("the controller did not stop within %.0fs; killing it", grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)

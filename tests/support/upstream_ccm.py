"""The real upstream ``aws-cloud-controller-manager`` (cloud-provider-aws v1.37.1, only its service
controller) on the test's apiserver and a moto server of its own, for tests that check what this
controller does with what upstream really built.

* the binary: ``hack/build-upstream-aws-ccm`` builds it once from the Go module proxy and caches it
  (``hack/test`` runs it and exports ``CCM_UPSTREAM_AWS_CCM``);
* moto: ``bench/moto_corrected.py`` in its own process, with the corrections upstream needs to run on
  moto at all (AWS's NLB and Classic ELB DNS names, no SSL policy on TCP listeners, the default
  Classic ELB health check; each sourced in that file). The session's in-process moto is not touched;
* upstream reaches moto through ``[ServiceOverride]`` sections of its cloud config
  (``../shared/reference/real-apiserver-recipe.md`` §6); this controller through ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccm.envtest.controlplane import ControlPlane, free_port
from tests.support.aws import CLUSTER, Network

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
BUILD_HINT = "hack/build-upstream-aws-ccm (hack/test runs it; about 7 minutes once, then cached)"


def upstream_binary() -> Path:
    """The cached upstream binary; a test failure saying how to build it when it is missing."""
    named = os.environ.get("CCM_UPSTREAM_AWS_CCM", "")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ccm-lb" / "upstream" / "bin"
    for candidate in ([Path(named)] if named else []) + [cache / "aws-cloud-controller-manager-v1.37.1"]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"the upstream aws-cloud-controller-manager is not built: run {BUILD_HINT}", pytrace=False)


@contextlib.contextmanager
def corrected_moto(log: Path) -> Iterator[str]:
    """``bench/moto_corrected.py`` on a free loopback port; yields its endpoint URL."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "bench" / "moto_corrected.py"), "--port=0"],
            stdout=subprocess.PIPE,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()  # "listening on http://127.0.0.1:PORT"
        if not line.startswith("listening on "):
            raise AssertionError(f"moto_corrected did not start: {line!r}; see {log}")
        yield line.removeprefix("listening on ")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def cloud_config(*, network: Network, endpoint: str) -> str:
    """Upstream's gcfg cloud config: ``[Global]`` for the cluster, ``[ServiceOverride]`` → moto."""
    zone = sorted(network.subnets)[0]
    lines = [
        "[Global]",
        f"Region = {REGION}",
        f"Zone = {zone}",
        f"VPC = {network.vpc_id}",
        f"SubnetID = {network.subnets[zone]}",
        f"KubernetesClusterID = {CLUSTER}",
    ]
    for section, service, signing in (
        ("ec2", "EC2", "ec2"),
        ("elb", "Elastic Load Balancing", "elasticloadbalancing"),
        ("elbv2", "Elastic Load Balancing v2", "elasticloadbalancing"),
    ):
        lines += [
            "",
            f'[ServiceOverride "{section}"]',
            f'Service = "{service}"',
            f"Region = {REGION}",
            f"URL = {endpoint}",
            f"SigningRegion = {REGION}",
            f"SigningName = {signing}",
        ]
    return "\n".join(lines) + "\n"


class UpstreamCcm:
    """The upstream service controller as a child process in its own session."""

    def __init__(
        self, *, control_plane: ControlPlane, network: Network, endpoint: str, workdir: Path
    ) -> None:
        conf = workdir / "upstream-cloud.conf"
        conf.write_text(cloud_config(network=network, endpoint=endpoint))
        self.port = free_port()
        self.log = workdir / "upstream-ccm.log"
        self.command = [
            str(upstream_binary()),
            "--cloud-provider=aws",
            f"--cloud-config={conf}",
            f"--kubeconfig={control_plane.kubeconfig}",
            f"--cluster-name={CLUSTER}",
            "--controllers=service-lb-controller",
            "--leader-elect=false",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--use-service-account-credentials=false",
            "--allocate-node-cidrs=false",
            "--configure-cloud-routes=false",
            "--authentication-skip-lookup=true",
            f"--cert-dir={workdir / 'upstream-certs'}",
            "--v=2",
        ]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 120.0) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"upstream exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                url = f"https://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                    if resp.read().strip() == b"ok":
                        return
            time.sleep(0.2)
        raise AssertionError(f"upstream was not healthy within {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

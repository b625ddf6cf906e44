"""``ccm sandbox`` as users run it: a real process, real control plane, moto or the fake GCE API, the real
controller.

Each run gets a TMPDIR of its own, so "nothing left behind" is checkable: after exit that folder is
empty and no process on the machine mentions it on its command line (etcd, kube-apiserver and
``ccm run`` all do while they live). Bad input must end in one line of stderr, never a traceback.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from tests.plugins.controlplane import api_client_for

REPO = Path(__file__).resolve().parents[2]
HOSTNAME = re.compile(r"\S+\.elb\.(?:[a-z0-9-]+\.)?amazonaws\.com")  # NLB: .elb.<region>., Classic: .elb.
IP = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


@dataclass
class Result:
    code: int
    out: str
    err: str
    tmp: Path


def sandbox(*args: str, tmp: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccm.cli", "sandbox", *args],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp), **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the sandbox cleans up on SIGTERM
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"ccm sandbox did not finish within {timeout}s\n--- stdout\n{out}\n--- stderr\n{err}")
    sys.stderr.write(f"--- ccm sandbox {' '.join(args)}\n{err}")
    return Result(code=proc.returncode, out=out, err=err, tmp=tmp)


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def assert_nothing_left(result: Result) -> None:
    pids = [int(p) for p in re.findall(r"\bpid (\d+)", result.err)]
    assert len(pids) >= 3, f"expected etcd, kube-apiserver and controller pids in:\n{result.err}"
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not alive, f"processes left behind: {alive}"
    assert processes_mentioning(str(result.tmp)) == []
    assert list(result.tmp.iterdir()) == [], "the sandbox left files in its TMPDIR"


def service_row(out: str, namespace: str, name: str) -> list[str]:
    for line in out.splitlines():
        cells = line.split()
        if cells[:2] == [namespace, name]:
            return cells
    raise AssertionError(f"no row for {namespace}/{name} in:\n{out}")


def rows_of(out: str, header: str) -> list[list[str]]:
    """The rows of the table whose header line starts with ``header``."""
    section = out.split(f"\n{header} ", 1)[1].split("\n\n", 1)[0]
    return [line.split() for line in section.splitlines()[1:]]


def target_groups(out: str) -> list[list[str]]:
    return rows_of(out, "TARGET GROUP")


def kubeconfig_path(out: str) -> str:
    match = re.search(r"^Kubeconfig: (\S+)", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def test_once_gives_the_demo_service_an_nlb_and_leaves_nothing_behind(tmp_path: Path) -> None:
    result = sandbox("--once", tmp=tmp_path / "tmp")

    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    row = service_row(result.out, "default", "demo")
    hostname = row[3]
    assert HOSTNAME.fullmatch(hostname), row
    assert row[-1] == "synced"
    lb_name = hostname.split(".elb.", 1)[0].rsplit("-", 1)[0]  # <name>-<16 hex>.elb.<region>.amazonaws.com
    assert re.search(rf"^{lb_name}\s+default/demo\s+internet-facing\s+active\s+{hostname}$", result.out, re.M)
    assert re.search(rf"^TCP:80\s+{lb_name}\s", result.out, re.M)
    assert re.search(rf"^TCP:443\s+{lb_name}\s", result.out, re.M)
    groups = target_groups(result.out)
    assert len(groups) == 2 and all(g[3] == "3" for g in groups), groups  # 2 ports, 3 nodes
    assert "frontend of default/demo" in result.out and "nodes (seeded)" in result.out
    kubeconfig = kubeconfig_path(result.out)
    assert kubeconfig.startswith(str(tmp_path / "tmp")) and kubeconfig.endswith("/kubeconfig")
    assert_nothing_left(result)


def test_gce_once_gives_the_demo_service_an_ip_and_leaves_nothing_behind(tmp_path: Path) -> None:
    result = sandbox("--once", "--cloud-provider=gce", tmp=tmp_path / "tmp")

    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert "--cloud-provider=gce --cloud-config=" in result.err
    assert "with gce:// providerIDs" in result.err
    assert "EXTERNAL IP" in result.out
    row = service_row(result.out, "default", "demo")
    ip = row[3]
    assert IP.fullmatch(ip), row
    assert row[-1] == "synced"
    [rule] = rows_of(result.out, "FORWARDING RULE")
    name = rule[0]
    assert rule[1:] == ["default/demo", "EXTERNAL", ip, "TCP:80,443", name], rule
    [backend] = rows_of(result.out, "BACKEND SERVICE")
    assert backend[:4] == [name, "default/demo", "EXTERNAL", "TCP"], backend
    groups = rows_of(result.out, "INSTANCE GROUP")
    assert sorted(backend[5].split(",")) == sorted(f"{g[1]}/{g[0]}" for g in groups), (backend, groups)
    assert {g[1]: g[2] for g in groups} == {"us-central1-a": "2", "us-central1-b": "1"}, groups
    checks = rows_of(result.out, "HEALTH CHECK")
    assert [c[2] for c in checks] == ["HTTP:10256/healthz"], checks
    assert backend[4] == checks[0][0]
    firewalls = {fw[0]: fw for fw in rows_of(result.out, "FIREWALL")}
    traffic = next(fw for n, fw in firewalls.items() if n.startswith("k8s-fw-"))
    assert traffic[1:] == ["default/demo", "tcp:80,443", "0.0.0.0/0", "sandbox-node"], traffic
    assert any(fw[2] == "tcp:10256" for fw in firewalls.values()), firewalls
    assert "curl http://127.0.0.1:" in result.out
    assert_nothing_left(result)


MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: checkout
  namespace: shop
spec:
  type: LoadBalancer
  selector: {app: checkout}
  ports:
  - {name: https, port: 443, targetPort: 8443, protocol: TCP}
---
# no namespace: goes to default, as with kubectl apply
apiVersion: v1
kind: Service
metadata:
  name: dns
spec:
  type: LoadBalancer
  selector: {app: dns}
  ports:
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data: {greeting: hello}
"""


def test_once_with_a_manifest_and_no_demo(tmp_path: Path) -> None:
    manifest = tmp_path / "services.yaml"
    manifest.write_text(MANIFEST)

    result = sandbox("--once", "--no-demo", "--nodes=2", "-f", str(manifest), tmp=tmp_path / "tmp")

    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert HOSTNAME.fullmatch(service_row(result.out, "shop", "checkout")[3])
    assert HOSTNAME.fullmatch(service_row(result.out, "default", "dns")[3])
    assert not re.search(r"^default\s+demo\s", result.out, re.M), "--no-demo still made the demo"
    assert "ConfigMap default/settings" in result.err
    groups = target_groups(result.out)
    assert len(groups) == 2 and all(g[3] == "2" for g in groups), groups
    assert re.search(r"^UDP:53\s", result.out, re.M)
    assert_nothing_left(result)


def test_a_manifest_the_api_server_refuses_is_one_line_and_everything_stops(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: Bad_Name}\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
    )

    result = sandbox("--once", "--no-demo", "--nodes=1", "-f", str(manifest), tmp=tmp_path / "tmp")

    assert result.code == 2
    errors = [line for line in result.err.splitlines() if line.startswith("ccm sandbox: error:")]
    assert len(errors) == 1 and f"{manifest}#1" in errors[0] and "Bad_Name" in errors[0], result.err
    assert "Traceback" not in result.err
    assert_nothing_left(result)


def test_once_gives_a_classic_service_a_classic_elb_listed_with_its_listeners(tmp_path: Path) -> None:
    manifest = tmp_path / "classic.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: shop\n  annotations:\n"
        "    service.beta.kubernetes.io/aws-load-balancer-type: classic\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
    )

    result = sandbox("--once", "--no-demo", "--nodes=1", "-f", str(manifest), tmp=tmp_path / "tmp")

    assert result.code == 0, result.err
    row = service_row(result.out, "default", "shop")
    hostname = row[3]
    assert hostname.endswith(".us-east-1.elb.amazonaws.com") and row[-1] == "synced", row  # Classic's pattern
    lb_name = hostname.split(".", 1)[0].rsplit("-", 1)[0]  # <name>-<digits>.<region>.elb.amazonaws.com
    assert re.search(
        rf"^{lb_name}\s+default/shop\s+internet-facing\s+classic\s+{hostname}$", result.out, re.M
    )
    assert re.search(rf"^TCP:80\s+{lb_name}\s+instances:\d+", result.out, re.M), result.out
    assert_nothing_left(result)


def wait_for(path: Path, pattern: str, *, proc: subprocess.Popen[bytes], timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text()
        if re.search(pattern, text, re.MULTILINE):
            return text
        assert proc.poll() is None, f"ccm sandbox exited with {proc.returncode}:\n{text}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {pattern!r} in {path.name}:\n{path.read_text()}")


def test_interactive_shows_a_refused_service_reprints_on_change_and_ctrl_c_cleans_up(tmp_path: Path) -> None:
    manifest = tmp_path / "refused.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: legacy\n  annotations:\n"
        "    service.beta.kubernetes.io/aws-load-balancer-type: alb\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccm.cli", "sandbox", "--nodes=1", "-f", str(manifest)],
            cwd=REPO,
            env={**os.environ, "TMPDIR": str(tmp)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        wait_for(err_path, r"ready; press Ctrl-C", proc=proc)
        first = out_path.read_text()
        assert HOSTNAME.fullmatch(service_row(first, "default", "demo")[3])
        assert service_row(first, "default", "legacy")[3:5] == ["<pending>", "InvalidSpec:"]
        assert "unknown load balancer type" in err_path.read_text()  # "no load balancer yet for ..."

        # the user fixes the Service with the printed kubeconfig; the tables are printed again
        api = api_client_for(Path(kubeconfig_path(first)))
        client.CoreV1Api(api).patch_namespaced_service(
            "legacy",
            "default",
            {"metadata": {"annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": None}}},
        )
        api.close()
        text = wait_for(out_path, r"^default\s+legacy\s+\S+\s+k8s-default-legacy-\S+\s+synced$", proc=proc)
        assert "changed" in text

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        sys.stderr.write(f"--- ccm sandbox (interactive)\n{err_path.read_text()}")
    result = Result(code=proc.returncode, out=out_path.read_text(), err=err_path.read_text(), tmp=tmp)
    assert "received SIGINT; stopping" in result.err and "Traceback" not in result.err
    assert_nothing_left(result)


def one_error_line(result: Result) -> str:
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("ccm sandbox: error: ")
    return lines[0]


def test_a_missing_control_plane_binary_is_one_line_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-such" / "kube-apiserver"

    result = sandbox("--once", tmp=tmp_path / "tmp", env={"TEST_ASSET_KUBE_APISERVER": str(missing)})

    assert result.code != 0
    line = one_error_line(result)
    assert f"TEST_ASSET_KUBE_APISERVER={missing}" in line
    assert "unset TEST_ASSET_KUBE_APISERVER" in line and "hack/ensure-control-plane.sh" in line
    assert result.out == ""
    assert list(result.tmp.iterdir()) == []


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield int(sock.getsockname()[1])
    sock.close()


def test_a_busy_aws_port_is_one_line(tmp_path: Path, busy_port: int) -> None:
    result = sandbox("--once", f"--aws-port={busy_port}", tmp=tmp_path / "tmp")

    assert result.code == 2
    line = one_error_line(result)
    assert f"--aws-port={busy_port}" in line and "in use" in line and "0 for a free one" in line
    assert list(result.tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "content", "expected"),
    [
        (("--cloud-provider=azure",), None, "--cloud-provider=azure: accepted: aws, gce (alias gcp)"),
        (("--cloud-provider=gcp", "--aws-port=8080"), None, "--aws-port applies to --cloud-provider=aws"),
        (("-f", "{manifest}"), "kind: Service\nmetadata: {name: x\n", "not valid YAML at line 3"),
        (("-f", "{manifest}"), "apiVersion: v1\nmetadata: {name: x}\n", "#1: missing kind"),
        (("-f", "{manifest}"), "- a\n- b\n", "expected a Kubernetes object"),
        (("-f", "{missing}"), None, "no such file"),
    ],
)
def test_bad_input_is_one_line_before_anything_starts(
    tmp_path: Path, args: tuple[str, ...], content: str | None, expected: str
) -> None:
    manifest = tmp_path / "m.yaml"
    if content is not None:
        manifest.write_text(content)
    argv = [a.format(manifest=manifest, missing=tmp_path / "missing.yaml") for a in args]

    result = sandbox("--once", *argv, tmp=tmp_path / "tmp", timeout=30)

    assert result.code == 2
    assert expected in one_error_line(result)
    assert list(result.tmp.iterdir()) == []

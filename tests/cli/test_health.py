"""The secure port of the real process: probes and metrics over HTTPS, ``--secure-port=0``, busy ports.

The certificate is self-signed unless ``--tls-cert-file`` is given, so these clients do not verify
it (as the kubelet does not on HTTPS probes).
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from ccm.envtest.controlplane import ControlPlane, free_port
from tests.support import kube
from tests.support.ccm_run import (
    REPO,
    CcmProcess,
    CcmProcesses,
    StartCcm,
    ccm_command,
    fake_flags,
    listening_ports,
)


@pytest.fixture(scope="module")
def served(
    control_plane: ControlPlane, kube_api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CcmProcess, str]]:
    """One ``ccm run --leader-elect=false`` for the tests that only read the port, and its namespace."""
    namespace = kube.make_namespace(kube_api)
    processes = CcmProcesses(tmp_path_factory.mktemp("served"))
    port = free_port()
    try:
        yield (
            processes.start(*fake_flags(control_plane, port=port), "--leader-elect=false", port=port),
            namespace,
        )
    finally:
        processes.stop_all()
        kube.delete_services(kube_api, namespace)


def test_the_probes_answer_ok_over_https_and_readyz_once_the_informers_synced(
    served: tuple[CcmProcess, str],
) -> None:
    process, _ = served

    process.wait_ready()

    assert process.get("/healthz") == (200, "ok")
    assert process.get("/healthz/ping") == (200, "ok")
    assert process.get("/livez") == (200, "ok")
    assert process.get("/livez/ping") == (200, "ok")
    assert process.get("/readyz") == (200, "ok")
    assert process.get("/readyz/informer-sync") == (200, "ok")
    code, body = process.get("/readyz?verbose")
    assert code == 200
    assert "[+]informer-sync ok" in body.splitlines()
    code, body = process.get("/healthz?verbose")
    assert code == 200
    assert body.splitlines() == ["[+]ping ok", "healthz check passed"]  # no leaderElection check
    assert listening_ports(process.pid) == {process.port}


def test_unknown_paths_and_checks_are_404(served: tuple[CcmProcess, str]) -> None:
    process, _ = served
    process.wait_ready()

    assert process.get("/")[0] == 404
    assert process.get("/configz")[0] == 404
    assert process.get("/healthzz")[0] == 404
    assert process.get("/healthz/leaderElection")[0] == 404  # leader election is off
    assert process.get("/readyz/nope") == (404, "no such check: nope\n")


def test_metrics_has_the_upstream_names_once_a_service_was_synced(
    served: tuple[CcmProcess, str], kube_api: client.ApiClient
) -> None:
    process, namespace = served
    process.wait_ready()
    kube.create_service(kube_api, namespace, "web")
    kube.eventually(lambda: kube.lb_hostname(kube_api, namespace, "web"), message="web's load balancer")

    code, body = process.get("/metrics")

    assert code == 200
    samples = [line for line in body.splitlines() if not line.startswith("#")]
    assert any(line.startswith('workqueue_adds_total{name="service"}') for line in samples), body
    assert any(line.startswith("service_controller_loadbalancer_sync_total ") for line in samples), body
    assert any(line.startswith("rest_client_requests_total{") for line in samples), body
    assert not any(line.startswith("leader_election_master_status{") for line in samples), body


def test_an_idle_or_plaintext_connection_does_not_block_the_probes(served: tuple[CcmProcess, str]) -> None:
    process, _ = served
    process.wait_ready()

    with socket.create_connection(("127.0.0.1", process.port)) as idle:
        plain = http.client.HTTPConnection("127.0.0.1", process.port, timeout=5)
        try:
            plain.request("GET", "/healthz")
            plain.getresponse()
        except (OSError, http.client.HTTPException):
            pass  # a TLS server may close it or answer with garbage; it must just keep serving
        finally:
            plain.close()

        assert process.get("/healthz", timeout=5) == (200, "ok")
        # The idle connection was still held (not dropped to make room) when the probe was answered:
        # open, and nothing sent on it, as the server still waits for its TLS handshake.
        idle.setblocking(False)
        with pytest.raises(BlockingIOError):
            idle.recv(1)


def test_with_secure_port_0_nothing_is_served(
    ccm: StartCcm, kube_api: client.ApiClient, namespace: str
) -> None:
    process = ccm("--leader-elect=false", port=0)
    kube.create_service(kube_api, namespace, "web")

    kube.eventually(lambda: kube.lb_hostname(kube_api, namespace, "web"), message="web's load balancer")

    process.assert_running()
    assert listening_ports(process.pid) == set()


def test_a_busy_secure_port_exits_2_with_one_line_naming_it(control_plane: ControlPlane) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        proc = subprocess.run(
            ccm_command(
                "--cloud-provider=fake",
                f"--kubeconfig={control_plane.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
            ),
            cwd=REPO,
            capture_output=True,
            timeout=60,
            check=False,
        )

    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2, proc
    assert len(lines) == 1, lines
    assert f"--secure-port={port}" in lines[0]
    assert "--bind-address=127.0.0.1" in lines[0]
    assert "Address already in use" in lines[0]


def test_an_unreadable_serving_certificate_exits_2_with_one_line_naming_it(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("not a certificate\n")

    proc = subprocess.run(
        ccm_command(
            "--cloud-provider=fake",
            f"--kubeconfig={control_plane.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--tls-cert-file={cert}",
        ),
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )

    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2, proc
    assert len(lines) == 1, lines
    assert f"--tls-cert-file={cert}" in lines[0]


def test_the_given_serving_certificate_is_served(ccm: StartCcm, tmp_path: Path) -> None:
    cert_path, key_path = write_certificate(tmp_path)
    process = ccm(
        "--leader-elect=false", f"--tls-cert-file={cert_path}", f"--tls-private-key-file={key_path}"
    )
    process.wait_ready()

    context = ssl.create_default_context(cafile=str(cert_path))  # verify against it this time
    conn = http.client.HTTPSConnection("127.0.0.1", process.port, timeout=5, context=context)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok")
    finally:
        conn.close()


def write_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccm-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path

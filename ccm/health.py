"""The secure port: ``/healthz`` (and ``/healthz/<check>``), ``/livez``, ``/readyz`` and ``/metrics``.

prometheus_client's own server answers metrics on every path, so this is one small
``ThreadingHTTPServer``. Without ``--tls-cert-file`` a self-signed certificate is made in memory (well,
in a private temporary directory that is removed at once), as upstream does.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

logger = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]
CONNECTION_TIMEOUT = 10.0  # seconds a client may take for the TLS handshake and its request


def self_signed_context(*, host: str) -> ssl.SSLContext:
    """A server SSL context with a fresh self-signed certificate for ``host`` and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ccm@{host}")])
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    with contextlib.suppress(ValueError):
        sans.append(x509.IPAddress(ipaddress.ip_address(host)))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="ccm-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        with open(cert_path, "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context.load_cert_chain(cert_path, key_path)
    return context


class HealthServer:
    """Serves the probes and metrics; checks are callables returning ``(ok, detail)``."""

    def __init__(
        self,
        *,
        bind_address: str,
        port: int,
        cert_file: str = "",
        key_file: str = "",
        healthz: dict[str, Check] | None = None,
        readyz: dict[str, Check] | None = None,
        before_metrics: Callable[[], None] | None = None,
    ) -> None:
        self.healthz = {"ping": lambda: (True, "ok"), **(healthz or {})}
        self.readyz = {"ping": lambda: (True, "ok"), **(readyz or {})}
        self.before_metrics = before_metrics
        if cert_file:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(cert_file, key_file or None)
            except OSError as exc:  # ssl.SSLError is one too
                flags = f"--tls-cert-file={cert_file}" + (
                    f" --tls-private-key-file={key_file}" if key_file else ""
                )
                raise ValueError(f"{flags}: {exc.strerror or exc}") from None
        else:
            context = self_signed_context(host=bind_address)
        server = self
        handler = type("Handler", (_Handler,), {"server_state": server})
        self._httpd = _TLSServer((bind_address, port), handler, context=context)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="health-server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        logger.info("serving /healthz, /livez, /readyz and /metrics on https port %d", self.port)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _TLSServer(ThreadingHTTPServer):
    """TLS per connection, with the handshake on the connection's own thread.

    Wrapping the listening socket would run every handshake inside ``accept()`` on the one serving
    thread: a client that connects and sends nothing (a TCP probe, a port scan, a stuck peer) would
    then block every other probe. A connection that is idle for :data:`CONNECTION_TIMEOUT` is closed.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        context: ssl.SSLContext,
    ) -> None:
        self._context = context
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(CONNECTION_TIMEOUT)
        return self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.do_handshake()
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("health: connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server_state: HealthServer
    timeout = CONNECTION_TIMEOUT

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("health: " + format, *args)

    def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _checks(self, checks: dict[str, Check], sub: str, verbose: bool) -> None:
        if sub:
            if sub not in checks:
                self._send(404, f"no such check: {sub}\n".encode())
                return
            ok, detail = _run(checks[sub])
            self._send(200 if ok else 500, (b"ok" if ok else f"{sub} failed: {detail}".encode()))
            return
        results = {name: _run(check) for name, check in checks.items()}
        healthy = all(ok for ok, _ in results.values())
        if verbose or not healthy:
            lines = [
                f"[{'+' if ok else '-'}]{name} {'ok' if ok else 'failed: ' + detail}"
                for name, (ok, detail) in results.items()
            ]
            lines.append("healthz check passed" if healthy else "healthz check failed")
            self._send(200 if healthy else 500, ("\n".join(lines) + "\n").encode())
        else:
            self._send(200, b"ok")

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        verbose = "verbose" in query
        state = self.server_state
        if path == "/metrics":
            if state.before_metrics is not None:
                state.before_metrics()
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz" or path.startswith("/healthz/"):
            self._checks(state.healthz, path[len("/healthz/") :] if path != "/healthz" else "", verbose)
        elif path == "/livez" or path.startswith("/livez/"):
            self._checks(
                {"ping": state.healthz["ping"]}, path[len("/livez/") :] if path != "/livez" else "", verbose
            )
        elif path == "/readyz" or path.startswith("/readyz/"):
            self._checks(state.readyz, path[len("/readyz/") :] if path != "/readyz" else "", verbose)
        else:
            self._send(404, b"404 page not found\n")


def _run(check: Check) -> tuple[bool, str]:
    try:
        return check()
    except Exception as exc:
        return False, str(exc)

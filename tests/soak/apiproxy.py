"""A loopback TCP proxy between the controller replicas and kube-apiserver, whose connections can be cut.

``cut()`` closes every open connection at once (watches, in-flight requests, the Lease renewals) while
new connections are still accepted: what a load balancer in front of the apiserver, an idle timeout or
a network blip does to a controller. The bytes are TLS end to end; the proxy never looks at them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class CuttableProxy:
    def __init__(self, *, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.cuts = 0
        threading.Thread(target=self._accept, name="api-proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:  # the apiserver is restarting: the client sees a reset, as it would
                downstream.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((downstream, upstream))
            threading.Thread(
                target=self._pump, args=(downstream, upstream), name="api-proxy-pump", daemon=True
            ).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([a, b], [], [], 0.5)
                for src in readable:
                    data = src.recv(65536)
                    if not data:
                        return
                    peer[src].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock, contextlib.suppress(ValueError):
                self._pairs.remove((a, b))

    def cut(self) -> int:
        """Close every open connection (new ones are accepted as before); returns how many."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self.cuts += 1
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        return len(pairs)

    def kubeconfig_text(self, admin_kubeconfig: str, server: str) -> str:
        """The admin kubeconfig, pointed at this proxy (the serving certificate is for 127.0.0.1)."""
        assert server in admin_kubeconfig
        return admin_kubeconfig.replace(server, f"https://127.0.0.1:{self.port}")

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

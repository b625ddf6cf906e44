"""A loopback TCP proxy in front of the API server that a test can cut off (refuse, or blackhole)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from pathlib import Path

from ccm.envtest.controlplane import ControlPlane


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

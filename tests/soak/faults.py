"""What breaks during a chaos phase, and when: a seeded random schedule of faults of every kind.

Kinds: ``leader-kill`` (SIGKILL of the replica holding the Lease; the supervisor starts it again),
``apiserver-restart`` (kube-apiserver stopped, by SIGTERM or SIGKILL, and started again on the same
port), ``watch-cut`` (every connection between the replicas and the apiserver closed at once), the
cloud's own kinds (a window of throttling, 5xx, latency, resets; GCE operation errors, slow and long
running operations) and changes by hand (a Service's load balancer deleted or changed behind the
controller's back). Kinds come from a shuffled bag (each once per bag, leader kills twice); a cloud
fault lasts a random window, one window at a time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ccm.envtest.controlplane import ControlPlane
from tests.soak.apiproxy import CuttableProxy
from tests.soak.cloud import SoakCloud
from tests.soak.replicas import ReplicaSet

logger = logging.getLogger(__name__)

PROCESS_KINDS = ("leader-kill", "apiserver-restart", "watch-cut")


@dataclass
class FaultInjector:
    plane: ControlPlane
    proxy: CuttableProxy
    replicas: ReplicaSet
    cloud: SoakCloud
    rng: random.Random
    on_hand_change: Callable[[str, str], None]  # (kind, Service key) before a change by hand
    mean_gap: float = 6.0  # seconds between two faults, on average
    window: tuple[float, float] = (4.0, 15.0)  # how long a cloud fault lasts
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _cloud_until: float = 0.0
    _bag: list[str] = field(default_factory=list)

    def kinds(self) -> list[tuple[str, int]]:
        """Every kind with how many of it a bag holds."""
        return [
            ("leader-kill", 2),
            ("apiserver-restart", 1),
            ("watch-cut", 1),
            *((kind, 1) for kind in self.cloud.fault_kinds),
            *((kind, 1) for kind in self.cloud.hand_kinds),
        ]

    def next_kind(self) -> str:
        """Drawn from a shuffled bag, refilled when empty: every kind comes once per bag, in a seeded
        random order, so even a short run meets each one."""
        if not self._bag:
            self._bag = [kind for kind, count in self.kinds() for _ in range(count)]
            self.rng.shuffle(self._bag)
        return self._bag.pop()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fault-injector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No new fault; the current cloud window ends; processes are left to recover by themselves."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        self.cloud.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.expovariate(1.0 / self.mean_gap)):
            if self._cloud_until and time.monotonic() >= self._cloud_until:
                self.cloud.clear()
                self._cloud_until = 0.0
            kind = self.next_kind()
            try:
                self.inject(kind)
            except Exception as exc:  # a fault that could not be made is not a finding: counted apart
                logger.warning("fault %s could not be injected: %s", kind, exc)
                self.errors[kind] += 1

    def inject(self, kind: str) -> None:
        if kind == "leader-kill":
            if not self.replicas.kill_leader():
                return
        elif kind == "apiserver-restart":
            self.plane.restart_apiserver(kill=self.rng.random() < 0.5)
        elif kind == "watch-cut":
            self.proxy.cut()
        elif kind in self.cloud.fault_kinds:
            self.cloud.clear()
            self.cloud.inject(kind, rng=self.rng)
            self._cloud_until = time.monotonic() + self.rng.uniform(*self.window)
        elif kind in self.cloud.hand_kinds:
            service = self.cloud.by_hand(
                kind, rng=self.rng, inventory=self.cloud.inventory(), before=self.on_hand_change
            )
            if service is None:
                return
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        self.counts[kind] += 1
        logger.info("fault: %s", kind)

"""Leader election on a ``coordination.k8s.io/v1`` Lease, using the ``kubernetes`` package's own code.

A thin wrapper over ``kubernetes.leaderelection`` that fixes what it lacks for a controller:
validation that raises instead of calling ``sys.exit``, a lock bound to our ApiClient instead of the
global default, a record of the last successful renewal for ``/healthz/leaderElection``, the
``leader_election_master_status`` metric, and release of the Lease on shutdown so a successor does
not wait out the lease. When renewal fails, ``on_stopped_leading`` runs: the CLI exits there, as
upstream's ``klog.Fatal`` does.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock
from prometheus_client import Gauge

logger = logging.getLogger(__name__)

MASTER_STATUS = Gauge(
    "leader_election_master_status",
    "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
    "backup, 1 indicates master. 'name' is the string used to identify the lease.",
    ["name"],
)
HEALTH_SLACK = 20.0  # upstream: unhealthy if not renewed within lease duration + 20 s


class _RecordingLock(LeaseLock):
    """LeaseLock bound to our ApiClient that remembers when the lease was last written by us."""

    def __init__(self, *, name: str, namespace: str, identity: str, api: client.ApiClient) -> None:
        super().__init__(name, namespace, identity)  # type: ignore[no-untyped-call]
        self.api_instance = client.CoordinationV1Api(api)
        self.last_write = 0.0

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        ok = bool(super().create(name, namespace, election_record))  # type: ignore[no-untyped-call]
        if ok:
            self.last_write = time.monotonic()
        return ok

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        ok = bool(super().update(name, namespace, updated_record))  # type: ignore[no-untyped-call]
        if ok:
            self.last_write = time.monotonic()
        return ok


class LeaderElector:
    """Runs the election on a daemon thread; ``on_started_leading`` runs once we hold the Lease."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
    ) -> None:
        validate_timings(
            lease_duration=lease_duration, renew_deadline=renew_deadline, retry_period=retry_period
        )
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_duration = lease_duration
        self._lock = _RecordingLock(name=name, namespace=namespace, identity=identity, api=api)
        self._leading = threading.Event()
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._config = electionconfig.Config(
            lock=self._lock,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            onstarted_leading=self._started,
            onstopped_leading=self._stopped,
        )
        self._thread = threading.Thread(
            target=leaderelection.LeaderElection(self._config).run, name="leader-election", daemon=True
        )
        MASTER_STATUS.labels(name).set(0)

    def start(self) -> None:
        logger.info(
            "attempting to acquire leader lease %s/%s as %s", self.namespace, self.name, self.identity
        )
        self._thread.start()

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def _started(self) -> None:
        logger.info("became leader of %s/%s", self.namespace, self.name)
        self._leading.set()
        MASTER_STATUS.labels(self.name).set(1)
        self._on_started()

    def _stopped(self) -> None:
        logger.error("leader election lost: lease %s/%s was not renewed", self.namespace, self.name)
        self._leading.clear()
        MASTER_STATUS.labels(self.name).set(0)
        self._on_stopped()

    def healthy(self) -> tuple[bool, str]:
        """``/healthz/leaderElection``: a leader that has not renewed in time is unhealthy."""
        if not self.is_leader:
            return True, "not leading"
        age = time.monotonic() - self._lock.last_write
        if age > self.lease_duration + HEALTH_SLACK:
            return False, f"lease not renewed for {age:.0f}s"
        return True, "leading"

    def release(self) -> None:
        """Give the Lease up (holder cleared) so another candidate takes over at once."""
        if not self.is_leader:
            return
        self._leading.clear()
        MASTER_STATUS.labels(self.name).set(0)
        api = self._lock.api_instance
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.acquire_time = None
            lease.spec.renew_time = datetime.datetime.now(datetime.UTC)
            lease.spec.lease_duration_seconds = 1
            api.replace_namespaced_lease(self.name, self.namespace, lease)
            logger.info("released leader lease %s/%s", self.namespace, self.name)
        except ApiException as exc:
            logger.warning("could not release leader lease: %s", exc.reason)


def validate_timings(*, lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """Upstream's checks, raised as ValueError naming the flags (the library would ``sys.exit``)."""
    if retry_period < 1:
        raise ValueError(f"--leader-elect-retry-period={retry_period}s: must be at least 1s")
    if renew_deadline <= 1.2 * retry_period:
        raise ValueError(
            f"--leader-elect-renew-deadline={renew_deadline}s: must be greater than "
            f"1.2 × --leader-elect-retry-period ({1.2 * retry_period:g}s)"
        )
    if lease_duration <= renew_deadline:
        raise ValueError(
            f"--leader-elect-lease-duration={lease_duration}s: must be greater than "
            f"--leader-elect-renew-deadline ({renew_deadline}s)"
        )

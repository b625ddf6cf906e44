"""Leader election on a ``coordination.k8s.io/v1`` Lease, using the ``kubernetes`` package's own code.

A thin wrapper over ``kubernetes.leaderelection`` that fixes what it lacks for a controller:
validation that raises instead of calling ``sys.exit``, a lock bound to our ApiClient instead of the
global default, a record of the last successful renewal for ``/healthz/leaderElection``, the
``leader_election_master_status`` metric, and release of the Lease on shutdown so a successor does
not wait out the lease. When renewal fails, ``on_stopped_leading`` runs: the CLI exits there, as
upstream's ``klog.Fatal`` does. See :class:`_RecordingLock` for the library's failure modes fixed here
(float durations, transport errors, requests without a timeout, renewals after release).
"""

from __future__ import annotations

import copy
import datetime
import logging
import math
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
    """LeaseLock bound to our ApiClient, with what the library's lock lacks for a controller.

    * Every request has a timeout, so a blackholed API server fails a renewal instead of hanging the
      renew loop past the lease (the leader must notice before a successor may take over).
    * Transport errors (connection refused or reset, timeouts) count as a failed attempt, as an API
      error does; the library only catches ``ApiException`` and its thread would die of anything else.
    * ``lease_duration_seconds`` is an integer in the Lease; the library writes ``int("4.0")`` for a
      duration given as a float and dies. It is rounded up here.
    * After :meth:`LeaderElector.release` it writes nothing, so the library's renew loop cannot take
      the lease back between the release and the exit of the process.
    * It remembers when the lease was last written by us, for ``/healthz/leaderElection``.
    """

    def __init__(
        self, *, name: str, namespace: str, identity: str, api: client.ApiClient, request_timeout: float
    ) -> None:
        super().__init__(name, namespace, identity)  # type: ignore[no-untyped-call]
        self.api_instance = client.CoordinationV1Api(api)
        self.request_timeout = request_timeout
        self.last_write = 0.0
        self.released = threading.Event()

    def get(self, name: str, namespace: str) -> tuple[bool, Any]:
        try:
            lease = self.api_instance.read_namespaced_lease(
                name, namespace, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            return False, exc
        except Exception as exc:  # transport: the library reads .body and .reason of the error
            logger.info("cannot read leader lease %s/%s: %s", namespace, name, exc)
            return False, ApiException(status=0, reason=f"{type(exc).__name__}: {exc}")
        self.lease_reference = lease
        return True, self.get_lock_object(lease)  # type: ignore[no-untyped-call]

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        if self.released.is_set():
            return False
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=name), spec=self.get_lease_spec(election_record)
        )
        try:
            self.lease_reference = self.api_instance.create_namespaced_lease(
                namespace, body, _request_timeout=self.request_timeout
            )
        except Exception as exc:
            logger.info("cannot create leader lease %s/%s: %s", namespace, name, _reason(exc))
            return False
        self.last_write = time.monotonic()
        return True

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        if self.released.is_set() or self.lease_reference is None:
            return False
        try:
            self.lease_reference.spec = self.get_lease_spec(updated_record, self.lease_reference.spec)
            self.api_instance.replace_namespaced_lease(
                name=name,
                namespace=namespace,
                body=self.lease_reference,
                _request_timeout=self.request_timeout,
            )
        except Exception as exc:
            logger.info("cannot update leader lease %s/%s: %s", namespace, name, _reason(exc))
            return False
        self.last_write = time.monotonic()
        return True

    def get_lease_spec(self, leader_election_record: Any, current_spec: Any = None) -> Any:
        record = copy.copy(leader_election_record)
        record.lease_duration = str(max(1, math.ceil(float(record.lease_duration))))
        return super().get_lease_spec(record, current_spec)  # type: ignore[no-untyped-call]


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


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
        self.retry_period = retry_period
        self._lock = _RecordingLock(
            name=name, namespace=namespace, identity=identity, api=api, request_timeout=retry_period
        )
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
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        MASTER_STATUS.labels(name).set(0)

    def start(self) -> None:
        logger.info(
            "attempting to acquire leader lease %s/%s as %s", self.namespace, self.name, self.identity
        )
        self._thread.start()

    def _run(self) -> None:
        """The library's loop, restarted if it raises while following; a leader that raises has lost."""
        while not self._lock.released.is_set():
            try:
                leaderelection.LeaderElection(self._config).run()
                return  # returns only after leading and onstopped_leading
            except Exception:
                logger.exception("leader election of %s/%s failed", self.namespace, self.name)
                if self.is_leader:
                    self._stopped()
                    return
                time.sleep(self.retry_period)

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def _started(self) -> None:
        if self._lock.released.is_set():
            return  # acquired while shutting down: start nothing (the lock writes no more)
        logger.info("became leader of %s/%s", self.namespace, self.name)
        self._leading.set()
        MASTER_STATUS.labels(self.name).set(1)
        self._on_started()

    def _stopped(self) -> None:
        self._leading.clear()
        MASTER_STATUS.labels(self.name).set(0)
        if self._lock.released.is_set():
            return  # we gave the lease up ourselves; renewals were refused on purpose
        logger.error("leader election lost: lease %s/%s was not renewed", self.namespace, self.name)
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
        """Give the Lease up (holder cleared) so another candidate takes over at once.

        The lock is told first to write no more, so the election thread, which cannot be stopped,
        does not renew (or take back) the Lease between this release and the exit of the process.
        """
        self._lock.released.set()
        was_leader = self.is_leader
        self._leading.clear()
        MASTER_STATUS.labels(self.name).set(0)
        if not was_leader:
            return
        api = self._lock.api_instance
        timeout = self._lock.request_timeout
        for _attempt in range(3):
            try:
                lease = api.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
                if lease.spec is None or lease.spec.holder_identity != self.identity:
                    return
                lease.spec.holder_identity = None
                lease.spec.acquire_time = None
                lease.spec.renew_time = datetime.datetime.now(datetime.UTC)
                lease.spec.lease_duration_seconds = 1
                api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=timeout)
                logger.info("released leader lease %s/%s", self.namespace, self.name)
                return
            except ApiException as exc:
                if exc.status == 409:  # a renewal in flight when we stopped them; read again
                    continue
                logger.warning("could not release leader lease: %s", _reason(exc))
                return
            except Exception as exc:
                logger.warning("could not release leader lease: %s", _reason(exc))
                return


def validate_timings(*, lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """Upstream's checks, raised as ValueError naming the flags (the library would ``sys.exit``)."""
    lease, renew, retry = _secs(lease_duration), _secs(renew_deadline), _secs(retry_period)
    if not retry_period >= 1:
        raise ValueError(f"--leader-elect-retry-period={retry}: must be at least 1s")
    if not renew_deadline > 1.2 * retry_period:
        raise ValueError(
            f"--leader-elect-renew-deadline={renew}: must be greater than "
            f"1.2 × --leader-elect-retry-period={retry} ({_secs(1.2 * retry_period)})"
        )
    if not lease_duration > renew_deadline:
        raise ValueError(
            f"--leader-elect-lease-duration={lease}: must be greater than "
            f"--leader-elect-renew-deadline={renew}"
        )


def _secs(seconds: float) -> str:
    """A duration as the flag would be written: 15s, 1.5s (not 15.0s)."""
    return f"{seconds:g}s"

"""The orphan sweep's grace period: a resource is deleted only once it has been an orphan for a while.

Both providers sweep alike: each drift check lists the resources of the cluster, the ones whose Service
UID no Service has are orphans, and an orphan is deleted once it has been one for the grace period
(``--orphan-grace-period``), so a Service the informer has not delivered yet, or a listing that lags,
never costs a live load balancer. :class:`OrphanClock` keeps the "first seen as an orphan" times; it is
thread-safe, and an entry is forgotten only when its resource is gone (deleted, or no longer an
orphan), never because a delete failed or was deferred.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


class OrphanClock:
    """When each orphan was first seen; which ones are due for deletion."""

    def __init__(self, *, grace: float) -> None:
        self.grace = grace
        self._lock = threading.Lock()
        self._first_seen: dict[str, float] = {}

    def observe(
        self, orphans: Iterable[str], *, now: float, listed: Callable[[str], bool] = lambda _id: True
    ) -> list[str]:
        """Record this sweep's ``orphans``; returns those orphaned for at least the grace period.

        An entry that is not an orphan any more is dropped, but only if this sweep ``listed`` its
        kind at all (a partial listing leaves the clocks of the kinds it did not list running).
        """
        current = set(orphans)
        with self._lock:
            for key in list(self._first_seen):
                if key not in current and listed(key):
                    del self._first_seen[key]
            for key in current:
                self._first_seen.setdefault(key, now)
            return sorted(k for k in current if now - self._first_seen[k] >= self.grace)

    def forget(self, key: str) -> None:
        """The resource is gone: its clock stops."""
        with self._lock:
            self._first_seen.pop(key, None)

    def seen(self) -> dict[str, float]:
        """A copy of the first-seen times (for tests and debugging)."""
        with self._lock:
            return dict(self._first_seen)

"""A rate-limited work queue with client-go semantics.

* Dedupe: a key added many times before a worker takes it is processed once.
* One worker per key: a key added while it is being processed waits and is handed out again after
  :meth:`WorkQueue.done`, so two workers never reconcile one Service at the same time.
* Per-key exponential backoff (5 s · 2ⁿ, capped at 300 s, as upstream's
  ``ItemExponentialFailureRateLimiter``) through :meth:`add_rate_limited`, reset by :meth:`forget`.
* :meth:`add_after` for fixed delays (``RetryAfter``).
* The ``workqueue_*`` metrics of client-go, labelled with the queue's name.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

K = TypeVar("K", bound=Hashable)

_BUCKETS = tuple(10.0**e for e in range(-8, 2))  # client-go: 1e-8 … 10 s, ×10

DEPTH = Gauge("workqueue_depth", "Current depth of workqueue", ["name"])
ADDS = Counter("workqueue_adds", "Total number of adds handled by workqueue", ["name"])
QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.",
    ["name"],
    buckets=_BUCKETS,
)
WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.",
    ["name"],
    buckets=_BUCKETS,
)
UNFINISHED = Gauge(
    "workqueue_unfinished_work_seconds",
    "How many seconds of work has done that is in progress and hasn't been observed by "
    "work_duration. Large values indicate stuck threads.",
    ["name"],
)
LONGEST = Gauge(
    "workqueue_longest_running_processor_seconds",
    "How many seconds has the longest running processor for workqueue been running.",
    ["name"],
)
RETRIES = Counter("workqueue_retries", "Total number of retries handled by workqueue", ["name"])


class ShutDown(Exception):
    """The queue is shutting down; the worker should return."""


class ExponentialBackoff(Generic[K]):
    """Per-key delay ``base · 2ⁿ`` after n failures, capped (client-go ItemExponentialFailureRateLimiter)."""

    def __init__(self, *, base: float = 5.0, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}
        self._lock = threading.Lock()

    def when(self, key: K) -> float:
        with self._lock:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        return min(self.base * (2.0 ** min(n, 62)), self.cap)

    def forget(self, key: K) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._lock:
            return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """Keys to reconcile. Workers loop on ``key = q.get(); try: … finally: q.done(key)``."""

    def __init__(
        self,
        *,
        name: str,
        backoff: ExponentialBackoff[K] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self._clock = clock
        # One lock, two conditions: workers wait on _cond, the delay thread on _timer_cond, so that
        # waking one never wakes (and wastes the notify on) the other.
        mutex = threading.Lock()
        self._cond = threading.Condition(mutex)
        self._timer_cond = threading.Condition(mutex)
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: dict[K, float] = {}
        self._added_at: dict[K, float] = {}
        self._delayed: list[tuple[float, int, K]] = []
        self._delayed_due: dict[K, float] = {}
        self._seq = itertools.count()
        self._shutting_down = False
        self._getters_waiting = 0  # workers blocked in get()
        self._timer_waiting = False  # the delay thread is waiting for the next due time
        self._timer = threading.Thread(
            target=self._release_delayed, name=f"workqueue-{name}-delay", daemon=True
        )
        self._timer.start()
        for metric in (DEPTH, ADDS, QUEUE_DURATION, WORK_DURATION, UNFINISHED, LONGEST, RETRIES):
            metric.labels(name)  # exported from the start, as client-go does

    # -- adding ------------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` now unless it is already waiting; a key being processed is queued after done."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        ADDS.labels(self.name).inc()
        self._dirty.add(key)
        self._added_at[key] = self._clock()
        if key in self._processing:
            return
        self._queue.append(key)
        DEPTH.labels(self.name).set(len(self._queue))
        self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds; an earlier pending time for the key wins."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down:
                return
            due = self._clock() + delay
            current = self._delayed_due.get(key)
            if current is not None and current <= due:
                return
            self._delayed_due[key] = due
            heapq.heappush(self._delayed, (due, next(self._seq), key))
            self._timer_cond.notify()

    def add_rate_limited(self, key: K) -> float:
        """Queue ``key`` after its backoff delay; returns the delay."""
        RETRIES.labels(self.name).inc()
        delay = self.backoff.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset the key's backoff (after a success)."""
        self.backoff.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.backoff.failures(key)

    def release_due(self) -> None:
        """Queue the delayed keys whose time has come on the queue's clock (the delay thread does this
        on its own; a test with a fake clock calls it after moving the clock)."""
        with self._cond:
            self._release_due_locked(self._clock())

    def _release_due_locked(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            due, _seq, key = heapq.heappop(self._delayed)
            if self._delayed_due.get(key) == due:
                del self._delayed_due[key]
                self._add_locked(key)

    def _release_delayed(self) -> None:
        with self._cond:
            while not self._shutting_down:
                now = self._clock()
                self._release_due_locked(now)
                timeout = (self._delayed[0][0] - now) if self._delayed else None
                self._timer_waiting = True
                self._timer_cond.wait(timeout=min(timeout, 1.0) if timeout is not None else 1.0)
                self._timer_waiting = False

    # -- taking ------------------------------------------------------------------------------------

    def get(self, *, timeout: float | None = None) -> K:
        """The next key; blocks. Raises :class:`ShutDown` once the queue is shut down (or on timeout)."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._queue or self._shutting_down:
                if self._shutting_down:
                    raise ShutDown
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    raise ShutDown
                self._getters_waiting += 1
                try:
                    self._cond.wait(timeout=remaining)
                finally:
                    self._getters_waiting -= 1
            key = self._queue.popleft()
            now = self._clock()
            QUEUE_DURATION.labels(self.name).observe(max(0.0, now - self._added_at.pop(key, now)))
            self._processing[key] = now
            self._dirty.discard(key)
            DEPTH.labels(self.name).set(len(self._queue))
            return key

    def done(self, key: K) -> None:
        """Mark ``key`` processed; if it was added meanwhile, queue it again."""
        with self._cond:
            started = self._processing.pop(key, None)
            if started is not None:
                WORK_DURATION.labels(self.name).observe(max(0.0, self._clock() - started))
            if key in self._dirty:
                self._queue.append(key)
                DEPTH.labels(self.name).set(len(self._queue))
                self._cond.notify()

    # -- state -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def waiting(self) -> tuple[int, bool]:
        """(workers blocked in ``get``, whether the delay thread is waiting): what a test waits for
        instead of sleeping until a thread has reached its wait."""
        with self._cond:
            return self._getters_waiting, self._timer_waiting

    def due(self, key: K) -> float | None:
        """When the delayed ``key`` will be queued (on the queue's clock); None if it is not delayed."""
        with self._cond:
            return self._delayed_due.get(key)

    def pending(self) -> int:
        """Keys waiting now, delayed, or being processed."""
        with self._cond:
            return len(self._queue) + len(self._delayed_due) + len(self._processing)

    def update_unfinished_metrics(self) -> None:
        """Refresh the gauges about in-flight work (called on every /metrics scrape)."""
        with self._cond:
            now = self._clock()
            ages = [now - t for t in self._processing.values()]
        UNFINISHED.labels(self.name).set(sum(ages))
        LONGEST.labels(self.name).set(max(ages, default=0.0))

    def shut_down(self) -> None:
        """Stop handing out keys; blocked ``get`` calls raise :class:`ShutDown`."""
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()
            self._timer_cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

"""An event recorder: posts core/v1 Events in the background, deduplicated, never failing a caller.

The Python client has no EventRecorder. This one keeps upstream's reasons and the
``service-controller`` source, and fixes what hides failures upstream: instead of a per-object spam
filter that starves ``SyncLoadBalancerFailed``, identical events (same object, type, reason and
message) are folded into one Event whose ``count`` is bumped at most once per ``aggregate_window``.
Posting happens on a background thread; a full queue or an API error is logged and dropped.
"""

from __future__ import annotations

import datetime
import logging
import queue
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ccm.k8s.core import CoreV1, discard

logger = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"
MAX_MESSAGE = 1024


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first: str
    last_sent: float
    pending: int = 0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """``recorder.event(obj, type=…, reason=…, message=…)`` from any thread; returns at once."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        component: str = "service-controller",
        host: str | None = None,
        aggregate_window: float = 10.0,
        cache_size: int = 4096,
        queue_size: int = 50_000,
        core: CoreV1 | None = None,
    ) -> None:
        self._core = core or CoreV1(api)
        self.component = component
        self.host = host or socket.gethostname()
        self.aggregate_window = aggregate_window
        self._cache: OrderedDict[tuple[str, str, str, str], _Seen] = OrderedDict()
        self._cache_size = cache_size
        self._queue: queue.Queue[tuple[Mapping[str, Any], str, str, str] | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()
        self.dropped = 0

    def event(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        """Record an event about ``obj`` (a JSON dict with metadata, apiVersion and kind).

        Only the reference the Event needs is queued, not the object: a restart with thousands of
        Services queues two events each, and the queue (room for ``queue_size`` events, 50,000 by
        default, where client-go's broadcaster buffers ``maxQueuedEvents`` = 1,000) must neither drop
        them nor hold every Service's full copy until they are posted.
        """
        meta = obj.get("metadata") or {}
        ref = {
            "apiVersion": obj.get("apiVersion", "v1"),
            "kind": obj.get("kind", "Service"),
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion")},
        }
        try:
            self._queue.put_nowait((ref, type, reason, message[:MAX_MESSAGE]))
        except queue.Full:
            self.dropped += 1
            logger.warning("event queue full, dropping %s %s", reason, message)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every recorded event has been posted (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._post(*item)
            except Exception:
                logger.warning("could not record event", exc_info=True)
            finally:
                self._queue.task_done()

    def _post(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        uid, namespace = meta.get("uid", ""), meta.get("namespace") or "default"
        cache_key = (uid, type_, reason, message)
        now = time.monotonic()
        seen = self._cache.get(cache_key)
        if seen is not None:
            self._cache.move_to_end(cache_key)
            seen.count += 1
            if now - seen.last_sent < self.aggregate_window:
                seen.pending += 1
                return
            try:
                discard(
                    self._core.patch_namespaced_event(  # the answer is not needed: do not decode it
                        seen.name,
                        seen.namespace,
                        {"count": seen.count, "lastTimestamp": _now()},
                        _preload_content=False,
                    )
                )
                seen.last_sent, seen.pending = now, 0
                return
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._cache.pop(cache_key, None)  # expired (event TTL): create a new one
        name = f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:16]}"
        stamp = _now()
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Service"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": uid,
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        discard(self._core.create_namespaced_event(namespace, body, _preload_content=False))  # not decoded
        self._cache[cache_key] = _Seen(name=name, namespace=namespace, count=1, first=stamp, last_sent=now)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

"""A reflector: keeps a local cache of one resource in step with the API server, and says what changed.

The Python client's ``SharedInformer`` cannot say when it has synced, does not paginate and does
not give old and new objects on update, so this is written here, as client-go's reflector:

1. LIST in pages (``limit``/``continue``), replace the cache, diff against what was there, and set
   :attr:`Reflector.synced` after the first complete list;
2. WATCH from the list's resourceVersion with bookmarks, applying each event and remembering the
   newest resourceVersion;
3. when the watch ends (server timeout) or breaks, watch again from the remembered version, with
   backoff; when the server answers ``410 Gone`` (the version is too old), list again and diff,
   so nothing is missed.

Objects are the JSON dicts the server sends. Handlers run on the reflector's thread, so they must be
quick (enqueue a key and return).
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

logger = logging.getLogger(__name__)

Obj = dict[str, Any]


class EventHandler(Protocol):
    def on_add(self, obj: Obj) -> None: ...
    def on_update(self, old: Obj, new: Obj) -> None: ...
    def on_delete(self, obj: Obj) -> None: ...


class Gone(Exception):
    """The resourceVersion we watch from is no longer available: relist."""


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name", "")
    return f"{ns}/{name}" if ns else str(name)


def _lines(response: Any) -> Iterator[bytes]:
    """Split a streaming HTTP body into lines (one watch event per line)."""
    buffer = b""
    for chunk in response.stream(65536, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


class Store:
    """The cache: key → object, safe to read from any thread."""

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._lock = threading.Lock()
        self.generation = 0  # bumped on every change: lets readers cache what they derive from the store

    def get(self, key: str) -> Obj | None:
        with self._lock:
            return self._items.get(key)

    def objects(self) -> list[Obj]:
        with self._lock:
            return list(self._items.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def add(self, obj: Obj) -> None:
        """Put ``obj`` in the cache without a watch event (client-go's ``Indexer.Add``): what an
        in-process test uses to give the controller its view of the cluster."""
        self._set(object_key(obj), obj)

    def delete(self, key: str) -> None:
        """Drop ``key`` from the cache without a watch event (client-go's ``Indexer.Delete``)."""
        self._pop(key)

    def _set(self, key: str, obj: Obj) -> Obj | None:
        with self._lock:
            old = self._items.get(key)
            self._items[key] = obj
            self.generation += 1
            return old

    def _pop(self, key: str) -> Obj | None:
        with self._lock:
            self.generation += 1
            return self._items.pop(key, None)

    def _replace(self, items: dict[str, Obj]) -> dict[str, Obj]:
        with self._lock:
            old, self._items = self._items, items
            self.generation += 1
            return old


SHARED_STRING_MAX = 32  # longer values (hostnames, messages, digests) are rarely equal across objects


def share_strings(value: Any) -> Any:
    """``value`` rebuilt with its keys and its short string values interned (``sys.intern``).

    Each watch event is decoded on its own, so every stored object had its own copy of every key
    (``"metadata"``, ``"nodePort"``, ...) and of the common values (``"TCP"``, ``"LoadBalancer"``); a
    listing shares them only within one page. Shared, a stored NLB Service takes 3.6 KB instead of
    7.5 KB (deep size; the controller keeps up to two versions of each). An interned string no
    object holds any more is freed as any other.
    """
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: share_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [share_strings(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING_MAX:
        return sys.intern(value)
    return value


def strip_managed_fields(obj: Obj) -> Obj:
    """Drop ``metadata.managedFields`` (client-go's ``TransformStripManagedFields``): server-side-apply
    bookkeeping no controller reads, often the largest part of a small object."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def strip_node(obj: Obj) -> Obj:
    """What the service controller never reads of a Node: managed fields and the image list (up to
    fifty entries of digests per node, ``status.images``), and the volume lists."""
    status = obj.get("status")
    if isinstance(status, dict):
        for key in ("images", "volumesInUse", "volumesAttached"):
            status.pop(key, None)
    return strip_managed_fields(obj)


class Reflector:
    """List and watch one resource into a Store (``list_func``: a ``list_*`` method of
    :class:`ccm.k8s.core.CoreV1` or of the generated client, called with ``_preload_content=False``)."""

    def __init__(
        self,
        *,
        name: str,
        list_func: Callable[..., Any],
        handler: EventHandler,
        page_size: int = 500,
        watch_timeout_seconds: int = 300,
        backoff_initial: float = 0.8,
        backoff_max: float = 30.0,
        transform: Callable[[Obj], Obj] = strip_managed_fields,
    ) -> None:
        self.name = name
        self._transform = transform  # then stored with its strings shared (share_strings)
        self.store = Store()
        self.synced = threading.Event()
        self._list_func = list_func
        self._handler = handler
        self._page_size = page_size
        self._watch_timeout = watch_timeout_seconds
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stop = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self.resource_version = ""
        self.relists = 0  # for tests and metrics: how many full lists were made

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"reflector-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.break_watch()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def break_watch(self) -> None:
        """Close the current watch connection (as a network failure would)."""
        response = self._response
        if response is not None:
            try:
                response.shutdown() if hasattr(response, "shutdown") else None
                response.close()
            except Exception:
                logger.debug("closing the %s watch", self.name, exc_info=True)

    def run(self) -> None:
        delay = self._backoff_initial
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                self._watch()
                delay = self._backoff_initial  # a watch that ended normally: resume at once
            except Gone:
                logger.info("%s: resourceVersion %s is gone, relisting", self.name, self.resource_version)
                need_list = True
            except Exception as exc:
                if self._stop.is_set():
                    break
                logger.warning("%s: list/watch failed, retrying in %.1fs: %s", self.name, delay, exc)
                self._stop.wait(delay * (0.5 + random.random()))
                delay = min(delay * 2, self._backoff_max)

    # -- list ----------------------------------------------------------------------------------------

    def _list(self) -> None:
        items: dict[str, Obj] = {}
        token: str | None = None
        resource_version = ""
        while True:
            kwargs: dict[str, Any] = {
                "limit": self._page_size,
                "_preload_content": False,
                "_request_timeout": 60,
            }
            if token:
                kwargs["_continue"] = token
            try:
                response = self._list_func(**kwargs)
            except ApiException as exc:
                if exc.status == 410 and token:
                    token = None  # the continue token expired mid-list: start over
                    items.clear()
                    continue
                raise
            page = json.loads(response.data)
            for obj in page.get("items") or ():
                items[object_key(obj)] = self._stored(obj)
            meta = page.get("metadata") or {}
            resource_version = meta.get("resourceVersion", resource_version)
            token = meta.get("continue") or None
            if not token:
                break
        self.relists += 1
        kind = self.name
        old = self.store._replace(items)
        for key, obj in items.items():
            before = old.get(key)
            if before is None:
                self._dispatch("add", obj)
            elif (before.get("metadata") or {}).get("resourceVersion") != (obj.get("metadata") or {}).get(
                "resourceVersion"
            ):
                self._dispatch("update", obj, before)
        for key, obj in old.items():
            if key not in items:
                self._dispatch("delete", obj)
        self.resource_version = resource_version
        logger.debug("%s: listed %d %s at resourceVersion %s", self.name, len(items), kind, resource_version)
        self.synced.set()

    # -- watch ---------------------------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            response = self._list_func(
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self._watch_timeout,
                _preload_content=False,
                _request_timeout=(10, self._watch_timeout + 30),
            )
        except ApiException as exc:
            if exc.status == 410:
                raise Gone from exc
            raise
        self._response = response
        try:
            for line in _lines(response):
                if self._stop.is_set():
                    return
                self._apply(json.loads(line))
        finally:
            self._response = None
            response.release_conn()

    def _stored(self, obj: Obj) -> Obj:
        """What the store keeps of a decoded object: the transform's result, strings shared."""
        stored: Obj = share_strings(self._transform(obj))
        return stored

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = object_key(obj)
        if kind in {"ADDED", "MODIFIED"}:
            obj = self._stored(dict(obj))
            old = self.store._set(key, obj)
            self._dispatch("add" if old is None else "update", obj, old)
        elif kind == "DELETED":
            old = self.store._pop(key)
            self._dispatch("delete", old or obj)
        if rv:
            self.resource_version = rv

    def _dispatch(self, what: str, obj: Obj, old: Obj | None = None) -> None:
        try:
            if what == "add":
                self._handler.on_add(obj)
            elif what == "update":
                assert old is not None
                self._handler.on_update(old, obj)
            else:
                self._handler.on_delete(obj)
        except Exception:
            logger.exception("%s: event handler failed on %s of %s", self.name, what, object_key(obj))

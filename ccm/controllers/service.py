"""The service controller (``service-lb-controller``): Services of type LoadBalancer → cloud LBs → status.

Level-triggered, as upstream's ``controllers/service/controller.go``, with the fixes its users asked for:

* ``ensure_load_balancer_deleted`` is always called on cleanup (upstream skips it when Get says
  "absent", which leaks half-built LBs);
* one lock per load balancer, held by both the service sync and the node sync, so a slow node sync
  can never overwrite the host set a newer service sync wrote (upstream #121090);
* the node sync compares each Service's host set with what was last sent and calls only
  ``update_load_balancer``, only for the Services whose set changed;
* status patches only when the normalised ingress changed, and a ``LoadBalancerSynced`` condition
  that keeps a failure visible;
* ``InvalidSpec`` (the user's mistake) is retried only at the maximum backoff, never in a hot loop;
* a Service whose address another controller's load balancer serves keeps it: the provider's
  ``ForeignLoadBalancer`` is a Warning and a condition, the status is left alone, and it is retried at
  the maximum backoff too;
* a periodic drift resync that asks the provider for a cheap bulk check and re-ensures only the
  Services whose LB is missing or differs (upstream never repairs drift, #34660); the provider's
  orphan sweep is told the UID of every Service in the cluster, so it never deletes what a Service
  of any type or class still carries;
* an instance with ``--load-balancer-class`` has its own cleanup finalizer, and no instance touches
  a Service of another class (its finalizer, status or load balancer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client

from ccm.cloudprovider import (
    UNSUPPORTED_ANNOTATION_REASON,
    AnnotationChecker,
    DriftChecker,
    ForeignLoadBalancer,
    ImplementedElsewhere,
    InvalidSpec,
    LoadBalancer,
    LoadBalancerRequest,
    Node,
    RetryAfter,
)
from ccm.controllers import metrics, predicates, status
from ccm.controllers.predicates import Obj
from ccm.controllers.request import build_request, node_from_object
from ccm.k8s.checkpoint import node_set_digest
from ccm.k8s.core import CoreV1
from ccm.k8s.events import NORMAL, WARNING, EventRecorder
from ccm.k8s.patches import ServicePatcher
from ccm.k8s.reflector import Reflector, object_key, strip_node
from ccm.k8s.workqueue import ExponentialBackoff, ShutDown, WorkQueue

logger = logging.getLogger(__name__)

NAME = "service-lb-controller"
NODE_SYNC_KEY = "nodes"
MAX_NODE_NAMES_IN_EVENT = 20


@dataclass(frozen=True)
class TargetSet:
    """The target nodes at one generation of the node cache, in every form the controller needs."""

    generation: int
    fingerprint: frozenset[tuple[str, str]]
    nodes: tuple[Node, ...]


class SyncError(Exception):
    """A failed sync, with upstream's wrapping message; ``cause`` is the provider's or API's error.

    ``service`` is the Service the failure is reported on (the newest copy the step had); ``gone``
    says it no longer exists in the API, so the failure is an event only, with no condition to write.
    """

    def __init__(self, message: str, *, cause: BaseException, service: Obj, gone: bool = False) -> None:
        super().__init__(f"{message}: {cause}")
        self.message = message
        self.cause = cause
        self.service = service
        self.gone = gone


@contextmanager
def step(message: str, *, service: Obj, gone: bool = False) -> Iterator[None]:
    """Wrap any failure of one sync step in a :class:`SyncError` (as upstream wraps with ``%w``).

    Every step of a sync runs in one; the error is reported once, by :meth:`ServiceController.sync_service`.
    """
    try:
        yield
    except SyncError:
        raise
    except Exception as exc:
        raise SyncError(message, cause=exc, service=service, gone=gone) from exc


class Patcher(Protocol):
    """The writes the controller makes to a Service (:class:`ccm.k8s.patches.ServicePatcher`)."""

    patches: int  # how many writes were sent

    def add_finalizer(self, *, service: Mapping[str, Any], finalizer: str) -> dict[str, Any] | None: ...

    def remove_finalizers(
        self, *, service: Mapping[str, Any], finalizers: Sequence[str]
    ) -> dict[str, Any] | None: ...

    def patch_status(
        self,
        *,
        service: Mapping[str, Any],
        ingress: list[dict[str, Any]] | None = None,
        condition: Mapping[str, Any] | None = None,
        clear_ingress: bool = False,
        remove_condition: str | None = None,
    ) -> dict[str, Any] | None: ...


class CheckpointStore(Protocol):
    """Where the node-set digest a new leader may trust is kept (:class:`ccm.k8s.checkpoint.Checkpoint`)."""

    def read(self) -> str | None: ...

    def write(self, digest: str) -> None: ...


class Recorder(Protocol):
    """Where the controller's Events go (:class:`ccm.k8s.events.EventRecorder`)."""

    def event(self, obj: Mapping[str, Any], *, type: str, reason: str, message: str) -> None: ...


class ServiceController:
    """Owns two reflectors (Services, Nodes), two work queues and the worker threads.

    Everything it talks to can be injected: ``api`` builds the defaults (the patcher and the two
    list functions the reflectors use); a test gives ``patcher``, ``list_services``, ``list_nodes``
    and ``clock`` instead, feeds the caches through ``services.store``/``nodes.store`` and calls
    :meth:`sync_service` and :meth:`sync_nodes` itself (the in-process tier, as upstream's
    ``controller_test.go``).
    """

    def __init__(
        self,
        *,
        provider: LoadBalancer,
        cluster_name: str,
        recorder: Recorder | EventRecorder,
        api: client.ApiClient | None = None,
        patcher: Patcher | None = None,
        list_services: Callable[..., Any] | None = None,
        list_nodes: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        checkpoint: CheckpointStore | None = None,
        load_balancer_class: str = "",
        workers: int = 1,
        resync_period: float = 600.0,
        backoff_base: float = 5.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.provider = provider
        self.cluster_name = cluster_name
        self.load_balancer_class = load_balancer_class
        # The default instance keeps upstream's finalizer; a classed one has its own, so that no
        # instance ever cleans up (or un-finalizes) another instance's Service.
        self.finalizer = predicates.cleanup_finalizer(load_balancer_class=load_balancer_class)
        self.workers = max(1, workers)
        self.recorder = recorder
        if api is not None:
            core = CoreV1(api)
            patcher = patcher or ServicePatcher(api=api)
            list_services = list_services or core.list_service_for_all_namespaces
            list_nodes = list_nodes or core.list_node
        if patcher is None or list_services is None or list_nodes is None:
            raise TypeError("ServiceController needs api, or patcher, list_services and list_nodes")
        self.patcher: Patcher = patcher
        self.clock = clock
        self.checkpoint = checkpoint
        self.resync_period = resync_period
        self.backoff_max = backoff_max
        self.service_queue: WorkQueue[str] = WorkQueue(
            name="service", backoff=ExponentialBackoff(base=backoff_base, cap=backoff_max), clock=clock
        )
        self.node_queue: WorkQueue[str] = WorkQueue(name="node", clock=clock)
        self.services = Reflector(name="services", list_func=list_services, handler=_ServiceHandler(self))
        self.nodes = Reflector(
            name="nodes", list_func=list_nodes, handler=_NodeHandler(self), transform=strip_node
        )
        # What this process last knew of each Service it handled (upstream's cache): lets a Service
        # deleted without our finalizer still get its LB deleted, and detects a UID change.
        self._known: dict[str, Obj] = {}
        self._last_synced_nodes: dict[str, frozenset[tuple[str, str]]] = {}
        self._targets: TargetSet | None = None
        # Restart without re-ensuring (ccm.k8s.checkpoint): the Services the startup check proved
        # unchanged (key → the resourceVersion it saw and the node set it trusted), the keys whose last
        # ensure or update failed, and the digest last written.
        self._trusted: dict[str, tuple[str, frozenset[tuple[str, str]]]] = {}
        self._unsettled: set[str] = set()
        self._checkpointed: str | None = None
        # Keys ensured while a resync's bulk check runs (None when none runs): the listing the check
        # read may predate their load balancer, so their "drift" is not re-queued.
        self._ensured_during_check: set[str] | None = None
        self._locks: dict[str, threading.Lock] = {}
        # Guards _known, _last_synced_nodes and _locks (the maps, not their values): each entry is
        # written by the worker holding its key's lock, and read by the node sync and the resync.
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="nodesync")

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reflectors, wait for both caches, then start the workers and the resync loop."""
        self.services.start()
        self.nodes.start()
        thread = threading.Thread(target=self._run_after_sync, name="service-controller", daemon=True)
        thread.start()
        self._threads.append(thread)

    def has_synced(self) -> bool:
        return self.services.synced.is_set() and self.nodes.synced.is_set()

    def _run_after_sync(self) -> None:
        while not self.has_synced():
            if self._stop.wait(0.1):
                return
        logger.info(
            "caches synced: %d services, %d nodes; starting %d workers",
            len(self.services.store),
            len(self.nodes.store),
            self.workers,
        )
        try:
            self.trust_unchanged()
        except Exception:  # whatever it was, the leader must still start its workers
            logger.exception("the start-up check failed: every Service is ensured in full")
            with self._state_lock:
                self._trusted.clear()
        for i in range(self.workers):
            self._spawn(f"service-worker-{i}", self._service_worker)
        self._spawn("node-worker", self._node_worker)
        self._spawn("resync", self._resync_loop)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.service_queue.shut_down()
        self.node_queue.shut_down()
        self.services.stop()
        self.nodes.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def update_metrics(self) -> None:
        """Refresh the in-flight work gauges (called on every /metrics scrape)."""
        self.service_queue.update_unfinished_metrics()
        self.node_queue.update_unfinished_metrics()

    def _lock_for(self, key: str) -> threading.Lock:
        with self._state_lock:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    # -- selection ---------------------------------------------------------------------------------

    def wants_load_balancer(self, service: Obj) -> bool:
        return predicates.wants_load_balancer(service, load_balancer_class=self.load_balancer_class)

    def needs_cleanup(self, service: Obj) -> bool:
        return predicates.needs_cleanup(service, load_balancer_class=self.load_balancer_class)

    def has_finalizer(self, service: Obj) -> bool:
        return predicates.has_finalizer(service, load_balancer_class=self.load_balancer_class)

    def _of_another_class(self, service: Obj) -> bool:
        cls = predicates.spec(service).get("loadBalancerClass") or ""
        return bool(cls) and cls != self.load_balancer_class

    def targets(self) -> TargetSet:
        """The nodes that take traffic, derived once per change of the node cache (not per Service)."""
        store = self.nodes.store
        cached = self._targets
        generation = store.generation
        if cached is not None and cached.generation == generation:
            return cached
        objects = tuple(n for n in store.objects() if predicates.is_load_balancer_target(n))
        targets = TargetSet(
            generation=generation,
            fingerprint=predicates.node_fingerprint(objects),
            nodes=tuple(sorted((node_from_object(n) for n in objects), key=lambda n: n.name)),
        )
        self._targets = targets
        return targets

    # -- restart and fail-over ---------------------------------------------------------------------

    def trust_unchanged(self) -> int:
        """At start, before any worker runs: which Services need no ensure at all; returns how many.

        A Service is trusted when the node set is the one the checkpoint recorded as applied to every
        load balancer, its last sync succeeded for its current generation (condition True, an address
        in its status, our finalizer), and the provider's bulk check (one listing for all) finds its
        load balancer complete and matching its spec. Its first sync then makes no cloud call and no
        write; anything else (the node set changed, a Service edited, a load balancer missing or
        changed) is ensured as usual. Nothing is swept here: the sweep waits for the periodic resync.
        """
        if self.checkpoint is None or not isinstance(self.provider, DriftChecker):
            return 0
        targets = self.targets()
        recorded = self.checkpoint.read()
        self._checkpointed = recorded
        digest = node_set_digest(targets.fingerprint)
        if recorded != digest:
            logger.info(
                "startup: the node set is not the one last applied (%s, now %s): every Service is ensured",
                recorded or "none recorded",
                digest,
            )
            return 0
        candidates = [s for s in self.services.store.objects() if self._settled_before(s)]
        if not candidates:
            return 0
        try:
            drifted = self.provider.drifted_load_balancers(
                requests=[self._request(s, targets) for s in candidates], live_uids=None
            )
        except Exception:
            logger.warning("startup: the bulk check failed: every Service is ensured", exc_info=True)
            return 0
        with self._state_lock:
            for svc in candidates:
                key = object_key(svc)
                if key not in drifted:
                    self._trusted[key] = (
                        str(predicates.meta(svc).get("resourceVersion", "")),
                        targets.fingerprint,
                    )
        logger.info(
            "startup: %d of %d load balancers unchanged since the last leader: not ensured again",
            len(self._trusted),
            len(candidates),
        )
        return len(self._trusted)

    def _settled_before(self, service: Obj) -> bool:
        if not self.wants_load_balancer(service) or self.needs_cleanup(service):
            return False
        cond = status.current_condition(service) or {}
        return (
            self.has_finalizer(service)
            and bool(status.current_ingress(service))
            and cond.get("status") == "True"
            and cond.get("observedGeneration") == predicates.meta(service).get("generation")
        )

    def _take_trusted(self, key: str, service: Obj) -> bool:
        """Whether ``service`` is as the startup check saw it (then it is remembered, not ensured)."""
        with self._state_lock:
            trusted = self._trusted.pop(key, None)
        if trusted is None or trusted[0] != str(predicates.meta(service).get("resourceVersion", "")):
            return False
        self._remember(key, service)
        self._remember_nodes(key, trusted[1])
        return True

    def _save_checkpoint(self) -> None:
        """Record the node set once every load balancer this process tracks was brought to it."""
        if self.checkpoint is None:
            return
        targets = self.targets()
        with self._state_lock:
            settled = not self._unsettled and not self._trusted
            settled = settled and all(fp == targets.fingerprint for fp in self._last_synced_nodes.values())
        digest = node_set_digest(targets.fingerprint)
        if not settled or digest == self._checkpointed:
            return
        try:
            self.checkpoint.write(digest)
        except Exception:
            logger.warning(
                "could not write the checkpoint; a restart will ensure every Service", exc_info=True
            )
            return
        self._checkpointed = digest

    def _settle(self, key: str, *, ok: bool) -> None:
        with self._state_lock:
            if ok:
                self._unsettled.discard(key)
                if self._ensured_during_check is not None:
                    self._ensured_during_check.add(key)
            else:
                self._unsettled.add(key)

    def _request(self, service: Obj, targets: TargetSet | None) -> LoadBalancerRequest:
        request = build_request(service=service, nodes=(), cluster_name=self.cluster_name)
        return request.with_nodes(targets.nodes) if targets is not None else request

    # -- service worker ----------------------------------------------------------------------------

    def _service_worker(self) -> None:
        while True:
            try:
                key = self.service_queue.get()
            except ShutDown:
                return
            try:
                self.process_service(key)
            finally:
                self.service_queue.done(key)

    def process_service(self, key: str) -> None:
        """Sync ``key`` and do the queue bookkeeping for the outcome (upstream ``processNextWorkItem``)."""
        try:
            self.sync_service(key)
        except SyncError as err:
            cause = err.cause
            if isinstance(cause, RetryAfter):
                logger.info("%s: retrying in %.0fs: %s", key, cause.seconds, cause)
                self.service_queue.add_after(key, cause.seconds)
            elif isinstance(cause, InvalidSpec | ForeignLoadBalancer):
                logger.warning("%s: retrying in %.0fs: %s", key, self.backoff_max, cause)
                self.service_queue.add_after(key, self.backoff_max)
            else:
                delay = self.service_queue.add_rate_limited(key)
                logger.warning("%s: sync failed, retrying in %.0fs: %s", key, delay, err)
            return
        except Exception:
            delay = self.service_queue.add_rate_limited(key)
            logger.exception("%s: sync failed unexpectedly, retrying in %.0fs", key, delay)
            return
        self.service_queue.forget(key)
        if len(self.service_queue) == 0:  # caught up: the node set may now be applied everywhere
            self._save_checkpoint()

    def sync_service(self, key: str) -> None:
        """Reconcile one Service key. Raises :class:`SyncError` on failure."""
        if key.count("/") != 1:
            raise ValueError(f"unexpected key format: {key!r}")
        service = self.services.store.get(key)
        with self._lock_for(key):
            try:
                self._sync(key, service)
            except SyncError as err:
                self._report(err)
                raise

    def _sync(self, key: str, service: Obj | None) -> None:
        if service is None:
            self._process_deletion(key)
            return
        known = self._known.get(key)
        if known is not None and predicates.meta(known).get("uid") != predicates.meta(service).get("uid"):
            # Deleted and re-created while we were not looking: the old LB goes first.
            self._process_deletion(key)
        if self.needs_cleanup(service) or not self.wants_load_balancer(service):
            self._ensure_deleted(key, service, known=known)
        elif not self._take_trusted(key, service):
            self._remember(key, service)
            try:
                self._ensure(key, service)
            except SyncError:
                self._settle(key, ok=False)
                raise
            self._settle(key, ok=True)

    # -- what this process knows of each Service (written under the key's lock; read by node sync) -----

    def _remember(self, key: str, service: Obj) -> None:
        with self._state_lock:
            self._known[key] = service

    def follow(self, key: str, *, old: Obj, new: Obj) -> None:
        """A change that needs no sync (our finalizer or status, say) moves what we know of ``key``
        to ``new``, when what we knew is exactly ``old``: one copy of each Service is kept, the
        store's, and a Service deleted without our finalizer is deleted as it last stood, with the
        status we wrote, as the finalizer path deletes it. A sync under way is not disturbed: it
        keeps its own reference, and remembers the version it read when it next starts."""
        with self._state_lock:
            if self._known.get(key) is old:
                self._known[key] = new

    def _remember_nodes(self, key: str, fingerprint: frozenset[tuple[str, str]]) -> None:
        with self._state_lock:
            self._last_synced_nodes[key] = fingerprint

    def _forget(self, key: str) -> Obj | None:
        with self._state_lock:
            self._last_synced_nodes.pop(key, None)
            self._unsettled.discard(key)
            self._trusted.pop(key, None)
            return self._known.pop(key, None)

    def _process_deletion(self, key: str) -> None:
        """A Service gone from the API that we knew wanted an LB (e.g. its finalizer was removed)."""
        known = self._forget(key)
        if known is None or not self.wants_load_balancer(known):
            return
        self.recorder.event(
            known, type=NORMAL, reason="DeletingLoadBalancer", message="Deleting load balancer"
        )
        try:
            with step("failed to delete load balancer", service=known, gone=True):
                self.provider.ensure_load_balancer_deleted(request=self._request(known, None))
        except SyncError:
            self._remember(key, known)  # tried again from what we knew
            raise
        self.recorder.event(known, type=NORMAL, reason="DeletedLoadBalancer", message="Deleted load balancer")

    def _ensure(self, key: str, service: Obj) -> None:
        self.recorder.event(
            service, type=NORMAL, reason="EnsuringLoadBalancer", message="Ensuring load balancer"
        )
        with step("failed to add load balancer cleanup finalizer", service=service):
            patched = self.patcher.add_finalizer(service=service, finalizer=self.finalizer)
            legacy = [
                f
                for f in predicates.owned_finalizers(service, load_balancer_class=self.load_balancer_class)
                if f != self.finalizer
            ]
            if patched is not None and legacy:  # upstream's, put on by an earlier release: migrated
                patched = self.patcher.remove_finalizers(service=patched, finalizers=legacy)
        if patched is None or predicates.meta(patched).get("uid") != predicates.meta(service).get("uid"):
            # Gone (or replaced by a namesake) since the cache saw it: nothing may be built for it, and it
            # never carried our finalizer, so nothing was. A namesake gets its own sync from its event.
            logger.info("%s: the Service is gone; not ensuring a load balancer for it", key)
            self._forget(key)
            return
        service = patched
        targets = self.targets()
        if not targets.nodes:
            self.recorder.event(
                service,
                type=WARNING,
                reason="UnAvailableLoadBalancer",
                message="There are no available nodes for LoadBalancer",
            )
        self._remember_nodes(key, targets.fingerprint)
        try:
            with step("failed to ensure load balancer", service=service):
                lb_status = self.provider.ensure_load_balancer(request=self._request(service, targets))
                if lb_status is None:
                    raise RuntimeError("service status returned by ensure is nil")
        except SyncError as err:
            if isinstance(err.cause, ImplementedElsewhere):
                logger.info("%s: load balancer implemented elsewhere; leaving status alone", key)
                return
            raise
        metrics.LOADBALANCER_SYNC.inc()
        self.recorder.event(
            service, type=NORMAL, reason="EnsuredLoadBalancer", message="Ensured load balancer"
        )
        for event in lb_status.events:  # what the provider says the user must know (an IP that changed)
            self.recorder.event(service, type=WARNING, reason=event.reason, message=event.message)
        ingress = status.ingress_to_json(lb_status)
        unsupported = self._unsupported_annotations(service)
        message = "The load balancer matches the Service"
        if unsupported:
            message += (
                f"; annotations this provider does not implement, without effect: {', '.join(unsupported)}"
            )
        said = (status.current_condition(service) or {}).get("message") == message
        cond = self._condition(service, ok=True, reason="EnsuredLoadBalancer", message=message)
        if unsupported and not said:  # once per change: the condition remembers what was said
            self.recorder.event(
                service,
                type=WARNING,
                reason=UNSUPPORTED_ANNOTATION_REASON,
                message=(
                    f"{', '.join(unsupported)}: not implemented by this provider, so without effect; "
                    "remove it or see the provider's annotation reference in the docs"
                ),
            )
        ingress_changed = status.current_ingress(service) != status.normalise_ingress(ingress)
        if ingress_changed or cond is not None:
            with step("failed to update load balancer status", service=service):
                self.patcher.patch_status(
                    service=service, ingress=ingress if ingress_changed else None, condition=cond
                )

    def _ensure_deleted(self, key: str, service: Obj, *, known: Obj | None) -> None:
        owned = predicates.owned_finalizers(service, load_balancer_class=self.load_balancer_class)
        had_finalizer = bool(owned)
        was_ours = known is not None and self.wants_load_balancer(known)
        if not had_finalizer and not was_ours:
            return  # never ours: not even a cloud call (upstream test: ClusterIP without finalizer)
        self.recorder.event(
            service, type=NORMAL, reason="DeletingLoadBalancer", message="Deleting load balancer"
        )
        with step("failed to delete load balancer", service=service):
            self.provider.ensure_load_balancer_deleted(request=self._request(service, None))
        metrics.LOADBALANCER_SYNC.inc()
        self._forget(key)
        with step("failed to remove load balancer cleanup finalizer", service=service):
            patched = self.patcher.remove_finalizers(service=service, finalizers=owned)
        self.recorder.event(
            service, type=NORMAL, reason="DeletedLoadBalancer", message="Deleted load balancer"
        )
        if patched is None:
            return  # the Service is gone (its deletion was only waiting for our finalizer)
        if self._of_another_class(patched):
            return  # its status is another instance's to write
        has_condition = status.current_condition(patched) is not None
        if status.current_ingress(patched) or has_condition:
            with step("failed to update load balancer status", service=service):
                self.patcher.patch_status(
                    service=patched,
                    clear_ingress=True,
                    remove_condition=status.CONDITION_TYPE if has_condition else None,
                )

    def _unsupported_annotations(self, service: Obj) -> tuple[str, ...]:
        if not isinstance(self.provider, AnnotationChecker):
            return ()
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
        return self.provider.unsupported_annotations(
            annotations=predicates.meta(service).get("annotations") or {},
            status_addresses=tuple(str(p.get("hostname") or p.get("ip") or "") for p in ingress),
        )

    def _condition(self, service: Obj, *, ok: bool, reason: str, message: str) -> dict[str, Any] | None:
        """The condition to write, or None when the current one already says the same."""
        old = status.current_condition(service)
        generation = predicates.meta(service).get("generation")
        new = status.condition(ok=ok, reason=reason, message=message, generation=generation)
        if not status.condition_changed(old, new):
            return None
        if old is not None and old.get("status") == new["status"] and old.get("lastTransitionTime"):
            new["lastTransitionTime"] = old["lastTransitionTime"]
        return new

    def _report(self, err: SyncError) -> None:
        """The one place a failed sync is told to the user: a Warning event, and the condition."""
        service, cause = err.service, err.cause
        if err.gone:  # no Service left to carry a condition (upstream: DeleteLoadBalancerFailed)
            self.recorder.event(
                service,
                type=WARNING,
                reason="DeleteLoadBalancerFailed",
                message=f"Error deleting load balancer: {cause}",
            )
            return
        if isinstance(cause, InvalidSpec):
            reason = "InvalidSpec"
        elif isinstance(cause, RetryAfter):
            reason = "RetryAfter"
        elif isinstance(cause, ForeignLoadBalancer):
            reason = "ForeignLoadBalancer"
        else:
            reason = "SyncLoadBalancerFailed"
        self.recorder.event(
            service,
            type=WARNING,
            reason="ForeignLoadBalancer" if reason == "ForeignLoadBalancer" else "SyncLoadBalancerFailed",
            message=f"Error syncing load balancer: {err}",
        )
        cond = self._condition(service, ok=False, reason=reason, message=str(err))
        if cond is not None:
            try:
                self.patcher.patch_status(service=service, condition=cond)
            except Exception:
                logger.warning(
                    "%s: could not write the failure condition", object_key(service), exc_info=True
                )

    # -- node sync ---------------------------------------------------------------------------------

    def _node_worker(self) -> None:
        while True:
            try:
                key = self.node_queue.get()
            except ShutDown:
                return
            try:
                self.sync_nodes()
                self.node_queue.forget(key)
            except Exception:
                logger.exception("node sync failed; retrying with backoff")
                self.node_queue.add_rate_limited(key)
            finally:
                self.node_queue.done(key)

    def sync_nodes(self) -> None:
        """Give every LB Service whose host set changed the new set, through ``update_load_balancer``."""
        started = self.clock()
        with self._state_lock:
            keys = list(self._last_synced_nodes)  # service workers add and remove entries meanwhile
        keys = [k for k in keys if self.services.store.get(k) is not None]
        list(self._pool.map(self._sync_nodes_for, keys))
        metrics.NODESYNC_LATENCY.observe(self.clock() - started)
        self._save_checkpoint()

    def _sync_nodes_for(self, key: str) -> None:
        with self._lock_for(key):
            service = self.services.store.get(key)
            if service is None or key not in self._last_synced_nodes:
                return
            if not self.wants_load_balancer(service) or self.needs_cleanup(service):
                return
            targets = self.targets()
            if targets.fingerprint == self._last_synced_nodes.get(key):
                return
            self._remember_nodes(key, targets.fingerprint)
            request = self._request(service, targets)
            started = self.clock()
            try:
                self.provider.update_load_balancer(request=request)
            except (ImplementedElsewhere, ForeignLoadBalancer):  # the Service sync reports the latter
                return
            except Exception as exc:
                self._settle(key, ok=False)
                self._node_update_failed(key, service, request, exc)
                return
            finally:
                metrics.UPDATE_HOST_LATENCY.observe(self.clock() - started)
            self._settle(key, ok=True)
            metrics.LOADBALANCER_SYNC.inc()
            self.recorder.event(
                service,
                type=NORMAL,
                reason="UpdatedLoadBalancer",
                message="Updated load balancer with new hosts",
            )
            if not targets.nodes:
                self.recorder.event(
                    service,
                    type=WARNING,
                    reason="UnAvailableLoadBalancer",
                    message="There are no available nodes for LoadBalancer",
                )

    def _node_update_failed(
        self, key: str, service: Obj, request: LoadBalancerRequest, exc: Exception
    ) -> None:
        try:
            _status, exists = self.provider.get_load_balancer(request=request)
            if not exists:
                return
        except Exception:
            logger.debug("%s: get after failed update also failed", key, exc_info=True)
        metrics.NODESYNC_ERRORS.inc()
        names = [n.name for n in request.nodes]
        shown = names[:MAX_NODE_NAMES_IN_EVENT] + (
            [f"<{len(names) - MAX_NODE_NAMES_IN_EVENT} more>"] if len(names) > MAX_NODE_NAMES_IN_EVENT else []
        )
        self.recorder.event(
            service,
            type=WARNING,
            reason="UpdateLoadBalancerFailed",
            message=f"Error updating load balancer with new hosts {shown} [node names limited, "
            f"total number of nodes: {len(names)}], error: {exc}",
        )
        self.service_queue.add(key)  # a full ensure retries it, with the service queue's backoff

    # -- periodic resync ---------------------------------------------------------------------------

    def _resync_loop(self) -> None:
        while not self._stop.wait(self.resync_period):
            try:
                self.resync()
            except Exception:
                logger.exception("periodic resync failed")

    def resync(self) -> frozenset[str]:
        """Drift repair: re-ensure the Services whose LB is missing or differs; returns their keys.

        The provider's orphan sweep is told the UID of every Service in the cluster (any type, any
        class, valid or not): only what belongs to none of them may ever be swept.
        """
        services = self.services.store.objects()
        wanted = [s for s in services if self.wants_load_balancer(s) and not self.needs_cleanup(s)]
        live_uids = frozenset(str(uid) for s in services if (uid := predicates.meta(s).get("uid")))
        targets = self.targets()
        for svc in services:
            if self.needs_cleanup(svc):
                self.service_queue.add(object_key(svc))
        if isinstance(self.provider, DriftChecker):
            requests = [self._request(s, targets) for s in wanted]
            with self._state_lock:
                self._ensured_during_check = set()
            try:
                drifted = self.provider.drifted_load_balancers(requests=requests, live_uids=live_uids)
            finally:
                with self._state_lock:
                    ensured = self._ensured_during_check or set()  # (another resync's end may have taken it)
                    self._ensured_during_check = None
            if ensured & drifted:
                logger.info(
                    "resync: %d load balancers ensured while the bulk check ran are not ensured again",
                    len(ensured & drifted),
                )
            drifted -= ensured
        else:
            drifted = frozenset(object_key(s) for s in wanted)
        for key in drifted:
            metrics.DRIFT_REPAIRS.inc()
            self.service_queue.add(key)
        self.node_queue.add(NODE_SYNC_KEY)  # level-triggered: also catches coalesced node updates
        if drifted:
            logger.info("resync: %d of %d load balancers drifted", len(drifted), len(wanted))
        return drifted


class _ServiceHandler:
    def __init__(self, controller: ServiceController) -> None:
        self.c = controller

    def on_add(self, obj: Obj) -> None:
        if self.c.wants_load_balancer(obj) or self.c.needs_cleanup(obj):
            self.c.service_queue.add(object_key(obj))

    def on_update(self, old: Obj, new: Obj) -> None:
        if predicates.needs_update(
            old, new, load_balancer_class=self.c.load_balancer_class
        ) or self.c.needs_cleanup(new):
            self.c.service_queue.add(object_key(new))
        else:
            self.c.follow(object_key(new), old=old, new=new)

    def on_delete(self, obj: Obj) -> None:
        if self.c.wants_load_balancer(obj) or self.c.has_finalizer(obj):
            self.c.service_queue.add(object_key(obj))


class _NodeHandler:
    def __init__(self, controller: ServiceController) -> None:
        self.c = controller

    def on_add(self, obj: Obj) -> None:
        self.c.node_queue.add(NODE_SYNC_KEY)

    def on_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if predicates.should_sync_updated_node(old, new):
            self.c.node_queue.add(NODE_SYNC_KEY)

    def on_delete(self, obj: Obj) -> None:
        self.c.node_queue.add(NODE_SYNC_KEY)

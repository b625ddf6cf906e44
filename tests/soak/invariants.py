"""What must hold, continuously (:class:`Observer`) and once things have settled (:func:`problems`).

Continuously, about once a second, from the apiserver and the cloud directly:

* no Service UID ever has two load balancers of the same scheme (a scheme change builds the new one
  before deleting the old, so two of different schemes may coexist while it converges);
* no Service of another ``loadBalancerClass`` ever gets this controller's finalizer, an address or a
  load balancer;
* no address flaps: within one *address epoch* of a Service (see :mod:`tests.soak.workload`), once it
  has an address, that address stays, until the user changes what may move it.

Once settled (faults and workload stopped): every valid Service is served as it asks (the cloud's
``check_service``) with a ``LoadBalancerSynced=True`` condition of its current generation; every
invalid one has ``InvalidSpec`` of its current generation and keeps at most one load balancer; every
Service that wants none has none, nor our finalizer; no resource carries a UID no Service has.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.soak.cloud import Inventory, SoakCloud
from tests.soak.workload import (
    EXCLUDE_LABEL,
    NAMESPACES,
    OUR_FINALIZER,
    TO_BE_DELETED_TAINT,
    UNREACHABLE,
    Flavour,
    Machine,
    Workload,
)
from tests.support import kube

logger = logging.getLogger(__name__)
Obj = Mapping[str, Any]


class ServiceCheck(Protocol):
    def __call__(self, *, service: Obj, inventory: Inventory, targets: Sequence[Machine]) -> list[str]: ...


def key_of(service: Obj) -> str:
    return f"{service['metadata']['namespace']}/{service['metadata']['name']}"


def ingress_of(service: Obj) -> tuple[str, ...]:
    points = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(sorted(str(p.get("hostname") or p.get("ip") or "") for p in points))


def ours(service: Obj) -> bool:
    return not (service.get("spec") or {}).get("loadBalancerClass")


def wants_load_balancer(service: Obj) -> bool:
    return (
        ours(service)
        and (service.get("spec") or {}).get("type") == "LoadBalancer"
        and not service["metadata"].get("deletionTimestamp")
    )


def condition(service: Obj) -> Obj | None:
    for cond in (service.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "LoadBalancerSynced":
            return dict(cond)
    return None


def list_services(api: client.ApiClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for ns in NAMESPACES:
        items += kube.raw(api, "GET", f"/api/v1/namespaces/{ns}/services")["items"]
    return items


def target_machines(api: client.ApiClient, cloud: SoakCloud) -> list[Machine]:
    """The Nodes that should take traffic, by the documented rules (not the controller's code)."""
    machines = []
    for node in kube.raw(api, "GET", "/api/v1/nodes")["items"]:
        labels = node["metadata"].get("labels") or {}
        excluded = EXCLUDE_LABEL in labels and labels[EXCLUDE_LABEL] == "true"
        taints = {t.get("key") for t in (node.get("spec") or {}).get("taints") or ()}
        provider_id = (node.get("spec") or {}).get("providerID")
        if (
            excluded
            or TO_BE_DELETED_TAINT in taints
            or not provider_id
            or node["metadata"].get("deletionTimestamp")
        ):
            continue
        machines.append(
            Machine(
                node=node["metadata"]["name"],
                provider_id=provider_id,
                zone=labels.get("topology.kubernetes.io/zone", ""),
                instance=cloud.instance_of(provider_id),
            )
        )
    return machines


@dataclass
class Violations:
    """Every broken invariant, by kind, with a few examples each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, kind: str, subject: str, detail: str) -> None:
        """Counted once per (kind, subject): a duplicate seen for 30 s is one duplicate."""
        if (kind, subject) in self.seen:
            return
        self.seen.add((kind, subject))
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < 5:
            shown.append(f"{subject}: {detail}")
        logger.warning("violation %s: %s: %s", kind, subject, detail)

    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class _AddressState:
    epoch: int
    address: tuple[str, ...]  # the address last seen
    had_address: bool  # whether the Service ever had one (the first is not a move)
    allowance: int = 0  # moves still allowed: one per bump of the epoch not yet used


class Observer:
    """The continuous checks, in a thread of their own."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        cloud: SoakCloud,
        workload: Workload,
        violations: Violations,
        interval: float = 1.0,
    ) -> None:
        self.api = api
        self.cloud = cloud
        self.workload = workload
        self.violations = violations
        self.interval = interval
        self.rounds = 0
        self.addresses: dict[str, _AddressState] = {}  # uid → what its address may be
        self.ever_ours: set[str] = set()  # uids once of our class and type LoadBalancer
        self.max_load_balancers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.observe()
            except Exception:
                logger.debug("observation skipped", exc_info=True)

    def observe(self) -> None:
        # Epochs are read before and after the Services: a key whose epoch moved meanwhile (a request
        # that may move its address was being sent) is left to the next round.
        services: list[dict[str, Any]] | None = None
        before = {key: self.workload.epoch(key) for key in self.workload.service_keys()}
        with contextlib.suppress(ApiException, *UNREACHABLE):
            services = list_services(self.api)
        inventory = self.cloud.inventory()
        after = {key: self.workload.epoch(key) for key in self.workload.service_keys()}
        self.rounds += 1
        self.check_duplicates(inventory)
        if services is not None:
            epochs = {key: epoch for key, epoch in after.items() if before.get(key) == epoch}
            self.check_services(services, epochs, inventory)

    def check_duplicates(self, inventory: Inventory) -> None:
        for uid, lbs in inventory.load_balancers.items():
            self.max_load_balancers = max(self.max_load_balancers, len(lbs))
            by_scheme = Counter(lb.scheme for lb in lbs)
            for scheme, count in by_scheme.items():
                if count > 1:
                    names = ", ".join(lb.id.rsplit("/", 2)[-2] if "/" in lb.id else lb.id for lb in lbs)
                    self.violations.add(
                        "duplicate", uid, f"{count} {scheme} load balancers of {lbs[0].service}: {names}"
                    )

    def check_services(
        self, services: Sequence[Obj], epochs: Mapping[str, int], inventory: Inventory
    ) -> None:
        for service in services:
            uid = service["metadata"]["uid"]
            key = key_of(service)
            if ours(service) and (service.get("spec") or {}).get("type") == "LoadBalancer":
                self.ever_ours.add(uid)
            if not ours(service) and uid in self.ever_ours:
                continue  # it was ours, then changed class: its clean-up is checked once settled
            if not ours(service):
                touched = []
                if OUR_FINALIZER in (service["metadata"].get("finalizers") or ()):
                    touched.append("our finalizer")
                if ingress_of(service):
                    touched.append(f"an address {ingress_of(service)}")
                if uid in inventory.uids():
                    touched.append("a load balancer")
                if touched:
                    self.violations.add(
                        "foreign-touched", uid, f"{key} of another class got {', '.join(touched)}"
                    )
                continue
            if not wants_load_balancer(service):
                continue
            if key in epochs:
                self.check_address(uid, key, epochs[key], ingress_of(service))

    def check_address(self, uid: str, key: str, epoch: int, address: tuple[str, ...]) -> None:
        """Every move of the address must be backed by a request that could move it.

        Each bump of the Service's epoch (type, class, scheme annotation, a hand deletion of its load
        balancer) allows one move; a move the controller makes late (an ensure of the previous spec that
        was in flight when the next request came) uses the allowance of its own bump. Its first address
        is not a move. Any move beyond the bumps is a flap."""
        state = self.addresses.get(uid)
        if state is None:
            self.addresses[uid] = _AddressState(epoch=epoch, address=address, had_address=bool(address))
            return
        if epoch != state.epoch:
            state.allowance += max(epoch - state.epoch, 0)
            state.epoch = epoch
        if address == state.address:
            return
        previous, state.address = state.address, address
        if not state.had_address:
            state.had_address = bool(address)
            return
        if state.allowance > 0:
            state.allowance -= 1
            return
        self.violations.add(
            "flap",
            f"{uid}@{epoch}",
            f"{key}: address {previous or 'empty'} became {address or 'empty'} with no change asked",
        )


def problems(*, api: client.ApiClient, cloud: SoakCloud, workload: Workload) -> list[str]:
    """Why the system has not converged yet (empty: it has). Raises when the apiserver cannot answer."""
    return settled_problems(
        services=list_services(api),
        targets=target_machines(api, cloud),
        inventory=cloud.inventory(),
        flavour=workload.flavour,
        check=cloud.check_service,
    )


def settled_problems(
    *,
    services: Sequence[Obj],
    targets: Sequence[Machine],
    inventory: Inventory,
    flavour: Flavour,
    check: ServiceCheck,
) -> list[str]:
    """:func:`problems` on state already read (what the unit tests drive)."""
    found: list[str] = []
    keep: set[str] = set()  # UIDs that may have load-balancer resources
    for service in services:
        meta = service["metadata"]
        uid, key = meta["uid"], key_of(service)
        finalizers = meta.get("finalizers") or ()
        if not wants_load_balancer(service):
            if OUR_FINALIZER in finalizers:
                found.append(f"{key}: wants no load balancer but keeps our finalizer")
            if ours(service) and ingress_of(service) and not meta.get("deletionTimestamp"):
                found.append(f"{key}: wants no load balancer but has an address {ingress_of(service)}")
            if meta.get("deletionTimestamp"):
                found.append(f"{key}: still being deleted")
            continue
        keep.add(uid)
        cond = condition(service)
        generation = meta.get("generation")
        if OUR_FINALIZER not in finalizers:
            found.append(f"{key}: no finalizer")
        invalid = flavour.invalid_reason(service)
        if invalid:
            if not cond or cond.get("status") != "False" or cond.get("reason") != "InvalidSpec":
                found.append(f"{key}: invalid ({invalid}) but the condition says {cond}")
            elif cond.get("observedGeneration") != generation:
                found.append(
                    f"{key}: InvalidSpec of generation {cond.get('observedGeneration')}, not {generation}"
                )
            if len(inventory.load_balancers.get(uid, [])) > 1:
                found.append(f"{key}: invalid, with {len(inventory.load_balancers[uid])} load balancers")
            continue
        if not cond or cond.get("status") != "True":
            found.append(f"{key}: condition {cond}")
        elif cond.get("observedGeneration") != generation:
            found.append(f"{key}: synced generation {cond.get('observedGeneration')}, not {generation}")
        found += [f"{key}: {p}" for p in check(service=service, inventory=inventory, targets=targets)]
    for uid in sorted(inventory.uids() - keep):
        found.append(
            f"leaked: resources of uid {uid} (no Service wants them): {sorted(inventory.parts.get(uid, []))}"
        )
    return found


def leftovers(*, cloud: SoakCloud) -> list[str]:
    """After every Service is gone: what of ours is still in the cloud."""
    inventory = cloud.inventory()
    left = [part for parts in inventory.parts.values() for part in parts]
    if not cloud.shared_parts_stay:
        left += inventory.shared
    return sorted(left)

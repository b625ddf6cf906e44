"""The soak's users: a seeded random stream of Service creates, edits and deletes, and Node changes.

Services come from a small pool of names in two namespaces, so names are reused (a Service deleted and
made again gets a new UID under the same name, the case the controller's ``_known`` cache exists for).
Most specs are valid; some carry one of the cloud's known-invalid variants (a :class:`Flavour` lists
them, each with the oracle that recognises it on the live object, written without the provider's code).
A few Services belong to another controller's ``loadBalancerClass``: they must never be touched.

What may move a Service's address is recorded as an *address epoch* per Service key, bumped before the
request that could move it is sent (type, class, the scheme annotation, a hand deletion of its load
balancer); the flapping invariant allows a new address only across a bump.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import kube

logger = logging.getLogger(__name__)

NAMESPACES = ("soak-a", "soak-b")
OTHER_CLASS = "example.com/other"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
OUR_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
# The apiserver not answering at all (restarting): the socket's error, or urllib3's after its retries.
UNREACHABLE = (OSError, urllib3.exceptions.HTTPError)


@dataclass(frozen=True)
class Spec:
    """What the soak asks of one Service."""

    type: str = "LoadBalancer"
    load_balancer_class: str | None = None
    ports: tuple[tuple[int, str], ...] = ((80, "TCP"),)
    traffic_policy: str = "Cluster"
    source_ranges: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    invalid: str = ""  # the name of the invalid variant applied, "" when valid

    def annotation_map(self) -> dict[str, str]:
        return dict(self.annotations)


@dataclass(frozen=True)
class Invalid:
    """A known-invalid change: ``apply`` makes a spec invalid; ``matches`` recognises it on a live Service."""

    name: str
    apply: Callable[[Spec], Spec]
    matches: Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Flavour:
    """The cloud-specific choices of the workload."""

    port_pool: tuple[tuple[int, str], ...]
    one_protocol: bool  # GCE: a Service's ports are all TCP or all UDP
    annotation_choices: tuple[tuple[tuple[str, str], ...], ...]  # each: annotations added together
    address_keys: tuple[str, ...]  # annotations whose change may move the address (the scheme)
    invalids: tuple[Invalid, ...]

    def invalid_reason(self, service: Mapping[str, Any]) -> str:
        """The name of the known-invalid variant the live Service carries, '' when none."""
        for variant in self.invalids:
            if variant.matches(service):
                return variant.name
        return ""


@dataclass
class Machine:
    """A VM of the fake cloud with its Node."""

    node: str
    provider_id: str
    zone: str
    instance: str  # the cloud's id (AWS instance id, GCE instance name)
    excluded: bool = False
    tainted: bool = False
    cordoned: bool = False

    @property
    def target(self) -> bool:
        return not self.excluded and not self.tainted


class MachineCloud(Protocol):
    """What the workload needs of the cloud for Nodes (see :mod:`tests.soak.cloud`)."""

    def new_machine(self, *, rng: random.Random) -> Machine: ...

    def remove_machine(self, machine: Machine) -> None: ...


@dataclass
class Workload:
    api: client.ApiClient
    cloud: MachineCloud
    flavour: Flavour
    rng: random.Random
    names_per_namespace: int = 8
    min_nodes: int = 2
    max_nodes: int = 6
    invalid_rate: float = 0.15
    ops: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # requests the apiserver did not take
    machines: list[Machine] = field(default_factory=list)
    specs: dict[str, Spec] = field(default_factory=dict)  # key → what we last asked
    epochs: Counter[str] = field(default_factory=Counter)  # key → address epoch
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- Services -----------------------------------------------------------------------------------

    def service_keys(self) -> list[str]:
        return [f"{ns}/s{i:02d}" for ns in NAMESPACES for i in range(self.names_per_namespace)]

    def random_ports(self) -> tuple[tuple[int, str], ...]:
        pool = list(self.flavour.port_pool)
        if self.flavour.one_protocol:
            protocol = self.rng.choice(sorted({p for _, p in pool}))
            pool = [p for p in pool if p[1] == protocol]
        count = self.rng.randint(1, min(3, len(pool)))
        return tuple(sorted(self.rng.sample(pool, count)))

    def random_spec(self) -> Spec:
        rng = self.rng
        spec = Spec(
            type="LoadBalancer" if rng.random() < 0.93 else "ClusterIP",
            load_balancer_class=OTHER_CLASS if rng.random() < 0.08 else None,
            ports=self.random_ports(),
            traffic_policy=rng.choice(("Cluster", "Cluster", "Local")),
            source_ranges=rng.choice(((), (), ("10.0.0.0/8",), ("192.168.0.0/16", "172.16.0.0/12"))),
            annotations=self.random_annotations(),
        )
        if spec.type == "ClusterIP":
            spec = replace(spec, load_balancer_class=None)
        if rng.random() < self.invalid_rate:
            spec = self.make_invalid(spec)
        return spec

    def random_annotations(self) -> tuple[tuple[str, str], ...]:
        chosen: dict[str, str] = {}
        for choice in self.flavour.annotation_choices:
            if self.rng.random() < 0.3:
                chosen.update(choice)
        return tuple(sorted(chosen.items()))

    def make_invalid(self, spec: Spec) -> Spec:
        variant = self.rng.choice(self.flavour.invalids)
        return replace(variant.apply(spec), invalid=variant.name)

    def edit(self, spec: Spec) -> Spec:
        """One or two changes a user would make."""
        rng = self.rng
        out = spec
        for _ in range(rng.choice((1, 1, 2))):
            what = rng.choice(
                ("ports", "annotations", "source-ranges", "traffic-policy", "type", "validity", "validity")
            )
            if what == "ports":
                out = replace(out, ports=self.random_ports())
            elif what == "annotations":
                out = replace(out, annotations=self.random_annotations())
            elif what == "source-ranges":
                out = replace(out, source_ranges=rng.choice(((), ("10.0.0.0/8",), ("192.168.0.0/16",))))
            elif what == "traffic-policy":
                out = replace(out, traffic_policy="Local" if out.traffic_policy == "Cluster" else "Cluster")
            elif what == "type":
                if out.type == "LoadBalancer":
                    out = replace(out, type="ClusterIP", load_balancer_class=None)
                else:
                    out = replace(
                        out,
                        type="LoadBalancer",
                        load_balancer_class=OTHER_CLASS if rng.random() < 0.15 else None,
                    )
            elif out.invalid:  # validity: fix it
                out = replace(
                    out, annotations=self.random_annotations(), ports=self.random_ports(), invalid=""
                )
                out = replace(out, source_ranges=())
            else:
                out = self.make_invalid(out)
        if out.invalid and not any(v.name == out.invalid for v in self.flavour.invalids):
            out = replace(out, invalid="")
        return out

    def moves_address(self, old: Spec | None, new: Spec | None) -> bool:
        if old is None or new is None:
            return True
        if (old.type, old.load_balancer_class) != (new.type, new.load_balancer_class):
            return True
        a, b = old.annotation_map(), new.annotation_map()
        return any(a.get(k) != b.get(k) for k in self.flavour.address_keys)

    def bump(self, key: str) -> None:
        with self.lock:
            self.epochs[key] += 1

    def epoch(self, key: str) -> int:
        with self.lock:
            return self.epochs[key]

    def body(self, name: str, spec: Spec) -> dict[str, Any]:
        ports = [
            {"name": f"{proto.lower()}-{port}", "port": port, "targetPort": port, "protocol": proto}
            for port, proto in spec.ports
        ]
        extra: dict[str, Any] = {}
        if spec.type == "LoadBalancer":
            extra["externalTrafficPolicy"] = spec.traffic_policy
            if spec.source_ranges:
                extra["loadBalancerSourceRanges"] = list(spec.source_ranges)
        body = kube.service_body(
            name,
            type_=spec.type,
            ports=ports,
            annotations=spec.annotation_map(),
            load_balancer_class=spec.load_balancer_class,
            labels={"soak": "1"},
            **extra,
        )
        return body

    def patch(self, old: Spec, new: Spec) -> dict[str, Any]:
        """A merge patch from ``old`` to ``new`` (null removes; type-dependent fields cleared)."""
        annotations: dict[str, str | None] = {k: None for k in old.annotation_map()}
        annotations.update(new.annotation_map())
        body = self.body("x", new)
        spec: dict[str, Any] = {"type": new.type, "ports": body["spec"]["ports"]}
        if new.type == "LoadBalancer":
            spec["externalTrafficPolicy"] = new.traffic_policy
            spec["loadBalancerSourceRanges"] = list(new.source_ranges) or None
            if old.type != "LoadBalancer":
                spec["loadBalancerClass"] = new.load_balancer_class
        else:
            spec["externalTrafficPolicy"] = None
            spec["loadBalancerSourceRanges"] = None
            spec["loadBalancerClass"] = None
        return {"metadata": {"annotations": annotations}, "spec": spec}

    def service_op(self) -> None:
        key = self.rng.choice(self.service_keys())
        ns, name = key.split("/")
        old = self.specs.get(key)
        roll = self.rng.random()
        try:
            if old is None:
                new = self.random_spec()
                self.bump(key)
                kube.raw(self.api, "POST", f"/api/v1/namespaces/{ns}/services", self.body(name, new))
                self.specs[key] = new
                self.ops["create"] += 1
                self.ops["create-invalid"] += bool(new.invalid)
            elif roll < 0.25:
                self.bump(key)
                del self.specs[key]
                kube.delete_service(self.api, ns, name)
                self.ops["delete"] += 1
            else:
                new = self.edit(old)
                if self.moves_address(old, new):
                    self.bump(key)
                kube.patch_service(self.api, ns, name, self.patch(old, new))
                self.specs[key] = new
                self.ops["edit"] += 1
        except ApiException as exc:
            self.refused[f"service-{exc.status}"] += 1
            self.resync_spec(key)
        except UNREACHABLE:
            self.refused["service-unreachable"] += 1
            self.resync_spec(key)

    def resync_spec(self, key: str) -> None:
        """After a refused or unanswered request: what we asked is what the apiserver has (or gone)."""
        ns, name = key.split("/")
        try:
            live = kube.get_service(self.api, ns, name)
        except (ApiException, *UNREACHABLE):
            self.specs.pop(key, None)  # unknown: treated as new; a create of an existing name is refused
            return
        if live is None or (live["metadata"].get("deletionTimestamp")):
            self.specs.pop(key, None)
        elif key not in self.specs:
            self.specs[key] = spec_of(live, self.flavour)

    # -- Nodes --------------------------------------------------------------------------------------

    def add_node(self) -> None:
        machine = self.cloud.new_machine(rng=self.rng)
        try:
            kube.create_node(self.api, machine.node, provider_id=machine.provider_id, zone=machine.zone)
        except (ApiException, *UNREACHABLE):
            self.cloud.remove_machine(machine)
            raise
        self.machines.append(machine)

    def node_op(self) -> None:
        rng = self.rng
        kind = rng.choice(("add", "remove", "exclude", "taint", "cordon"))
        if kind == "add" and len(self.machines) >= self.max_nodes:
            kind = "remove"
        if kind == "remove" and len(self.machines) <= self.min_nodes:
            kind = "add"
        try:
            if kind == "add":
                self.add_node()
            elif kind == "remove":
                machine = rng.choice(self.machines)
                self.machines.remove(machine)
                with contextlib.suppress(ApiException):
                    kube.raw(self.api, "DELETE", f"/api/v1/nodes/{machine.node}")
                self.cloud.remove_machine(machine)
            else:
                machine = rng.choice(self.machines)
                if kind == "exclude":
                    machine.excluded = not machine.excluded
                    value = "true" if machine.excluded else None
                    kube.patch_node(self.api, machine.node, {"metadata": {"labels": {EXCLUDE_LABEL: value}}})
                elif kind == "taint":
                    machine.tainted = not machine.tainted
                    taints = [{"key": TO_BE_DELETED_TAINT, "effect": "NoSchedule"}] if machine.tainted else []
                    kube.patch_node(self.api, machine.node, {"spec": {"taints": taints}})
                else:
                    machine.cordoned = not machine.cordoned
                    kube.patch_node(self.api, machine.node, {"spec": {"unschedulable": machine.cordoned}})
            self.ops[f"node-{kind}"] += 1
        except ApiException as exc:
            self.refused[f"node-{exc.status}"] += 1
            self.reread_nodes()
        except UNREACHABLE:
            self.refused["node-unreachable"] += 1
            self.reread_nodes()

    def reread_nodes(self) -> None:
        """After a refused request: the Nodes' labels and taints as the apiserver has them."""
        with contextlib.suppress(ApiException, *UNREACHABLE):
            for machine in self.machines:
                node = kube.raw(self.api, "GET", f"/api/v1/nodes/{machine.node}")
                labels = node["metadata"].get("labels") or {}
                machine.excluded = EXCLUDE_LABEL in labels and labels[EXCLUDE_LABEL] != "false"
                taints = (node.get("spec") or {}).get("taints") or []
                machine.tainted = any(t.get("key") == TO_BE_DELETED_TAINT for t in taints)
                machine.cordoned = bool((node.get("spec") or {}).get("unschedulable"))

    def step(self) -> None:
        if self.rng.random() < 0.8:
            self.service_op()
        else:
            self.node_op()

    # -- the end ------------------------------------------------------------------------------------

    def delete_all(self, keys: Sequence[str] | None = None) -> None:
        for key in keys if keys is not None else self.service_keys():
            ns, name = key.split("/")
            self.bump(key)
            with contextlib.suppress(ApiException, *UNREACHABLE):
                kube.delete_service(self.api, ns, name)
            self.specs.pop(key, None)


def spec_of(service: Mapping[str, Any], flavour: Flavour) -> Spec:
    """The :class:`Spec` of a live Service (used when a request's outcome was not heard)."""
    spec = service.get("spec") or {}
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    return Spec(
        type=spec.get("type", "ClusterIP"),
        load_balancer_class=spec.get("loadBalancerClass"),
        ports=tuple((int(p["port"]), str(p.get("protocol", "TCP"))) for p in spec.get("ports") or ()),
        traffic_policy=spec.get("externalTrafficPolicy") or "Cluster",
        source_ranges=tuple(spec.get("loadBalancerSourceRanges") or ()),
        annotations=tuple(sorted(annotations.items())),
        invalid=flavour.invalid_reason(service),
    )

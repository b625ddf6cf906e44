"""What the soak needs of a fake cloud: :mod:`tests.soak.aws` (moto) or :mod:`tests.soak.gce` (fakegce).

The soak reads the cloud directly (never through the fault proxy, never with the provider's code), so
what it sees is the cloud's truth: which load balancers exist for which Service UID, with which address,
and whether each Service's load balancer serves what the Service asks.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.soak.workload import Flavour, Machine, MachineCloud


@dataclass(frozen=True)
class LoadBalancer:
    """One load balancer (AWS: an NLB; GCE: a forwarding rule) of one Service UID."""

    id: str
    scheme: str
    address: str
    service: str  # "namespace/name", from its tags or marker


@dataclass
class Inventory:
    """This cluster's load-balancer resources (of the default scope), read from the cloud at one moment."""

    load_balancers: dict[str, list[LoadBalancer]] = field(default_factory=dict)  # uid → its LBs
    parts: dict[str, list[str]] = field(default_factory=dict)  # uid → every resource carrying it
    shared: list[str] = field(default_factory=list)  # cluster-wide parts (AWS backend SG, GCE groups)

    def uids(self) -> set[str]:
        return set(self.parts) | set(self.load_balancers)


class SoakCloud(MachineCloud, Protocol):
    name: str
    flavour: Flavour
    fault_kinds: tuple[str, ...]  # the cloud faults :meth:`inject` knows
    hand_kinds: tuple[str, ...]  # the changes by hand :meth:`by_hand` knows
    shared_parts_stay: bool  # whether cluster-wide parts may stay once every Service is gone

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def seed(self) -> None:
        """The network and whatever the provider discovers; no machines."""

    def seed_foreign(self) -> None:
        """Resources the controller must never touch: another cluster's, another scope's, unmarked ones."""

    def foreign_snapshot(self) -> dict[str, Any]:
        """The foreign resources' state (equal whenever they are untouched)."""
        ...

    def controller_args(self, *, workdir: Path) -> list[str]: ...

    def controller_env(self, *, base: Mapping[str, str]) -> dict[str, str]: ...

    def instance_of(self, provider_id: str) -> str:
        """The cloud's id of a Node's instance."""
        ...

    def inventory(self) -> Inventory: ...

    def check_service(
        self, *, service: Mapping[str, Any], inventory: Inventory, targets: Sequence[Machine]
    ) -> list[str]:
        """What is wrong with a valid Service's load balancer (empty: it serves what the Service asks)."""
        ...

    def inject(self, kind: str, *, rng: random.Random) -> None:
        """Start a cloud fault of ``kind``; :meth:`clear` ends every one."""

    def clear(self) -> None: ...

    def by_hand(
        self, kind: str, *, rng: random.Random, inventory: Inventory, before: Callable[[str, str], None]
    ) -> str | None:
        """A change by hand to one Service's resources; its ``namespace/name`` (None: nothing to change).

        ``before(kind, service)`` is called just before the change is made.
        """
        ...

    def controller_calls(self) -> int:
        """Cloud API requests the controller has sent so far (retries included)."""
        ...

    def injected(self) -> dict[str, int]:
        """Faults the cloud itself injected, by kind (requests throttled, failed, reset...)."""
        ...

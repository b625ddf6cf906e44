"""What the sandbox needs from a fake cloud, whichever it is: :mod:`sandbox.aws` (moto) or :mod:`sandbox.gce`.

:mod:`sandbox.app` drives every run the same way (start the fake, seed it while the control plane starts,
register a Node per seeded machine, run ``ccm run --cloud-provider=<provider>`` against it, print the
Services and the cloud's resources); a :class:`Cloud` supplies the provider-specific parts. Each cloud
module has a ``new(*, cluster, port)`` that returns one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Machine:
    """A seeded VM; the sandbox registers a Node for it as the kubelet and the cloud-node controller would."""

    node_name: str
    provider_id: str  # the Node's spec.providerID, which the provider maps back to the instance
    region: str
    zone: str
    private_ip: str
    instance_type: str
    internal_dns: str = ""  # an InternalDNS address of the Node when set


@dataclass(frozen=True)
class Seeded:
    """What :meth:`Cloud.seed` created: the machines, and a sentence saying what else, for the user."""

    machines: tuple[Machine, ...]
    summary: str


class Cloud(Protocol):
    """A fake cloud endpoint on loopback, seeded like a cluster's account or project."""

    label: str  # "AWS", "GCE": the prefix of its progress lines
    server: str  # what serves it ("moto"), for "stopping ..."
    provider: str  # the controller's --cloud-provider
    provider_id_scheme: str  # "aws:///", "gce://": how the Nodes' providerIDs start
    address_kind: str  # "hostname" or "IP": what its load balancers give a Service
    load_balancers: str  # what a LoadBalancer Service gets, for the footer ("NLBs")
    port_flag: str  # the flag choosing its port ("--aws-port"), named when the port is busy; "" if none

    def start(self) -> str:
        """Serve on 127.0.0.1 (:class:`OSError` when the port is busy); returns a progress sentence."""
        ...

    def stop(self) -> None:
        """Stop serving. Idempotent."""
        ...

    def seed(self, *, nodes: int) -> Seeded:
        """The network the provider discovers and ``nodes`` instances spread over two zones."""
        ...

    def controller_args(self, *, workdir: Path) -> list[str]:
        """``ccm run`` flags after ``--cloud-provider`` (a cloud config written into ``workdir``)."""
        ...

    def controller_env(self, *, base: Mapping[str, str]) -> dict[str, str]:
        """The controller's environment: ``base`` without the user's own settings for this cloud."""
        ...

    def render(self) -> str:
        """Its load-balancer resources as tables, equal whenever the state is equal."""
        ...

    def footer(self) -> list[str]:
        """Lines telling the user how to look at the fake cloud themselves."""
        ...


def without_prefixes(base: Mapping[str, str], *prefixes: str) -> dict[str, str]:
    """``base`` without the variables whose names start with one of ``prefixes``."""
    return {key: value for key, value in base.items() if not key.startswith(prefixes)}

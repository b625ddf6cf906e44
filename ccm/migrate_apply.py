"""``ccm migrate --dry-run=false``: apply the reviewed plan once, in a change window, and say what happened.

Why it exists: a platform team switches a cluster off the upstream controller in a change window; it wants
the takeovers done while it watches, Service by Service, with a report for the ticket, before it deploys
the controller for good. The plan is applied by the controller's own sync (:class:`ServiceController`,
one ``sync_service`` per Service, Events and status as ``ccm run`` writes them), never by a second code
path, and only while this process holds the controller's leader Lease: a running ``ccm run`` (which
applies the plan itself) is never raced. Only Services whose plan changes something are synced
(``adopt``, ``replace``, ``create``); the others are left as they are (a refused Service keeps its address
until it is annotated; an invalid one is the controller's to report).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from ccm.cloudprovider import LoadBalancer
from ccm.controllers.service import ServiceController, SyncError
from ccm.k8s.core import CoreV1
from ccm.k8s.events import EventRecorder
from ccm.k8s.leader import LeaderElector
from ccm.k8s.reflector import strip_node

logger = logging.getLogger(__name__)

APPLIED = ("adopt", "replace", "create")  # the plan's actions that change something


class LeaseHeld(Exception):
    """Another holder (a running controller) kept the Lease: it applies the plan itself."""


@dataclass(frozen=True)
class Outcome:
    """What applying one Service's plan did."""

    service: str  # namespace/name
    action: str  # the plan's
    result: str  # applied | failed | skipped
    address: str = ""  # the Service's address afterwards (status)
    message: str = ""


def apply_plan(
    *,
    api: client.ApiClient,
    provider: LoadBalancer,
    cluster_name: str,
    load_balancer_class: str,
    actions: Mapping[str, str],
    lease_name: str,
    lease_namespace: str,
    lease_duration: float = 15.0,
    renew_deadline: float = 10.0,
    retry_period: float = 2.0,
) -> list[Outcome]:
    """Sync every Service of ``actions`` (namespace/name → the plan's action) whose action is in
    :data:`APPLIED`, once, holding the Lease ``lease_namespace/lease_name``; raises :class:`LeaseHeld`
    when another holder keeps it for two lease durations."""
    leading = threading.Event()
    lost = threading.Event()
    elector = LeaderElector(
        api=api,
        name=lease_name,
        namespace=lease_namespace,
        identity=f"{socket.gethostname()}_migrate_{uuid.uuid4()}",
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        on_started_leading=leading.set,  # the work runs here, not on the election's thread
        on_stopped_leading=lost.set,
    )
    elector.start()
    try:
        if not leading.wait(2 * lease_duration + retry_period):
            raise LeaseHeld(
                f"the Lease {lease_namespace}/{lease_name} is held by another holder (a running ccm-lb "
                "controller, which applies the plan itself): nothing was changed"
            )
        recorder = EventRecorder(api=api)
        try:
            return _sync_each(
                api=api,
                provider=provider,
                cluster_name=cluster_name,
                load_balancer_class=load_balancer_class,
                recorder=recorder,
                actions=actions,
                lost=lost,
            )
        finally:
            recorder.flush()
            recorder.stop()
    finally:
        elector.release()


def _sync_each(
    *,
    api: client.ApiClient,
    provider: LoadBalancer,
    cluster_name: str,
    load_balancer_class: str,
    recorder: EventRecorder,
    actions: Mapping[str, str],
    lost: threading.Event,
) -> list[Outcome]:
    core = CoreV1(api)
    controller = ServiceController(
        api=api,
        provider=provider,
        cluster_name=cluster_name,
        recorder=recorder,
        load_balancer_class=load_balancer_class,
    )
    # Read now, under the Lease: what the review saw may have changed since.
    for service in items_of(core.list_service_for_all_namespaces(_preload_content=False)):
        controller.services.store.add(service)
    for node in items_of(core.list_node(_preload_content=False)):
        controller.nodes.store.add(strip_node(node))
    done: list[tuple[str, str]] = []
    outcomes: list[Outcome] = []
    for key, action in sorted(actions.items()):
        if action not in APPLIED:
            outcomes.append(Outcome(service=key, action=action, result="skipped"))
            continue
        if lost.is_set():
            outcomes.append(
                Outcome(service=key, action=action, result="failed", message="the Lease was lost")
            )
            continue
        try:
            controller.sync_service(key)
        except SyncError as err:
            outcomes.append(Outcome(service=key, action=action, result="failed", message=str(err)))
            continue
        except Exception as exc:  # a cloud or API error: said on the row, the others go on
            logger.warning("%s: could not apply the plan: %s", key, exc, exc_info=True)
            outcomes.append(
                Outcome(service=key, action=action, result="failed", message=f"{type(exc).__name__}: {exc}")
            )
            continue
        done.append((key, action))
    # the addresses the syncs wrote, from one listing
    now = {
        f"{meta.get('namespace')}/{meta.get('name')}": _address(service)
        for service in items_of(core.list_service_for_all_namespaces(_preload_content=False))
        if (meta := service.get("metadata") or {})
    }
    outcomes += [
        Outcome(service=key, action=action, result="applied", address=now.get(key, ""))
        for key, action in done
    ]
    return sorted(outcomes, key=lambda o: o.service)


def _address(service: Mapping[str, Any]) -> str:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ",".join(str(i.get("ip") or i.get("hostname") or "") for i in ingress)


def items_of(response: Any) -> list[dict[str, Any]]:
    """The items of a list call made with ``_preload_content=False`` (an HTTP response)."""
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items


# -- printing (pure) -------------------------------------------------------------------------------------


def render_outcomes_text(outcomes: Sequence[Outcome]) -> str:
    """One line per Service the plan changed, then the failures' messages and a count."""
    changed = [o for o in outcomes if o.result != "skipped"]
    if not changed:
        return "\nNothing to apply: no Service's plan changes anything.\n"
    table = [("SERVICE", "ACTION", "RESULT", "ADDRESS NOW")]
    table += [(o.service, o.action, o.result, o.address or "-") for o in changed]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    lines = ["", *("  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip() for line in table)]
    for o in changed:
        if o.result == "failed":
            lines += ["", f"{o.service}: failed: {o.message}"]
    failed = sum(1 for o in changed if o.result == "failed")
    lines += ["", f"{len(changed) - failed} applied, {failed} failed (the Services' Events say more)."]
    return "\n".join(lines) + "\n"


def outcome_json(outcome: Outcome) -> dict[str, str]:
    return {"result": outcome.result, "addressNow": outcome.address, "message": outcome.message}

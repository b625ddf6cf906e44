"""End to end, issue 11: two ``ccm run --cloud-provider=gce`` in one cluster, on the fake GCE server.

The default instance and one with ``--load-balancer-class=example.com/second`` each take Services
through create, change, a broken annotation, a type change and delete, with a one-second resync and
a one-second orphan grace. Nothing of either is deleted while its Service exists, and nothing is left
at the end (the shared instance groups and node health check go with the last load balancer).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from ccm.controllers.predicates import cleanup_finalizer
from ccm.envtest.controlplane import ControlPlane
from fakegce import FakeCompute
from providers.gcp import model
from tests.support import kube
from tests.support.ccm_run import CcmProcess, CcmProcesses
from tests.support.gcp import PROJECT, ZONES, ccm_flags, seeded_gce, write_cloud_config

SECOND = "example.com/second"
INSTANCES = {"default": None, "second": SECOND}
BROKEN = {"networking.gke.io/load-balancer-type": "Interna"}
HTTP = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
ALT = {"name": "alt", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
FAST_SWEEPS = ("--load-balancer-resync-period=1s", "--load-balancer-orphan-grace-period=1s")
KINDS = ("forwardingRules", "backendServices", "healthChecks", "firewalls", "instanceGroups")


@pytest.fixture
def gce() -> Iterator[FakeCompute]:
    with seeded_gce(instances=2, prefix="gke-node") as fake:
        yield fake


def _uid_of(resource: dict[str, Any]) -> str:
    if model.SERVICE_UID_LABEL in (resource.get("labels") or {}):
        return str(resource["labels"][model.SERVICE_UID_LABEL])
    return model.parse_description(resource.get("description")).get(model.SERVICE_UID_KEY, "")


def parts_of(gce: FakeCompute, uid: str) -> dict[str, list[str]]:
    """The Service's forwarding rule, backend service and firewalls, with their IPs and ports."""
    out: dict[str, list[str]] = {}
    for kind in ("forwardingRules", "backendServices", "firewalls"):
        for r in gce.resources(kind):
            if _uid_of(r) == uid:
                out.setdefault(kind, []).append(r["name"])
    return out


def rule_of(gce: FakeCompute, uid: str) -> dict[str, Any] | None:
    return next((r for r in gce.resources("forwardingRules") if _uid_of(r) == uid), None)


def identity(rule: dict[str, Any] | None) -> tuple[str, str] | None:
    """What a rebuild would change: the rule's id and its address."""
    return None if rule is None else (str(rule["id"]), str(rule["IPAddress"]))


def resyncs(process: CcmProcess) -> int:
    return process.log().count("resync: ")


def test_two_instances_keep_what_their_services_use_and_leave_nothing(
    kube_api: client.ApiClient,
    namespace: str,
    gce: FakeCompute,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
    tmp_path: Path,
) -> None:
    flags = (*ccm_flags(control_plane, write_cloud_config(tmp_path / "gce.conf", gce)), *FAST_SWEEPS)
    nodes = []
    for i in range(2):
        nodes.append(f"gke-node-{i}")
        kube.create_node(
            kube_api, nodes[-1], provider_id=f"gce://{PROJECT}/{ZONES[i % 2]}/{nodes[-1]}", zone=ZONES[i % 2]
        )
    try:
        logs = {
            "default": ccm_run.start(*flags, name="default"),
            "second": ccm_run.start(*flags, f"--load-balancer-class={SECOND}", name="second"),
        }
        uids: dict[str, str] = {}
        for inst, cls in INSTANCES.items():
            for svc in ("a", "b"):
                name = f"{svc}-{inst}"
                created = kube.create_service(
                    kube_api, namespace, name, ports=[HTTP], load_balancer_class=cls
                )
                uids[name] = created["metadata"]["uid"]

        # 1. created: each Service has its own forwarding rule, with its own instance's finalizer
        for name in uids:
            kube.eventually(
                lambda n=name: kube.ingress(kube.get_service(kube_api, namespace, n)),  # type: ignore[misc]
                timeout=90,
                message=f"an address for {name}",
            )
        for inst, cls in INSTANCES.items():
            served = kube.get_service(kube_api, namespace, f"a-{inst}")
            assert served is not None
            assert served["metadata"]["finalizers"] == [cleanup_finalizer(load_balancer_class=cls or "")]
        kept = {name: parts_of(gce, uid) for name, uid in uids.items()}
        assert all(
            len(p.get("forwardingRules", [])) == 1 and len(p.get("backendServices", [])) == 1
            for p in kept.values()
        ), kept

        # 2. changed: a second port on each "a" Service
        for inst in INSTANCES:
            kube.patch_service(kube_api, namespace, f"a-{inst}", {"spec": {"ports": [HTTP, ALT]}})
        for inst in INSTANCES:
            kube.eventually(
                lambda i=inst: (
                    (r := rule_of(gce, uids[f"a-{i}"])) is not None  # type: ignore[misc]
                    and sorted(r.get("ports", [])) == ["80", "8080"]
                ),
                timeout=90,
                message=f"ports 80 and 8080 on a-{inst}",
            )
        kept = {name: parts_of(gce, uid) for name, uid in uids.items()}
        rules = {name: identity(rule_of(gce, uid)) for name, uid in uids.items()}

        # 3. broken: a typo in an annotation is reported, and several sweeps later nothing is gone
        for inst in INSTANCES:
            kube.patch_service(kube_api, namespace, f"a-{inst}", {"metadata": {"annotations": BROKEN}})
        for inst in INSTANCES:
            kube.eventually(
                lambda i=inst: "SyncLoadBalancerFailed" in kube.reasons(kube_api, namespace, f"a-{i}"),  # type: ignore[misc]
                timeout=60,
                message=f"the warning on a-{inst}",
            )
        marks = {inst: resyncs(log) for inst, log in logs.items()}
        for inst, log in logs.items():
            kube.eventually(
                lambda i=inst, lg=log: resyncs(lg) >= marks[i] + 4,  # type: ignore[misc]
                timeout=60,
                message=f"four resyncs (sweeps past the 1s grace) of {inst}",
            )
        assert {name: parts_of(gce, uid) for name, uid in uids.items()} == kept
        assert {name: identity(rule_of(gce, uid)) for name, uid in uids.items()} == rules  # not rebuilt

        # 4. type change: "b" becomes a ClusterIP; its own instance deletes its load balancer
        for inst in INSTANCES:
            kube.patch_service(kube_api, namespace, f"b-{inst}", {"spec": {"type": "ClusterIP"}})
        for inst in INSTANCES:
            name = f"b-{inst}"
            kube.eventually(
                lambda n=name: parts_of(gce, uids[n]) == {},  # type: ignore[misc]
                timeout=90,
                message=f"the load balancer of {name} deleted",
            )
            kube.eventually(
                lambda n=name: (
                    not (kube.get_service(kube_api, namespace, n) or {})["metadata"].get("finalizers")
                ),  # type: ignore[misc]
                timeout=60,
                message=f"the finalizer of {name} removed",
            )
        for inst in INSTANCES:
            assert parts_of(gce, uids[f"a-{inst}"]) == kept[f"a-{inst}"]

        # 5. fixed: the annotation removed, the same rule and address serve on (the port change in 2.
        #    may move the address: that is the address hold of issue 11 section 2, not tested here)
        for inst in INSTANCES:
            kube.patch_service(
                kube_api, namespace, f"a-{inst}", {"metadata": {"annotations": dict.fromkeys(BROKEN)}}
            )
        for inst in INSTANCES:
            kube.eventually(
                lambda i=inst: (
                    (c := kube.condition(kube.get_service(kube_api, namespace, f"a-{i}")))  # type: ignore[misc]
                    and c["status"] == "True"
                ),
                timeout=60,
                message=f"a-{inst} synced again",
            )
            assert identity(rule_of(gce, uids[f"a-{inst}"])) == rules[f"a-{inst}"]  # same rule, same IP
            served = kube.get_service(kube_api, namespace, f"a-{inst}")
            assert kube.ingress(served)[0]["ip"] == rules[f"a-{inst}"][1]
            assert parts_of(gce, uids[f"a-{inst}"]) == kept[f"a-{inst}"]

        # 6. deleted: nothing left of either instance, shared parts included
        for name in uids:
            kube.delete_service(kube_api, namespace, name)
        for name in uids:
            kube.eventually(
                lambda n=name: kube.get_service(kube_api, namespace, n) is None,  # type: ignore[misc]
                timeout=90,
                message=f"{name} gone",
            )
        kube.eventually(
            lambda: {k: [r["name"] for r in gce.resources(k)] for k in KINDS if gce.resources(k)} == {},
            timeout=90,
            message="every load-balancer resource deleted",
        )
    finally:
        for name in nodes:
            kube.delete_node(kube_api, name)

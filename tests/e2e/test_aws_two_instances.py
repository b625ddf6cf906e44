"""End to end, issue 11: two ``ccm run --cloud-provider=aws`` in one cluster, on moto.

The default instance and one with ``--load-balancer-class=example.com/second`` each take Services
through create, change, a broken annotation, a type change and delete, with a one-second resync and
a one-second orphan grace. Nothing of either is deleted while its Service exists (before the fix,
each swept the other's load balancers, and a broken annotation cost a Service its NLB), and nothing
is left at the end.
"""

from __future__ import annotations

import boto3
import pytest
from kubernetes import client

from ccm.controllers.predicates import LOAD_BALANCER_CLEANUP_FINALIZER, cleanup_finalizer
from ccm.envtest.controlplane import ControlPlane
from tests.support import kube
from tests.support.aws import Network, ccm_flags, seed_network, service_resources
from tests.support.ccm_run import CcmProcess, CcmProcesses

SECOND = "example.com/second"
INSTANCES = {"default": None, "second": SECOND}
BROKEN = {"service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval": "ten"}
HTTP = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
ALT = {"name": "alt", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
FAST_SWEEPS = ("--load-balancer-resync-period=1s", "--load-balancer-orphan-grace-period=1s")


@pytest.fixture
def network(aws: str) -> Network:
    return seed_network()


def arns_of(uid: str) -> set[str]:
    """Every resource tagged with this Service UID (load balancer, target groups, security group)."""
    return {
        r["ResourceARN"]
        for r in service_resources()
        if {t["Key"]: t["Value"] for t in r["Tags"]}.get("ccm-lb/service-uid") == uid
    }


def listener_ports(uid: str) -> list[int]:
    elbv2 = boto3.client("elbv2")
    lbs = [a for a in arns_of(uid) if ":loadbalancer/" in a]
    if len(lbs) != 1:
        return []
    return sorted(x["Port"] for x in elbv2.describe_listeners(LoadBalancerArn=lbs[0])["Listeners"])


def resyncs(process: CcmProcess) -> int:
    return process.log().count("resync: ")


def test_two_instances_keep_what_their_services_use_and_leave_nothing(
    kube_api: client.ApiClient,
    namespace: str,
    network: Network,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
) -> None:
    nodes = []
    for iid, az in network.instances:
        nodes.append(f"ip-{iid}")
        kube.create_node(kube_api, nodes[-1], provider_id=f"aws:///{az}/{iid}", zone=az)
    try:
        logs = {
            "default": ccm_run.start(*ccm_flags(control_plane), *FAST_SWEEPS, name="default"),
            "second": ccm_run.start(
                *ccm_flags(control_plane), *FAST_SWEEPS, f"--load-balancer-class={SECOND}", name="second"
            ),
        }
        uids: dict[str, str] = {}
        for inst, cls in INSTANCES.items():
            for svc in ("a", "b"):
                name = f"{svc}-{inst}"
                created = kube.create_service(
                    kube_api, namespace, name, ports=[HTTP], load_balancer_class=cls
                )
                uids[name] = created["metadata"]["uid"]

        # 1. created: each Service has its own NLB, with its own instance's finalizer
        for name in uids:
            kube.eventually(
                lambda n=name: kube.ingress(kube.get_service(kube_api, namespace, n)),  # type: ignore[misc]
                timeout=90,
                message=f"an address for {name}",
            )
        kept = {name: arns_of(uid) for name, uid in uids.items()}
        assert all(len(arns) == 3 for arns in kept.values()), kept  # NLB, target group, security group
        for inst, cls in INSTANCES.items():
            finalizer = cleanup_finalizer(load_balancer_class=cls or "")
            served = kube.get_service(kube_api, namespace, f"a-{inst}")
            assert served is not None and served["metadata"]["finalizers"] == [finalizer]
        assert cleanup_finalizer() == LOAD_BALANCER_CLEANUP_FINALIZER

        # 2. changed: a second port on each "a" Service
        for inst in INSTANCES:
            kube.patch_service(kube_api, namespace, f"a-{inst}", {"spec": {"ports": [HTTP, ALT]}})
        for inst in INSTANCES:
            kube.eventually(
                lambda i=inst: listener_ports(uids[f"a-{i}"]) == [80, 8080],  # type: ignore[misc]
                timeout=90,
                message=f"listeners 80 and 8080 on a-{inst}",
            )
        kept = {name: arns_of(uid) for name, uid in uids.items()}

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
        assert {name: arns_of(uid) for name, uid in uids.items()} == kept
        for name in uids:
            assert kube.ingress(kube.get_service(kube_api, namespace, name)), name

        # 4. type change: "b" becomes a ClusterIP; its own instance deletes its NLB, the rest stay
        for inst in INSTANCES:
            kube.patch_service(kube_api, namespace, f"b-{inst}", {"spec": {"type": "ClusterIP"}})
        for inst in INSTANCES:
            name = f"b-{inst}"
            kube.eventually(
                lambda n=name: arns_of(uids[n]) == set(),  # type: ignore[misc]
                timeout=90,
                message=f"the NLB of {name} deleted",
            )
            kube.eventually(
                lambda n=name: (
                    not (kube.get_service(kube_api, namespace, n) or {})["metadata"].get("finalizers")
                ),  # type: ignore[misc]
                timeout=60,
                message=f"the finalizer of {name} removed",
            )
        for inst in INSTANCES:
            assert arns_of(uids[f"a-{inst}"]) == kept[f"a-{inst}"]

        # 5. fixed: the annotation removed, the same NLB serves on
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
            assert arns_of(uids[f"a-{inst}"]) == kept[f"a-{inst}"]

        # 6. deleted: nothing left of either instance
        for name in uids:
            kube.delete_service(kube_api, namespace, name)
        for name in uids:
            kube.eventually(
                lambda n=name: kube.get_service(kube_api, namespace, n) is None,  # type: ignore[misc]
                timeout=90,
                message=f"{name} gone",
            )
        kube.eventually(
            lambda: service_resources() == [], timeout=90, message="every Service resource deleted"
        )
    finally:
        for name in nodes:
            kube.delete_node(kube_api, name)

"""A smaller generated set end to end (issue 17): through ``ccm run --cloud-provider=aws`` on moto.

One generated batch of Services (every annotation the AWS provider registers, with valid, invalid and
odd values, unicode; TCP, UDP and SCTP ports; both traffic policies; source ranges; session affinity)
is created on the real apiserver while the real controller runs with a two-second resync. Whatever
each Service asks, the controller must:

* never crash: the process lives, and no exception escapes where the controller does not expect one
  ("sync failed unexpectedly", an uncaught exception in a thread, a failed drift check or node sync);
* settle every Service: a ``LoadBalancerSynced`` condition of its current generation (True, or False
  with the reason), or nothing at all for a Service left to the AWS Load Balancer Controller;
* never hot-loop: over five resyncs, each resync re-queues each Service at most once, and the cloud
  calls stay within a budget per resync (3, plus what re-trying a Service whose sync fails costs);
* leave nothing in the account once the Services are deleted.

Hypothesis draws the batches (``derandomize``: the same on every machine) and the most varied of the
first 25 goes through the controller, whole: no shrinking, since each try costs real processes; a
failure prints the batch.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ccm.envtest.controlplane import ControlPlane, free_port
from tests.support import kube
from tests.support.aws import CLUSTER, Network, seed_network, service_resources
from tests.support.ccm_run import https_get
from tests.support.strategies import AWS_KEYS, ODD_VALUES, mostly

BATCH = 12
RESYNCS = 5
ELSEWHERE = {"external", "nlb-ip"}  # aws-load-balancer-type values left to the AWS Load Balancer Controller
TYPE_KEY = "service.beta.kubernetes.io/aws-load-balancer-type"
UNEXPECTED = ("sync failed unexpectedly", "Exception in thread", "periodic resync failed", "node sync failed")


@st.composite
def manifests(draw: st.DrawFn, index: int) -> dict[str, Any]:
    ports: list[dict[str, Any]] = []
    for number in range(draw(st.integers(min_value=1, max_value=4))):
        protocol = draw(mostly("TCP", "UDP", "SCTP"))
        port = draw(st.one_of(st.sampled_from((53, 80, 443, 8080)), st.integers(1, 65535)))
        if any(p["port"] == port and p["protocol"] == protocol for p in ports):
            continue
        ports.append({"name": f"p{number}", "port": port, "protocol": protocol})
    values = st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=40))
    annotated = st.dictionaries(st.sampled_from(AWS_KEYS), values, min_size=1, max_size=3)
    annotations = draw(st.one_of(st.just({}), st.just({}), annotated))
    spec: dict[str, Any] = {
        "externalTrafficPolicy": draw(st.sampled_from(("Cluster", "Local"))),
        "sessionAffinity": draw(mostly("None", "ClientIP")),
    }
    ranges = draw(st.sampled_from(((), ("10.0.0.0/8",), ("203.0.113.0/24", "2001:db8::/32"))))
    if ranges:
        spec["loadBalancerSourceRanges"] = list(ranges)
    return kube.service_body(f"gen-{index:02d}", ports=ports, annotations=annotations, **spec)


BATCHES = st.tuples(*(manifests(index) for index in range(BATCH)))


@pytest.fixture
def network(aws: str) -> Network:
    return seed_network()


@pytest.fixture
def controller(
    control_plane: ControlPlane, network: Network, kube_api: client.ApiClient, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    nodes = []
    for iid, az in network.instances:
        nodes.append(f"ip-{iid}")
        kube.create_node(kube_api, nodes[-1], provider_id=f"aws:///{az}/{iid}", zone=az)
    port = free_port()
    log = tmp_path / "ccm.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccm.cli",
                "run",
                "--cloud-provider=aws",
                f"--kubeconfig={control_plane.kubeconfig}",
                f"--cluster-name={CLUSTER}",
                "--leader-elect=false",
                f"--secure-port={port}",
                "--bind-address=127.0.0.1",
                "--concurrent-service-syncs=4",
                "--load-balancer-resync-period=2s",
                "--load-balancer-orphan-grace-period=2s",
                "--v=2",
            ],
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        sys.stderr.write("--- ccm (last lines)\n" + "\n".join(log.read_text().splitlines()[-40:]) + "\n")
        for name in nodes:
            kube.delete_node(kube_api, name)


def metric(text: str, metric_name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric_name + "{") and not line.startswith(metric_name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def settled(service: dict[str, Any] | None) -> bool:
    if service is None:
        return True
    annotations = service["metadata"].get("annotations") or {}
    if (annotations.get(TYPE_KEY) or "").strip() in ELSEWHERE:
        return True
    cond = kube.condition(service)
    return cond is not None and cond.get("observedGeneration") == service["metadata"].get("generation")


def generated_batch() -> tuple[dict[str, Any], ...]:
    """The most varied of the first batches Hypothesis draws (the first is always the simplest)."""
    drawn: list[tuple[dict[str, Any], ...]] = []

    @settings(max_examples=25, derandomize=True, database=None, deadline=None, phases=[Phase.generate])
    @given(batch=BATCHES)
    def collect(batch: tuple[dict[str, Any], ...]) -> None:
        drawn.append(batch)

    collect()

    def variety(batch: tuple[dict[str, Any], ...]) -> int:
        keys = {k for body in batch for k in body["metadata"]["annotations"]}
        protocols = {p["protocol"] for body in batch for p in body["spec"]["ports"]}
        return len(keys) + len(protocols)

    # most annotations are odd values, so a Service with any is mostly refused: some plain ones too
    usable = [b for b in drawn if sum(1 for body in b if not body["metadata"]["annotations"]) >= 3]
    return max(usable or drawn, key=variety)


def test_generated_services_through_ccm_run_never_crash_it_nor_make_it_loop_and_leave_nothing(
    kube_api: client.ApiClient,
    namespace: str,
    controller: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    batch = generated_batch()
    proc, log, port = controller
    created = []
    for body in batch:
        try:
            kube.raw(kube_api, "POST", f"/api/v1/namespaces/{namespace}/services", body)
            created.append(body["metadata"]["name"])
        except ApiException as exc:
            assert exc.status == 422, exc.body  # the apiserver's own validation, nothing else
    assert len(created) >= BATCH // 2, "most generated Services are ones the apiserver takes"

    def all_settled() -> bool:
        return all(settled(kube.get_service(kube_api, namespace, name)) for name in created)

    kube.eventually(all_settled, timeout=120, interval=0.5, message="every Service settled")
    services = [kube.get_service(kube_api, namespace, name) for name in created]
    failing = sum(1 for s in services if (kube.condition(s) or {}).get("status") == "False")
    assert failing < len(created), "\n".join(
        f"{s['spec']['ports']} {(kube.condition(s) or {}).get('message')}" for s in services
    )

    def scrape() -> str:
        status, body = https_get(port, "/metrics")
        assert status == 200
        return body

    before = scrape()
    resyncs0 = metric(before, "workqueue_adds_total", name="node")
    kube.eventually(
        lambda: metric(scrape(), "workqueue_adds_total", name="node") >= resyncs0 + RESYNCS,
        timeout=60,
        interval=0.5,
        message=f"{RESYNCS} resyncs",
    )
    after = scrape()
    resyncs = metric(after, "workqueue_adds_total", name="node") - resyncs0
    requeues = metric(after, "workqueue_adds_total", name="service") - metric(
        before, "workqueue_adds_total", name="service"
    )
    calls = metric(after, "cloudprovider_aws_api_requests_total") - metric(
        before, "cloudprovider_aws_api_requests_total"
    )
    sys.stdout.write(
        f"{len(created)} Services ({failing} not synced), over {resyncs:.0f} resyncs: "
        f"{requeues:.0f} service requeues, {calls:.0f} AWS requests\n"
    )
    assert requeues <= resyncs * len(created), (requeues, resyncs)
    # an InvalidSpec costs no cloud call; a Service whose sync fails otherwise is retried, at most
    # once per resync (the drift check re-queues it), each try costing a bounded number of calls
    retried = sum(
        1
        for s in services
        if (kube.condition(s) or {}).get("status") == "False"
        and (kube.condition(s) or {}).get("reason") != "InvalidSpec"
    )
    assert calls <= resyncs * (3 + 15 * retried), (calls, resyncs, retried)
    assert proc.poll() is None, log.read_text()[-5000:]
    text = log.read_text()
    assert not [u for u in UNEXPECTED if u in text], text[-8000:]

    for name in created:
        kube.delete_service(kube_api, namespace, name)
    kube.eventually(
        lambda: all(kube.get_service(kube_api, namespace, name) is None for name in created),
        timeout=90,
        message="every Service gone (finalizers removed)",
    )
    kube.eventually(lambda: service_resources() == [], timeout=60, message="nothing left in the account")

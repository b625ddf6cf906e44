"""``ccm run`` end to end: a LoadBalancer Service gets the fake provider's hostname; signals stop it."""

from __future__ import annotations

import signal
from typing import Any

from kubernetes import client

from tests.support import kube
from tests.support.ccm_run import StartCcm
from tests.support.kube import lb_hostname

GO_STYLE_FLAGS = (
    "--leader-elect=false",
    "--leader-elect-lease-duration=15s",
    "--v=2",
    "--concurrent-service-syncs=3",
    "--configure-cloud-routes=false",
    "--allocate-node-cidrs=true",
    "--cluster-cidr=10.244.0.0/16",
    "--controllers=*,cloud-node-controller",
    "--cluster-name=e2e",
)


def expected_hostname(service: dict[str, Any], suffix: str) -> str:
    uid = str(service["metadata"]["uid"])
    return f"{('a' + uid.replace('-', ''))[:32]}.{suffix}"


def test_a_load_balancer_service_gets_a_hostname_and_sigterm_stops_the_process_cleanly(
    ccm: StartCcm, kube_api: client.ApiClient, namespace: str
) -> None:
    process = ccm(*GO_STYLE_FLAGS)
    process.wait_ready()
    service = kube.create_service(kube_api, namespace, "web")

    hostname = kube.eventually(
        lambda: lb_hostname(kube_api, namespace, "web"), timeout=30, message="web's load balancer"
    )

    assert hostname == expected_hostname(service, "lb.fake.invalid")
    assert "cloud-node-controller is not implemented here and is ignored" in process.log()
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert not process.group_alive(), "ccm left processes behind in its process group"
    log = process.log()
    assert "Traceback" not in log, log
    assert log.rstrip().endswith("stopped"), log

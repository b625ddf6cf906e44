"""ccm.controllers.status: the ingress we write, compared after apiserver defaulting, and our condition."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ccm.cloudprovider import IngressPoint, LoadBalancerStatus, PortStatus
from ccm.controllers.status import (
    CONDITION_TYPE,
    condition,
    condition_changed,
    current_condition,
    current_ingress,
    ingress_to_json,
    normalise_ingress,
)
from tests.unit.builders import service


def test_an_ip_without_ip_mode_is_written_with_ip_mode_vip() -> None:
    status = LoadBalancerStatus(ingress=(IngressPoint(ip="192.0.2.10"),))

    assert ingress_to_json(status) == [{"ip": "192.0.2.10", "ipMode": "VIP"}]


def test_an_explicit_proxy_ip_mode_is_kept() -> None:
    status = LoadBalancerStatus(ingress=(IngressPoint(ip="192.0.2.10", ip_mode="Proxy"),))

    assert ingress_to_json(status) == [{"ip": "192.0.2.10", "ipMode": "Proxy"}]


def test_a_hostname_gets_no_ip_mode() -> None:
    status = LoadBalancerStatus(ingress=(IngressPoint(hostname="lb.example.com"),))

    assert ingress_to_json(status) == [{"hostname": "lb.example.com"}]


def test_port_statuses_are_written_with_an_error_only_when_there_is_one() -> None:
    point = IngressPoint(
        ip="192.0.2.10",
        ports=(
            PortStatus(port=80, protocol="TCP"),
            PortStatus(port=53, protocol="UDP", error="MixedProtocolNotSupported"),
        ),
    )

    assert ingress_to_json(LoadBalancerStatus(ingress=(point,))) == [
        {
            "ip": "192.0.2.10",
            "ipMode": "VIP",
            "ports": [
                {"port": 80, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP", "error": "MixedProtocolNotSupported"},
            ],
        }
    ]


def test_an_empty_status_is_an_empty_ingress_list() -> None:
    assert ingress_to_json(LoadBalancerStatus()) == []


def test_ingress_points_keep_their_order() -> None:
    status = LoadBalancerStatus(
        ingress=(IngressPoint(hostname="b.example.com"), IngressPoint(ip="192.0.2.1"))
    )

    assert [p.get("hostname") or p.get("ip") for p in ingress_to_json(status)] == [
        "b.example.com",
        "192.0.2.1",
    ]


def test_an_ip_without_ip_mode_equals_the_same_ip_with_vip_after_normalising() -> None:
    assert normalise_ingress([{"ip": "1.2.3.4"}]) == normalise_ingress([{"ip": "1.2.3.4", "ipMode": "VIP"}])


def test_a_vip_ip_differs_from_a_proxy_ip_after_normalising() -> None:
    assert normalise_ingress([{"ip": "1.2.3.4"}]) != normalise_ingress([{"ip": "1.2.3.4", "ipMode": "Proxy"}])


def test_normalising_drops_empty_fields() -> None:
    raw: list[dict[str, Any]] = [{"ip": "1.2.3.4", "hostname": "", "ports": [], "ipMode": None}]

    assert normalise_ingress(raw) == [{"ip": "1.2.3.4", "ipMode": "VIP"}]


def test_normalising_gives_a_hostname_no_ip_mode() -> None:
    assert normalise_ingress([{"hostname": "lb.example.com"}]) == [{"hostname": "lb.example.com"}]


@pytest.mark.parametrize("empty", [None, []], ids=["None", "empty list"])
def test_no_ingress_normalises_to_an_empty_list(empty: list[dict[str, Any]] | None) -> None:
    assert normalise_ingress(empty) == []


def test_normalising_is_order_sensitive_like_upstream() -> None:
    first, second = {"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}

    assert normalise_ingress([first, second]) != normalise_ingress([second, first])


def test_what_we_write_compares_equal_to_what_the_apiserver_returns() -> None:
    status = LoadBalancerStatus(
        ingress=(IngressPoint(ip="192.0.2.10"), IngressPoint(hostname="lb.example.com")),
    )
    written = ingress_to_json(status)
    returned = service()
    returned["status"] = {
        "loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}
    }

    assert normalise_ingress(written) == written
    assert current_ingress(returned) == normalise_ingress(written)


def test_a_service_without_a_load_balancer_status_has_no_ingress() -> None:
    svc = service()
    assert current_ingress(svc) == []
    svc["status"] = {"loadBalancer": {}}
    assert current_ingress(svc) == []
    del svc["status"]
    assert current_ingress(svc) == []


def test_the_current_condition_is_found_by_type() -> None:
    svc = service()
    ours = {"type": CONDITION_TYPE, "status": "True", "reason": "EnsuredLoadBalancer", "message": "ok"}
    svc["status"] = {"conditions": [{"type": "Other", "status": "False"}, ours]}

    assert current_condition(svc) == ours
    assert current_condition(service()) is None


def test_a_condition_has_the_type_status_reason_message_and_a_transition_time() -> None:
    cond = condition(ok=False, reason="SyncLoadBalancerFailed", message="boom", generation=3)

    assert cond["type"] == CONDITION_TYPE
    assert cond["status"] == "False"
    assert cond["reason"] == "SyncLoadBalancerFailed"
    assert cond["message"] == "boom"
    assert cond["observedGeneration"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cond["lastTransitionTime"])


def test_a_condition_without_a_generation_has_no_observed_generation() -> None:
    cond = condition(ok=True, reason="EnsuredLoadBalancer", message="ok", generation=None)

    assert cond["status"] == "True"
    assert "observedGeneration" not in cond


def test_a_condition_message_is_cut_to_the_api_limit() -> None:
    cond = condition(ok=False, reason="R", message="x" * 40000, generation=None)

    assert len(cond["message"]) == 32768


def test_a_first_condition_is_a_change() -> None:
    assert condition_changed(None, condition(ok=True, reason="R", message="m", generation=1))


def test_only_the_transition_time_differing_is_not_a_change() -> None:
    old = condition(ok=True, reason="R", message="m", generation=1)
    new = {**old, "lastTransitionTime": "2000-01-01T00:00:00Z"}

    assert not condition_changed(old, new)


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "False"), ("reason", "Other"), ("message", "other"), ("observedGeneration", 2)],
)
def test_a_different_status_reason_message_or_generation_is_a_change(field: str, value: object) -> None:
    old = condition(ok=True, reason="R", message="m", generation=1)
    new = {**old, field: value}

    assert condition_changed(old, new)

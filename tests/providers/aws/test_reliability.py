"""Crash points, throttling and ownership: converge to exactly one correct LB or nothing, never leak."""

from __future__ import annotations

import contextlib
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from providers.aws.provider import AWSProvider
from tests.support.aws import (
    CLUSTER_TAG,
    Crash,
    Network,
    RequestFactory,
    crash_after,
    new_provider,
    service_resources,
)


def _stack_state(network: Network) -> dict[str, Any]:
    elbv2, ec2 = boto3.client("elbv2"), boto3.client("ec2")
    lbs = elbv2.describe_load_balancers()["LoadBalancers"]
    tgs = elbv2.describe_target_groups()["TargetGroups"]
    listeners = [
        x for lb in lbs for x in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    ]
    sgs = [
        g
        for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [network.vpc_id]}])[
            "SecurityGroups"
        ]
        if any(t["Key"] == CLUSTER_TAG for t in g.get("Tags", [])) and g["GroupId"] != network.node_sg
    ]
    targets = {
        tg["TargetGroupName"]: sorted(
            t["Target"]["Id"]
            for t in elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])[
                "TargetHealthDescriptions"
            ]
        )
        for tg in tgs
    }
    return {"lbs": lbs, "tgs": tgs, "listeners": listeners, "sgs": sgs, "targets": targets}


@pytest.mark.parametrize("crash_point", range(1, 13))
def test_create_converges_after_a_crash_at_any_point(
    network: Network,
    make_request: RequestFactory,
    crash_point: int,
) -> None:
    request = make_request("crashy")
    doomed = new_provider()
    mutations = crash_after(doomed, crash_point)
    try:
        doomed.ensure_load_balancer(request=request)
        crashed = False
    except Crash:
        crashed = True
    if not crashed:
        assert len(mutations) < crash_point  # fewer mutations than this crash point: nothing to test
    restarted = new_provider()  # a new process: empty caches
    status = restarted.ensure_load_balancer(request=request)
    state = _stack_state(network)
    assert len(state["lbs"]) == 1 and state["lbs"][0]["DNSName"] == status.ingress[0].hostname
    assert len(state["tgs"]) == 2 and len(state["listeners"]) == 2
    assert sorted(listener["Port"] for listener in state["listeners"]) == [80, 443]
    assert len(state["sgs"]) == 2  # the Service's frontend SG and the cluster's backend SG
    frontend = next(
        g for g in state["sgs"] if any(t["Value"] == "frontend-security-group" for t in g["Tags"])
    )
    assert {(p["IpProtocol"], p.get("FromPort")) for p in frontend["IpPermissions"]} >= {
        ("tcp", 80),
        ("tcp", 443),
    }
    expected = sorted(i for i, _ in network.instances)
    assert all(ids == expected for ids in state["targets"].values()), state["targets"]
    restarted.ensure_load_balancer_deleted(request=request)
    assert service_resources() == []


@pytest.mark.parametrize("crash_point", range(1, 6))
def test_delete_converges_after_a_crash_at_any_point(
    network: Network,
    make_request: RequestFactory,
    crash_point: int,
) -> None:
    request = make_request("doomed")
    new_provider().ensure_load_balancer(request=request)
    deleting = new_provider()
    crash_after(deleting, crash_point)
    with contextlib.suppress(Crash):
        deleting.ensure_load_balancer_deleted(request=request)
    new_provider().ensure_load_balancer_deleted(request=request)
    assert service_resources() == []
    assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self._body


def _throttled(service: str) -> AWSResponse:
    if service == "ec2":
        body = (
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
            b"</Message></Error></Errors><RequestID>t</RequestID></Response>"
        )
        return AWSResponse("https://throttled", 503, {}, _Raw(body))
    if service == "tagging":
        return AWSResponse(
            "https://throttled",
            400,
            {"x-amzn-ErrorType": "ThrottlingException"},
            _Raw(b'{"__type":"ThrottlingException","Message":"Rate exceeded"}'),
        )
    body = (
        b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
        b"</Error><RequestId>t</RequestId></ErrorResponse>"
    )
    return AWSResponse("https://throttled", 400, {}, _Raw(body))


def test_half_of_all_requests_throttled_still_converges_without_a_hot_loop(
    network: Network,
    make_request: RequestFactory,
) -> None:
    provider = new_provider()
    rng = random.Random(7)
    throttled: list[str] = []

    def maybe_throttle(*, event_name: str, **_: Any) -> AWSResponse | None:
        if rng.random() < 0.5:
            service = event_name.split(".")[1]
            throttled.append(event_name)
            return _throttled("ec2" if service == "ec2" else "tagging" if "tagging" in service else "elbv2")
        return None

    provider.clients.register("before-send.*.*", maybe_throttle)
    request = make_request("throttled")
    status = provider.ensure_load_balancer(request=request)
    assert status.ingress[0].hostname
    assert throttled, "the injection must have fired"
    calls = provider.clients.total_calls()
    assert len(throttled) <= calls * 7  # retries are bounded per call (adaptive mode, 8 attempts)
    provider.ensure_load_balancer_deleted(request=request)
    assert service_resources() == []


def test_a_foreign_load_balancer_with_our_name_is_never_touched(
    provider: AWSProvider,
    network: Network,
    make_request: RequestFactory,
) -> None:
    request = make_request("victim")
    name = provider.get_load_balancer_name(request=request)
    elbv2 = boto3.client("elbv2")
    foreign = elbv2.create_load_balancer(
        Name=name, Type="network", Scheme="internal", Subnets=[network.subnets["us-east-1a"]]
    )["LoadBalancers"][0]
    with pytest.raises(RuntimeError, match=r"not this Service's|not owned"):
        provider.ensure_load_balancer(request=request)
    provider.ensure_load_balancer_deleted(request=request)
    lbs = elbv2.describe_load_balancers()["LoadBalancers"]
    assert [lb["LoadBalancerArn"] for lb in lbs] == [foreign["LoadBalancerArn"]]
    assert elbv2.describe_tags(ResourceArns=[foreign["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"] == []


def test_untagged_resources_of_another_cluster_survive_the_orphan_sweep(
    provider: AWSProvider,
    network: Network,
    make_request: RequestFactory,
) -> None:
    other = "kubernetes.io/cluster/other"
    elbv2 = boto3.client("elbv2")
    theirs = elbv2.create_load_balancer(
        Name="theirs",
        Type="network",
        Subnets=[network.subnets["us-east-1a"]],
        Tags=[
            {"Key": other, "Value": "owned"},
            {"Key": "ccm-lb/service-uid", "Value": "x"},
            {"Key": "ccm-lb/resource", "Value": "load-balancer"},
        ],
    )
    request = make_request("mine")
    provider.ensure_load_balancer(request=request)
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())  # ours is an orphan, theirs not ours
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    arns = [lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]]
    assert arns == [theirs["LoadBalancers"][0]["LoadBalancerArn"]]


def test_orphan_sweep_finishes_a_security_group_left_by_a_dependency_violation(
    network: Network,
    make_request: RequestFactory,
) -> None:
    provider = new_provider()
    provider.full_sweep_every = 1  # every drift check also lists target groups and security groups
    request = make_request("leaky")
    provider.ensure_load_balancer(request=request)
    blocked = {"on": True}

    def dependency_violation(*, model: Any, **_: Any) -> None:
        if model.name == "DeleteSecurityGroup" and blocked["on"]:
            raise ClientError(
                {"Error": {"Code": "DependencyViolation", "Message": "has a dependent object"}},
                "DeleteSecurityGroup",
            )

    provider.clients.register("before-call.ec2.DeleteSecurityGroup", dependency_violation)
    provider.ensure_load_balancer_deleted(request=request)
    left = service_resources()
    assert [r["ResourceARN"].split(":")[2] for r in left] == ["ec2"]  # only the frontend SG remains
    blocked["on"] = False  # the LB's network interfaces are gone now
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    assert service_resources() == []


@pytest.mark.parametrize("code", ["ThrottledException", "EC2ThrottledException", "RequestLimitExceeded"])
def test_every_aws_throttling_code_is_counted_as_a_throttle(
    provider: AWSProvider, make_request: RequestFactory, code: str
) -> None:
    """botocore's own retry handler (botocore/retries/standard.py ``_THROTTLED_ERROR_CODES``) treats
    ``ThrottledException`` and ``EC2ThrottledException`` as throttling too; so does the metric."""
    from providers.aws.client import THROTTLES

    body = (
        f"<Response><Errors><Error><Code>{code}</Code><Message>slow down</Message></Error></Errors>"
        "<RequestID>t</RequestID></Response>"
    ).encode()
    sent = {"once": True}

    def throttle_once(**_: Any) -> AWSResponse | None:
        if sent.pop("once", False):
            return AWSResponse("https://throttled", 503, {}, _Raw(body))
        return None

    provider.clients.ec2.meta.events.register("before-send.ec2.DescribeSubnets", throttle_once)
    before = THROTTLES.labels("DescribeSubnets")._value.get()
    provider.ensure_load_balancer(request=make_request("web"))
    assert THROTTLES.labels("DescribeSubnets")._value.get() == before + 1


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def test_a_5xx_whose_body_is_not_xml_is_retried_by_the_client(
    network: Network,
    make_request: RequestFactory,
) -> None:
    """Issue 16: a proxy's 500 with an HTML or truncated body makes botocore raise ResponseParserError
    ("invalid XML received"), which its retry handlers do not retry; the upstream SDK retries it."""
    provider = new_provider()
    garbled: list[str] = []

    def garble_one_in_three(*, event_name: str, request: Any, **_: Any) -> AWSResponse | None:
        if len(garbled) < 6 and len(provider.clients.snapshot()) % 3 == 0:
            garbled.append(event_name)
            return AWSResponse(request.url, 500, {}, _Body(b"<html>Internal Server Error"))
        return None

    provider.clients.register("before-send.*.*", garble_one_in_three)
    request = make_request("garbled")
    assert provider.ensure_load_balancer(request=request).ingress[0].hostname
    assert garbled, "the injection must have fired"
    provider.ensure_load_balancer_deleted(request=request)
    assert service_resources() == []


def test_the_shared_backend_security_group_is_made_once_by_concurrent_workers(network: Network) -> None:
    """Issue 16: ten workers at once created the shared group several times (InvalidGroup.Duplicate)."""
    provider = new_provider()
    barrier = threading.Barrier(8)

    def worker() -> str:
        barrier.wait()
        return provider.deployer.ensure_backend(instance_ids=[])

    with ThreadPoolExecutor(max_workers=8) as pool:
        groups = set(pool.map(lambda _: worker(), range(8)))
    assert len(groups) == 1
    assert provider.clients.snapshot().get("CreateSecurityGroup") == 1


def test_a_target_deregistered_by_hand_is_found_by_the_full_check_and_registered_again(
    network: Network,
    make_request: RequestFactory,
) -> None:
    """The unchanged resync trusts what the provider registered; the full drift check (every 6th resync)
    reads each target group once, so a target someone deregistered behind the controller's back is
    back after the next full check and the ensure it triggers."""
    provider = new_provider()
    provider.full_sweep_every = 1
    request = make_request("web")
    provider.ensure_load_balancer(request=request)
    elbv2 = boto3.client("elbv2")
    groups = [tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]]
    removed = network.instances[0][0]
    elbv2.deregister_targets(TargetGroupArn=groups[0], Targets=[{"Id": removed}])
    provider.ensure_load_balancer(request=request)  # the unchanged resync: nothing read, nothing seen

    assert provider.drifted_load_balancers(requests=[request], live_uids=None) == {request.key}
    provider.ensure_load_balancer(request=request)

    for arn in groups:
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        assert removed in {h["Target"]["Id"] for h in health}
    provider.clients.reset_counts()
    assert provider.drifted_load_balancers(requests=[request], live_uids=None) == frozenset()
    calls = provider.clients.snapshot()
    assert calls == {"GetResources": 1, "DescribeTargetHealth": len(groups)}, calls

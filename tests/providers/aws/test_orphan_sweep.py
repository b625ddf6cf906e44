"""The orphan sweep deletes only what no Service in the cluster owns, only in this instance's scope.

Issue 11: a converged Service that later got a typo in an annotation lost its NLB, target groups and
security group to the sweep, and two instances (default and ``--load-balancer-class``) swept each
other's load balancers. The sweep's rule (ccm/cloudprovider.py ``DriftChecker``): a resource goes only
when its Service UID is not among the cluster's Services and it has been an orphan for the grace.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from providers.aws import model
from providers.aws.config import AWSConfig
from providers.aws.provider import AWSProvider
from tests.providers.aws.aws_behaviour import AWSBehaviour
from tests.support.aws import CLUSTER, Network, RequestFactory, service_resources

GRACE = 600.0
SECOND = "example.com/second"


class Clock:
    """The provider's monotonic clock, moved by the test (no sleeping, no wall-clock thresholds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scoped_provider(clock: Clock, *, load_balancer_class: str = "") -> AWSProvider:
    provider = AWSProvider(
        cluster_name=CLUSTER,
        config=AWSConfig(),
        orphan_grace_seconds=GRACE,
        full_sweep_every=1,  # every drift check also lists target groups and security groups
        load_balancer_class=load_balancer_class,
        clock=clock,
    )
    AWSBehaviour(provider.clients).install()
    return provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


def arns() -> set[str]:
    return {r["ResourceARN"] for r in service_resources()}


def kinds(resources: list[dict[str, Any]]) -> list[str]:
    return sorted({t["Key"]: t["Value"] for t in r["Tags"]}[model.RESOURCE_TAG] for r in resources)


def sweep_past_the_grace(provider: AWSProvider, clock: Clock, **kwargs: Any) -> frozenset[str]:
    drifted = frozenset[str]()
    for _ in range(3):
        drifted = provider.drifted_load_balancers(**kwargs)
        clock.now += GRACE
    return drifted


def test_a_converged_service_whose_annotation_becomes_invalid_keeps_its_load_balancer(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(clock)
    request = make_request("web")
    provider.ensure_load_balancer(request=request)
    before = arns()
    assert kinds(service_resources()) == [
        "frontend-security-group",
        "load-balancer",
        "target-group:443/TCP",
        "target-group:80/TCP",
    ]
    broken = make_request(
        "web",
        uid=request.uid,
        annotations={"service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval": "ten"},
    )
    drifted = sweep_past_the_grace(provider, clock, requests=[broken], live_uids=frozenset({request.uid}))
    assert drifted == {"default/web"}  # the full ensure reports the typo as an event
    assert arns() == before


def test_a_service_whose_build_fails_unexpectedly_keeps_its_load_balancer_and_the_failure_is_logged(
    aws: str,
    network: Network,
    make_request: RequestFactory,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = scoped_provider(clock)
    request = make_request("web")
    provider.ensure_load_balancer(request=request)
    before = arns()

    def broken(request: Any, **_: Any) -> Any:
        raise RuntimeError("subnets lost their tag")

    monkeypatch.setattr(provider, "_stack", broken)
    with caplog.at_level(logging.ERROR):
        drifted = sweep_past_the_grace(
            provider, clock, requests=[request], live_uids=frozenset({request.uid})
        )
    assert drifted == {"default/web"}
    assert arns() == before
    assert "subnets lost their tag" in caplog.text


def test_the_load_balancer_of_a_live_service_that_no_longer_wants_one_is_not_swept(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(clock)
    request = make_request("typechanged")
    provider.ensure_load_balancer(request=request)
    before = arns()
    # The Service is now a ClusterIP (or of another class): not requested, but it exists.
    sweep_past_the_grace(provider, clock, requests=[], live_uids=frozenset({request.uid}))
    assert arns() == before


def test_a_real_orphan_is_swept_after_the_grace_and_not_before(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(clock)
    provider.ensure_load_balancer(request=make_request("gone"))
    before = arns()
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    clock.now += GRACE - 1
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    assert arns() == before
    clock.now += 1
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    assert service_resources() == []


def test_nothing_is_swept_when_the_caller_cannot_say_which_services_exist(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(clock)
    provider.ensure_load_balancer(request=make_request("unknown"))
    before = arns()
    sweep_past_the_grace(provider, clock, requests=[])
    assert arns() == before


def test_a_security_group_kept_by_a_dependency_violation_is_deleted_by_the_next_sweep(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(clock)
    provider.ensure_load_balancer(request=make_request("leaky"))
    blocked = {"on": True}

    def dependency_violation(*, model: Any, **_: Any) -> None:
        if model.name == "DeleteSecurityGroup" and blocked["on"]:
            raise ClientError(
                {"Error": {"Code": "DependencyViolation", "Message": "has a dependent object"}},
                "DeleteSecurityGroup",
            )

    provider.clients.register("before-call.ec2.DeleteSecurityGroup", dependency_violation)
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    clock.now += GRACE
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    assert kinds(service_resources()) == ["frontend-security-group"]  # still attached to the deleting NLB
    blocked["on"] = False
    clock.now += 1  # its grace is long over: it goes at once, not one more grace later
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    assert service_resources() == []


# -- scope ------------------------------------------------------------------------------------------


def scope_of(resource: dict[str, Any]) -> str | None:
    return {t["Key"]: t["Value"] for t in resource["Tags"]}.get(model.SCOPE_TAG)


def test_a_classed_instance_marks_its_resources_with_its_class(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    classed = scoped_provider(clock, load_balancer_class=SECOND)
    classed.ensure_load_balancer(request=make_request("classed", load_balancer_class=SECOND))
    assert [scope_of(r) for r in service_resources()] == [SECOND] * 4


def test_instances_never_list_change_or_delete_each_others_resources(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    default = scoped_provider(clock)
    classed = scoped_provider(clock, load_balancer_class=SECOND)
    mine = make_request("mine")
    theirs = make_request("theirs", load_balancer_class=SECOND)
    default.ensure_load_balancer(request=mine)
    classed.ensure_load_balancer(request=theirs)
    everything = arns()
    # Each instance is told only of its own Services: the other's UIDs are not even live to it.
    sweep_past_the_grace(default, clock, requests=[mine], live_uids=frozenset({mine.uid}))
    sweep_past_the_grace(classed, clock, requests=[theirs], live_uids=frozenset({theirs.uid}))
    assert arns() == everything
    assert default.get_load_balancer(request=theirs) == (None, False)
    assert classed.get_load_balancer(request=mine) == (None, False)
    default.ensure_load_balancer_deleted(request=theirs)
    classed.ensure_load_balancer_deleted(request=mine)
    assert arns() == everything
    # Each still sweeps its own orphans.
    sweep_past_the_grace(classed, clock, requests=[], live_uids=frozenset())
    assert {scope_of(r) for r in service_resources()} == {None}
    sweep_past_the_grace(default, clock, requests=[], live_uids=frozenset())
    assert service_resources() == []


def test_resources_made_before_scopes_existed_belong_to_the_default_instance(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    legacy = make_request("legacy")
    before_upgrade = scoped_provider(clock)
    before_upgrade.ensure_load_balancer(request=legacy)
    elbv2 = boto3.client("elbv2")
    # What the previous release tagged: the cluster, the Service, the role, the hash; no scope.
    assert all(scope_of(r) is None for r in service_resources())
    upgraded = scoped_provider(clock)
    assert (
        upgraded.drifted_load_balancers(requests=[legacy], live_uids=frozenset({legacy.uid})) == frozenset()
    )
    status = upgraded.ensure_load_balancer(request=legacy)
    assert status.ingress[0].hostname == elbv2.describe_load_balancers()["LoadBalancers"][0]["DNSName"]
    assert len(elbv2.describe_load_balancers()["LoadBalancers"]) == 1
    classed = scoped_provider(clock, load_balancer_class=SECOND)
    sweep_past_the_grace(classed, clock, requests=[], live_uids=frozenset())
    assert len(service_resources()) == 4
    upgraded.ensure_load_balancer_deleted(request=legacy)
    assert service_resources() == []


def test_a_classed_instance_refuses_resources_an_earlier_release_made_without_a_scope(
    aws: str, network: Network, make_request: RequestFactory, clock: Clock
) -> None:
    legacy = make_request("legacy", load_balancer_class=SECOND)
    scoped_provider(clock).ensure_load_balancer(request=legacy)  # what the earlier classed release made
    before = arns()
    classed = scoped_provider(clock, load_balancer_class=SECOND)
    with pytest.raises(RuntimeError, match="not of this controller's scope"):
        classed.ensure_load_balancer(request=legacy)
    assert arns() == before

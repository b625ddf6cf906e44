"""The upstream provider's NLB of a Service is taken over in place: same DNS name, same listeners and target
groups (no target's health starts over), upstream's rules on the nodes' group kept and then kept in line.

Upstream's NLB is made in moto as upstream makes it (``tests/support/upstream_aws.py`` names the upstream
code of each shape); ``tests/e2e/test_upstream_aws_takeover.py`` does the same with the real upstream.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3
import pytest

from ccm.cloudprovider import ForeignLoadBalancer, InvalidSpec, ServicePort
from providers.aws import annotations as ann
from providers.aws.provider import AWSProvider
from tests.support.aws import Crash, Network, RequestFactory, add_instance, crash_after, new_provider, owned
from tests.support.upstream_aws import (
    Upstream,
    make_upstream_nlb,
    nlb_exists,
    node_sg_rules,
    upstream_rule_descriptions,
)

UID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
PORTS = ((80, 30080), (443, 30443))
WRITES = (
    "Create",
    "Add",
    "Delete",
    "Modify",
    "Authorize",
    "Revoke",
    "Register",
    "Deregister",
    "Set",
    "Remove",
)


def _listeners(upstream: Upstream) -> dict[int, str]:
    """Listener port → the target group it forwards to."""
    described = boto3.client("elbv2").describe_listeners(LoadBalancerArn=upstream.arn)["Listeners"]
    return {int(x["Port"]): x["DefaultActions"][0]["TargetGroupArn"] for x in described}


def _tags(arn: str) -> dict[str, str]:
    described = boto3.client("elbv2").describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]
    return {t["Key"]: t["Value"] for t in described}


def _served(make_request: RequestFactory, upstream: Upstream, **fields: Any) -> Any:
    return make_request("web", uid=UID, status_addresses=(upstream.dns_name,), **fields)


@pytest.fixture
def upstream(network: Network) -> Upstream:
    return make_upstream_nlb(network, namespace="default", name="web", uid=UID, ports=PORTS)


def test_upstreams_nlb_is_taken_over_with_its_dns_name_listeners_target_groups_and_node_rules(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    listeners_before = _listeners(upstream)
    rules_before = upstream_rule_descriptions(network)

    status = provider.ensure_load_balancer(request=_served(make_request, upstream))

    assert status.ingress[0].hostname == upstream.dns_name
    assert [
        lb["LoadBalancerName"] for lb in boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]
    ] == [upstream.name]
    assert _listeners(upstream) == listeners_before  # no listener moved: no health check starts over
    for tg in listeners_before.values():
        assert _tags(tg)["ccm-lb/service-uid"] == UID and _tags(tg)["ccm-lb/adopted-as"]
    lb_tags = _tags(upstream.arn)
    assert lb_tags["ccm-lb/service-uid"] == UID and lb_tags["ccm-lb/adopted-from"] == "cloud-provider-aws"
    assert upstream_rule_descriptions(network) == rules_before
    frontends = [
        r
        for r in owned(("ec2:security-group",))
        if any(t["Value"] == "frontend-security-group" for t in r["Tags"])
    ]
    assert frontends == []  # an adopted NLB has no security group, and gets none


def test_an_adopted_service_then_costs_what_any_other_costs(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    request = _served(make_request, upstream)
    provider.ensure_load_balancer(request=request)
    assert provider.drifted_load_balancers(requests=[request], live_uids=None) == frozenset()

    restarted = new_provider()
    restarted.ensure_load_balancer(request=request)  # as after a restart, from an empty memory
    restarted.clients.reset_counts()
    restarted.ensure_load_balancer(request=request)

    calls = restarted.clients.snapshot()
    assert not any(op.startswith(WRITES) for op in calls), calls
    assert sum(calls.values()) <= 2, calls


def test_a_node_added_after_the_takeover_reaches_the_adopted_nlb(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    provider.ensure_load_balancer(request=_served(make_request, upstream))
    new_instance, _ = add_instance(network)
    provider.clients.reset_counts()

    provider.update_load_balancer(request=_served(make_request, upstream))

    assert provider.clients.snapshot().get("RegisterTargets") == 2
    for tg in _listeners(upstream).values():
        health = boto3.client("elbv2").describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        assert new_instance in {h["Target"]["Id"] for h in health}


def test_a_port_change_on_an_adopted_service_moves_upstreams_node_rules_and_target_group(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    request = _served(make_request, upstream)
    provider.ensure_load_balancer(request=request)
    old_443 = _listeners(upstream)[443]
    changed = dataclasses.replace(
        request,
        ports=(
            request.ports[0],
            ServicePort(name="p8443-tcp", protocol="TCP", port=8443, node_port=31443),
        ),
    )

    provider.ensure_load_balancer(request=changed)

    listeners = _listeners(upstream)
    assert sorted(listeners) == [80, 8443]
    assert old_443 not in {
        tg["TargetGroupArn"] for tg in boto3.client("elbv2").describe_target_groups()["TargetGroups"]
    }
    group = boto3.client("ec2").describe_security_groups(GroupIds=[network.node_sg])["SecurityGroups"][0]
    client_ports = {
        p["FromPort"]
        for p in group["IpPermissions"]
        for r in p.get("IpRanges", [])
        if r.get("Description") == f"kubernetes.io/rule/nlb/client={upstream.name}"
    }
    assert client_ports == {30080, 31443}


def test_a_node_rule_revoked_by_hand_is_found_by_the_full_check_and_put_back(
    network: Network, make_request: RequestFactory, upstream: Upstream
) -> None:
    """An adopted NLB has no security group: clients reach the nodes through upstream's rules on the
    nodes' group. The full drift check (every 6th resync) reads the nodes' groups once for every adopted
    NLB, so a rule someone revoked is back after it and the ensure it triggers; the unchanged resync and
    the normal drift check read nothing."""
    provider = new_provider()
    provider.full_sweep_every = 2
    request = _served(make_request, upstream)
    provider.ensure_load_balancer(request=request)
    rules_before = upstream_rule_descriptions(network)
    client_rule = f"kubernetes.io/rule/nlb/client={upstream.name}"
    ec2 = boto3.client("ec2")
    revoked = [
        {**p, "IpRanges": [r for r in p["IpRanges"] if r.get("Description") == client_rule]}
        for p in node_sg_rules(network)
        if any(r.get("Description") == client_rule for r in p.get("IpRanges", []))
    ]
    ec2.revoke_security_group_ingress(GroupId=network.node_sg, IpPermissions=revoked)
    assert client_rule not in upstream_rule_descriptions(network)

    assert provider.drifted_load_balancers(requests=[request], live_uids=None) == frozenset()  # not full
    restarted = new_provider()  # a new leader knows no instance yet: the full check learns them
    restarted.full_sweep_every = 1
    restarted.clients.reset_counts()
    assert restarted.drifted_load_balancers(requests=[request], live_uids=None) == {request.key}
    calls = restarted.clients.snapshot()
    assert calls.get("DescribeSecurityGroups", 0) <= 2 and "DescribeInstances" in calls, calls
    assert not any(op.startswith(WRITES) for op in calls), calls
    restarted.ensure_load_balancer(request=request)

    assert upstream_rule_descriptions(network) == rules_before
    restarted.clients.reset_counts()
    assert restarted.drifted_load_balancers(requests=[request], live_uids=None) == frozenset()
    calls = restarted.clients.snapshot()
    assert calls.get("DescribeSecurityGroups") == 1 and "DescribeInstances" not in calls, calls


# the takeover tags the 2 target groups, the 2 listeners, then the NLB: a crash after the first target
# group, both, a listener, the NLB (the takeover done), and after the first call of the ensure proper
@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_a_crash_in_the_middle_of_the_takeover_converges_on_the_next_sync(
    n: int, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    request = _served(make_request, upstream)
    listeners_before = _listeners(upstream)
    crashing = new_provider()
    seen = crash_after(crashing, n)
    with pytest.raises(Crash):
        crashing.ensure_load_balancer(request=request)
    assert seen[:5] == ["AddTags"] * min(n, 5)  # the takeover only tags

    restarted = new_provider()
    status = restarted.ensure_load_balancer(request=request)

    assert status.ingress[0].hostname == upstream.dns_name
    assert _listeners(upstream) == listeners_before
    assert len(boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]) == 1
    assert restarted.drifted_load_balancers(requests=[request], live_uids=None) == frozenset()


def test_deleting_an_adopted_service_deletes_the_nlb_its_target_groups_and_upstreams_node_rules(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    request = _served(make_request, upstream)
    provider.ensure_load_balancer(request=request)

    new_provider().ensure_load_balancer_deleted(request=request)

    assert not nlb_exists(upstream.name)
    assert boto3.client("elbv2").describe_target_groups()["TargetGroups"] == []
    assert upstream_rule_descriptions(network) == set()


def test_an_upstream_nlb_with_security_groups_is_refused_with_the_reason(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    sg = boto3.client("ec2").create_security_group(
        GroupName="managed", Description="m", VpcId=network.vpc_id
    )["GroupId"]
    elbv2 = boto3.client("elbv2")
    lb = elbv2.create_load_balancer(
        Name=("a" + UID).replace("-", "")[:32],
        Type="network",
        Subnets=sorted(network.subnets.values()),
        SecurityGroups=[sg],
        Tags=[
            {"Key": "kubernetes.io/cluster/test", "Value": "owned"},
            {"Key": "kubernetes.io/service-name", "Value": "default/web"},
        ],
    )["LoadBalancers"][0]

    with pytest.raises(ForeignLoadBalancer) as refused:
        provider.ensure_load_balancer(request=make_request("web", uid=UID, status_addresses=(lb["DNSName"],)))

    assert "NLBSecurityGroupMode=Managed" in str(refused.value)
    assert "ccm-lb/service-uid" not in _tags(lb["LoadBalancerArn"])


def test_an_upstream_nlb_of_another_scheme_than_the_service_asks_is_refused(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    request = _served(make_request, upstream, annotations={ann.INTERNAL: "true"})

    with pytest.raises(ForeignLoadBalancer) as refused:
        provider.ensure_load_balancer(request=request)

    assert "its scheme is internet-facing and the Service asks for internal" in str(refused.value)


def test_a_service_whose_upstream_nlb_is_gone_gets_a_load_balancer_of_its_own(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    gone = ("a" + UID).replace("-", "")[:32] + "-0123456789abcdef.elb.us-east-1.amazonaws.com"

    status = provider.ensure_load_balancer(request=make_request("web", uid=UID, status_addresses=(gone,)))

    assert status.ingress[0].hostname != gone
    assert (
        boto3.client("elbv2")
        .describe_load_balancers()["LoadBalancers"][0]["LoadBalancerName"]
        .startswith("k8s-")
    )


def test_the_orphan_sweep_of_an_adopted_nlb_takes_upstreams_node_rules_with_it(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    """A Service deleted while no controller ran (no finalizer left to run the delete): the sweep
    finds its adopted NLB by its tags and deletes it, and with it the CIDR rules only it needed."""
    provider.ensure_load_balancer(request=_served(make_request, upstream))

    provider.drifted_load_balancers(requests=[], live_uids=frozenset())  # orphan grace 0: due now

    assert not nlb_exists(upstream.name)
    assert upstream_rule_descriptions(network) == set()


def test_subnets_an_adopted_nlb_cannot_move_to_are_said_not_ignored(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    """The subnets annotation names one subnet; the adopted NLB keeps upstream's two and says so."""
    one = sorted(network.subnets.values())[0]
    request = _served(make_request, upstream, annotations={ann.SUBNETS: one})

    status = provider.ensure_load_balancer(request=request)

    said = [e.message for e in status.events if e.reason == "LoadBalancerChangeNotApplied"]
    assert len(said) == 1 and "keeps its subnets" in said[0] and one in said[0]
    zones = boto3.client("elbv2").describe_load_balancers(Names=[upstream.name])["LoadBalancers"][0][
        "AvailabilityZones"
    ]
    assert len(zones) == 2


def test_security_groups_asked_of_an_adopted_nlb_are_refused_with_the_annotation_named(
    provider: AWSProvider, make_request: RequestFactory, network: Network, upstream: Upstream
) -> None:
    request = _served(make_request, upstream, annotations={ann.SECURITY_GROUPS: network.node_sg})

    with pytest.raises(InvalidSpec) as invalid:
        provider.ensure_load_balancer(request=request)

    assert ann.SECURITY_GROUPS in str(invalid.value) and "cannot add security groups" in str(invalid.value)
    assert "ccm-lb/service-uid" not in _tags(upstream.arn)

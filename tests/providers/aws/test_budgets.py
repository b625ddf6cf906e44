"""The AWS call budgets of the issue, asserted by counting calls (moto over HTTP, real boto3)."""

from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from providers.aws.provider import AWSProvider
from tests.support.aws import Network, RequestFactory, add_instance, new_provider, service_resources

MUTATIONS = (
    "Create",
    "Register",
    "Deregister",
    "Modify",
    "Delete",
    "Authorize",
    "Revoke",
    "Add",
    "Remove",
    "Set",
)


def _warm_up(provider: AWSProvider, make_request: RequestFactory) -> None:
    """The one-time cluster set-up (subnets, shared backend SG, node SG rule) on a first Service."""
    provider.ensure_load_balancer(request=make_request("warm-up"))
    provider.clients.reset_counts()


def test_creating_two_tcp_ports_on_three_nodes_takes_at_most_eleven_calls(
    provider: AWSProvider,
    make_request: RequestFactory,
    network: Network,
) -> None:
    """Ten to build, and one AddTags that writes the spec hash once the stack is complete: the price
    of a restart that trusts one bulk listing instead of re-reading every load balancer."""
    _warm_up(provider, make_request)
    request = make_request("web")
    status = provider.ensure_load_balancer(request=request)
    calls = provider.clients.snapshot()
    assert sum(calls.values()) <= 11, calls
    assert calls.get("AddTags") == 1
    assert calls.get("CreateLoadBalancer") == 1 and calls.get("CreateTargetGroup") == 2
    assert calls.get("CreateListener") == 2 and calls.get("RegisterTargets") == 2
    assert status.ingress[0].hostname.endswith(
        ".elb.us-east-1.amazonaws.com"
    )  # an NLB's, not a Classic ELB's
    elbv2 = boto3.client("elbv2")
    lbs = [
        lb
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]
        if lb["DNSName"] == status.ingress[0].hostname
    ]
    assert len(lbs) == 1 and lbs[0]["Type"] == "network" and len(lbs[0]["SecurityGroups"]) == 2
    listeners = elbv2.describe_listeners(LoadBalancerArn=lbs[0]["LoadBalancerArn"])["Listeners"]
    assert sorted(listener["Port"] for listener in listeners) == [80, 443]
    for listener in listeners:
        tg = listener["DefaultActions"][0]["TargetGroupArn"]
        targets = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        assert sorted(t["Target"]["Id"] for t in targets) == sorted(i for i, _ in network.instances)


def test_first_service_pays_the_cluster_set_up_once(
    provider: AWSProvider,
    make_request: RequestFactory,
    network: Network,
) -> None:
    provider.ensure_load_balancer(request=make_request("first"))
    first = provider.clients.total_calls()
    provider.clients.reset_counts()
    provider.ensure_load_balancer(request=make_request("second"))
    second = provider.clients.total_calls()
    # Once per process: DescribeSubnets ×2 (find the VPC by the cluster tag, then its subnets),
    # DescribeAvailabilityZones (zone types), DescribeRouteTables (public subnets), backend SG describe +
    # create, DescribeInstances, DescribeSecurityGroups of the node SGs (their rules read too), one
    # authorize of the missing rules.
    assert first - second <= 9, (first, second)
    groups = boto3.client("ec2").describe_security_groups(GroupIds=[network.node_sg])["SecurityGroups"]
    rules = groups[0]["IpPermissions"]
    # tcp and udp over the NodePort range, and kube-proxy's healthz port, from the backend SG: constant,
    # whatever the number of LBs, ports and source ranges
    assert len(rules) == 3
    assert all(r["UserIdGroupPairs"] and not r.get("IpRanges") for r in rules)


def test_rechecking_unchanged_services_is_one_tag_listing_per_hundred(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    requests = [make_request(ports=((80, "TCP"),)) for _ in range(7)]
    for request in requests:
        provider.ensure_load_balancer(request=request)
    provider.clients.reset_counts()
    drifted = provider.drifted_load_balancers(requests=requests)
    assert drifted == frozenset()
    assert provider.clients.total_calls() <= math.ceil(len(requests) / 100) + 1
    assert set(provider.clients.snapshot()) == {"GetResources"}


def test_ensuring_an_unchanged_service_again_makes_one_read_and_no_write(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    request = make_request("steady")
    provider.ensure_load_balancer(request=request)
    provider.clients.reset_counts()
    provider.ensure_load_balancer(request=request)
    assert provider.clients.snapshot() == {"GetResources": 1}


def test_adding_a_node_is_one_register_targets_per_target_group_and_nothing_else(
    provider: AWSProvider,
    make_request: RequestFactory,
    network: Network,
) -> None:
    requests = [make_request() for _ in range(3)]
    for request in requests:
        provider.ensure_load_balancer(request=request)
    add_instance(network)
    provider.clients.reset_counts()
    for request in requests:
        provider.update_load_balancer(request=request.with_nodes(network.nodes()))
    assert provider.clients.snapshot() == {"RegisterTargets": 3 * 2}


def test_removing_a_node_is_one_deregister_targets_per_target_group(
    provider: AWSProvider,
    make_request: RequestFactory,
    network: Network,
) -> None:
    request = make_request()
    provider.ensure_load_balancer(request=request)
    provider.clients.reset_counts()
    provider.update_load_balancer(request=request.with_nodes(network.nodes(2)))
    assert provider.clients.snapshot() == {"DeregisterTargets": 2}


def test_delete_takes_at_most_six_calls_plus_one_per_target_group_and_leaves_nothing(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    request = make_request()
    provider.ensure_load_balancer(request=request)
    provider.clients.reset_counts()
    provider.ensure_load_balancer_deleted(request=request)
    assert provider.clients.total_calls() <= 6 + 2, provider.clients.snapshot()
    assert service_resources() == []
    assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []


def test_delete_of_a_service_that_has_nothing_is_one_listing(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    provider.ensure_load_balancer_deleted(request=make_request())
    assert provider.clients.snapshot() == {"GetResources": 1}


def test_bring_your_own_security_groups_are_attached_and_never_modified(
    provider: AWSProvider,
    make_request: RequestFactory,
    network: Network,
) -> None:
    ec2 = boto3.client("ec2")
    byo = ec2.create_security_group(GroupName="mine", Description="the user's", VpcId=network.vpc_id)[
        "GroupId"
    ]
    ec2.authorize_security_group_ingress(
        GroupId=byo,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "198.51.100.0/24"}]}
        ],
    )
    before = ec2.describe_security_groups(GroupIds=[byo])["SecurityGroups"][0]
    request = make_request(annotations={"service.beta.kubernetes.io/aws-load-balancer-security-groups": byo})
    provider.ensure_load_balancer(request=request)
    lb = boto3.client("elbv2").describe_load_balancers()["LoadBalancers"][0]
    assert byo in lb["SecurityGroups"] and len(lb["SecurityGroups"]) == 2  # BYO + the shared backend group
    provider.ensure_load_balancer_deleted(request=request)
    after = ec2.describe_security_groups(GroupIds=[byo])["SecurityGroups"][0]
    assert after["IpPermissions"] == before["IpPermissions"] and after.get("Tags", []) == before.get(
        "Tags", []
    )
    assert service_resources() == []


def test_delete_of_a_service_with_an_address_the_listing_does_not_show_looks_it_up_by_name(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    """Told of an address but not listed (tagging API lag, or already gone): one call per name
    (two schemes, two target groups), one DescribeSecurityGroups; DescribeTags only for hits."""
    request = dataclasses.replace(
        make_request(), status_addresses=("gone-0123456789abcdef.elb.us-east-1.amazonaws.com",)
    )
    provider.ensure_load_balancer_deleted(request=request)
    calls = provider.clients.snapshot()
    assert calls.pop("GetResources") == 1
    assert calls.pop("DescribeLoadBalancers") == 2
    assert calls.pop("DescribeTargetGroups") == 2
    assert calls.pop("DescribeSecurityGroups") >= 1
    assert not [op for op in calls if not op.startswith("Describe")], calls


# -- restart and fail-over: the bulk check stands in for N ensures (issue: restart budget) ----------

READ_PREFIXES = ("Describe", "Get", "List")


def test_a_new_leader_checks_unchanged_load_balancers_in_one_listing_and_writes_nothing(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    """At most ⌈N/100⌉ + 5 calls for N unchanged Services, none of them a write: one GetResources page
    per 100 load balancers, plus the cluster's subnets and zones read once."""
    requests = [make_request(f"svc-{i}") for i in range(12)]
    for request in requests:
        provider.ensure_load_balancer(request=request)
    restarted = new_provider()
    drifted = restarted.drifted_load_balancers(requests=requests, live_uids=None)
    calls = restarted.clients.snapshot()
    assert drifted == frozenset(), drifted
    assert sum(calls.values()) <= math.ceil(len(requests) / 100) + 5, calls
    assert calls.get("GetResources") == 1
    assert all(op.startswith(READ_PREFIXES) for op in calls), calls


def test_a_node_added_after_a_trusted_restart_is_what_the_target_groups_lack_and_one_register_each(
    provider: AWSProvider,
    make_request: RequestFactory,
    network: Network,
) -> None:
    """After the bulk check trusted every stack (nothing ensured, nothing cached per target group), a
    node change finds each Service's target groups (one GetResources: the restart's listing names the
    NLBs only, to stay within ⌈N/100⌉ + 5 calls), reads what each holds once and registers the new
    instance in it: 5 calls per two-port Service (upstream's node sync ensures the whole NLB, 14)."""
    requests = [make_request(f"svc-{i}") for i in range(3)]
    for request in requests:
        provider.ensure_load_balancer(request=request)
    restarted = new_provider()
    assert restarted.drifted_load_balancers(requests=requests, live_uids=None) == frozenset()
    add_instance(network)
    restarted.clients.reset_counts()

    for request in requests:
        restarted.update_load_balancer(request=request.with_nodes(network.nodes()))

    assert restarted.clients.snapshot() == {
        "GetResources": len(requests),
        "DescribeTargetHealth": 2 * len(requests),
        "RegisterTargets": 2 * len(requests),
    }


def test_a_new_process_ensuring_an_unchanged_service_makes_five_reads_and_no_write(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    """Without a trusted checkpoint (``--leader-elect=false``, as in bench/side_by_side.py's restart
    phase: 504 calls for 100 two-port Services, 1,102 for upstream) a restarted controller ensures each
    Service: one listing, its NLB's DNS name, its listeners seen complete once, and what each target
    group holds. Nothing is written."""
    requests = [make_request(f"svc-{i}") for i in range(3)]
    for request in requests:
        provider.ensure_load_balancer(request=request)
    restarted = new_provider()
    restarted.ensure_load_balancer(request=make_request("warm-up"))  # the cluster's subnets and zones
    restarted.clients.reset_counts()
    for request in requests:
        restarted.ensure_load_balancer(request=request)
    per_service = {
        "GetResources": 1,
        "DescribeLoadBalancers": 1,
        "DescribeListeners": 1,
        "DescribeTargetHealth": 2,
    }
    assert restarted.clients.snapshot() == {op: n * len(requests) for op, n in per_service.items()}


def test_a_stack_left_without_its_listeners_by_a_crash_is_not_trusted_by_the_bulk_check(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    """The spec hash is written last: an NLB made just before a crash carries none, so the new leader's
    bulk check reports it and the ensure completes it."""
    request = make_request("crashed")

    def crash(**_: object) -> None:
        raise RuntimeError("killed before the listeners were made")

    provider.clients.register("before-call.*.CreateListener", crash)
    with pytest.raises(RuntimeError, match="killed"):
        provider.ensure_load_balancer(request=request)
    restarted = new_provider()
    assert restarted.drifted_load_balancers(requests=[request], live_uids=None) == {request.key}
    status = restarted.ensure_load_balancer(request=request)
    listeners = boto3.client("elbv2").describe_listeners(
        LoadBalancerArn=boto3.client("elbv2").describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
    )["Listeners"]
    assert len(listeners) == 2 and status.ingress
    assert restarted.drifted_load_balancers(requests=[request], live_uids=None) == frozenset()


def test_ten_workers_creating_at_once_make_the_calls_one_worker_makes(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    """The node part of the set-up (which security group each instance has, the backend rule on it) is
    done by one worker while the others wait: never the same DescribeInstances or the same rule twice."""
    requests = [make_request(f"svc-{i}", ports=((80, "TCP"),)) for i in range(10)]

    def slow_describe(**_: object) -> None:
        time.sleep(0.05)  # AWS answers in tens of milliseconds: the others arrive meanwhile

    provider.clients.register("before-call.*.DescribeInstances", slow_describe)
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda r: provider.ensure_load_balancer(request=r), requests))
    calls = provider.clients.snapshot()
    assert calls["DescribeInstances"] == 1, calls
    assert calls["AuthorizeSecurityGroupIngress"] == 1 + len(requests), calls  # node rule + each frontend

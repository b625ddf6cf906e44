"""The Classic ELB deployer on moto over HTTP: what it makes, what each change costs in calls, crash points,
the type-change refusal, the takeover of upstream's Classic ELB, the drift check and the orphan sweep.

Stacks are made directly (``tests/support/classic.py``), not by the builder; upstream's Classic ELB is
made as upstream makes it (``tests/support/upstream_aws.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ccm.cloudprovider import InvalidSpec
from providers.aws import model
from providers.aws.classic.deploy import ClassicDeployer
from providers.aws.classic.model import (
    PROXY_PROTOCOL_POLICY,
    ClassicAttributes,
    ClassicHealthCheck,
    ClassicListener,
    ClassicStack,
)
from providers.aws.deploy.parts import ADDRESS_CHANGED, TAKEN_OVER, AdoptionRefused, NothingToAdopt
from providers.aws.provider import AWSProvider
from providers.common.errors import NotOwned
from tests.support.aws import (
    MUTATING,
    Crash,
    Network,
    RequestFactory,
    add_instance,
    crash_after,
    new_provider,
    service_resources,
)
from tests.support.classic import (
    attributes,
    classic_names,
    classic_stack,
    described,
    groups_named,
    instances,
    tags,
)
from tests.support.upstream_aws import group_sources, make_upstream_clb

UID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
KEY = "default/web"


def _classic(provider: AWSProvider) -> ClassicDeployer:
    return provider.deployer.classic


def _warm(provider: AWSProvider, network: Network) -> None:
    """The one-time cluster set-up (VPC, backend group, node rules), then the counts start from zero."""
    provider.deployer.ensure_backend(instance_ids=[i for i, _ in network.instances])
    provider.clients.reset_counts()


def _writes(provider: AWSProvider) -> dict[str, int]:
    return {k: v for k, v in provider.clients.snapshot().items() if k.startswith(MUTATING)}


def _ensure(provider: AWSProvider, stack: ClassicStack, uid: str = UID, key: str = KEY) -> Any:
    return _classic(provider).ensure(key=key, uid=uid, stack=stack)


@pytest.fixture
def stack(network: Network) -> ClassicStack:
    return classic_stack(network, name="web", uid=UID)


# -- create and steady state -------------------------------------------------------------------------------


def test_creating_a_classic_elb_makes_it_whole_in_eight_calls(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    """GetResources, DescribeLoadBalancers (none), the frontend group (create + authorize),
    CreateLoadBalancer with listeners, subnets, groups, scheme and tags, ConfigureHealthCheck (ours
    differs from AWS's default), RegisterInstances, and last AddTags of the spec hash."""
    _warm(provider, network)
    deployed = _ensure(provider, stack)
    assert provider.clients.snapshot() == {
        "GetResources": 1,
        "DescribeLoadBalancers": 1,
        "CreateSecurityGroup": 1,
        "AuthorizeSecurityGroupIngress": 1,
        "CreateLoadBalancer": 1,
        "ConfigureHealthCheck": 1,
        "RegisterInstancesWithLoadBalancer": 1,
        "AddTags": 1,
    }
    lb = described(stack.name)
    assert lb is not None and lb["DNSName"] == deployed.dns_name
    assert deployed.lb_arn == f"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/{stack.name}"
    assert deployed.lb_arn in {r["ResourceARN"] for r in service_resources()}  # as the tagging API lists it
    assert sorted(
        (x["Listener"]["LoadBalancerPort"], x["Listener"]["InstancePort"]) for x in lb["ListenerDescriptions"]
    ) == [
        (80, 30080),
        (443, 30443),
    ]
    assert lb["HealthCheck"] == {
        "Target": "TCP:30080",
        "Interval": 10,
        "Timeout": 5,
        "HealthyThreshold": 2,
        "UnhealthyThreshold": 6,
    }
    assert lb["Scheme"] == "internet-facing" and sorted(lb["Subnets"]) == sorted(network.subnets.values())
    frontend = groups_named(stack.frontend_security_group.name)[0]["GroupId"]
    backend = provider.deployer.ensure_backend(instance_ids=[])
    assert lb["SecurityGroups"] == [frontend, backend]
    assert instances(stack.name) == sorted(i for i, _ in network.instances)
    assert tags(stack.name) == {**dict(stack.tags), model.SPEC_HASH_TAG: stack.spec_hash()}


def test_a_classic_elb_with_every_option_is_made_with_one_call_per_option(
    provider: AWSProvider, network: Network
) -> None:
    """Attributes other than AWS's defaults, the ProxyProtocol policy on each instance port, an SSL
    listener to TCP instances with upstream's SSL negotiation policy."""
    cert = "arn:aws:iam::123456789012:server-certificate/web"
    stack = classic_stack(
        network,
        name="web",
        uid=UID,
        listeners=(
            *classic_stack(network, name="web", uid=UID, ports=((80, 30080),)).listeners,
            _ssl_listener(cert),
        ),
        attributes=ClassicAttributes(cross_zone=True, idle_timeout=120),
        proxy_protocol=True,
        ssl_negotiation_policy="ELBSecurityPolicy-TLS-1-2-2017-01",
    )
    _warm(provider, network)
    _ensure(provider, stack)
    assert _writes(provider) == {
        "CreateSecurityGroup": 1,
        "AuthorizeSecurityGroupIngress": 1,
        "CreateLoadBalancer": 1,
        "ConfigureHealthCheck": 1,
        "ModifyLoadBalancerAttributes": 1,
        "CreateLoadBalancerPolicy": 2,
        "SetLoadBalancerPoliciesForBackendServer": 2,
        "SetLoadBalancerPoliciesOfListener": 1,
        "RegisterInstancesWithLoadBalancer": 1,
        "AddTags": 1,
    }
    lb = described(stack.name)
    assert lb is not None
    ssl = next(x for x in lb["ListenerDescriptions"] if x["Listener"]["LoadBalancerPort"] == 443)
    assert ssl["Listener"]["Protocol"] == "SSL" and ssl["Listener"]["InstanceProtocol"] == "TCP"
    assert ssl["PolicyNames"] == ["k8s-SSLNegotiationPolicy-ELBSecurityPolicy-TLS-1-2-2017-01"]
    assert sorted((b["InstancePort"], b["PolicyNames"]) for b in lb["BackendServerDescriptions"]) == [
        (30080, [PROXY_PROTOCOL_POLICY]),
        (30443, [PROXY_PROTOCOL_POLICY]),
    ]
    assert attributes(stack.name)["CrossZoneLoadBalancing"] == {"Enabled": True}
    assert attributes(stack.name)["ConnectionSettings"] == {"IdleTimeout": 120}
    provider.clients.reset_counts()
    _ensure(provider, stack)
    assert provider.clients.snapshot() == {"GetResources": 1}


def _ssl_listener(cert: str) -> ClassicListener:
    return ClassicListener(
        protocol="SSL",
        load_balancer_port=443,
        instance_protocol="TCP",
        instance_port=30443,
        ssl_certificate_id=cert,
    )


def test_ensuring_an_unchanged_classic_elb_is_one_listing_and_after_a_restart_one_describe_more(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    _ensure(provider, stack)
    provider.clients.reset_counts()
    _ensure(provider, stack)
    assert provider.clients.snapshot() == {"GetResources": 1}
    restarted = new_provider()
    _warm(restarted, network)  # the cluster's set-up, once per process
    deployed = _ensure(restarted, stack)
    assert restarted.clients.snapshot() == {"GetResources": 1, "DescribeLoadBalancers": 1}
    assert deployed.dns_name == described(stack.name)["DNSName"]


def test_a_node_added_or_removed_is_one_register_or_deregister_call(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    _ensure(provider, stack)
    new, _ = add_instance(network)
    provider.clients.reset_counts()
    grown = dataclasses.replace(stack, targets=(*stack.targets, new))
    assert _classic(provider).update_targets(key=KEY, uid=UID, stack=grown)
    assert provider.clients.snapshot() == {"RegisterInstancesWithLoadBalancer": 1}
    assert new in instances(stack.name)
    provider.clients.reset_counts()
    assert _classic(provider).update_targets(
        key=KEY, uid=UID, stack=dataclasses.replace(stack, targets=stack.targets[1:])
    )
    assert provider.clients.snapshot() == {"DeregisterInstancesFromLoadBalancer": 1}
    assert instances(stack.name) == sorted(stack.targets[1:])


def test_a_stopped_instance_refused_by_aws_does_not_keep_the_others_out(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    stopped = network.instances[0][0]
    boto3.client("ec2").stop_instances(InstanceIds=[stopped])
    _ensure(provider, stack)
    assert instances(stack.name) == sorted(i for i, _ in network.instances[1:])
    assert tags(stack.name)[model.SPEC_HASH_TAG] == stack.spec_hash()
    # the refusal is remembered (as on the NLB path): the next syncs do not send it again
    provider.clients.reset_counts()
    _ensure(provider, stack)
    assert _classic(provider).update_targets(key=KEY, uid=UID, stack=stack)
    assert provider.clients.snapshot() == {"GetResources": 1}


def test_a_node_sync_after_a_restart_reads_the_classic_elb_once(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    _ensure(provider, stack)
    restarted = new_provider()
    assert _classic(restarted).update_targets(
        key=KEY, uid=UID, stack=dataclasses.replace(stack, targets=stack.targets[:1])
    )
    assert restarted.clients.snapshot() == {
        "GetResources": 1,
        "DescribeLoadBalancers": 1,
        "DeregisterInstancesFromLoadBalancer": 1,
    }


def test_a_node_sync_of_an_unknown_service_says_so(provider: AWSProvider, stack: ClassicStack) -> None:
    assert not _classic(provider).update_targets(key=KEY, uid=UID, stack=stack)


# -- changes -----------------------------------------------------------------------------------------------


def _changed(network: Network, stack: ClassicStack, change: str) -> ClassicStack:
    if change == "listener":
        return classic_stack(network, name="web", uid=UID, ports=((80, 30080), (443, 30444)))
    if change == "health check":
        return dataclasses.replace(stack, health_check=dataclasses.replace(stack.health_check, interval=20))
    if change == "attributes":
        return dataclasses.replace(stack, attributes=ClassicAttributes(connection_draining=True))
    if change == "security groups":
        return dataclasses.replace(stack, extra_security_groups=(network.node_sg,))
    if change == "proxy protocol":
        return dataclasses.replace(stack, proxy_protocol=True)
    if change == "tags":
        return dataclasses.replace(stack, tags=(*stack.tags, ("team", "shop")))
    if change == "subnets":
        return dataclasses.replace(stack, subnets=stack.subnets[:1])
    raise AssertionError(change)


EXPECTED_WRITES = {
    "listener": {"DeleteLoadBalancerListeners": 1, "CreateLoadBalancerListeners": 1},
    "health check": {"ConfigureHealthCheck": 1},
    "attributes": {"ModifyLoadBalancerAttributes": 1},
    "security groups": {"ApplySecurityGroupsToLoadBalancer": 1},
    "proxy protocol": {"CreateLoadBalancerPolicy": 1, "SetLoadBalancerPoliciesForBackendServer": 2},
    "tags": {},  # the new tag goes with the spec hash's AddTags
    "subnets": {"DetachLoadBalancerFromSubnets": 1},
}


@pytest.mark.parametrize("change", sorted(EXPECTED_WRITES))
def test_a_change_converges_with_only_the_writes_it_needs_and_the_spec_hash(
    provider: AWSProvider, network: Network, stack: ClassicStack, change: str
) -> None:
    _ensure(provider, stack)
    changed = _changed(network, stack, change)
    provider.clients.reset_counts()
    _ensure(provider, changed)
    extra_add_tags = 1 if change == "tags" else 0
    assert _writes(provider) == {**EXPECTED_WRITES[change], "AddTags": 1 + extra_add_tags}
    lb = described(stack.name)
    assert lb is not None
    if change == "listener":
        assert sorted(x["Listener"]["InstancePort"] for x in lb["ListenerDescriptions"]) == [30080, 30444]
    if change == "health check":
        assert lb["HealthCheck"]["Interval"] == 20
    if change == "attributes":
        assert attributes(stack.name)["ConnectionDraining"]["Enabled"] is True
    if change == "security groups":
        assert network.node_sg in lb["SecurityGroups"] and len(lb["SecurityGroups"]) == 3
    if change == "proxy protocol":
        assert {b["InstancePort"] for b in lb["BackendServerDescriptions"]} == {30080, 30443}
    if change == "tags":
        assert tags(stack.name)["team"] == "shop"
    if change == "subnets":
        assert lb["Subnets"] == list(stack.subnets[:1])
    assert tags(stack.name)[model.SPEC_HASH_TAG] == changed.spec_hash()
    provider.clients.reset_counts()
    _ensure(provider, changed)
    assert provider.clients.snapshot() == {"GetResources": 1}


def test_a_scheme_change_makes_the_new_classic_elb_then_deletes_the_old_one(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    before = _ensure(provider, stack)
    internal = classic_stack(network, name="web", uid=UID, internal=True)
    assert internal.name != stack.name
    after = _ensure(provider, internal)
    assert classic_names() == [internal.name]
    assert described(internal.name)["Scheme"] == "internal"
    assert after.dns_name != before.dns_name
    assert [reason for reason, _ in after.notices] == [ADDRESS_CHANGED]
    assert len(groups_named(stack.frontend_security_group.name)) == 1


# -- delete ------------------------------------------------------------------------------------------------


def test_deleting_leaves_nothing_and_the_sweep_deletes_a_group_aws_still_holds(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    _ensure(provider, stack)
    busy = {"left": 1}

    def dependency_violation(**_: Any) -> None:  # the deleted ELB's interfaces hold the group a while
        if busy["left"]:
            busy["left"] -= 1
            raise ClientError(
                {"Error": {"Code": "DependencyViolation", "Message": "resource has a dependent object"}},
                "DeleteSecurityGroup",
            )

    provider.clients.ec2.meta.events.register("before-call.ec2.DeleteSecurityGroup", dependency_violation)
    provider.clients.reset_counts()
    _classic(provider).delete(key=KEY, uid=UID)
    assert provider.clients.snapshot() == {
        "GetResources": 1,
        "DeleteLoadBalancer": 1,
        "DeleteSecurityGroup": 1,
    }
    assert classic_names() == []
    assert len(groups_named(stack.frontend_security_group.name)) == 1  # in use a little longer
    provider.deployer.drifted(stacks={}, live_uids=frozenset(), full=True, now=0.0)
    assert groups_named(stack.frontend_security_group.name) == []
    assert service_resources() == []
    provider.clients.reset_counts()
    _classic(provider).delete(key=KEY, uid=UID, name=stack.name)  # nothing left: a no-op
    assert _writes(provider) == {}


def test_deleting_never_touches_a_classic_elb_that_is_not_the_services(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    other = classic_stack(network, name="web", uid="11111111-2222-3333-4444-555555555555")
    _ensure(provider, other, uid="11111111-2222-3333-4444-555555555555")
    _classic(new_provider()).delete(key=KEY, uid=UID, name=other.name)
    assert classic_names() == [other.name]


# -- crash points ------------------------------------------------------------------------------------------


def _full_stack(network: Network, uid: str) -> ClassicStack:
    return classic_stack(
        network,
        name="web",
        uid=uid,
        attributes=ClassicAttributes(cross_zone=True),
        proxy_protocol=True,
    )


def _assert_whole(stack: ClassicStack, network: Network) -> None:
    assert classic_names().count(stack.name) == 1
    lb = described(stack.name)
    assert lb is not None
    assert len(lb["ListenerDescriptions"]) == len(stack.listeners)
    assert lb["HealthCheck"]["Target"] == stack.health_check.target and lb["HealthCheck"]["Interval"] == 10
    assert {b["InstancePort"] for b in lb["BackendServerDescriptions"]} == {30080, 30443}
    assert attributes(stack.name)["CrossZoneLoadBalancing"] == {"Enabled": True}
    assert instances(stack.name) == sorted(stack.targets)
    assert len(groups_named(stack.frontend_security_group.name)) == 1
    assert tags(stack.name)[model.SPEC_HASH_TAG] == stack.spec_hash()


def test_a_crash_after_any_write_of_a_create_converges_on_the_next_ensure(network: Network, aws: str) -> None:
    warm = new_provider()
    _warm(warm, network)
    _ensure(
        warm,
        _full_stack(network, "00000000-0000-0000-0000-00000000ffff"),
        uid="00000000-0000-0000-0000-00000000ffff",
    )
    writes = sum(_writes(warm).values())
    assert writes == 10
    for n in range(1, writes + 1):
        uid = f"00000000-0000-0000-0000-{n:012d}"
        stack = _full_stack(network, uid)
        crashing = new_provider()
        seen = crash_after(crashing, n)
        with pytest.raises(Crash):
            _ensure(crashing, stack, uid=uid)
        assert len(seen) == n
        restarted = new_provider()
        _ensure(restarted, stack, uid=uid)
        _assert_whole(stack, network)
        restarted.clients.reset_counts()
        _ensure(restarted, stack, uid=uid)
        assert restarted.clients.snapshot() == {"GetResources": 1}, n


# -- type change -------------------------------------------------------------------------------------------


def test_a_service_served_by_an_nlb_is_refused_a_classic_elb(
    provider: AWSProvider, network: Network, make_request: RequestFactory, stack: ClassicStack
) -> None:
    status = provider.ensure_load_balancer(request=make_request("web", uid=UID))
    with pytest.raises(InvalidSpec) as refused:
        _ensure(provider, stack)
    assert refused.value.field == "metadata.annotations[service.beta.kubernetes.io/aws-load-balancer-type]"
    assert status.ingress[0].hostname in str(refused.value)
    assert classic_names() == []


def test_a_service_served_by_a_classic_elb_is_refused_an_nlb(
    provider: AWSProvider, network: Network, make_request: RequestFactory, stack: ClassicStack
) -> None:
    deployed = _ensure(provider, stack)
    with pytest.raises(InvalidSpec) as refused:
        provider.ensure_load_balancer(request=make_request("web", uid=UID))
    assert deployed.dns_name in str(refused.value)
    assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []


# -- takeover of upstream's Classic ELB --------------------------------------------------------------------

PORTS = ((80, 30080), (443, 30443))


def test_upstreams_classic_elb_is_taken_over_in_place_keeping_its_dns_name(
    provider: AWSProvider, network: Network
) -> None:
    upstream = make_upstream_clb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    stack = classic_stack(network, name="web", uid=UID, adopted=True)
    assert stack.name == upstream.name
    deployed = _ensure(provider, stack)
    assert deployed.dns_name == upstream.dns_name
    assert [reason for reason, _ in deployed.notices] == [TAKEN_OVER]
    assert upstream.name in deployed.notices[0][1] and upstream.dns_name in deployed.notices[0][1]
    lb = described(upstream.name)
    backend = provider.deployer.ensure_backend(instance_ids=[])
    assert lb["SecurityGroups"] == [upstream.security_group, backend]
    assert upstream.security_group not in group_sources(network)  # upstream's node rule is gone
    assert backend in group_sources(network)
    got = tags(upstream.name)
    assert got[model.ADOPTED_FROM_TAG] == model.ADOPTED_FROM and got[model.SERVICE_UID_TAG] == UID
    assert got[model.SPEC_HASH_TAG] == stack.spec_hash()
    assert lb["HealthCheck"]["Interval"] == 10 and instances(upstream.name) == sorted(stack.targets)
    sg = groups_named(f"k8s-elb-{upstream.name}")[0]
    sg_tags = {t["Key"]: t["Value"] for t in sg["Tags"]}
    assert sg_tags[model.RESOURCE_TAG] == model.RESOURCE_FRONTEND_SG and sg_tags[model.SERVICE_UID_TAG] == UID
    provider.clients.reset_counts()
    again = _ensure(provider, stack)
    assert again.notices == () and provider.clients.snapshot() == {"GetResources": 1}


def test_the_takeover_costs_a_bounded_number_of_calls(provider: AWSProvider, network: Network) -> None:
    make_upstream_clb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    _warm(provider, network)
    _ensure(provider, classic_stack(network, name="web", uid=UID, adopted=True))
    calls = provider.clients.snapshot()
    assert _writes(provider) == {
        "CreateTags": 1,  # upstream's group becomes the frontend group
        "ApplySecurityGroupsToLoadBalancer": 1,
        "RevokeSecurityGroupIngress": 1,  # upstream's node rule
        "AddTags": 2,  # the Classic ELB is the Service's, then the spec hash
        "ConfigureHealthCheck": 1,
    }
    assert sum(calls.values()) <= 14, calls


def test_a_crash_after_any_write_of_the_takeover_converges_with_nothing_lost(
    network: Network, aws: str
) -> None:
    warm = new_provider()
    _warm(warm, network)
    first = "000000aa-1111-2222-3333-444444444444"  # upstream's name keeps the UID's first 31 characters
    make_upstream_clb(network, namespace="default", name="w0", uid=first, ports=PORTS)
    _ensure(warm, classic_stack(network, name="w0", uid=first, adopted=True), uid=first, key="default/w0")
    writes = sum(_writes(warm).values())
    assert writes == 6
    for n in range(1, writes + 1):
        uid = f"{n:08d}-1111-2222-3333-444444444444"
        name = f"w{n}"
        upstream = make_upstream_clb(network, namespace="default", name=name, uid=uid, ports=PORTS)
        stack = classic_stack(network, name=name, uid=uid, adopted=True)
        crashing = new_provider()
        crash_after(crashing, n)
        with pytest.raises(Crash):
            _ensure(crashing, stack, uid=uid, key=f"default/{name}")
        # the ELB keeps a way to the nodes at every crash point: upstream's rule or the backend group
        lb = described(upstream.name)
        sources = group_sources(network)
        assert upstream.security_group in sources or set(lb["SecurityGroups"]) & sources
        deployed = _ensure(new_provider(), stack, uid=uid, key=f"default/{name}")
        assert deployed.dns_name == upstream.dns_name
        assert upstream.security_group not in group_sources(network)
        assert tags(upstream.name)[model.SPEC_HASH_TAG] == stack.spec_hash()
        assert len(groups_named(f"k8s-elb-{upstream.name}")) == 1
        assert instances(upstream.name) == sorted(stack.targets)


def test_a_classic_elb_of_another_service_or_cluster_is_not_taken_over(
    provider: AWSProvider, network: Network
) -> None:
    make_upstream_clb(network, namespace="default", name="other", uid=UID, ports=PORTS)
    with pytest.raises(AdoptionRefused) as refused:
        _ensure(provider, classic_stack(network, name="web", uid=UID, adopted=True))
    assert "default/web" in refused.value.reason
    assert model.SERVICE_UID_TAG not in tags(("a" + UID).replace("-", "")[:32])


def test_a_classic_elb_of_another_scheme_is_not_taken_over(provider: AWSProvider, network: Network) -> None:
    make_upstream_clb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    stack = dataclasses.replace(classic_stack(network, name="web", uid=UID, adopted=True), scheme="internal")
    with pytest.raises(AdoptionRefused) as refused:
        _ensure(provider, stack)
    assert "internet-facing" in refused.value.reason and "internal" in refused.value.reason
    assert model.SERVICE_UID_TAG not in tags(stack.name)


def test_nothing_to_adopt_when_upstreams_classic_elb_is_gone(provider: AWSProvider, network: Network) -> None:
    with pytest.raises(NothingToAdopt):
        _ensure(provider, classic_stack(network, name="web", uid=UID, adopted=True))
    assert classic_names() == [] and service_resources() == []


# -- drift and orphans -------------------------------------------------------------------------------------


def test_the_drift_check_finds_a_changed_or_missing_classic_elb_from_one_listing(
    provider: AWSProvider, network: Network
) -> None:
    uids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(1, 4)]
    stacks = {
        f"default/s{n}": (uid, classic_stack(network, name=f"s{n}", uid=uid)) for n, uid in enumerate(uids)
    }
    for key, (uid, stack) in stacks.items():
        _ensure(provider, stack, uid=uid, key=key)
    provider.clients.reset_counts()
    assert (
        provider.deployer.drifted(stacks=stacks, live_uids=frozenset(uids), full=False, now=0.0)
        == frozenset()
    )
    assert provider.clients.snapshot() == {"GetResources": 1}
    changed = dict(stacks)
    uid0, stack0 = stacks["default/s0"]
    changed["default/s0"] = (
        uid0,
        dataclasses.replace(stack0, health_check=ClassicHealthCheck("TCP:30080", 30, 5, 2, 2)),
    )
    boto3.client("elb").delete_load_balancer(LoadBalancerName=stacks["default/s1"][1].name)
    drifted = provider.deployer.drifted(stacks=changed, live_uids=frozenset(uids), full=False, now=0.0)
    assert drifted == {"default/s0", "default/s1"}


def test_a_full_drift_check_reads_the_instances_of_every_classic_elb_in_one_page(
    provider: AWSProvider, network: Network
) -> None:
    uids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(1, 4)]
    stacks = {
        f"default/s{n}": (uid, classic_stack(network, name=f"s{n}", uid=uid)) for n, uid in enumerate(uids)
    }
    for key, (uid, stack) in stacks.items():
        _ensure(provider, stack, uid=uid, key=key)
    name = stacks["default/s2"][1].name
    boto3.client("elb").deregister_instances_from_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": network.instances[0][0]}]
    )
    provider.clients.reset_counts()
    drifted = provider.deployer.drifted(stacks=stacks, live_uids=frozenset(uids), full=True, now=0.0)
    assert drifted == {"default/s2"}
    assert provider.clients.snapshot() == {"GetResources": 1, "DescribeLoadBalancers": 1}
    provider.clients.reset_counts()
    _ensure(provider, stacks["default/s2"][1], uid=uids[2], key="default/s2")
    assert _writes(provider) == {"RegisterInstancesWithLoadBalancer": 1}


def test_the_sweep_deletes_an_orphaned_classic_elb_and_never_a_live_services(
    provider: AWSProvider, network: Network
) -> None:
    live, gone = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"
    live_stack = classic_stack(network, name="live", uid=live)
    gone_stack = classic_stack(network, name="gone", uid=gone)
    _ensure(provider, live_stack, uid=live, key="default/live")
    _ensure(provider, gone_stack, uid=gone, key="default/gone")
    # the live Service is in no stack (say its spec cannot be built now): its UID keeps its Classic ELB
    provider.deployer.drifted(stacks={}, live_uids=frozenset({live}), full=True, now=0.0)
    assert classic_names() == [live_stack.name]
    assert groups_named(gone_stack.frontend_security_group.name) == []
    assert len(groups_named(live_stack.frontend_security_group.name)) == 1
    assert {
        r["ResourceARN"].rsplit("/", 1)[-1]
        for r in service_resources()
        if ":loadbalancer/" in r["ResourceARN"]
    } == {live_stack.name}


def test_a_classic_elb_of_the_services_name_that_is_not_ours_is_never_changed(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    boto3.client("elb").create_load_balancer(
        LoadBalancerName=stack.name,
        Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP", "InstancePort": 30080}
        ],
        Subnets=list(stack.subnets),
    )
    _warm(provider, network)
    with pytest.raises(NotOwned):
        _ensure(provider, stack)
    assert _writes(provider) == {}
    assert tags(stack.name) == {} and instances(stack.name) == []
    _classic(provider).delete(key=KEY, uid=UID, name=stack.name)
    assert classic_names() == [stack.name]


def test_the_classic_deployers_own_drift_check_is_the_same_single_listing(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    _ensure(provider, stack)
    provider.clients.reset_counts()
    classic = _classic(provider)
    assert (
        classic.drifted(stacks={KEY: (UID, stack)}, live_uids=frozenset({UID}), full=False, now=0.0)
        == frozenset()
    )
    assert provider.clients.snapshot() == {"GetResources": 1}


def test_the_nlb_delete_path_also_deletes_the_services_classic_elb(
    provider: AWSProvider, network: Network, stack: ClassicStack
) -> None:
    _ensure(provider, stack)
    provider.deployer.delete(key=KEY, uid=UID)
    assert classic_names() == []
    assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []

"""A Service that the upstream AWS provider served: its address is never changed unless it asks.

Upstream's NLBs and Classic ELBs are made in moto as upstream makes them (``tests/support/upstream_aws.py``
names the upstream code of each shape); the provider is driven as the controller drives it.
"""

from __future__ import annotations

import boto3
import pytest

from ccm.cloudprovider import REPLACE_FOREIGN_ANNOTATION, ForeignLoadBalancer, InvalidSpec
from providers.aws.provider import AWSProvider
from tests.support.aws import Network, RequestFactory, service_resources
from tests.support.upstream_aws import (
    clb_exists,
    group_sources,
    make_upstream_clb,
    make_upstream_nlb,
    nlb_exists,
    upstream_rule_descriptions,
)

UID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
OTHER_UID = "0a0b0c0d-1111-4222-8333-444455556666"
PORTS = ((80, 30080), (443, 30443))
REPLACE = {REPLACE_FOREIGN_ANNOTATION: "true"}
NLB = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}


def _upstream_target_groups() -> list[str]:
    """Target groups without this controller's ``ccm-lb/resource`` tag: upstream's."""
    elbv2 = boto3.client("elbv2")
    arns = [tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]]
    if not arns:
        return []
    return [
        d["ResourceArn"]
        for d in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]
        if not any(t["Key"] == "ccm-lb/resource" for t in d["Tags"])
    ]


def test_service_served_by_an_upstream_nlb_of_another_cluster_is_refused_and_nothing_changes(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_nlb(network, namespace="other", name="web", uid=UID, ports=PORTS)
    rules_before = upstream_rule_descriptions(network)
    request = make_request("web", uid=UID, status_addresses=(upstream.dns_name,))
    provider.deployer.cluster_info()  # the VPC, read once per process
    provider.clients.reset_counts()

    with pytest.raises(ForeignLoadBalancer) as refused:
        provider.ensure_load_balancer(request=request)

    message = str(refused.value)
    assert upstream.name in message and upstream.dns_name in message and REPLACE_FOREIGN_ANNOTATION in message
    assert "its tags do not name this cluster and Service" in message
    assert refused.value.parts[0].kind == "NLB" and refused.value.parts[0].name == upstream.name
    assert service_resources() == []
    assert nlb_exists(upstream.name) and len(_upstream_target_groups()) == 2
    assert upstream_rule_descriptions(network) == rules_before
    # the refusal reads, and writes nothing
    assert not any(
        op.startswith(("Create", "Add", "Delete", "Modify", "Authorize", "Revoke", "Register"))
        for op in provider.clients.snapshot()
    )


def test_service_served_by_upstreams_classic_elb_keeps_it_taken_over_in_place(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_clb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    request = make_request("web", uid=UID, status_addresses=(upstream.dns_name,))

    status = provider.ensure_load_balancer(request=request)

    assert status.ingress[0].hostname == upstream.dns_name and clb_exists(upstream.name)
    assert [e.reason for e in status.events] == ["LoadBalancerTakenOver"]
    assert upstream.security_group not in group_sources(network)  # the backend group lets it in now
    # the node sync of a taken-over Classic ELB moves instances only
    provider.clients.reset_counts()
    provider.update_load_balancer(request=request.with_nodes(network.nodes(1)))
    assert set(provider.clients.snapshot()) <= {
        "GetResources",
        "DescribeLoadBalancers",
        "DeregisterInstancesFromLoadBalancer",
    }


def test_service_that_asks_for_an_nlb_where_upstreams_classic_elb_serves_is_refused(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_clb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    request = make_request("web", uid=UID, annotations=NLB, status_addresses=(upstream.dns_name,))

    with pytest.raises(ForeignLoadBalancer) as refused:
        provider.ensure_load_balancer(request=request)

    assert refused.value.parts[0].kind == "Classic ELB"
    assert "cannot change in place" in str(refused.value)
    assert service_resources() == [] and clb_exists(upstream.name)
    assert upstream.security_group in group_sources(network)


def test_node_sync_of_a_refused_service_changes_nothing(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_clb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    request = make_request("web", uid=UID, annotations=NLB, status_addresses=(upstream.dns_name,))

    with pytest.raises(ForeignLoadBalancer):
        provider.update_load_balancer(request=request.with_nodes(network.nodes(1)))

    assert service_resources() == [] and clb_exists(upstream.name)


def test_replace_annotation_builds_ours_then_deletes_upstreams_nlb_target_groups_and_node_rules(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_nlb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    request = make_request("web", uid=UID, annotations=REPLACE, status_addresses=(upstream.dns_name,))

    status = provider.ensure_load_balancer(request=request)

    assert status.ingress[0].hostname != upstream.dns_name
    assert not nlb_exists(upstream.name)
    assert _upstream_target_groups() == []
    assert upstream_rule_descriptions(network) == set()
    event = next(e for e in status.events if e.reason == "LoadBalancerReplaced")
    assert upstream.dns_name in event.message and status.ingress[0].hostname in event.message
    # ours is whole: a second ensure with the new address in status is a no-op
    provider.clients.reset_counts()
    again = provider.ensure_load_balancer(
        request=make_request(
            "web", uid=UID, annotations=REPLACE, status_addresses=(status.ingress[0].hostname,)
        )
    )
    assert again.ingress == status.ingress and again.events == ()


def test_replacing_one_nlb_keeps_the_mtu_rule_another_upstream_nlb_still_needs(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    other = make_upstream_nlb(network, namespace="default", name="api", uid=OTHER_UID, ports=((8080, 31080),))
    upstream = make_upstream_nlb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    request = make_request("web", uid=UID, annotations=REPLACE, status_addresses=(upstream.dns_name,))

    provider.ensure_load_balancer(request=request)

    assert upstream_rule_descriptions(network) == {
        f"kubernetes.io/rule/nlb/client={other.name}",
        "kubernetes.io/rule/nlb/mtu",
    }
    assert nlb_exists(other.name)


def test_replace_annotation_deletes_upstreams_classic_elb_and_its_security_group(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_clb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    request = make_request("web", uid=UID, annotations=REPLACE, status_addresses=(upstream.dns_name,))

    status = provider.ensure_load_balancer(request=request)

    assert status.ingress[0].hostname != upstream.dns_name
    assert not clb_exists(upstream.name)
    assert upstream.security_group not in group_sources(network)
    groups = boto3.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-id", "Values": [upstream.security_group]}]
    )["SecurityGroups"]
    assert groups == []


def test_an_upstream_load_balancer_whose_tags_name_another_service_is_never_deleted(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_nlb(network, namespace="other", name="web", uid=UID, ports=PORTS)
    request = make_request("web", uid=UID, annotations=REPLACE, status_addresses=(upstream.dns_name,))

    status = provider.ensure_load_balancer(request=request)

    assert nlb_exists(upstream.name)
    assert any(e.reason == "ForeignLoadBalancerKept" for e in status.events)


def test_a_replace_annotation_that_is_not_a_boolean_is_an_invalid_spec(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_nlb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    request = make_request(
        "web", uid=UID, annotations={REPLACE_FOREIGN_ANNOTATION: "yes"}, status_addresses=(upstream.dns_name,)
    )

    with pytest.raises(InvalidSpec) as invalid:
        provider.ensure_load_balancer(request=request)

    assert REPLACE_FOREIGN_ANNOTATION in str(invalid.value) and "'yes'" in str(invalid.value)
    assert nlb_exists(upstream.name) and service_resources() == []


def test_deleting_a_refused_service_deletes_upstreams_load_balancer(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_nlb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    request = make_request("web", uid=UID, status_addresses=(upstream.dns_name,))

    provider.ensure_load_balancer_deleted(request=request)

    assert not nlb_exists(upstream.name)
    assert _upstream_target_groups() == [] and upstream_rule_descriptions(network) == set()
    provider.ensure_load_balancer_deleted(request=request)  # idempotent


def test_an_address_upstream_never_served_costs_no_lookup(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    """A Service with our own address (or any other) is ensured exactly as before."""
    status = provider.ensure_load_balancer(request=make_request("web", uid=UID))
    provider.clients.reset_counts()

    provider.ensure_load_balancer(
        request=make_request("web", uid=UID, status_addresses=(status.ingress[0].hostname,))
    )

    assert "DescribeTags" not in provider.clients.snapshot()
    assert provider.clients.snapshot().get("DescribeLoadBalancers", 0) == 0


# -- the plan ccm migrate prints ------------------------------------------------------------------------


def test_plan_adopts_an_upstream_nlb_and_lists_what_replacing_it_would_delete(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    upstream = make_upstream_nlb(network, namespace="default", name="web", uid=UID, ports=PORTS)
    clb = make_upstream_clb(network, namespace="default", name="old", uid=OTHER_UID, ports=PORTS)
    provider.clients.reset_counts()

    plan = provider.plan_migration(
        request=make_request("web", uid=UID, status_addresses=(upstream.dns_name,))
    )
    replace = provider.plan_migration(
        request=make_request("web", uid=UID, annotations=REPLACE, status_addresses=(upstream.dns_name,))
    )
    refused = provider.plan_migration(
        request=make_request("old", uid=OTHER_UID, annotations=NLB, status_addresses=(clb.dns_name,))
    )
    classic = provider.plan_migration(
        request=make_request("old", uid=OTHER_UID, status_addresses=(clb.dns_name,))
    )

    assert plan.action == "adopt" and not plan.address_changes and plan.address == upstream.dns_name
    assert replace.action == "replace" and replace.address_changes
    assert refused.action == "refuse" and "cannot change in place" in refused.reason
    assert classic.action == "adopt" and not classic.address_changes and classic.address == clb.dns_name
    assert f"k8s-elb-{clb.name}" in classic.reason
    kinds = [p.kind for p in replace.foreign]
    assert kinds[0] == "NLB" and kinds.count("target group") == 2
    assert sum(1 for p in replace.foreign if p.kind == "security group rule") == 3  # 2 client + mtu
    assert not any(
        op.startswith(("Create", "Delete", "Revoke", "Authorize", "Register", "Add"))
        for op in provider.clients.snapshot()
    )
    assert nlb_exists(upstream.name) and service_resources() == []


def test_plan_keeps_ours_creates_the_new_and_reports_invalid_specs(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    status = provider.ensure_load_balancer(request=make_request("ours", uid=UID))
    ours = provider.plan_migration(
        request=make_request("ours", uid=UID, status_addresses=(status.ingress[0].hostname,))
    )
    new = provider.plan_migration(request=make_request("new"))
    gone = provider.plan_migration(request=make_request("gone", status_addresses=("a-gone.example.com",)))
    invalid = provider.plan_migration(
        request=make_request("bad", annotations={"service.beta.kubernetes.io/aws-load-balancer-type": "nope"})
    )

    assert (ours.action, ours.address_changes) == ("keep", False)
    assert (new.action, new.address_changes) == ("create", False)
    assert (gone.action, gone.address_changes) == ("create", True)
    assert invalid.action == "invalid" and "aws-load-balancer-type" in invalid.reason

"""The settings users carry over from the AWS Load Balancer Controller, applied on moto (issue 11 §3).

moto answers as AWS does through :mod:`tests.providers.aws.aws_behaviour` (deletion protection, the
fixed address of an enabled subnet, one NLB per target group, the TCP idle-timeout rule); each test
drives the provider through the contract and asserts what the user sees: the NLB, its listeners and
target groups, the events the status carries, and the calls made.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from providers.aws.provider import AWSProvider
from tests.support.aws import CLUSTER_TAG, Network, RequestFactory, new_provider, service_resources

P = "service.beta.kubernetes.io/aws-load-balancer-"


def _lb() -> dict[str, Any]:
    (lb,) = boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]
    return dict(lb)


def _lb_attributes(arn: str) -> dict[str, str]:
    attributes = boto3.client("elbv2").describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    return {a["Key"]: a["Value"] for a in attributes}


def _listener_attributes() -> dict[tuple[int, str], dict[str, str]]:
    elbv2 = boto3.client("elbv2")
    out = {}
    for listener in elbv2.describe_listeners(LoadBalancerArn=_lb()["LoadBalancerArn"])["Listeners"]:
        attributes = elbv2.describe_listener_attributes(ListenerArn=listener["ListenerArn"])["Attributes"]
        out[(listener["Port"], listener["Protocol"])] = {a["Key"]: a["Value"] for a in attributes}
    return out


# -- scheme ------------------------------------------------------------------------------------------


def test_the_scheme_annotation_builds_an_internal_nlb(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    provider.ensure_load_balancer(request=make_request("web", annotations={P + "scheme": "internal"}))

    assert _lb()["Scheme"] == "internal"


def test_a_scheme_change_makes_the_new_nlb_before_deleting_the_old_one_and_says_so(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    first = make_request("web")
    before = provider.ensure_load_balancer(request=first)
    old = _lb()
    calls: list[str] = []
    provider.clients.elbv2.meta.events.register(
        "before-call.elastic-load-balancing-v2.*", lambda model, **_: calls.append(model.name)
    )

    after = provider.ensure_load_balancer(
        request=make_request("web", uid=first.uid, annotations={P + "scheme": "internal"})
    )

    new = _lb()
    assert new["Scheme"] == "internal" and new["LoadBalancerArn"] != old["LoadBalancerArn"]
    assert calls.index("CreateLoadBalancer") < calls.index("DeleteLoadBalancer")
    assert after.ingress[0].hostname == new["DNSName"] != before.ingress[0].hostname
    (event,) = after.events
    assert event.reason == "LoadBalancerIPChanged"
    assert old["DNSName"] in event.message and new["DNSName"] in event.message
    listeners = boto3.client("elbv2").describe_listeners(LoadBalancerArn=new["LoadBalancerArn"])["Listeners"]
    assert sorted(listener["Port"] for listener in listeners) == [80, 443]
    # the next sync has nothing left to do, and says nothing again
    provider.clients.reset_counts()
    again = provider.ensure_load_balancer(
        request=make_request("web", uid=first.uid, annotations={P + "scheme": "internal"})
    )
    assert again.events == () and provider.clients.snapshot() == {"GetResources": 1}


def test_a_crash_between_the_new_nlb_and_the_old_ones_delete_converges_to_one(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    first = make_request("web")
    provider.ensure_load_balancer(request=first)
    internal = make_request("web", uid=first.uid, annotations={P + "scheme": "internal"})

    def crash(**_: Any) -> None:
        raise RuntimeError("killed")

    provider.clients.elbv2.meta.events.register(
        "before-call.elastic-load-balancing-v2.DeleteLoadBalancer", crash
    )
    with pytest.raises(RuntimeError, match="killed"):
        provider.ensure_load_balancer(request=internal)
    assert len(boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]) == 2

    restarted = new_provider()
    restarted.ensure_load_balancer(request=internal)

    assert _lb()["Scheme"] == "internal"
    restarted.ensure_load_balancer_deleted(request=internal)
    assert service_resources() == []


# -- load-balancer attributes and deletion protection ------------------------------------------------


def test_load_balancer_attributes_are_applied_and_a_removed_one_goes_back_to_the_default(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    first = make_request(
        "web",
        annotations={
            P + "attributes": "load_balancing.cross_zone.enabled=true,deletion_protection.enabled=true"
        },
    )
    provider.ensure_load_balancer(request=first)
    arn = _lb()["LoadBalancerArn"]
    assert _lb_attributes(arn)["load_balancing.cross_zone.enabled"] == "true"
    assert _lb_attributes(arn)["deletion_protection.enabled"] == "true"

    provider.ensure_load_balancer(
        request=make_request(
            "web", uid=first.uid, annotations={P + "attributes": "load_balancing.cross_zone.enabled=true"}
        )
    )

    assert _lb_attributes(arn)["deletion_protection.enabled"] == "false"


def test_a_protected_nlb_is_kept_while_the_service_asks_and_deleted_once_it_does_not(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    protected = make_request("web", annotations={P + "attributes": "deletion_protection.enabled=true"})
    provider.ensure_load_balancer(request=protected)

    with pytest.raises(RuntimeError, match=r"deletion_protection\.enabled=true"):
        provider.ensure_load_balancer_deleted(request=protected)
    assert _lb()  # still there, still serving

    # the user edits the annotation of the Service being deleted: the delete goes through
    provider.ensure_load_balancer_deleted(request=make_request("web", uid=protected.uid))
    assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert service_resources() == []


# -- listener attributes: the TCP idle timeout ------------------------------------------------------


def test_the_idle_timeout_is_set_on_tcp_listeners_changed_and_restored(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    first = make_request("web", annotations={P + "connection-idle-timeout": "900"})
    provider.ensure_load_balancer(request=first)
    assert {k: v["tcp.idle_timeout.seconds"] for k, v in _listener_attributes().items()} == {
        (80, "TCP"): "900",
        (443, "TCP"): "900",
    }

    restarted = new_provider()  # what it set is unknown to a new process: described once, then set
    restarted.ensure_load_balancer(
        request=make_request("web", uid=first.uid, annotations={P + "connection-idle-timeout": "120"})
    )
    assert {v["tcp.idle_timeout.seconds"] for v in _listener_attributes().values()} == {"120"}

    restarted.clients.reset_counts()
    restarted.ensure_load_balancer(request=make_request("web", uid=first.uid))
    assert {v["tcp.idle_timeout.seconds"] for v in _listener_attributes().values()} == {"350"}
    calls = restarted.clients.snapshot()
    assert calls.get("ModifyListenerAttributes") == 2 and "DescribeListenerAttributes" not in calls


def test_a_default_service_makes_no_listener_attribute_call(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    provider.ensure_load_balancer(request=make_request("web"))

    calls = provider.clients.snapshot()
    assert "ModifyListenerAttributes" not in calls and "DescribeListenerAttributes" not in calls


# -- health-check success codes ----------------------------------------------------------------------


def test_success_codes_set_the_matcher_and_removing_them_restores_the_default(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    http = {P + "healthcheck-protocol": "HTTP", P + "healthcheck-path": "/ready"}
    first = make_request("web", annotations={**http, P + "healthcheck-success-codes": "200-204"})
    provider.ensure_load_balancer(request=first)
    matchers = {
        tg["Matcher"]["HttpCode"] for tg in provider.clients.elbv2.describe_target_groups()["TargetGroups"]
    }
    assert matchers == {"200-204"}

    provider.ensure_load_balancer(request=make_request("web", uid=first.uid, annotations=http))

    matchers = {
        tg["Matcher"]["HttpCode"] for tg in provider.clients.elbv2.describe_target_groups()["TargetGroups"]
    }
    assert matchers == {"200-399"}


# -- subnets, addresses and the IP address type ------------------------------------------------------


def _subnet(network: Network, az: str, cidr: str, name: str, ipv6: str = "") -> str:
    ec2 = boto3.client("ec2")
    kwargs: dict[str, Any] = {}
    if ipv6:
        kwargs["Ipv6CidrBlock"] = ipv6
    return str(
        ec2.create_subnet(
            VpcId=network.vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=az,
            TagSpecifications=[
                {
                    "ResourceType": "subnet",
                    "Tags": [{"Key": CLUSTER_TAG, "Value": "owned"}, {"Key": "Name", "Value": name}],
                }
            ],
            **kwargs,
        )["Subnet"]["SubnetId"]
    )


def test_swapping_the_subnet_of_a_zone_removes_it_first_then_adds_the_new_one(
    make_request: RequestFactory, network: Network
) -> None:
    other_a = _subnet(network, "us-east-1a", "10.0.9.0/24", "other-a")
    provider = new_provider()
    first = make_request("web", annotations={P + "subnets": "public-us-east-1a,public-us-east-1b"})
    provider.ensure_load_balancer(request=first)
    provider.clients.reset_counts()

    provider.ensure_load_balancer(
        request=make_request("web", uid=first.uid, annotations={P + "subnets": "other-a,public-us-east-1b"})
    )

    assert provider.clients.snapshot().get("SetSubnets") == 2
    assert sorted(z["SubnetId"] for z in _lb()["AvailabilityZones"]) == sorted(
        [other_a, network.subnets["us-east-1b"]]
    )


def test_a_new_elastic_ip_for_a_subnet_in_use_is_not_applied_and_the_event_says_why(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    ec2 = boto3.client("ec2")
    one, two, three = (ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(3))
    first = make_request("web", annotations={P + "eip-allocations": f"{one},{two}"})
    provider.ensure_load_balancer(request=first)

    status = provider.ensure_load_balancer(
        request=make_request("web", uid=first.uid, annotations={P + "eip-allocations": f"{three},{two}"})
    )

    (event,) = status.events
    assert event.reason == "LoadBalancerChangeNotApplied"
    assert one in event.message and three in event.message and "recreate the Service" in event.message
    assert len(boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]) == 1


def test_a_service_that_becomes_dual_stack_gets_set_ip_address_type(
    make_request: RequestFactory, network: Network
) -> None:
    ec2 = boto3.client("ec2")
    block = ec2.associate_vpc_cidr_block(VpcId=network.vpc_id, AmazonProvidedIpv6CidrBlock=True)
    prefix = block["Ipv6CidrBlockAssociation"]["Ipv6CidrBlock"].split("::")[0]
    for index, subnet in enumerate(network.subnets.values()):
        ec2.associate_subnet_cidr_block(SubnetId=subnet, Ipv6CidrBlock=f"{prefix}:{index:x}::/64")
    provider = new_provider()
    first = make_request("web")
    provider.ensure_load_balancer(request=first)
    assert _lb()["IpAddressType"] == "ipv4"

    provider.ensure_load_balancer(request=make_request("web", uid=first.uid, ip_families=("IPv4", "IPv6")))

    assert _lb()["IpAddressType"] == "dualstack"
    provider.ensure_load_balancer(request=make_request("web", uid=first.uid))
    assert _lb()["IpAddressType"] == "ipv4"


# -- what the provider does not implement -----------------------------------------------------------


def test_the_provider_names_the_annotations_it_does_not_implement(provider: AWSProvider) -> None:
    annotations = {
        P + "nlb-target-type": "ip",
        P + "healthcheck-intervall": "10",
        P + "scheme": "internal",
        "cloud.google.com/neg": '{"ingress": true}',
    }

    assert provider.unsupported_annotations(annotations=annotations) == (
        P + "healthcheck-intervall",
        P + "nlb-target-type",
    )
    # a Service left to the AWS Load Balancer Controller: its annotations are that controller's
    assert provider.unsupported_annotations(annotations={**annotations, P + "type": "external"}) == ()


def test_settings_of_the_other_kind_are_named_by_the_kind_that_serves_the_service(
    provider: AWSProvider,
) -> None:
    annotations = {P + "connection-draining-enabled": "true", P + "eip-allocations": "eipalloc-0a"}
    clb = "a0123456789abcdef0123456789abcde-1234567890.us-east-1.elb.amazonaws.com"

    assert provider.unsupported_annotations(annotations=annotations) == (P + "connection-draining-enabled",)
    # no type annotation, but upstream's Classic ELB serves it: its Classic settings apply
    assert provider.unsupported_annotations(annotations=annotations, status_addresses=(clb,)) == (
        P + "eip-allocations",
    )


def test_a_certificate_that_does_not_exist_is_named_in_the_error(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    """Issue 17's crash storm: an ACM ARN that does not exist. AWS refuses the TLS listener with
    CertificateNotFound (ELBv2 API reference, CreateListener errors); the error says which annotation."""
    missing = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"

    def not_found(*, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "CreateListener" and "Certificates.member.1.CertificateArn" in params.get(
            "body", {}
        ):
            raise ClientError(
                {"Error": {"Code": "CertificateNotFound", "Message": f"Certificate '{missing}' not found"}},
                "CreateListener",
            )

    provider.clients.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.*", not_found)
    request = make_request("tls", annotations={P + "ssl-cert": missing, P + "ssl-ports": "443"})
    with pytest.raises(RuntimeError, match="does not exist in this account") as caught:
        provider.ensure_load_balancer(request=request)
    assert missing in str(caught.value) and P + "ssl-cert" in str(caught.value)


def test_changed_additional_tags_reach_the_listeners_too(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    first = make_request("web", annotations={P + "additional-resource-tags": "team=web,cost-center=42"})
    provider.ensure_load_balancer(request=first)
    provider.ensure_load_balancer(
        request=make_request("web", uid=first.uid, annotations={P + "additional-resource-tags": "team=shop"})
    )

    elbv2 = boto3.client("elbv2")
    arns = [
        listener["ListenerArn"]
        for listener in elbv2.describe_listeners(LoadBalancerArn=_lb()["LoadBalancerArn"])["Listeners"]
    ]
    for described in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]:
        tags = {t["Key"]: t["Value"] for t in described["Tags"]}
        assert tags["team"] == "shop" and "cost-center" not in tags

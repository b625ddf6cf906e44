"""What a real AWS account refuses that plain moto accepts, met by the provider (issue 13).

moto is made to answer as AWS does by :mod:`tests.providers.aws.aws_behaviour` (each rule names its
source there); these tests drive the provider through the contract and assert what the user sees:
the Service's load balancer, its targets, its rules, and the calls made.
"""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from ccm.cloudprovider import InvalidSpec, Node
from providers.aws.config import AWSConfig
from providers.aws.provider import AWSProvider
from tests.providers.aws.aws_behaviour import AWSBehaviour
from tests.providers.aws.conftest import Network, RequestFactory, add_instance

GONE = "i-0123456789abcdef0"  # an instance terminated long ago: DescribeInstances(InstanceIds) → NotFound


def _registered(status_hostname: str) -> dict[int, list[str]]:
    elbv2 = boto3.client("elbv2")
    lb = next(
        lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["DNSName"] == status_hostname
    )
    out: dict[int, list[str]] = {}
    for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
        tg = listener["DefaultActions"][0]["TargetGroupArn"]
        health = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        out[int(listener["Port"])] = sorted(h["Target"]["Id"] for h in health)
    return out


# -- 5. nodes whose instance is gone, stopped or terminated ------------------------------------------


def test_a_node_whose_instance_no_longer_exists_does_not_block_the_service(
    provider: AWSProvider, make_request: RequestFactory, network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    ghost = Node(name="ghost", provider_id=f"aws:///us-east-1a/{GONE}", zone="us-east-1a")
    request = make_request("web", nodes=(*network.nodes(), ghost))
    with caplog.at_level(logging.WARNING, logger="providers.aws"):
        status = provider.ensure_load_balancer(request=request)
    running = sorted(i for i, _ in network.instances)
    assert _registered(status.ingress[0].hostname) == {80: running, 443: running}
    assert GONE in caplog.text


def test_stopped_and_terminated_instances_are_not_registered_and_the_running_ones_are(
    provider: AWSProvider, make_request: RequestFactory, network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    ec2 = boto3.client("ec2")
    stopped, terminated = network.instances[0][0], network.instances[1][0]
    ec2.stop_instances(InstanceIds=[stopped])
    ec2.terminate_instances(InstanceIds=[terminated])
    request = make_request("web")
    with caplog.at_level(logging.WARNING, logger="providers.aws"):
        status = provider.ensure_load_balancer(request=request)
    assert _registered(status.ingress[0].hostname) == {
        80: [network.instances[2][0]],
        443: [network.instances[2][0]],
    }
    assert stopped in caplog.text and terminated in caplog.text
    # the next ensure does not hammer AWS with the same refused registration
    provider.clients.reset_counts()
    provider.ensure_load_balancer(request=request)
    assert "RegisterTargets" not in provider.clients.snapshot()


def test_a_node_removed_after_its_instance_left_the_target_groups_does_not_wedge_the_service(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    """Issue 17's soak: a scale-down terminates the instance (its targets go with it) before the Node goes.

    The provider remembers what it registered; DeregisterTargets of a target that is no longer
    registered is InvalidTarget for the whole call, so trusting that memory failed every node sync and
    every ensure of the Service, for as long as the process lived.
    """
    request = make_request("web")
    status = provider.ensure_load_balancer(request=request)
    gone = network.instances[0][0]
    boto3.client("ec2").terminate_instances(InstanceIds=[gone])
    remaining = request.with_nodes(network.nodes()[1:])

    provider.update_load_balancer(request=remaining)

    kept = sorted(i for i, _ in network.instances[1:])
    assert _registered(status.ingress[0].hostname) == {80: kept, 443: kept}
    provider.ensure_load_balancer(request=remaining)  # and the full ensure does not fail either


def test_a_node_added_with_a_stopped_instance_does_not_keep_the_others_out(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    request = make_request("web")
    status = provider.ensure_load_balancer(request=request)
    fresh, _az = add_instance(network)
    stopped, _az = add_instance(network, "us-east-1b")
    boto3.client("ec2").stop_instances(InstanceIds=[stopped])
    provider.update_load_balancer(request=request.with_nodes(network.nodes()))
    want = sorted([*(i for i, _ in network.instances[:3]), fresh])
    assert _registered(status.ingress[0].hostname) == {80: want, 443: want}


# -- 7. the backend rule on the nodes' security group -----------------------------------------------


def _backend_sg(network: Network) -> str:
    """The cluster's shared backend group as the controller finds it (made here, before any Service)."""
    return str(
        boto3.client("ec2").create_security_group(
            GroupName="k8s-traffic-test",
            Description="backend",
            VpcId=network.vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [
                        {"Key": "kubernetes.io/cluster/test", "Value": "owned"},
                        {"Key": "ccm-lb/resource", "Value": "backend-security-group"},
                    ],
                }
            ],
        )["GroupId"]
    )


def _node_rules(network: Network) -> list[tuple[str, int, int]]:
    group = boto3.client("ec2").describe_security_groups(GroupIds=[network.node_sg])["SecurityGroups"][0]
    return sorted((p["IpProtocol"], p["FromPort"], p["ToPort"]) for p in group["IpPermissions"])


def test_a_node_group_with_one_of_the_three_rules_gets_the_other_two(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    backend = _backend_sg(network)
    boto3.client("ec2").authorize_security_group_ingress(
        GroupId=network.node_sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 30000,
                "ToPort": 32767,
                "UserIdGroupPairs": [{"GroupId": backend}],
            }
        ],
    )
    provider.ensure_load_balancer(request=make_request("web"))
    assert _node_rules(network) == [("tcp", 10256, 10256), ("tcp", 30000, 32767), ("udp", 30000, 32767)]


def test_a_restart_with_the_node_rules_in_place_authorizes_nothing(
    make_request: RequestFactory, network: Network
) -> None:
    from tests.providers.aws.conftest import new_provider

    request = make_request("web")
    new_provider().ensure_load_balancer(request=request)
    restarted = new_provider()
    restarted.ensure_load_balancer(request=request)
    assert "AuthorizeSecurityGroupIngress" not in restarted.clients.snapshot()
    assert len(_node_rules(network)) == 3


# -- 2. health-check timeout and interval -----------------------------------------------------------

P = "service.beta.kubernetes.io/aws-load-balancer-"


def _health_checks() -> dict[str, tuple[str, int, int]]:
    return {
        tg["Protocol"]: (
            tg["HealthCheckProtocol"],
            tg["HealthCheckIntervalSeconds"],
            tg["HealthCheckTimeoutSeconds"],
        )
        for tg in boto3.client("elbv2").describe_target_groups()["TargetGroups"]
    }


def test_a_five_second_interval_gets_a_timeout_aws_accepts_on_tcp_and_udp(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    request = make_request(
        "dns", ports=((53, "TCP"), (5353, "UDP")), annotations={P + "healthcheck-interval": "5"}
    )
    provider.ensure_load_balancer(request=request)
    assert _health_checks() == {"TCP": ("TCP", 5, 5), "UDP": ("HTTP", 5, 4)}


def test_an_interval_lowered_on_a_live_service_lowers_the_default_timeout_too(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    request = make_request("web", ports=((80, "TCP"),))
    provider.ensure_load_balancer(request=request)
    assert _health_checks() == {"TCP": ("TCP", 10, 10)}
    provider.ensure_load_balancer(
        request=make_request(
            "web", uid=request.uid, ports=((80, "TCP"),), annotations={P + "healthcheck-interval": "5"}
        )
    )
    assert _health_checks() == {"TCP": ("TCP", 5, 5)}


@pytest.mark.parametrize(
    ("annotations", "accepted"),
    [
        ({P + "healthcheck-interval": "5", P + "healthcheck-timeout": "10"}, "at most the interval (5)"),
        (
            {
                P + "healthcheck-interval": "10",
                P + "healthcheck-timeout": "10",
                P + "healthcheck-protocol": "HTTP",
            },
            "less than the interval (10)",
        ),
    ],
)
def test_a_timeout_longer_than_the_interval_is_refused_naming_the_annotation(
    provider: AWSProvider, make_request: RequestFactory, annotations: dict[str, str], accepted: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        provider.ensure_load_balancer(request=make_request("web", annotations=annotations))
    assert caught.value.field == P + "healthcheck-timeout"
    assert accepted in str(caught.value)
    assert boto3.client("elbv2").describe_target_groups()["TargetGroups"] == []


# -- 4. target-group attributes per protocol --------------------------------------------------------

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


def _attributes(protocol: str) -> dict[str, str]:
    elbv2 = boto3.client("elbv2")
    tg = next(t for t in elbv2.describe_target_groups()["TargetGroups"] if t["Protocol"] == protocol)
    return {
        a["Key"]: a["Value"]
        for a in elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]
    }


def test_changing_an_attribute_of_a_udp_service_keeps_aws_udp_defaults(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    first = make_request(
        "dns",
        ports=((53, "UDP"),),
        annotations={P + "target-group-attributes": "deregistration_delay.timeout_seconds=60"},
    )
    provider.ensure_load_balancer(request=first)
    provider.ensure_load_balancer(
        request=make_request(
            "dns",
            uid=first.uid,
            ports=((53, "UDP"),),
            annotations={P + "target-group-attributes": "deregistration_delay.timeout_seconds=30"},
        )
    )
    attributes = _attributes("UDP")
    assert attributes["deregistration_delay.timeout_seconds"] == "30"
    assert attributes["deregistration_delay.connection_termination.enabled"] == "true"
    assert attributes["target_health_state.unhealthy.connection_termination.enabled"] == "false"


@pytest.mark.parametrize(
    ("ports", "attributes", "extra", "bad"),
    [
        (((53, "UDP"),), "preserve_client_ip.enabled=false", {}, "preserve_client_ip.enabled"),
        (((53, "TCP"), (53, "UDP")), "preserve_client_ip.enabled=false", {}, "TCP_UDP"),
        (
            ((53, "UDP"),),
            "target_health_state.unhealthy.connection_termination.enabled=true",
            {},
            "target_health_state.unhealthy.connection_termination.enabled",
        ),
        (
            ((80, "TCP"),),
            "target_health_state.unhealthy.draining_interval_seconds=30",
            {},
            "target_health_state.unhealthy.connection_termination.enabled=false",
        ),
        (
            ((443, "TCP"),),
            "stickiness.enabled=true",
            {P + "ssl-cert": CERT, P + "backend-protocol": "ssl"},
            "TLS",
        ),
    ],
    ids=[
        "udp-client-ip",
        "tcp-udp-client-ip",
        "udp-unhealthy-termination",
        "draining-interval",
        "tls-stickiness",
    ],
)
def test_an_attribute_aws_refuses_for_the_protocol_is_an_invalid_spec_and_nothing_is_made(
    provider: AWSProvider,
    make_request: RequestFactory,
    ports: tuple[tuple[int, str], ...],
    attributes: str,
    extra: dict[str, str],
    bad: str,
) -> None:
    request = make_request(
        "svc", ports=ports, annotations={P + "target-group-attributes": attributes, **extra}
    )
    if len(ports) == 2:  # TCP and UDP on one port number share one NodePort (one TCP_UDP target group)
        request = dataclasses.replace(
            request, ports=tuple(dataclasses.replace(port, node_port=30053) for port in request.ports)
        )
    with pytest.raises(InvalidSpec) as caught:
        provider.ensure_load_balancer(request=request)
    assert caught.value.field == P + "target-group-attributes"
    assert bad in str(caught.value)
    assert boto3.client("elbv2").describe_target_groups()["TargetGroups"] == []


def test_a_draining_interval_with_unhealthy_termination_off_is_applied(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    value = (
        "target_health_state.unhealthy.connection_termination.enabled=false,"
        "target_health_state.unhealthy.draining_interval_seconds=30"
    )
    provider.ensure_load_balancer(
        request=make_request("web", ports=((80, "TCP"),), annotations={P + "target-group-attributes": value})
    )
    assert _attributes("TCP")["target_health_state.unhealthy.draining_interval_seconds"] == "30"


# -- 6. subnet discovery: zone types and public subnets ---------------------------------------------


def _lb_subnets() -> list[str]:
    lb = boto3.client("elbv2").describe_load_balancers()["LoadBalancers"][0]
    return sorted(z["SubnetId"] for z in lb["AvailabilityZones"])


def _elb_subnet(network: Network, *, cidr: str, az: str) -> str:
    return str(
        boto3.client("ec2").create_subnet(
            VpcId=network.vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=az,
            TagSpecifications=[
                {
                    "ResourceType": "subnet",
                    "Tags": [
                        {"Key": "kubernetes.io/cluster/test", "Value": "shared"},
                        {"Key": "kubernetes.io/role/elb", "Value": "1"},
                        {"Key": "kubernetes.io/role/internal-elb", "Value": "1"},
                    ],
                }
            ],
        )["Subnet"]["SubnetId"]
    )


def test_a_local_zone_subnet_is_never_chosen(
    make_request: RequestFactory, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend, Zone

    local = Zone(
        name="us-east-1-bos-1a", region_name="us-east-1", zone_id="use1-bos1-az1", zone_type="local-zone"
    )
    monkeypatch.setitem(
        RegionsAndZonesBackend.zones, "us-east-1", [*RegionsAndZonesBackend.zones["us-east-1"], local]
    )
    _elb_subnet(network, cidr="10.0.9.0/24", az="us-east-1-bos-1a")
    from tests.providers.aws.conftest import new_provider

    new_provider().ensure_load_balancer(request=make_request("web"))
    assert _lb_subnets() == sorted(network.subnets.values())


def test_an_internet_facing_service_skips_private_subnets_and_an_internal_one_may_use_them(
    make_request: RequestFactory, network: Network
) -> None:
    ec2 = boto3.client("ec2")
    private = _elb_subnet(network, cidr="10.0.3.0/24", az="us-east-1c")
    table = ec2.create_route_table(VpcId=network.vpc_id)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=private)  # only the VPC's local route
    from tests.providers.aws.conftest import new_provider

    provider = new_provider()
    public = make_request("public")
    provider.ensure_load_balancer(request=public)
    assert _lb_subnets() == sorted(network.subnets.values())
    provider.ensure_load_balancer_deleted(request=public)
    internal = make_request("private", annotations={P + "internal": "true"})
    provider.ensure_load_balancer(request=internal)
    assert private in _lb_subnets()


# -- 8. the tagging API lists what was deleted, and lags behind what was made ------------------------


def _lingering_provider() -> tuple[AWSProvider, AWSBehaviour]:
    provider = AWSProvider(cluster_name="test", config=AWSConfig(), orphan_grace_seconds=0.0)
    behaviour = AWSBehaviour(provider.clients).install()
    behaviour.deleted_resources_linger = True
    return provider, behaviour


def test_a_load_balancer_deleted_behind_our_back_is_recreated_though_still_listed(
    make_request: RequestFactory, network: Network
) -> None:
    provider, behaviour = _lingering_provider()
    request = make_request("web")
    provider.ensure_load_balancer(request=request)
    elbv2 = boto3.client("elbv2")
    gone = elbv2.describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
    behaviour.lingering.extend(
        item
        for item in boto3.client("resourcegroupstaggingapi").get_resources()["ResourceTagMappingList"]
        if item["ResourceARN"] == gone
    )
    elbv2.delete_load_balancer(LoadBalancerArn=gone)  # by someone else; the listing still has it
    restarted, again = _lingering_provider()
    again.lingering.extend(behaviour.lingering)
    status = restarted.ensure_load_balancer(request=request)
    lbs = elbv2.describe_load_balancers()["LoadBalancers"]
    assert [lb["DNSName"] for lb in lbs] == [status.ingress[0].hostname]
    assert lbs[0]["LoadBalancerArn"] != gone
    found, exists = restarted.get_load_balancer(request=request)
    assert exists and found is not None and found.ingress[0].hostname == status.ingress[0].hostname


def test_a_deleted_service_that_is_still_listed_is_neither_found_nor_deleted_twice(
    make_request: RequestFactory, network: Network
) -> None:
    provider, _behaviour = _lingering_provider()
    request = make_request("web")
    provider.ensure_load_balancer(request=request)
    provider.ensure_load_balancer_deleted(request=request)
    assert provider.get_load_balancer(request=request) == (None, False)
    provider.clients.reset_counts()
    provider.drifted_load_balancers(requests=[])  # the deleted stack's listing looks like an orphan
    provider.drifted_load_balancers(requests=[])
    calls = provider.clients.snapshot()
    assert not [op for op in calls if op.startswith("Delete")], calls


def test_a_service_deleted_before_the_listing_shows_its_load_balancer_leaves_nothing(
    provider: AWSProvider, make_request: RequestFactory
) -> None:
    request = make_request("quick")
    provider.ensure_load_balancer(request=request)

    def lagging(**_: Any) -> Any:
        return SimpleNamespace(status_code=200, headers={}), {"ResourceTagMappingList": []}

    provider.clients.register("before-call.*.GetResources", lagging)
    provider.ensure_load_balancer_deleted(request=request)
    assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert boto3.client("elbv2").describe_target_groups()["TargetGroups"] == []

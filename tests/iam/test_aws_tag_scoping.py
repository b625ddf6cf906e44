"""The shipped AWS policy reaches only this cluster's resources: the ownership tag is the fence.

Each test calls AWS directly with the controller role's credentials (the provider itself would never
try these), while the account's root seeds what belongs to someone else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from providers.aws.client import error_code
from providers.aws.deploy.backend_security_group import NodeSecurityGroupDenied
from tests.iam.aws_enforcement import Enforcement
from tests.iam.aws_lifecycle import request
from tests.iam.aws_policy import (
    RestrictedProviders,
    controller_role,
    policy_documents,
    restricted_client,
    role_session,
)
from tests.support.aws import CLUSTER_TAG, Network

OTHER_TAG = "kubernetes.io/cluster/other"


def _tags(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in pairs]


def _denied(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as failure:
        call()
    code = error_code(failure.value)
    assert code in ("AccessDenied", "UnauthorizedOperation"), failure.value
    return code


@pytest.fixture
def as_controller(aws_iam: Enforcement, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """``as_controller("ec2")``: a client with the controller role's session credentials."""
    env = role_session(controller_role(policy_documents()))
    return lambda service: restricted_client(monkeypatch, service, env)


def test_creates_without_this_clusters_owned_tag_are_denied(
    aws_network: Network, as_controller: Callable[[str], Any]
) -> None:
    ec2, elbv2 = as_controller("ec2"), as_controller("elbv2")
    vpc, subnets = aws_network.vpc_id, list(aws_network.subnets.values())

    def security_group(tags: list[dict[str, str]]) -> Callable[[], Any]:
        spec = [{"ResourceType": "security-group", "Tags": tags}] if tags else []
        return lambda: ec2.create_security_group(
            GroupName=f"g{len(tags)}", Description="d", VpcId=vpc, TagSpecifications=spec
        )

    assert _denied(security_group([])) == "UnauthorizedOperation"
    _denied(security_group(_tags((CLUSTER_TAG, "shared"))))
    _denied(security_group(_tags((OTHER_TAG, "owned"))))
    for tags in ([], _tags((CLUSTER_TAG, "shared")), _tags((OTHER_TAG, "owned"))):
        tagged: dict[str, Any] = {"Tags": tags} if tags else {}

        def target_group(tagged: dict[str, Any] = tagged) -> Any:
            return elbv2.create_target_group(Name="tg", Protocol="TCP", Port=1, VpcId=vpc, **tagged)

        def load_balancer(tagged: dict[str, Any] = tagged) -> Any:
            return elbv2.create_load_balancer(Name="lb", Type="network", Subnets=subnets, **tagged)

        assert _denied(target_group) == "AccessDenied"
        assert _denied(load_balancer) == "AccessDenied"
    assert boto3.client("elbv2").describe_load_balancers()["LoadBalancers"] == []

    # the same calls with the tag pass: what is denied is the missing tag, not the call
    security_group(_tags((CLUSTER_TAG, "owned")))()
    elbv2.create_target_group(
        Name="tg", Protocol="TCP", Port=1, VpcId=vpc, Tags=_tags((CLUSTER_TAG, "owned"))
    )


def test_another_clusters_load_balancer_and_security_group_cannot_be_changed_or_deleted(
    aws_network: Network, as_controller: Callable[[str], Any]
) -> None:
    root_ec2, root_elbv2 = boto3.client("ec2"), boto3.client("elbv2")
    theirs = _tags((OTHER_TAG, "owned"), ("kubernetes.io/service-name", "default/web"))
    group = root_ec2.create_security_group(
        GroupName="theirs",
        Description="another cluster's",
        VpcId=aws_network.vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": theirs}],
    )["GroupId"]
    root_ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    lb = root_elbv2.create_load_balancer(
        Name="theirs", Type="network", Subnets=list(aws_network.subnets.values()), Tags=theirs
    )["LoadBalancers"][0]["LoadBalancerArn"]
    tg = root_elbv2.create_target_group(
        Name="theirs",
        Protocol="TCP",
        Port=30080,
        VpcId=aws_network.vpc_id,
        TargetType="instance",
        Tags=theirs,
    )["TargetGroups"][0]["TargetGroupArn"]
    listener = root_elbv2.create_listener(
        LoadBalancerArn=lb,
        Protocol="TCP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
        Tags=theirs,
    )["Listeners"][0]["ListenerArn"]
    instance = aws_network.instances[0][0]

    ec2, elbv2 = as_controller("ec2"), as_controller("elbv2")
    perm = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ours = _tags((CLUSTER_TAG, "owned"))
    attempts: dict[str, Callable[[], Any]] = {
        "DeleteSecurityGroup": lambda: ec2.delete_security_group(GroupId=group),
        "RevokeSecurityGroupIngress": lambda: ec2.revoke_security_group_ingress(
            GroupId=group, IpPermissions=perm
        ),
        "AuthorizeSecurityGroupIngress": lambda: ec2.authorize_security_group_ingress(
            GroupId=group, IpPermissions=[{**perm[0], "FromPort": 22, "ToPort": 22}]
        ),
        "CreateTags (claim the group)": lambda: ec2.create_tags(Resources=[group], Tags=ours),
        "DeleteTags": lambda: ec2.delete_tags(Resources=[group], Tags=[{"Key": OTHER_TAG}]),
        "DeleteLoadBalancer": lambda: elbv2.delete_load_balancer(LoadBalancerArn=lb),
        "ModifyLoadBalancerAttributes": lambda: elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=lb, Attributes=[{"Key": "load_balancing.cross_zone.enabled", "Value": "true"}]
        ),
        "SetSubnets": lambda: elbv2.set_subnets(
            LoadBalancerArn=lb, Subnets=list(aws_network.subnets.values())
        ),
        "AddTags (claim the load balancer)": lambda: elbv2.add_tags(ResourceArns=[lb], Tags=ours),
        "RemoveTags": lambda: elbv2.remove_tags(ResourceArns=[lb], TagKeys=[OTHER_TAG]),
        # CreateListener is fenced by the request tag only (the kops pattern; terraform/aws/README.md
        # says why): a listener without this cluster's owned tag is denied on any load balancer.
        "CreateListener (untagged)": lambda: elbv2.create_listener(
            LoadBalancerArn=lb,
            Protocol="TCP",
            Port=443,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
            Tags=theirs,
        ),
        "ModifyListener": lambda: elbv2.modify_listener(ListenerArn=listener, Port=8080),
        "DeleteListener": lambda: elbv2.delete_listener(ListenerArn=listener),
        "RegisterTargets": lambda: elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance}]),
        "ModifyTargetGroup": lambda: elbv2.modify_target_group(
            TargetGroupArn=tg, HealthCheckIntervalSeconds=10
        ),
        "DeleteTargetGroup": lambda: elbv2.delete_target_group(TargetGroupArn=tg),
    }
    not_denied = []
    for name, attempt in attempts.items():
        try:
            attempt()
            not_denied.append(name)
        except ClientError as exc:
            if error_code(exc) not in ("AccessDenied", "UnauthorizedOperation"):
                not_denied.append(f"{name} ({error_code(exc)})")
    assert not_denied == []

    # and all of it is still there, untouched
    assert root_elbv2.describe_listeners(LoadBalancerArn=lb)["Listeners"][0]["Port"] == 80
    assert root_elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"] == []
    described = root_ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    assert [p["FromPort"] for p in described["IpPermissions"]] == [80]
    assert {t["Key"] for t in described["Tags"]} == {OTHER_TAG, "kubernetes.io/service-name"}


def test_the_cluster_tag_of_our_own_resources_cannot_be_removed_or_changed(
    aws_network: Network, as_controller: Callable[[str], Any]
) -> None:
    ours = _tags((CLUSTER_TAG, "owned"), ("ccm-lb/resource", "frontend-security-group"))
    group = boto3.client("ec2").create_security_group(
        GroupName="ours",
        Description="ours",
        VpcId=aws_network.vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": ours}],
    )["GroupId"]
    tg = boto3.client("elbv2").create_target_group(
        Name="ours", Protocol="TCP", Port=30080, VpcId=aws_network.vpc_id, Tags=ours
    )["TargetGroups"][0]["TargetGroupArn"]
    ec2, elbv2 = as_controller("ec2"), as_controller("elbv2")

    _denied(lambda: ec2.delete_tags(Resources=[group], Tags=[{"Key": CLUSTER_TAG}]))
    _denied(lambda: ec2.delete_tags(Resources=[group]))  # no keys: EC2 would delete every tag
    _denied(lambda: ec2.create_tags(Resources=[group], Tags=_tags((CLUSTER_TAG, "shared"))))
    _denied(lambda: elbv2.remove_tags(ResourceArns=[tg], TagKeys=[CLUSTER_TAG, "team"]))
    _denied(lambda: elbv2.add_tags(ResourceArns=[tg], Tags=_tags((CLUSTER_TAG, "shared"))))

    # other tags of our resources are the controller's to change
    ec2.create_tags(Resources=[group], Tags=_tags(("team", "web")))
    ec2.delete_tags(Resources=[group], Tags=[{"Key": "team"}])
    elbv2.add_tags(ResourceArns=[tg], Tags=_tags(("team", "web")))
    elbv2.remove_tags(ResourceArns=[tg], TagKeys=["team"])


def test_ingress_rules_go_only_to_security_groups_tagged_for_this_cluster(
    aws_network: Network, as_controller: Callable[[str], Any]
) -> None:
    root_ec2 = boto3.client("ec2")
    untagged = root_ec2.create_security_group(GroupName="bare", Description="d", VpcId=aws_network.vpc_id)[
        "GroupId"
    ]
    ec2 = as_controller("ec2")
    rule = [
        {"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}
    ]

    # the node group is tagged "shared": the controller may add its rule there, and remove rules (the
    # upstream provider's, of a Service it replaced: RevokeUpstreamRulesOnClusterSecurityGroups), but
    # never delete the group
    ec2.authorize_security_group_ingress(GroupId=aws_network.node_sg, IpPermissions=rule)
    ec2.revoke_security_group_ingress(GroupId=aws_network.node_sg, IpPermissions=rule)
    _denied(lambda: ec2.delete_security_group(GroupId=aws_network.node_sg))
    # an untagged group is out of reach (docs/installing.md: tag the node security group)
    root_ec2.authorize_security_group_ingress(GroupId=untagged, IpPermissions=rule)
    _denied(lambda: ec2.authorize_security_group_ingress(GroupId=untagged, IpPermissions=rule))
    _denied(lambda: ec2.revoke_security_group_ingress(GroupId=untagged, IpPermissions=rule))


def test_an_untagged_node_security_group_fails_the_ensure_with_the_tag_to_add(
    aws_iam: Enforcement, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("ec2").delete_tags(Resources=[aws_network.node_sg], Tags=[{"Key": CLUSTER_TAG}])
    provider = RestrictedProviders(monkeypatch, policy_documents())()

    with pytest.raises(NodeSecurityGroupDenied) as failure:
        provider.ensure_load_balancer(request=request(aws_network))

    message = str(failure.value)
    assert aws_network.node_sg in message and CLUSTER_TAG in message and "owned or shared" in message
    assert [d.action for d in aws_iam.denials] == ["ec2:AuthorizeSecurityGroupIngress"]


def test_resources_with_only_this_clusters_tag_are_out_of_reach_of_every_destructive_call(
    aws_network: Network, as_controller: Callable[[str], Any]
) -> None:
    """EKS tags its cluster security group, and upstream cloud-provider-aws its load balancers and target
    groups, ``kubernetes.io/cluster/<name>=owned`` too; only ``ccm-lb/resource`` says a resource is ours.

    upstream-policy.json deletes the upstream provider's load balancers only with a
    ``kubernetes.io/service-name`` tag (these have none) and never a group with EKS's
    ``aws:eks:cluster-name``; it may revoke rules on any group with the cluster tag (upstream's rules of a
    replaced Service are on the nodes' groups, which on EKS is this one), so that is left out here."""
    root_ec2, root_elbv2 = boto3.client("ec2"), boto3.client("elbv2")
    cluster_only = _tags((CLUSTER_TAG, "owned"))
    eks_group = root_ec2.create_security_group(
        GroupName="eks-cluster-sg-test",
        Description="EKS created security group applied to ENI",
        VpcId=aws_network.vpc_id,
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": [*cluster_only, *_tags(("aws:eks:cluster-name", "test"))],
            }
        ],
    )["GroupId"]
    perm = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}]
    root_ec2.authorize_security_group_ingress(GroupId=eks_group, IpPermissions=perm)
    upstream_lb = root_elbv2.create_load_balancer(
        Name="a1b2c3d4e5f60718293a4b5c6d7e8f90",
        Type="network",
        Subnets=list(aws_network.subnets.values()),
        Tags=cluster_only,
    )["LoadBalancers"][0]["LoadBalancerArn"]
    upstream_tg = root_elbv2.create_target_group(
        Name="k8s-default-web-upstream",
        Protocol="TCP",
        Port=30080,
        VpcId=aws_network.vpc_id,
        Tags=cluster_only,
    )["TargetGroups"][0]["TargetGroupArn"]
    listener = root_elbv2.create_listener(
        LoadBalancerArn=upstream_lb,
        Protocol="TCP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": upstream_tg}],
        Tags=cluster_only,
    )["Listeners"][0]["ListenerArn"]
    instance = aws_network.instances[0][0]

    ec2, elbv2 = as_controller("ec2"), as_controller("elbv2")
    attempts: dict[str, Callable[[], Any]] = {
        "DeleteSecurityGroup": lambda: ec2.delete_security_group(GroupId=eks_group),
        "CreateTags": lambda: ec2.create_tags(Resources=[eks_group], Tags=_tags(("team", "x"))),
        "DeleteTags": lambda: ec2.delete_tags(Resources=[eks_group], Tags=[{"Key": "Name"}]),
        "DeleteLoadBalancer": lambda: elbv2.delete_load_balancer(LoadBalancerArn=upstream_lb),
        "SetSubnets": lambda: elbv2.set_subnets(
            LoadBalancerArn=upstream_lb, Subnets=list(aws_network.subnets.values())
        ),
        "AddTags": lambda: elbv2.add_tags(ResourceArns=[upstream_lb], Tags=_tags(("team", "x"))),
        "RemoveTags": lambda: elbv2.remove_tags(ResourceArns=[upstream_lb], TagKeys=["team"]),
        "ModifyListener": lambda: elbv2.modify_listener(ListenerArn=listener, Port=8080),
        "DeleteListener": lambda: elbv2.delete_listener(ListenerArn=listener),
        "RegisterTargets": lambda: elbv2.register_targets(
            TargetGroupArn=upstream_tg, Targets=[{"Id": instance}]
        ),
        "DeleteTargetGroup": lambda: elbv2.delete_target_group(TargetGroupArn=upstream_tg),
    }
    not_denied = []
    for name, attempt in attempts.items():
        try:
            attempt()
            not_denied.append(name)
        except ClientError as exc:
            if error_code(exc) not in ("AccessDenied", "UnauthorizedOperation"):
                not_denied.append(f"{name} ({error_code(exc)})")
    assert not_denied == []
    assert root_elbv2.describe_load_balancers(LoadBalancerArns=[upstream_lb])["LoadBalancers"]
    described = root_ec2.describe_security_groups(GroupIds=[eks_group])["SecurityGroups"][0]
    assert [p["FromPort"] for p in described["IpPermissions"]] == [443]


def test_the_upstream_providers_load_balancers_and_groups_of_another_cluster_or_no_service_cannot_be_deleted(
    aws_network: Network, as_controller: Callable[[str], Any]
) -> None:
    """upstream-policy.json deletes what the upstream provider built for a Service of this cluster: a load
    balancer named as upstream names it (``a`` + 31), tagged ``owned`` for this cluster and with a
    ``kubernetes.io/service-name``, and a group tagged ``owned`` for this cluster. Another cluster's, one
    without the Service's tag, one named otherwise, another cluster's group, EKS's cluster group: denied.
    The same shapes of this cluster and a Service are deleted (what is denied is the scope, not the call)."""
    root_ec2, root_elb, root_elbv2 = boto3.client("ec2"), boto3.client("elb"), boto3.client("elbv2")
    subnets = sorted(aws_network.subnets.values())
    service = ("kubernetes.io/service-name", "default/web")

    def nlb(name: str, *tags: tuple[str, str]) -> str:
        arn: str = root_elbv2.create_load_balancer(
            Name=name, Type="network", Subnets=subnets, Tags=_tags(*tags)
        )["LoadBalancers"][0]["LoadBalancerArn"]
        return arn

    def clb(name: str, *tags: tuple[str, str]) -> str:
        listener = {
            "Protocol": "TCP",
            "LoadBalancerPort": 80,
            "InstanceProtocol": "TCP",
            "InstancePort": 30080,
        }
        root_elb.create_load_balancer(
            LoadBalancerName=name, Listeners=[listener], Subnets=subnets, Tags=_tags(*tags)
        )
        return name

    def target_group(name: str, *tags: tuple[str, str]) -> str:
        arn: str = root_elbv2.create_target_group(
            Name=name, Protocol="TCP", Port=30080, VpcId=aws_network.vpc_id, Tags=_tags(*tags)
        )["TargetGroups"][0]["TargetGroupArn"]
        return arn

    def group(name: str, *tags: tuple[str, str]) -> str:
        spec = [{"ResourceType": "security-group", "Tags": _tags(*tags)}]
        group_id: str = root_ec2.create_security_group(
            GroupName=name, Description="d", VpcId=aws_network.vpc_id, TagSpecifications=spec
        )["GroupId"]
        return group_id

    upstream = "a" + "1" * 31
    ec2, elb, elbv2 = as_controller("ec2"), as_controller("elb"), as_controller("elbv2")
    attempts: dict[str, Callable[[], Any]] = {
        "another cluster's NLB": lambda: elbv2.delete_load_balancer(
            LoadBalancerArn=nlb(upstream, (OTHER_TAG, "owned"), service)
        ),
        "an NLB without kubernetes.io/service-name": lambda: elbv2.delete_load_balancer(
            LoadBalancerArn=nlb("a" + "2" * 31, (CLUSTER_TAG, "owned"))
        ),
        "a shared NLB": lambda: elbv2.delete_load_balancer(
            LoadBalancerArn=nlb("a" + "3" * 31, (CLUSTER_TAG, "shared"), service)
        ),
        "an NLB not named as upstream names them": lambda: elbv2.delete_load_balancer(
            LoadBalancerArn=nlb("web-nlb", (CLUSTER_TAG, "owned"), service)
        ),
        "another cluster's Classic ELB": lambda: elb.delete_load_balancer(
            LoadBalancerName=clb(upstream, (OTHER_TAG, "owned"), service)
        ),
        "a Classic ELB without kubernetes.io/service-name": lambda: elb.delete_load_balancer(
            LoadBalancerName=clb("a" + "2" * 31, (CLUSTER_TAG, "owned"))
        ),
        "a Classic ELB not named as upstream names them": lambda: elb.delete_load_balancer(
            LoadBalancerName=clb("web-clb", (CLUSTER_TAG, "owned"), service)
        ),
        "another cluster's target group": lambda: elbv2.delete_target_group(
            TargetGroupArn=target_group("k8s-default-web-other", (OTHER_TAG, "owned"), service)
        ),
        "a target group without kubernetes.io/service-name": lambda: elbv2.delete_target_group(
            TargetGroupArn=target_group("k8s-default-web-noservice", (CLUSTER_TAG, "owned"))
        ),
        "another cluster's security group": lambda: ec2.delete_security_group(
            GroupId=group("k8s-elb-other", (OTHER_TAG, "owned"))
        ),
        "a shared security group": lambda: ec2.delete_security_group(
            GroupId=group("k8s-elb-shared", (CLUSTER_TAG, "shared"))
        ),
        "EKS's cluster security group": lambda: ec2.delete_security_group(
            GroupId=group("eks-cluster-sg", (CLUSTER_TAG, "owned"), ("aws:eks:cluster-name", "test"))
        ),
        "rules of another cluster's group": lambda: ec2.revoke_security_group_ingress(
            GroupId=group("other-nodes", (OTHER_TAG, "shared")),
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}],
        ),
    }
    not_denied = []
    for what, attempt in attempts.items():
        try:
            attempt()
            not_denied.append(what)
        except ClientError as exc:
            if error_code(exc) not in ("AccessDenied", "UnauthorizedOperation"):
                not_denied.append(f"{what} ({error_code(exc)})")
    assert not_denied == []
    assert len(root_elbv2.describe_load_balancers()["LoadBalancers"]) == 4
    assert len(root_elb.describe_load_balancers()["LoadBalancerDescriptions"]) == 3

    # the upstream provider's own, of this cluster and a Service, are deleted
    elbv2.delete_load_balancer(LoadBalancerArn=nlb("a" + "4" * 31, (CLUSTER_TAG, "owned"), service))
    elb.delete_load_balancer(LoadBalancerName=clb("a" + "4" * 31, (CLUSTER_TAG, "owned"), service))
    elbv2.delete_target_group(
        TargetGroupArn=target_group("k8s-default-web-0123456789", (CLUSTER_TAG, "owned"), service)
    )
    ec2.delete_security_group(GroupId=group("k8s-elb-" + "a" + "4" * 31, (CLUSTER_TAG, "owned")))
    assert len(root_elbv2.describe_load_balancers()["LoadBalancers"]) == 4
    assert len(root_elb.describe_load_balancers()["LoadBalancerDescriptions"]) == 3

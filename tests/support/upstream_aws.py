"""The load balancers the upstream AWS cloud provider (cloud-provider-aws) builds, made in moto as it makes
them, for tests of what this controller does with a Service that upstream served.

Each shape is upstream's, read in cloud-provider-aws (``pkg/providers/v1``):

* names: ``"a" + UID without dashes`` cut to 32 (k8s.io/cloud-provider ``DefaultLoadBalancerName``);
  target groups ``k8s-<ns:8>-<name:8>-<hash:10>`` (``aws_loadbalancer.go``, ``buildTargetGroupName``);
* tags on the load balancer, its listeners and target groups: ``kubernetes.io/cluster/<id>=owned`` and
  ``kubernetes.io/service-name=<ns>/<name>`` (``aws.go``, ``buildTags``; ``createListenerV2`` tags the
  listener with them and passes them to ``ensureTargetGroup``);
* an NLB has no security group (the default ``NLBSecurityGroupMode``); its node rules are on the
  nodes' group: client traffic on the NodePort from the source ranges, described
  ``kubernetes.io/rule/nlb/client=<name>``, health checks from the VPC's subnets
  ``kubernetes.io/rule/nlb/health=<name>`` (left out when the client rule is 0.0.0.0/0 TCP on the same
  ports), and path-MTU ICMP ``kubernetes.io/rule/nlb/mtu`` per client CIDR
  (``aws_loadbalancer.go``, ``updateInstanceSecurityGroupsForNLB``, ``…ForNLBMTU``);
* a Classic ELB gets a group ``k8s-elb-<name>`` described ``Security group for Kubernetes ELB <name>
  (<ns/name>)``, tagged owned, open on the listener ports; the nodes' group lets it in with one
  all-protocol rule (``aws.go``, ``buildELBSecurityGroupList``,
  ``updateInstanceSecurityGroupsForLoadBalancer``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import boto3

from tests.support.aws import CLUSTER_TAG, Network


@dataclass(frozen=True)
class Upstream:
    kind: str  # "nlb" | "clb"
    name: str
    dns_name: str
    arn: str = ""
    security_group: str = ""  # the Classic ELB's own group


def upstream_name(uid: str) -> str:
    return ("a" + uid).replace("-", "")[:32]


def _tags(key: str) -> list[dict[str, str]]:
    return [{"Key": CLUSTER_TAG, "Value": "owned"}, {"Key": "kubernetes.io/service-name", "Value": key}]


def make_upstream_nlb(
    network: Network, *, namespace: str, name: str, uid: str, ports: tuple[tuple[int, int], ...]
) -> Upstream:
    """An NLB as upstream builds it for ``ports`` ((port, nodePort), TCP) on every seeded instance."""
    elbv2, ec2 = boto3.client("elbv2"), boto3.client("ec2")
    key = f"{namespace}/{name}"
    lb_name = upstream_name(uid)
    lb = elbv2.create_load_balancer(
        Name=lb_name,
        Type="network",
        Scheme="internet-facing",
        Subnets=sorted(network.subnets.values()),
        Tags=_tags(key),
    )["LoadBalancers"][0]
    for port, node_port in ports:
        digest = hashlib.sha1(f"{CLUSTER_TAG}{namespace}{name}{port}{node_port}TCP".encode()).hexdigest()
        tg = elbv2.create_target_group(
            Name=f"k8s-{namespace[:8]}-{name[:8]}-{digest[:10]}",
            Protocol="TCP",
            Port=node_port,
            VpcId=network.vpc_id,
            TargetType="instance",
            HealthCheckProtocol="TCP",
            HealthCheckPort="traffic-port",
            HealthCheckIntervalSeconds=30,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=2,
            Tags=_tags(key),
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": iid} for iid, _ in network.instances])
        elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="TCP",
            Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
            Tags=_tags(key),
        )
    client_rule = f"kubernetes.io/rule/nlb/client={lb_name}"
    ec2.authorize_security_group_ingress(
        GroupId=network.node_sg,
        IpPermissions=[
            *(
                {
                    "IpProtocol": "tcp",
                    "FromPort": node_port,
                    "ToPort": node_port,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": client_rule}],
                }
                for _, node_port in ports
            ),
        ],
    )
    if "kubernetes.io/rule/nlb/mtu" not in upstream_rule_descriptions(network):  # one per CIDR and group
        ec2.authorize_security_group_ingress(
            GroupId=network.node_sg,
            IpPermissions=[
                {
                    "IpProtocol": "icmp",
                    "FromPort": 3,
                    "ToPort": 4,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "kubernetes.io/rule/nlb/mtu"}],
                }
            ],
        )
    return Upstream(kind="nlb", name=lb_name, dns_name=lb["DNSName"], arn=lb["LoadBalancerArn"])


def make_upstream_clb(
    network: Network, *, namespace: str, name: str, uid: str, ports: tuple[tuple[int, int], ...]
) -> Upstream:
    """A Classic ELB as upstream builds it (TCP listeners on the NodePorts) with its own group."""
    elb, ec2 = boto3.client("elb"), boto3.client("ec2")
    key = f"{namespace}/{name}"
    lb_name = upstream_name(uid)
    sg = ec2.create_security_group(
        GroupName=f"k8s-elb-{lb_name}",
        Description=f"Security group for Kubernetes ELB {lb_name} ({key})",
        VpcId=network.vpc_id,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": CLUSTER_TAG, "Value": "owned"}]}
        ],
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            for port, _ in ports
        ],
    )
    dns = elb.create_load_balancer(
        LoadBalancerName=lb_name,
        Listeners=[
            {
                "Protocol": "TCP",
                "LoadBalancerPort": port,
                "InstanceProtocol": "TCP",
                "InstancePort": node_port,
            }
            for port, node_port in ports
        ],
        Subnets=sorted(network.subnets.values()),
        SecurityGroups=[sg],
        Tags=_tags(key),
    )["DNSName"]
    elb.register_instances_with_load_balancer(
        LoadBalancerName=lb_name, Instances=[{"InstanceId": iid} for iid, _ in network.instances]
    )
    ec2.authorize_security_group_ingress(
        GroupId=network.node_sg, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]}]
    )
    return Upstream(kind="clb", name=lb_name, dns_name=dns, security_group=sg)


def node_sg_rules(network: Network) -> list[dict[str, Any]]:
    """The nodes' group's ingress, as AWS describes it."""
    group = boto3.client("ec2").describe_security_groups(GroupIds=[network.node_sg])["SecurityGroups"][0]
    return list(group.get("IpPermissions", []))


def upstream_rule_descriptions(network: Network) -> set[str]:
    """The descriptions of upstream's NLB rules on the nodes' group."""
    return {
        r.get("Description", "")
        for p in node_sg_rules(network)
        for r in p.get("IpRanges", [])
        if r.get("Description", "").startswith("kubernetes.io/rule/nlb/")
    }


def group_sources(network: Network) -> set[str]:
    """The groups the nodes' group lets in."""
    return {g["GroupId"] for p in node_sg_rules(network) for g in p.get("UserIdGroupPairs", [])}


def nlb_exists(name: str) -> bool:
    try:
        boto3.client("elbv2").describe_load_balancers(Names=[name])
    except boto3.client("elbv2").exceptions.LoadBalancerNotFoundException:
        return False
    return True


def clb_exists(name: str) -> bool:
    names = [
        d["LoadBalancerName"]
        for d in boto3.client("elb").describe_load_balancers()["LoadBalancerDescriptions"]
    ]
    return name in names

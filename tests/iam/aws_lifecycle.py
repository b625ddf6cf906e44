"""One Service's whole life through the AWS provider, touching every permission the policy grants.

Driven through the provider contract (as the controller calls it) rather than a real controller,
so one run costs about a second and the suite can run it once per policy statement. The steps are
chosen so that every statement of ``terraform/aws/policy.json`` is needed by at least one of them:

1. create: two ports, three nodes, additional tags, cross-zone and a target-group attribute;
2. ensure again with nothing changed;
3. a node added, then one removed (``update_load_balancer``: targets only);
4. a controller restart while the tagging API still lags behind (parts found by name, ownership
   read back from their tags, targets described);
5. ports changed: 443 becomes 8443 and port 80 gets a new NodePort (new target groups, a listener
   modified, one deleted, one created; frontend rules revoked and authorized; the group re-tagged);
6. ``externalTrafficPolicy: Local`` and source ranges (target groups modified and re-tagged);
7. one additional tag removed, cross-zone off, a subnet added, a TCP idle timeout, dual-stack (tags
   removed; attributes; SetSubnets; listener attributes; SetIpAddressType);
8. a bring-your-own security group (SetSecurityGroups; the frontend group deleted);
9. delete: nothing of the Service is left;
10. two Services the upstream provider served, its NLB and Classic ELB built by an admin as upstream
    builds them (``tests/support/upstream_aws.py``): the first asks for a new address
    (``ccm-lb.io/replace-foreign-load-balancer``), so ours is built and upstream's NLB, target groups
    and node rules are deleted (upstream-policy.json: ``DeleteLoadBalancer``, ``DeleteTargetGroup``,
    ``RevokeSecurityGroupIngress`` on the nodes' group), then it is deleted; the second is deleted while
    upstream's Classic ELB serves it (the Classic ``DeleteLoadBalancer``, the rule that let its group in,
    and ``DeleteSecurityGroup`` of its ``k8s-elb-<name>`` group);
11. a Service the upstream provider served, its NLB taken over in place (``AddTags`` on what is not
    ours yet: upstream-policy.json ``AdoptUpstreamLoadBalancers``), its NodePort changed (upstream's node
    rule revoked and authorized again, the adopted target group deleted), then deleted;
12. a Classic ELB Service (classic-policy.json): created, re-synced, a node added and one removed, its
    ports, TLS (a certificate and a negotiation policy), draining, proxy protocol, health check and
    subnets changed, its own security group brought, a subnet dropped, then deleted;
13. a Service the upstream provider served with a Classic ELB, taken over in place (its group
    ``k8s-elb-<name>`` tagged, the backend group attached, upstream's node rule revoked, the ELB tagged:
    upstream-policy.json ``AdoptUpstreamElbSecurityGroups`` and ``AdoptUpstreamLoadBalancers``), then
    deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import MappingProxyType, SimpleNamespace
from typing import Any

import boto3

from ccm.cloudprovider import REPLACE_FOREIGN_ANNOTATION, LoadBalancerRequest, ServicePort
from providers.aws import annotations as ann
from providers.aws.provider import AWSProvider
from tests.support.aws import CLUSTER, Network, add_instance, service_resources
from tests.support.upstream_aws import (
    clb_exists,
    group_sources,
    make_upstream_clb,
    make_upstream_nlb,
    nlb_exists,
    upstream_rule_descriptions,
)

ANNOTATIONS = {
    ann.ADDITIONAL_RESOURCE_TAGS: "team=web,cost-center=42",
    ann.CROSS_ZONE: "true",
    ann.TARGET_GROUP_ATTRIBUTES: "deregistration_delay.timeout_seconds=60",
}


def request(network: Network) -> LoadBalancerRequest:
    return LoadBalancerRequest(
        cluster_name=CLUSTER,
        namespace="default",
        name="web",
        uid="00000000-0000-0000-0000-000000000001",
        ports=(
            ServicePort(name="http", protocol="TCP", port=80, node_port=30080),
            ServicePort(name="https", protocol="TCP", port=443, node_port=30443),
        ),
        nodes=network.nodes(),
        annotations=MappingProxyType({**ANNOTATIONS, ann.SUBNETS: _subnets(network, 2)}),
    )


def upstream_served(
    network: Network, *, name: str, uid: str, address: str, replace: bool
) -> LoadBalancerRequest:
    """A Service whose status holds the address of the upstream provider's load balancer."""
    annotations = {
        ann.SUBNETS: _subnets(network, 2),
        **({REPLACE_FOREIGN_ANNOTATION: "true"} if replace else {}),
    }
    return LoadBalancerRequest(
        cluster_name=CLUSTER,
        namespace="default",
        name=name,
        uid=uid,
        ports=(ServicePort(name="http", protocol="TCP", port=80, node_port=31080),),
        nodes=network.nodes(),
        annotations=MappingProxyType(annotations),
        status_addresses=(address,),
    )


def _subnets(network: Network, count: int) -> str:
    return ",".join(network.subnets[az] for az in sorted(network.subnets)[:count])


def _targets(lb_arn: str) -> dict[int, list[str]]:
    client = boto3.client("elbv2")
    out = {}
    for listener in client.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]:
        tg = listener["DefaultActions"][0]["TargetGroupArn"]
        health = client.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
        out[int(listener["Port"])] = sorted(h["Target"]["Id"] for h in health)
    return out


def _tag_listing_behind_once(provider: AWSProvider) -> None:
    """The tagging API lists a resource a while after it is made: the first listing comes back empty."""
    pending = [True]

    def empty_listing(**_: Any) -> Any:
        if pending and pending.pop():
            return SimpleNamespace(status_code=200, headers={}), {"ResourceTagMappingList": []}
        return None

    provider.clients.register("before-call.*.GetResources", empty_listing)


def run(provider: AWSProvider, network: Network, restarted: Callable[[], AWSProvider]) -> None:
    """The whole life; raises the provider's error (an AccessDenied, for a missing permission).

    ``restarted`` makes a new provider with the same credentials: a controller restart.
    """
    elbv2 = boto3.client("elbv2")  # root: the test's own view of the account
    req = request(network)

    # 1. create
    status = provider.ensure_load_balancer(request=req)
    lbs = elbv2.describe_load_balancers()["LoadBalancers"]
    assert [lb["DNSName"] for lb in lbs] == [status.ingress[0].hostname]
    lb_arn = lbs[0]["LoadBalancerArn"]
    instances = sorted(i for i, _ in network.instances)
    assert _targets(lb_arn) == {80: instances, 443: instances}

    # 2. unchanged
    provider.ensure_load_balancer(request=req)

    # 3. nodes: one added, then the first removed
    add_instance(network)
    req = req.with_nodes(network.nodes())
    provider.update_load_balancer(request=req)
    req = req.with_nodes(network.nodes()[1:])
    provider.update_load_balancer(request=req)
    remaining = sorted(n.provider_id.rsplit("/", 1)[-1] for n in req.nodes)
    assert _targets(lb_arn) == {80: remaining, 443: remaining}

    # the subnets get IPv6 CIDRs (seen by the provider made at the restart below) for step 7's dual stack
    ec2 = boto3.client("ec2")
    block = ec2.associate_vpc_cidr_block(VpcId=network.vpc_id, AmazonProvidedIpv6CidrBlock=True)
    prefix = block["Ipv6CidrBlockAssociation"]["Ipv6CidrBlock"].split("::")[0]
    for index, subnet in enumerate(sorted(network.subnets.values())):
        ec2.associate_subnet_cidr_block(SubnetId=subnet, Ipv6CidrBlock=f"{prefix}:{index:x}::/64")

    # 4. a restart while the tag listing is behind: the parts are found by name, their tags read back
    provider = restarted()
    _tag_listing_behind_once(provider)
    provider.ensure_load_balancer(request=req)
    assert _targets(lb_arn) == {80: remaining, 443: remaining}
    assert len(elbv2.describe_target_groups()["TargetGroups"]) == 2

    # 5. ports: 443 → 8443, and a new NodePort for 80
    req = dataclasses.replace(
        req,
        ports=(
            ServicePort(name="http", protocol="TCP", port=80, node_port=30180),
            ServicePort(name="alt", protocol="TCP", port=8443, node_port=30843),
        ),
    )
    provider.ensure_load_balancer(request=req)
    assert _targets(lb_arn) == {80: remaining, 8443: remaining}

    # 6. traffic policy Local, source ranges
    req = dataclasses.replace(
        req,
        external_traffic_policy="Local",
        health_check_node_port=32100,
        load_balancer_source_ranges=("203.0.113.0/24",),
    )
    provider.ensure_load_balancer(request=req)

    # 7. a tag removed, cross-zone off, a third subnet
    req = dataclasses.replace(
        req,
        annotations=MappingProxyType(
            {
                **ANNOTATIONS,
                ann.ADDITIONAL_RESOURCE_TAGS: "team=web",
                ann.CROSS_ZONE: "false",
                ann.SUBNETS: _subnets(network, 3),
                ann.CONNECTION_IDLE_TIMEOUT: "900",
            }
        ),
        ip_families=("IPv4", "IPv6"),
    )
    provider.ensure_load_balancer(request=req)
    lb = elbv2.describe_load_balancers(LoadBalancerArns=[lb_arn])["LoadBalancers"][0]
    assert lb["IpAddressType"] == "dualstack"
    listener = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"][0]["ListenerArn"]
    assert {"Key": "tcp.idle_timeout.seconds", "Value": "900"} in elbv2.describe_listener_attributes(
        ListenerArn=listener
    )["Attributes"]
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(network.subnets.values())
    assert "cost-center" not in {
        t["Key"] for t in elbv2.describe_tags(ResourceArns=[lb_arn])["TagDescriptions"][0]["Tags"]
    }

    # 8. a bring-your-own security group replaces the managed frontend group
    byo = boto3.client("ec2").create_security_group(
        GroupName="byo-web", Description="the user's own", VpcId=network.vpc_id
    )["GroupId"]
    req = dataclasses.replace(
        req, annotations=MappingProxyType({**req.annotations, ann.SECURITY_GROUPS: byo})
    )
    provider.ensure_load_balancer(request=req)
    lb = elbv2.describe_load_balancers(LoadBalancerArns=[lb_arn])["LoadBalancers"][0]
    assert byo in lb["SecurityGroups"]
    assert not [r for r in service_resources() if "security-group" in r["ResourceARN"]]

    # 9. delete
    provider.ensure_load_balancer_deleted(request=req)
    assert service_resources() == []
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []

    # 10. the upstream provider's NLB and Classic ELB (made as root, as upstream makes them)
    ports = ((80, 31080),)
    nlb_uid, clb_uid = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
    nlb = make_upstream_nlb(network, namespace="default", name="legacy-nlb", uid=nlb_uid, ports=ports)
    clb = make_upstream_clb(network, namespace="default", name="legacy-clb", uid=clb_uid, ports=ports)
    # the first Service asks for a new address: ours is built, then upstream's NLB and its parts go
    legacy = upstream_served(network, name="legacy-nlb", uid=nlb_uid, address=nlb.dns_name, replace=True)
    status = provider.ensure_load_balancer(request=legacy)
    assert status.ingress[0].hostname != nlb.dns_name
    assert not nlb_exists(nlb.name) and upstream_rule_descriptions(network) == set()
    provider.ensure_load_balancer_deleted(
        request=dataclasses.replace(legacy, status_addresses=(status.ingress[0].hostname,))
    )
    # the second is deleted while upstream's Classic ELB still serves it: that one goes too
    legacy = upstream_served(network, name="legacy-clb", uid=clb_uid, address=clb.dns_name, replace=False)
    provider.ensure_load_balancer_deleted(request=legacy)
    assert not clb_exists(clb.name) and clb.security_group not in group_sources(network)
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [clb.security_group]}])[
        "SecurityGroups"
    ]
    assert service_resources() == [] and elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert elbv2.describe_target_groups()["TargetGroups"] == []

    # 11. the upstream provider's NLB taken over in place (tags added to what is not ours yet), then a
    # NodePort change (a new target group, the adopted one deleted, upstream's node rule moved), deleted
    adopted_uid = "00000000-0000-0000-0000-00000000000c"
    nlb = make_upstream_nlb(network, namespace="default", name="adopted", uid=adopted_uid, ports=ports)
    adopted = upstream_served(network, name="adopted", uid=adopted_uid, address=nlb.dns_name, replace=False)
    status = provider.ensure_load_balancer(request=adopted)
    assert status.ingress[0].hostname == nlb.dns_name
    moved = dataclasses.replace(
        adopted, ports=(ServicePort(name="http", protocol="TCP", port=80, node_port=31081),)
    )
    provider.ensure_load_balancer(request=moved)
    assert upstream_rule_descriptions(network) == {
        f"kubernetes.io/rule/nlb/client={nlb.name}",
        "kubernetes.io/rule/nlb/mtu",
    }
    provider.ensure_load_balancer_deleted(request=moved)
    assert not nlb_exists(nlb.name) and upstream_rule_descriptions(network) == set()
    assert service_resources() == [] and elbv2.describe_target_groups()["TargetGroups"] == []

    # 12. a Classic ELB Service
    elb = boto3.client("elb")
    certificate = boto3.client("acm").request_certificate(DomainName="shop.example.com")["CertificateArn"]
    classic_annotations = {
        ann.TYPE: "classic",
        ann.ADDITIONAL_RESOURCE_TAGS: "team=shop,cost-center=42",
        ann.CROSS_ZONE: "true",
        ann.SUBNETS: _subnets(network, 2),
    }
    shop = dataclasses.replace(
        request(network),
        name="shop",
        uid="00000000-0000-0000-0000-00000000000d",
        nodes=network.nodes(),
        annotations=MappingProxyType(classic_annotations),
    )
    status = provider.ensure_load_balancer(request=shop)
    (described,) = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    assert described["DNSName"] == status.ingress[0].hostname
    name = described["LoadBalancerName"]
    provider.ensure_load_balancer(request=shop)
    add_instance(network)
    shop = shop.with_nodes(network.nodes())
    provider.update_load_balancer(request=shop)
    shop = shop.with_nodes(network.nodes()[1:])
    provider.update_load_balancer(request=shop)
    assert sorted(i["InstanceId"] for i in _classic(name)["Instances"]) == sorted(
        n.provider_id.rsplit("/", 1)[-1] for n in shop.nodes
    )
    shop = dataclasses.replace(
        shop,
        ports=(
            ServicePort(name="http", protocol="TCP", port=80, node_port=30280),
            ServicePort(name="https", protocol="TCP", port=443, node_port=30443),
        ),
        annotations=MappingProxyType(
            {
                **classic_annotations,
                ann.ADDITIONAL_RESOURCE_TAGS: "team=shop",
                ann.SSL_CERT: certificate,
                ann.SSL_PORTS: "443",
                ann.SSL_NEGOTIATION_POLICY: "ELBSecurityPolicy-TLS-1-2-2017-01",
                ann.CONNECTION_DRAINING_ENABLED: "true",
                ann.PROXY_PROTOCOL: "*",
                ann.HEALTHCHECK_INTERVAL: "20",
                ann.SUBNETS: _subnets(network, 3),
            }
        ),
    )
    provider.ensure_load_balancer(request=shop)
    listeners = {
        d["Listener"]["LoadBalancerPort"]: d["Listener"] for d in _classic(name)["ListenerDescriptions"]
    }
    assert listeners[443]["Protocol"] == "SSL" and listeners[80]["InstancePort"] == 30280
    byo = ec2.create_security_group(GroupName="byo-shop", Description="the user's own", VpcId=network.vpc_id)[
        "GroupId"
    ]
    shop = dataclasses.replace(
        shop,
        annotations=MappingProxyType(
            {**shop.annotations, ann.SECURITY_GROUPS: byo, ann.SUBNETS: _subnets(network, 2)}
        ),
    )
    provider.ensure_load_balancer(request=shop)
    assert byo in _classic(name)["SecurityGroups"]
    provider.ensure_load_balancer_deleted(request=shop)
    assert elb.describe_load_balancers()["LoadBalancerDescriptions"] == [] and service_resources() == []

    # 13. the upstream provider's Classic ELB taken over in place, then deleted
    kept_uid = "00000000-0000-0000-0000-00000000000e"
    clb = make_upstream_clb(network, namespace="default", name="kept", uid=kept_uid, ports=ports)
    kept = upstream_served(network, name="kept", uid=kept_uid, address=clb.dns_name, replace=False)
    status = provider.ensure_load_balancer(request=kept)
    assert status.ingress[0].hostname == clb.dns_name
    assert clb.security_group not in group_sources(network)
    provider.ensure_load_balancer_deleted(request=kept)
    assert not clb_exists(clb.name) and service_resources() == []


def _classic(name: str) -> dict[str, Any]:
    described: dict[str, Any] = boto3.client("elb").describe_load_balancers(LoadBalancerNames=[name])[
        "LoadBalancerDescriptions"
    ][0]
    return described

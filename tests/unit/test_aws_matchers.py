"""The AWS synthesizers' pure matchers: desired vs actual → what to do, without moto or any AWS.

Each matcher is the decision one synthesizer of ``providers/aws/deploy`` makes before it calls AWS
(the aws-load-balancer-controller's ``target_group_synthesizer.go`` keeps its matcher pure the same
way). The AWS behaviour each decision relies on is named next to the test that depends on it.
"""

from __future__ import annotations

from typing import Any

import pytest

from providers.aws import model
from providers.aws.deploy import backend_security_group as backend
from providers.aws.deploy import listeners, load_balancer, security_groups, sweep, target_groups, targets
from providers.aws.deploy.discovery import group_stack, public_subnets
from providers.aws.deploy.parts import Found, tag_changes
from providers.common.orphans import OrphanClock
from providers.common.spec_hash import spec_hash

HC = model.HealthCheck(protocol="TCP", port="traffic-port")
TG = model.TargetGroup(
    resource_id="target-group:80/TCP",
    name="k8s-default-web-0123456789",
    protocol="TCP",
    port=30080,
    health_check=HC,
)
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/k8s-default-web-0123456789/abc"
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/net/k8s-default-web-0dc8bec897/def"


def found_tg(spec: model.TargetGroup, *, hash_: str | None = None, arn: str = TG_ARN) -> Found:
    tags = {model.RESOURCE_TAG: spec.resource_id, model.SPEC_HASH_TAG: hash_ or spec_hash(spec)}
    return Found(arn=arn, tags=tags)


# -- target groups ---------------------------------------------------------------------------------------


def test_a_target_group_not_found_is_created() -> None:
    assert target_groups.match(TG, None) is target_groups.Action.CREATE


def test_a_target_group_of_another_name_is_replaced_by_a_new_one() -> None:
    """The name hashes what AWS cannot modify (port, protocol, NodePort): a new name is a new group."""
    other = found_tg(TG, arn=TG_ARN.replace("k8s-default-web-0123456789", "k8s-default-web-9999999999"))
    assert target_groups.match(TG, other) is target_groups.Action.CREATE


def test_a_target_group_with_another_spec_hash_is_modified_in_place() -> None:
    assert target_groups.match(TG, found_tg(TG, hash_="0" * 16)) is target_groups.Action.MODIFY


def test_an_unchanged_target_group_is_kept_without_a_call() -> None:
    assert target_groups.match(TG, found_tg(TG)) is target_groups.Action.KEEP


def test_an_unchanged_target_group_with_attributes_has_them_checked() -> None:
    """A crash between CreateTargetGroup (which tags the hash) and the attributes call leaves them unset."""
    spec = model.TargetGroup(**{**TG.__dict__, "attributes": (("proxy_protocol_v2.enabled", "true"),)})
    assert target_groups.match(spec, found_tg(spec)) is target_groups.Action.CHECK_ATTRIBUTES


def test_a_removed_target_group_attribute_goes_back_to_the_aws_default() -> None:
    have = {"proxy_protocol_v2.enabled": "true", "deregistration_delay.timeout_seconds": "300"}
    assert target_groups.attribute_changes(TG, have=have) == {"proxy_protocol_v2.enabled": "false"}


def test_a_udp_target_group_never_gets_unhealthy_connection_termination_reset() -> None:
    """botocore elbv2 TargetGroupAttribute.Key: it cannot be enabled on UDP target groups at all."""
    udp = model.TargetGroup(**{**TG.__dict__, "protocol": "UDP"})
    have = {"target_health_state.unhealthy.connection_termination.enabled": "false"}
    assert target_groups.attribute_changes(udp, have=have) == {}


def test_a_removed_success_codes_annotation_restores_the_default_matcher_of_http_checks() -> None:
    http = model.TargetGroup(
        **{**TG.__dict__, "health_check": model.HealthCheck(protocol="HTTP", port="10256")}
    )
    assert target_groups.modify_request(TG_ARN, http)["Matcher"] == {"HttpCode": "200-399"}
    assert "Matcher" not in target_groups.modify_request(TG_ARN, TG)


def test_a_new_target_group_carries_its_spec_hash_from_the_start() -> None:
    request = target_groups.create_request(TG, vpc_id="vpc-1")
    assert {"Key": model.SPEC_HASH_TAG, "Value": spec_hash(TG)} in request["Tags"]
    assert (request["VpcId"], request["TargetType"], request["Port"]) == ("vpc-1", "instance", 30080)


# -- listeners -------------------------------------------------------------------------------------------


def listener(
    port: int, protocol: str = "TCP", *, tg: str = TG_ARN, cert: str = "", policy: str = ""
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ListenerArn": f"arn:listener/{port}",
        "Port": port,
        "Protocol": protocol,
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg}],
    }
    if cert:
        out["Certificates"] = [{"CertificateArn": cert}]
    if policy:
        out["SslPolicy"] = policy
    return out


WANT_80 = model.Listener(port=80, protocol="TCP", target_group=TG.resource_id)
TG_ARNS = {TG.resource_id: TG_ARN}


def test_a_missing_listener_is_created_and_nothing_else_is_touched() -> None:
    plan = listeners.match(desired=[WANT_80], have=[], tg_arns=TG_ARNS)
    assert (plan.create, plan.delete, plan.modify) == ([WANT_80], [], {})


def test_a_listener_of_a_port_no_longer_wanted_is_deleted() -> None:
    plan = listeners.match(desired=[WANT_80], have=[listener(80), listener(8080)], tg_arns=TG_ARNS)
    assert (
        plan.delete == ["arn:listener/8080"] and plan.create == [] and list(plan.kept) == ["arn:listener/80"]
    )


def test_a_listener_whose_protocol_changes_is_made_again_on_the_same_port() -> None:
    tls = model.Listener(port=80, protocol="TLS", target_group=TG.resource_id, certificate_arn="arn:cert/1")
    plan = listeners.match(desired=[tls], have=[listener(80)], tg_arns=TG_ARNS)
    assert plan.delete == ["arn:listener/80"] and plan.create == [tls]


def test_a_listener_forwarding_to_an_old_target_group_is_switched_in_place() -> None:
    plan = listeners.match(desired=[WANT_80], have=[listener(80, tg="arn:old")], tg_arns=TG_ARNS)
    assert plan.modify == {
        "arn:listener/80": {
            "ListenerArn": "arn:listener/80",
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": TG_ARN}],
        }
    }


def test_a_tcp_listener_without_an_ssl_policy_is_left_alone() -> None:
    """AWS gives TCP, UDP and TCP_UDP listeners no SslPolicy (ELBv2 API reference, CreateListener:
    "[HTTPS and TLS listeners] The security policy"), so none is asked for and none compared."""
    plan = listeners.match(desired=[WANT_80], have=[listener(80)], tg_arns=TG_ARNS)
    assert plan.modify == {} and plan.create == [] and plan.delete == []


def test_a_changed_certificate_or_ssl_policy_modifies_the_tls_listener() -> None:
    tls = model.Listener(
        port=443, protocol="TLS", target_group=TG.resource_id, certificate_arn="arn:cert/2", ssl_policy="P2"
    )
    have = [listener(443, "TLS", cert="arn:cert/1", policy="P2")]
    assert listeners.match(desired=[tls], have=have, tg_arns=TG_ARNS).modify["arn:listener/443"][
        "Certificates"
    ] == [{"CertificateArn": "arn:cert/2"}]
    have = [listener(443, "TLS", cert="arn:cert/2", policy="P1")]
    assert (
        listeners.match(desired=[tls], have=have, tg_arns=TG_ARNS).modify["arn:listener/443"]["SslPolicy"]
        == "P2"
    )


def test_a_removed_idle_timeout_goes_back_to_350_seconds() -> None:
    """botocore elbv2 ListenerAttribute.Key tcp.idle_timeout.seconds: "The default is 350 seconds"."""
    assert listeners.attribute_changes(WANT_80, have={"tcp.idle_timeout.seconds": "60"}) == {
        "tcp.idle_timeout.seconds": "350"
    }
    assert listeners.attribute_changes(WANT_80, have={}) == {}


# -- targets ---------------------------------------------------------------------------------------------


def test_targets_are_deregistered_and_registered_by_difference() -> None:
    remove, add = targets.match(
        want=frozenset({"i-2", "i-3"}), have=frozenset({"i-1", "i-2"}), skip=frozenset()
    )
    assert (remove, add) == (["i-1"], ["i-3"])


def test_an_instance_recently_refused_as_not_running_is_not_registered_again() -> None:
    remove, add = targets.match(want=frozenset({"i-1", "i-2"}), have=frozenset(), skip=frozenset({"i-2"}))
    assert (remove, add) == ([], ["i-1"])


# -- security groups -------------------------------------------------------------------------------------


def test_only_the_difference_of_the_rules_is_revoked_and_authorized() -> None:
    rules = (
        model.Rule(protocol="tcp", from_port=80, to_port=80, cidr="10.0.0.0/8"),
        model.Rule(protocol="tcp", from_port=80, to_port=80, cidr="2001:db8::/32"),
    )
    have = security_groups.cidr_rules(
        [
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}],
            },
        ]
    )
    diff = security_groups.match_rules(desired=rules, have=have)
    assert diff.revoke == (("tcp", 80, 80, "0.0.0.0/0"),)
    assert diff.authorize == (rules[0],)


def test_an_ipv6_rule_is_sent_as_an_ipv6_range() -> None:
    perm = security_groups.permission(model.Rule(protocol="tcp", from_port=1, to_port=2, cidr="::/0"))
    assert "IpRanges" not in perm and perm["Ipv6Ranges"][0]["CidrIpv6"] == "::/0"


def test_a_node_group_with_one_of_the_backend_rules_gets_only_the_others() -> None:
    """AuthorizeSecurityGroupIngress fails as a whole on one duplicate (EC2 API reference), so only the
    missing permissions are sent."""
    wanted = backend.backend_permissions(
        backend_sg="sg-b", cluster_name="test", node_port_range=(30000, 32767), probe_port=10256
    )
    assert [(p["IpProtocol"], p["FromPort"]) for p in wanted] == [
        ("tcp", 30000),
        ("udp", 30000),
        ("tcp", 10256),
    ]
    have = [
        {"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 32767, "UserIdGroupPairs": [{"GroupId": "sg-b"}]}
    ]
    missing = backend.missing_permissions(wanted=wanted, have=have)
    assert [(p["IpProtocol"], p["FromPort"]) for p in missing] == [("udp", 30000), ("tcp", 10256)]


def test_the_health_port_inside_the_node_port_range_needs_no_rule_of_its_own() -> None:
    wanted = backend.backend_permissions(
        backend_sg="sg-b", cluster_name="test", node_port_range=(10000, 32767), probe_port=10256
    )
    assert len(wanted) == 2


def test_stale_tags_are_removed_but_never_aws_own_tags_or_the_spec_hash() -> None:
    have = {"aws:cloudformation:stack-name": "x", "team": "a", "old": "1", model.SPEC_HASH_TAG: "h"}
    stale, changed = tag_changes(have, {"team": "b"})
    assert stale == ["old"] and changed == [("team", "b")]


# -- load balancer ---------------------------------------------------------------------------------------

AZ_OF = {"subnet-a": "us-east-1a", "subnet-a2": "us-east-1a", "subnet-b": "us-east-1b"}


def zone(name: str, subnet: str, *, eip: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"ZoneName": name, "SubnetId": subnet}
    if eip:
        out["LoadBalancerAddresses"] = [{"AllocationId": eip}]
    return out


def test_unchanged_subnets_cost_no_call() -> None:
    plan = load_balancer.subnet_plan(
        want=[model.SubnetMapping(subnet_id="subnet-a")], zones=[zone("us-east-1a", "subnet-a")], az_of=AZ_OF
    )
    assert plan.calls == [] and plan.not_applied == []


def test_swapping_the_subnet_of_a_zone_takes_two_calls_leaving_the_zone_out_first() -> None:
    """SetSubnets: a zone moves to another subnet only by being left out first (the same-AZ swap rule)."""
    plan = load_balancer.subnet_plan(
        want=[model.SubnetMapping(subnet_id="subnet-a2"), model.SubnetMapping(subnet_id="subnet-b")],
        zones=[zone("us-east-1a", "subnet-a"), zone("us-east-1b", "subnet-b")],
        az_of=AZ_OF,
    )
    assert plan.calls == [[{"SubnetId": "subnet-b"}], [{"SubnetId": "subnet-a2"}, {"SubnetId": "subnet-b"}]]


def test_swapping_every_zone_at_once_is_refused_with_a_way_out() -> None:
    with pytest.raises(RuntimeError, match="one zone at a time"):
        load_balancer.subnet_plan(
            want=[model.SubnetMapping(subnet_id="subnet-a2")],
            zones=[zone("us-east-1a", "subnet-a")],
            az_of=AZ_OF,
        )


def test_a_new_elastic_ip_for_a_subnet_in_use_is_reported_not_applied() -> None:
    """AWS keeps the addresses of an enabled subnet (SetSubnets: "with their existing configurations")."""
    plan = load_balancer.subnet_plan(
        want=[model.SubnetMapping(subnet_id="subnet-a", allocation_id="eipalloc-new")],
        zones=[zone("us-east-1a", "subnet-a", eip="eipalloc-old")],
        az_of=AZ_OF,
    )
    assert plan.calls == []
    assert len(plan.not_applied) == 1 and "eipalloc-old" in plan.not_applied[0]


def test_an_nlb_attribute_no_longer_asked_for_goes_back_to_the_default() -> None:
    have = {"load_balancing.cross_zone.enabled": "true", "deletion_protection.enabled": "false"}
    assert load_balancer.attribute_changes(want=(), have=have) == {
        "load_balancing.cross_zone.enabled": "false"
    }


def test_a_new_nlb_gets_only_the_attributes_asked_for() -> None:
    want = (("load_balancing.cross_zone.enabled", "true"),)
    assert load_balancer.attribute_changes(want=want, have=None) == {
        "load_balancing.cross_zone.enabled": "true"
    }
    assert load_balancer.attribute_changes(want=(), have=None) == {}


# -- discovery -------------------------------------------------------------------------------------------


def test_listed_resources_are_sorted_into_a_stack_by_their_resource_tag() -> None:
    lb = Found(arn=LB_ARN, tags={model.RESOURCE_TAG: model.RESOURCE_LOAD_BALANCER})
    old = Found(arn=LB_ARN + "2", tags={model.RESOURCE_TAG: model.RESOURCE_LOAD_BALANCER})
    sg = Found(arn="arn:security-group/sg-1", tags={model.RESOURCE_TAG: model.RESOURCE_FRONTEND_SG})
    untagged = Found(arn="arn:x", tags={})
    stack = group_stack([lb, found_tg(TG), sg, old, untagged])
    assert stack.load_balancer is lb and stack.replaced == [old]
    assert [t.arn for t in stack.target_groups] == [TG_ARN] and [s.sg_id for s in stack.security_groups] == [
        "sg-1"
    ]


def test_a_subnet_without_its_own_route_table_is_public_when_the_main_one_routes_to_an_igw() -> None:
    tables = [
        {"Associations": [{"Main": True}], "Routes": [{"GatewayId": "igw-1"}]},
        {"Associations": [{"SubnetId": "subnet-private"}], "Routes": [{"GatewayId": "local"}]},
    ]
    assert public_subnets(tables=tables, subnet_ids=["subnet-a", "subnet-private"]) == {"subnet-a"}


# -- drift and orphans -----------------------------------------------------------------------------------


def stack_of(*, tg: model.TargetGroup = TG) -> model.Stack:
    return model.Stack(
        load_balancer=model.LoadBalancer(
            name="k8s-default-web-0dc8bec897", scheme="internet-facing", subnet_mappings=()
        ),
        target_groups=(tg,),
        listeners=(WANT_80,),
        frontend_security_group=None,
    )


def listed_lb(uid: str, stack: model.Stack) -> Found:
    return Found(
        arn=LB_ARN,
        tags={
            model.RESOURCE_TAG: model.RESOURCE_LOAD_BALANCER,
            model.SERVICE_UID_TAG: uid,
            model.SPEC_HASH_TAG: stack.spec_hash(),
        },
    )


def test_a_load_balancer_with_the_spec_hash_is_not_drifted_and_one_without_is() -> None:
    stack = stack_of()
    by_uid = sweep.by_service([listed_lb("u1", stack)])
    assert sweep.drifted_keys(stacks={"ns/a": ("u1", stack)}, by_uid=by_uid, full=False) == frozenset()
    assert sweep.drifted_keys(stacks={"ns/b": ("u2", stack)}, by_uid=by_uid, full=False) == {"ns/b"}


def test_a_full_pass_finds_a_missing_target_group_a_partial_one_does_not_look() -> None:
    stack = stack_of()
    by_uid = sweep.by_service([listed_lb("u1", stack)])
    assert sweep.drifted_keys(stacks={"ns/a": ("u1", stack)}, by_uid=by_uid, full=True) == {"ns/a"}
    by_uid = sweep.by_service(
        [listed_lb("u1", stack), Found(arn=TG_ARN, tags={**found_tg(TG).tags, model.SERVICE_UID_TAG: "u1"})]
    )
    assert sweep.drifted_keys(stacks={"ns/a": ("u1", stack)}, by_uid=by_uid, full=True) == frozenset()


def test_only_resources_of_a_uid_no_live_service_has_are_orphans() -> None:
    stack = stack_of()
    untagged = Found(arn="arn:untagged", tags={})
    by_uid = sweep.by_service([listed_lb("live", stack), listed_lb("gone", stack), untagged])
    assert [
        o.tags[model.SERVICE_UID_TAG] for o in sweep.orphans(by_uid=by_uid, live=frozenset({"live"}))
    ] == ["gone"]


def test_an_orphan_is_due_only_after_the_grace_period() -> None:
    clock = OrphanClock(grace=600)
    assert clock.observe(["lb-1"], now=0) == []
    assert clock.observe(["lb-1"], now=599) == []
    assert clock.observe(["lb-1"], now=600) == ["lb-1"]


def test_an_orphan_whose_service_comes_back_starts_its_grace_again() -> None:
    clock = OrphanClock(grace=600)
    clock.observe(["lb-1"], now=0)
    clock.observe([], now=300)
    assert clock.observe(["lb-1"], now=700) == []


def test_a_partial_listing_leaves_the_clocks_of_kinds_it_did_not_list_running() -> None:
    clock = OrphanClock(grace=600)
    clock.observe([":loadbalancer/a", ":targetgroup/b"], now=0)
    clock.observe([":loadbalancer/a"], now=300, listed=lambda arn: ":loadbalancer/" in arn)
    assert clock.observe([":loadbalancer/a", ":targetgroup/b"], now=600) == [
        ":loadbalancer/a",
        ":targetgroup/b",
    ]


def test_a_delete_that_failed_keeps_the_orphan_due() -> None:
    """An entry is forgotten only once the resource is gone (the sweep calls forget), never before."""
    clock = OrphanClock(grace=0)
    assert clock.observe(["sg-1"], now=0) == ["sg-1"]
    assert clock.observe(["sg-1"], now=1) == ["sg-1"]
    assert clock.seen() == {"sg-1": 0}
    clock.forget("sg-1")
    assert clock.seen() == {}

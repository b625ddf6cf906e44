"""Where moto is laxer than AWS, make it behave like AWS (reference/aws-provider.md §5).

Installed as botocore event handlers on the provider's own clients, so the provider code runs
unchanged against moto and meets AWS's real answers:

* ``CreateLoadBalancer`` with an existing name: AWS returns the existing LB when the settings are
  the same and ``DuplicateLoadBalancerName`` otherwise (moto makes a second LB);
* ``CreateListener`` on a port in use: AWS says ``DuplicateListener`` (moto adds another);
* ``DescribeTargetGroups(LoadBalancerArn)`` for an LB without target groups: AWS returns an empty
  list (moto raises ``TargetGroupNotFound``);
* ``DeleteSecurityGroup`` of a group still attached to a load balancer (an NLB or a Classic ELB):
  ``DependencyViolation``;
* ``RegisterTargets`` of an instance that does not exist (terminated long ago) or is not running:
  ``InvalidTarget``, and nothing of the call is registered. Sources: the ELBv2 API reference of
  RegisterTargets ("If the target is an EC2 instance, it must be in the running state when you
  register it") and botocore's elbv2 service-2.json, ``InvalidTargetException``: "The specified
  target does not exist, is not in the same VPC as the target group, or has an unsupported instance
  type". moto refuses a non-running instance only after registering the targets before it, and
  accepts an unknown instance ID;
* ``RegisterInstancesWithLoadBalancer`` (Classic ELB) of an instance that does not exist or is not
  running: ``InvalidInstance``, and nothing of the call is registered (moto registers any ID). Sources:
  the Classic ELB API reference of RegisterInstancesWithLoadBalancer ("The instance must be a running
  instance in the same network as the load balancer") and botocore's elb service-2.json,
  ``InvalidEndPointException`` (code ``InvalidInstance``, "The specified endpoint is not valid");
* ``AuthorizeSecurityGroupIngress`` with one permission that already exists: ``InvalidPermission.Duplicate``
  and none of the call's permissions is added (moto adds those before the duplicate). Sources: the EC2
  API reference's error codes ("InvalidPermission.Duplicate: The specified inbound or outbound rule
  already exists for that security group") and upstream cloud-provider-aws, pkg/providers/v1/aws.go
  ``addSecurityGroupIngress``, which diffs against the group's permissions before authorizing only
  the missing ones, because the call fails as a whole;
* ``ModifyTargetGroup`` leaving a health-check timeout longer than the interval (or, for HTTP and HTTPS
  checks, not shorter): ``ValidationError``. moto checks this on ``CreateTargetGroup`` only, with AWS's
  messages (moto/elbv2/models.py ``create_target_group``); AWS validates the resulting health check
  of a modify the same way. Ranges: botocore elbv2 service-2.json, ``HealthCheckIntervalSeconds``
  5-300 and ``HealthCheckTimeoutSeconds`` 2-120 (defaults 10 s TCP/TLS/HTTPS, 6 s HTTP);
* target-group attributes per protocol, from botocore elbv2 service-2.json, ``TargetGroupAttribute.Key``:
  a new target group holds the NLB attributes with AWS's defaults (moto has none of them), where
  ``deregistration_delay.connection_termination.enabled`` is true for UDP and TCP_UDP ("For new
  UDP/TCP_UDP target groups the default is true") and
  ``target_health_state.unhealthy.connection_termination.enabled`` is false for them ("can't be
  enabled for UDP and TCP_UDP target groups"); ``ModifyTargetGroupAttributes`` refuses
  (``InvalidConfigurationRequest``) ``preserve_client_ip.enabled=false`` on UDP/TCP_UDP ("Client IP
  preservation can't be disabled for UDP and TCP_UDP target groups"), enabling unhealthy connection
  termination on them, a non-zero ``target_health_state.unhealthy.draining_interval_seconds`` while
  unhealthy connection termination is on ("can only be configured when ... is false"), and
  ``stickiness.enabled=true`` on a TLS target group (ELB NLB guide, "Sticky sessions": not supported
  with TLS listeners and TLS target groups);
* ``DeleteLoadBalancer`` of an NLB with ``deletion_protection.enabled=true``: ``OperationNotPermitted``
  (moto deletes it). Source: the ELBv2 API reference, DeleteLoadBalancer ("If deletion protection is
  enabled, the load balancer cannot be deleted") and its ``OperationNotPermitted`` error;
* ``ModifyListenerAttributes`` with ``tcp.idle_timeout.seconds`` outside 60-6000 or on a listener that is
  not TCP: ``ValidationError`` (moto stores anything). Source: botocore elbv2 service-2.json,
  ``ListenerAttribute.Key`` ("The valid range is 60-6000 seconds"), and the NLB guide (the idle timeout
  of TLS and UDP flows is fixed);
* the subnets of an NLB keep their addresses: ``DescribeLoadBalancers`` lists each enabled subnet's
  ``LoadBalancerAddresses`` (the Elastic IP allocation or private IPv4 address it was given; moto lists
  none), and ``SetSubnets`` that gives a subnet already enabled another address is refused
  (``InvalidConfigurationRequest``; SetSubnets: enabled subnets are given "with their existing
  configurations");
* ``CreateListener`` or ``ModifyListener`` forwarding to a target group another NLB already uses:
  ``TargetGroupAssociationLimit`` (moto allows it). Source: the NLB quotas, "Load balancers per target
  group: 1", and the API reference's ``TargetGroupAssociationLimitException``;
* ``ModifyTargetGroup`` with ``Matcher``: moto applies it only to HTTP(S) target groups; AWS applies it
  to any target group with an HTTP(S) health check (botocore elbv2 ``Matcher``: "For Network Load
  Balancers, ... values from 200 to 599"), so the matcher it set is what DescribeTargetGroups shows;
* ``SetSubnets`` with one subnet on an NLB: moto refuses fewer than two zones (the ALB rule); NLBs take
  one or more (SetSubnets: "[Network Load Balancers] You can specify subnets from one or more
  Availability Zones"). Such a call is answered as AWS does and leaves moto's zones until the next;
* ``DescribeSubnets``: moto gives a subnet's IPv6 association state as a stringified dict; it is
  the word AWS sends (EC2 API reference, ``SubnetCidrBlockState``);
* with ``deleted_resources_linger`` set, ``GetResources`` keeps listing load balancers, target groups
  and security groups deleted through the provider (and those the test puts in ``lingering``), with
  their last tags, as the Resource Groups Tagging API does for a while: its API reference says
  GetResources "returns all the tagged or previously tagged resources" and that the tagging data is
  eventually consistent. moto forgets a deleted resource at once.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.exceptions import ClientError

from providers.aws.client import AWSClients

_OK = SimpleNamespace(status_code=200, headers={})


def _params(params: dict[str, Any]) -> dict[str, str]:
    body = params.get("body", {})
    if isinstance(body, bytes | str):
        text = body.decode() if isinstance(body, bytes) else body
        return {k: v[0] for k, v in parse_qs(text).items()}
    return {k: str(v) for k, v in body.items()}


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _rules(perm: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """One security-group permission as single rules: (protocol, from, to, source)."""
    head = (str(perm.get("IpProtocol", "")), int(perm.get("FromPort", -1)), int(perm.get("ToPort", -1)))
    sources = [g["GroupId"] for g in perm.get("UserIdGroupPairs", [])]
    sources += [r["CidrIp"] for r in perm.get("IpRanges", [])]
    sources += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
    return [(*head, source) for source in sources]


class AWSBehaviour:
    """Install with ``AWSBehaviour(clients).install()``; uses its own moto client to look things up."""

    def __init__(self, clients: AWSClients) -> None:
        self.clients = clients
        self.elbv2 = boto3.client("elbv2")
        self.ec2 = boto3.client("ec2")
        self.attached_sgs_block_delete = True
        self.deleted_resources_linger = False
        self.lingering: list[dict[str, Any]] = []  # GetResources items of deleted resources
        self.addresses: dict[str, dict[str, dict[str, str]]] = {}  # LB ARN → subnet → its fixed address
        self.matchers: dict[str, str] = {}  # TG ARN → the HttpCode ModifyTargetGroup set

    def install(self) -> AWSBehaviour:
        self.clients.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.*", self._elbv2)
        self.clients.elbv2.meta.events.register(
            "after-call.elastic-load-balancing-v2.CreateTargetGroup", self._target_group_defaults
        )
        self.clients.ec2.meta.events.register("before-call.ec2.DeleteSecurityGroup", self._delete_sg)
        self.clients.elb.meta.events.register(
            "before-call.elastic-load-balancing.RegisterInstancesWithLoadBalancer", self._register_instances
        )
        self.clients.tagging.meta.events.register("before-parameter-build.*.GetResources", self._tag_query)
        self.clients.tagging.meta.events.register("after-call.*.GetResources", self._get_resources)
        for client in (self.clients.elbv2, self.clients.ec2):
            client.meta.events.register("before-call.*.DeleteLoadBalancer", self._remember_deleted)
            client.meta.events.register("before-call.*.DeleteTargetGroup", self._remember_deleted)
            client.meta.events.register("before-call.*.DeleteSecurityGroup", self._remember_deleted)
        self.clients.ec2.meta.events.register(
            "before-call.ec2.AuthorizeSecurityGroupIngress", self._authorize_ingress
        )
        self.clients.elbv2.meta.events.register(
            "after-call.elastic-load-balancing-v2.CreateLoadBalancer", self._remember_addresses
        )
        self.clients.ec2.meta.events.register("after-call.ec2.DescribeSubnets", self._ipv6_state)
        self.clients.elbv2.meta.events.register(
            "after-call.elastic-load-balancing-v2.DescribeTargetGroups", self._describe_matchers
        )
        self.clients.elbv2.meta.events.register(
            "after-call.elastic-load-balancing-v2.DescribeLoadBalancers", self._describe_addresses
        )
        return self

    @staticmethod
    def _ipv6_state(*, parsed: dict[str, Any], **_: Any) -> None:
        """moto 5.2 answers ``Ipv6CidrBlockState.State`` of a subnet with a stringified dict
        (``"{'State': 'associated'}"``); the EC2 API reference's SubnetCidrBlockState has the word."""
        for subnet in parsed.get("Subnets", []):
            for association in subnet.get("Ipv6CidrBlockAssociationSet", []):
                state = association.get("Ipv6CidrBlockState", {})
                if "associated" in str(state.get("State", "")) and "dis" not in str(state.get("State", "")):
                    state["State"] = "associated"

    def _describe_matchers(self, *, parsed: dict[str, Any], **_: Any) -> None:
        for tg in parsed.get("TargetGroups", []):
            if tg["TargetGroupArn"] in self.matchers:
                tg["Matcher"] = {"HttpCode": self.matchers[tg["TargetGroupArn"]]}

    def _mappings(self, p: dict[str, str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for index in sorted({k.split(".")[2] for k in p if k.startswith("SubnetMappings.member.")}, key=int):
            prefix = f"SubnetMappings.member.{index}."
            subnet = p.get(prefix + "SubnetId", "")
            out[subnet] = {
                k: p[prefix + k] for k in ("AllocationId", "PrivateIPv4Address") if p.get(prefix + k)
            }
        return out

    def _remember_addresses(self, *, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        for lb in parsed.get("LoadBalancers", []):
            if lb["LoadBalancerArn"] not in self.addresses:
                self.addresses[lb["LoadBalancerArn"]] = dict(context.get("mappings", {}))

    def _describe_addresses(self, *, parsed: dict[str, Any], **_: Any) -> None:
        for lb in parsed.get("LoadBalancers", []):
            known = self.addresses.get(lb["LoadBalancerArn"], {})
            for zone in lb.get("AvailabilityZones", []):
                address = known.get(zone["SubnetId"])
                if address:
                    zone["LoadBalancerAddresses"] = [dict(address)]

    def _elbv2(self, *, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        name = model.name
        p = _params(params)
        if name == "CreateLoadBalancer":
            context["mappings"] = self._mappings(p)
            try:
                existing = self.elbv2.describe_load_balancers(Names=[p["Name"]])["LoadBalancers"][0]
            except ClientError:
                return None
            want_subnets = sorted(
                v for k, v in p.items() if k.startswith("SubnetMappings.member.") and k.endswith(".SubnetId")
            )
            have_subnets = sorted(z["SubnetId"] for z in existing.get("AvailabilityZones", []))
            if p.get("Scheme", "internet-facing") != existing.get("Scheme") or want_subnets != have_subnets:
                raise _error(
                    "DuplicateLoadBalancerName",
                    f"A load balancer with the name '{p['Name']}' already exists",
                    name,
                )
            return _OK, {"LoadBalancers": [existing]}  # AWS: same name and settings → the same LB
        if name == "CreateListener":
            for listener in self.elbv2.describe_listeners(LoadBalancerArn=p["LoadBalancerArn"])["Listeners"]:
                if str(listener["Port"]) == p["Port"]:
                    raise _error(
                        "DuplicateListener",
                        "A listener already exists on this port for this load balancer",
                        name,
                    )
        if name in ("CreateListener", "ModifyListener"):
            self._one_load_balancer_per_target_group(name, p)
        if name == "DeleteLoadBalancer":
            attributes = self.elbv2.describe_load_balancer_attributes(LoadBalancerArn=p["LoadBalancerArn"])
            if {"Key": "deletion_protection.enabled", "Value": "true"} in attributes["Attributes"]:
                raise _error(
                    "OperationNotPermitted",
                    f"Load balancer '{p['LoadBalancerArn']}' cannot be deleted because deletion protection "
                    "is enabled",
                    name,
                )
            self.addresses.pop(p["LoadBalancerArn"], None)
        if name == "ModifyListenerAttributes":
            self._modify_listener_attributes(p)
        if name == "SetSubnets":
            known = self.addresses.setdefault(p["LoadBalancerArn"], {})
            asked = self._mappings(p)
            for subnet, address in asked.items():
                if subnet in known and known[subnet] != address:
                    raise _error(
                        "InvalidConfigurationRequest",
                        f"The address of subnet '{subnet}' cannot be changed while it is enabled",
                        name,
                    )
            self.addresses[p["LoadBalancerArn"]] = {s: known.get(s, a) for s, a in asked.items()}
        if name == "ModifyTargetGroup" and "Matcher.HttpCode" in p:
            self.matchers[p["TargetGroupArn"]] = p["Matcher.HttpCode"]
        if name == "SetSubnets" and len(self._mappings(p)) == 1:
            zones = [
                {
                    "SubnetId": subnet,
                    "ZoneName": self.ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0][
                        "AvailabilityZone"
                    ],
                }
                for subnet in self._mappings(p)
            ]
            return _OK, {"AvailabilityZones": zones}
        if name == "RegisterTargets":
            self._register_targets(p)
        if name == "ModifyTargetGroup":
            self._modify_target_group(p)
        if name == "ModifyTargetGroupAttributes":
            self._modify_target_group_attributes(p)
        if name == "DescribeTargetGroups" and "LoadBalancerArn" in p:
            listeners = self.elbv2.describe_listeners(LoadBalancerArn=p["LoadBalancerArn"])["Listeners"]
            if not listeners:
                return _OK, {"TargetGroups": []}
        return None

    def _one_load_balancer_per_target_group(self, name: str, p: dict[str, str]) -> None:
        tgs = [
            v
            for k, v in p.items()
            if k.startswith("DefaultActions.member.") and k.endswith(".TargetGroupArn")
        ]
        if name == "CreateListener":
            lb = p["LoadBalancerArn"]
        else:
            lb = self.elbv2.describe_listeners(ListenerArns=[p["ListenerArn"]])["Listeners"][0][
                "LoadBalancerArn"
            ]
        for tg in tgs:
            described = self.elbv2.describe_target_groups(TargetGroupArns=[tg])["TargetGroups"][0]
            # moto keeps the ARN of a deleted NLB on its target groups; AWS frees them with the NLB
            live = {x["LoadBalancerArn"] for x in self.elbv2.describe_load_balancers()["LoadBalancers"]}
            others = [arn for arn in described.get("LoadBalancerArns", []) if arn != lb and arn in live]
            if others:
                raise _error(
                    "TargetGroupAssociationLimit",
                    f"Target group {tg} cannot be associated with more than one load balancer",
                    name,
                )

    def _modify_listener_attributes(self, p: dict[str, str]) -> None:
        listener = self.elbv2.describe_listeners(ListenerArns=[p["ListenerArn"]])["Listeners"][0]
        asked = {
            p[f"{i}.Key"]: p.get(f"{i}.Value", "")
            for i in sorted({k.rsplit(".", 1)[0] for k in p if k.startswith("Attributes.member.")})
        }
        timeout = asked.get("tcp.idle_timeout.seconds")
        if timeout is None:
            return
        if listener["Protocol"] != "TCP" or not timeout.isdigit() or not 60 <= int(timeout) <= 6000:
            raise _error(
                "ValidationError",
                f"tcp.idle_timeout.seconds '{timeout}' is not valid for a {listener['Protocol']} listener",
                "ModifyListenerAttributes",
            )

    def _remember_deleted(self, *, params: dict[str, Any], **_: Any) -> None:
        if not self.deleted_resources_linger:
            return
        p = _params(params)
        arn = p.get("LoadBalancerArn") or p.get("TargetGroupArn") or ""
        tagging = boto3.client("resourcegroupstaggingapi")
        for page in tagging.get_paginator("get_resources").paginate():
            for item in page["ResourceTagMappingList"]:
                if item["ResourceARN"] == arn or item["ResourceARN"].endswith(f"/{p.get('GroupId', '?')}"):
                    self.lingering.append(item)

    @staticmethod
    def _tag_query(*, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["tag_query"] = dict(params)

    def _get_resources(self, *, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.lingering or parsed.get("PaginationToken"):
            return
        listed = {item["ResourceARN"] for item in parsed.get("ResourceTagMappingList", [])}
        query = context.get("tag_query", {})
        filters = query.get("TagFilters", [])
        types = query.get("ResourceTypeFilters", [])

        def matches(item: dict[str, Any]) -> bool:
            tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            kind = {
                "elasticloadbalancing:loadbalancer": ":loadbalancer/",
                "elasticloadbalancing:targetgroup": ":targetgroup/",
                "ec2:security-group": ":security-group/",
            }
            if types and not any(kind.get(t, "?") in item["ResourceARN"] for t in types):
                return False
            return all(
                f["Key"] in tags and (not f.get("Values") or tags[f["Key"]] in f["Values"]) for f in filters
            )

        parsed.setdefault("ResourceTagMappingList", []).extend(
            item for item in self.lingering if item["ResourceARN"] not in listed and matches(item)
        )

    def _target_group_defaults(self, *, parsed: dict[str, Any], **_: Any) -> None:
        for tg in parsed.get("TargetGroups", []):
            udp = tg["Protocol"] in ("UDP", "TCP_UDP")
            defaults = {
                "preserve_client_ip.enabled": "true",
                "proxy_protocol_v2.enabled": "false",
                "deregistration_delay.connection_termination.enabled": "true" if udp else "false",
                "target_health_state.unhealthy.connection_termination.enabled": "false" if udp else "true",
                "target_health_state.unhealthy.draining_interval_seconds": "0",
            }
            have = {
                a["Key"]
                for a in self.elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])[
                    "Attributes"
                ]
            }
            missing = [{"Key": k, "Value": v} for k, v in defaults.items() if k not in have]
            if missing:
                self.elbv2.modify_target_group_attributes(
                    TargetGroupArn=tg["TargetGroupArn"], Attributes=missing
                )

    def _modify_target_group_attributes(self, p: dict[str, str]) -> None:
        arn = p["TargetGroupArn"]
        protocol = self.elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]["Protocol"]
        current = {
            a["Key"]: a["Value"]
            for a in self.elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        }
        asked = {
            p[f"{i}.Key"]: p.get(f"{i}.Value", "")
            for i in sorted({k.rsplit(".", 1)[0] for k in p if k.startswith("Attributes.member.")})
        }
        after = {**current, **asked}
        udp = protocol in ("UDP", "TCP_UDP")
        problem = ""
        if udp and asked.get("preserve_client_ip.enabled") == "false":
            problem = "Client IP preservation can't be disabled for UDP and TCP_UDP target groups"
        elif udp and asked.get("target_health_state.unhealthy.connection_termination.enabled") == "true":
            problem = "Unhealthy connection termination can't be enabled for UDP and TCP_UDP target groups"
        elif protocol == "TLS" and asked.get("stickiness.enabled") == "true":
            problem = "Stickiness is not supported for TLS target groups"
        elif (
            after.get("target_health_state.unhealthy.draining_interval_seconds", "0") != "0"
            and after.get("target_health_state.unhealthy.connection_termination.enabled", "true") == "true"
        ):
            problem = (
                "The unhealthy draining interval can only be set when unhealthy connection termination is off"
            )
        if problem:
            raise _error("InvalidConfigurationRequest", problem, "ModifyTargetGroupAttributes")

    def _modify_target_group(self, p: dict[str, str]) -> None:
        tg = self.elbv2.describe_target_groups(TargetGroupArns=[p["TargetGroupArn"]])["TargetGroups"][0]
        protocol = p.get("HealthCheckProtocol", tg.get("HealthCheckProtocol", "TCP"))
        interval = int(p.get("HealthCheckIntervalSeconds", tg.get("HealthCheckIntervalSeconds", 30)))
        timeout = int(p.get("HealthCheckTimeoutSeconds", tg.get("HealthCheckTimeoutSeconds", 10)))
        http = protocol in ("HTTP", "HTTPS")
        if timeout > interval or (http and timeout == interval):
            smaller = "smaller than" if http else "smaller than or equal to"
            raise _error(
                "ValidationError",
                f"Health check timeout '{timeout}' must be {smaller} the interval '{interval}'",
                "ModifyTargetGroup",
            )

    def _register_instances(self, *, params: dict[str, Any], **_: Any) -> None:
        p = _params(params)
        ids = [
            v for k, v in sorted(p.items()) if k.startswith("Instances.member.") and k.endswith(".InstanceId")
        ]
        if ids and self._not_running(ids):
            raise _error(
                "InvalidInstance", "The specified endpoint is not valid.", "RegisterInstancesWithLoadBalancer"
            )

    def _not_running(self, instances: list[str]) -> list[str]:
        state: dict[str, str] = {}
        for reservation in self.ec2.describe_instances(
            Filters=[{"Name": "instance-id", "Values": instances}]
        )["Reservations"]:
            for instance in reservation["Instances"]:
                state[instance["InstanceId"]] = instance["State"]["Name"]
        return [i for i in instances if state.get(i) != "running"]

    def _register_targets(self, p: dict[str, str]) -> None:
        ids = [v for k, v in sorted(p.items()) if k.startswith("Targets.member.") and k.endswith(".Id")]
        instances = [i for i in ids if i.startswith("i-")]
        if not instances:
            return
        state: dict[str, str] = {}
        for reservation in self.ec2.describe_instances(
            Filters=[{"Name": "instance-id", "Values": instances}]
        )["Reservations"]:
            for instance in reservation["Instances"]:
                state[instance["InstanceId"]] = instance["State"]["Name"]
        bad = [i for i in instances if state.get(i) != "running"]
        if bad:
            raise _error(
                "InvalidTarget",
                "The following targets are not in a running state and cannot be registered: "
                + ", ".join(f"'{i}'" for i in bad),
                "RegisterTargets",
            )

    def _authorize_ingress(self, *, params: dict[str, Any], **_: Any) -> Any:
        p = _params(params)
        group = p.get("GroupId", "")
        if not group:
            return None
        existing = self.ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
        have = {rule for perm in existing.get("IpPermissions", []) for rule in _rules(perm)}
        indexes = sorted({k.split(".")[1] for k in p if k.startswith("IpPermissions.")}, key=int)
        for n in indexes:
            prefix = f"IpPermissions.{n}."
            perm: dict[str, Any] = {
                "IpProtocol": p.get(prefix + "IpProtocol", ""),
                "FromPort": int(p.get(prefix + "FromPort", -1)),
                "ToPort": int(p.get(prefix + "ToPort", -1)),
                "UserIdGroupPairs": [
                    {"GroupId": v}
                    for k, v in p.items()
                    if k.startswith(prefix + "Groups.") and k.endswith(".GroupId")
                ],
                "IpRanges": [
                    {"CidrIp": v}
                    for k, v in p.items()
                    if k.startswith(prefix + "IpRanges.") and k.endswith(".CidrIp")
                ],
                "Ipv6Ranges": [
                    {"CidrIpv6": v}
                    for k, v in p.items()
                    if k.startswith(prefix + "Ipv6Ranges.") and k.endswith(".CidrIpv6")
                ],
            }
            duplicate = next((rule for rule in _rules(perm) if rule in have), None)
            if duplicate is not None:
                raise _error(
                    "InvalidPermission.Duplicate",
                    f"the specified rule {duplicate} already exists",
                    "AuthorizeSecurityGroupIngress",
                )
        return None

    def _delete_sg(self, *, params: dict[str, Any], **_: Any) -> Any:
        if not self.attached_sgs_block_delete:
            return None
        group = _params(params).get("GroupId", "")
        attached = [
            lb.get("SecurityGroups", []) for lb in self.elbv2.describe_load_balancers()["LoadBalancers"]
        ]
        attached += [
            lb.get("SecurityGroups", [])
            for lb in boto3.client("elb").describe_load_balancers()["LoadBalancerDescriptions"]
        ]
        if any(group in groups for groups in attached):
            raise _error(
                "DependencyViolation", f"resource {group} has a dependent object", "DeleteSecurityGroup"
            )
        return None

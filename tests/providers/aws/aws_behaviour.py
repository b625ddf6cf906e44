"""Where moto is laxer than AWS, make it behave like AWS (reference/aws-provider.md §5).

Installed as botocore event handlers on the provider's own clients, so the provider code runs
unchanged against moto and meets AWS's real answers:

* ``CreateLoadBalancer`` with an existing name: AWS returns the existing LB when the settings are
  the same and ``DuplicateLoadBalancerName`` otherwise (moto makes a second LB);
* ``CreateListener`` on a port in use: AWS says ``DuplicateListener`` (moto adds another);
* ``DescribeTargetGroups(LoadBalancerArn)`` for an LB without target groups: AWS returns an empty
  list (moto raises ``TargetGroupNotFound``);
* ``DeleteSecurityGroup`` of a group still attached to a load balancer: ``DependencyViolation``;
* ``RegisterTargets`` of an instance that does not exist (terminated long ago) or is not running:
  ``InvalidTarget``, and nothing of the call is registered. Sources: the ELBv2 API reference of
  RegisterTargets ("If the target is an EC2 instance, it must be in the running state when you
  register it") and botocore's elbv2 service-2.json, ``InvalidTargetException``: "The specified
  target does not exist, is not in the same VPC as the target group, or has an unsupported instance
  type". moto refuses a non-running instance only after registering the targets before it, and
  accepts an unknown instance ID;
* ``AuthorizeSecurityGroupIngress`` with one permission that already exists: ``InvalidPermission.Duplicate``
  and none of the call's permissions is added (moto adds those before the duplicate). Sources: the EC2
  API reference's error codes ("InvalidPermission.Duplicate: The specified inbound or outbound rule
  already exists for that security group") and upstream cloud-provider-aws, pkg/providers/v1/aws.go
  ``addSecurityGroupIngress``, which diffs against the group's permissions before authorizing only
  the missing ones, because the call fails as a whole.
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

    def install(self) -> AWSBehaviour:
        self.clients.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.*", self._elbv2)
        self.clients.ec2.meta.events.register("before-call.ec2.DeleteSecurityGroup", self._delete_sg)
        self.clients.ec2.meta.events.register(
            "before-call.ec2.AuthorizeSecurityGroupIngress", self._authorize_ingress
        )
        return self

    def _elbv2(self, *, model: Any, params: dict[str, Any], **_: Any) -> Any:
        name = model.name
        p = _params(params)
        if name == "CreateLoadBalancer":
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
        if name == "RegisterTargets":
            self._register_targets(p)
        if name == "DescribeTargetGroups" and "LoadBalancerArn" in p:
            listeners = self.elbv2.describe_listeners(LoadBalancerArn=p["LoadBalancerArn"])["Listeners"]
            if not listeners:
                return _OK, {"TargetGroups": []}
        return None

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
        for lb in self.elbv2.describe_load_balancers()["LoadBalancers"]:
            if group in lb.get("SecurityGroups", []):
                raise _error(
                    "DependencyViolation", f"resource {group} has a dependent object", "DeleteSecurityGroup"
                )
        return None

"""Where moto is laxer than AWS, make it behave like AWS (reference/aws-provider.md §5).

Installed as botocore event handlers on the provider's own clients, so the provider code runs
unchanged against moto and meets AWS's real answers:

* ``CreateLoadBalancer`` with an existing name: AWS returns the existing LB when the settings are
  the same and ``DuplicateLoadBalancerName`` otherwise (moto makes a second LB);
* ``CreateListener`` on a port in use: AWS says ``DuplicateListener`` (moto adds another);
* ``DescribeTargetGroups(LoadBalancerArn)`` for an LB without target groups: AWS returns an empty
  list (moto raises ``TargetGroupNotFound``);
* ``DeleteSecurityGroup`` of a group still attached to a load balancer: ``DependencyViolation``.
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
        if name == "DescribeTargetGroups" and "LoadBalancerArn" in p:
            listeners = self.elbv2.describe_listeners(LoadBalancerArn=p["LoadBalancerArn"])["Listeners"]
            if not listeners:
                return _OK, {"TargetGroups": []}
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

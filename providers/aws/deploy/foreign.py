"""Load balancers the upstream cloud provider (cloud-provider-aws) built for a Service: found, named in
a ``ForeignLoadBalancer`` refusal, and deleted only when the Service accepts a new address or is gone.

Upstream names a Service's NLB or Classic ELB ``"a" + the UID without dashes``, cut to 32 characters
(k8s.io/cloud-provider ``cloud.go``, ``DefaultLoadBalancerName``; cloud-provider-aws ``aws.go``,
``GetLoadBalancerName``), so its DNS name starts with that name (``internal-`` first for an internal
Classic ELB). That prefix on the Service's status hostname is the zero-call evidence that upstream
served the Service; only then are the load balancer and its parts looked up by name:

* an NLB: its target groups (``DescribeTargetGroups`` by load balancer, as upstream's
  ``EnsureLoadBalancerDeleted`` lists them) and its rules on the nodes' security groups, told apart by
  their descriptions ``kubernetes.io/rule/nlb/client=<name>`` and ``kubernetes.io/rule/nlb/health=<name>``
  (``aws.go``, ``NLBClientRuleDescription``, ``NLBHealthCheckRuleDescription``), plus the path-MTU rules
  ``kubernetes.io/rule/nlb/mtu`` that only remaining client rules still need
  (``aws_loadbalancer.go``, ``updateInstanceSecurityGroupForNLBMTU``);
* a Classic ELB: its security group ``k8s-elb-<name>`` (``aws.go``, ``buildELBSecurityGroupList``) and
  the node rules whose source is that group (``updateInstanceSecurityGroupsForLoadBalancer``).

Nothing is deleted unless its tags prove it is this cluster's and this Service's:
``kubernetes.io/cluster/<id>=owned`` and ``kubernetes.io/service-name=<namespace>/<name>`` on the load
balancer (upstream tags both at creation, ``aws.go`` ``buildTags``), ``owned`` on the security group.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ccm.cloudprovider import ForeignPart, LoadBalancerRequest
from providers.aws import model
from providers.aws.build.names import upstream_load_balancer_name
from providers.aws.client import error_code, suppress_codes
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery

logger = logging.getLogger(__name__)

NLB_CLIENT_RULE = "kubernetes.io/rule/nlb/client"
NLB_HEALTH_RULE = "kubernetes.io/rule/nlb/health"
NLB_MTU_RULE = "kubernetes.io/rule/nlb/mtu"
CLB_SECURITY_GROUP_PREFIX = "k8s-elb-"

NLB = "NLB"
CLB = "Classic ELB"


@dataclass
class ForeignStack:
    """Upstream's load balancer of one Service and its parts, as found."""

    kind: str  # NLB | CLB
    name: str
    dns_name: str
    arn: str = ""  # NLBs only; a Classic ELB is known by its name
    owned: bool = False  # its tags name this cluster and this Service: ours to delete when asked
    target_groups: list[str] = field(default_factory=list)  # ARNs
    security_groups: list[str] = field(default_factory=list)  # the Classic ELB's own group, if owned
    node_rules: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (node SG, permission)
    described: dict[str, Any] = field(default_factory=dict)  # the load balancer as AWS describes it
    tags: dict[str, str] = field(default_factory=dict)

    def parts(self) -> tuple[ForeignPart, ...]:
        """What a reviewer reads: the load balancer first (what serves the address), then its parts."""
        out = [ForeignPart(kind=self.kind, name=self.name, detail=self.dns_name)]
        out += [ForeignPart(kind="target group", name=arn.split("/")[-2]) for arn in self.target_groups]
        out += [ForeignPart(kind="security group", name=sg) for sg in self.security_groups]
        out += [
            ForeignPart(kind="security group rule", name=sg, detail=describe_permission(permission))
            for sg, permission in self.node_rules
        ]
        return tuple(out)


class ForeignLoadBalancers:
    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self.ctx = ctx
        self.discovery = discovery

    def find(
        self,
        *,
        request: LoadBalancerRequest,
        parts: bool,
        instance_ids: Sequence[str] = (),
        classic_only: bool = False,
    ) -> ForeignStack | None:
        """Upstream's load balancer serving the Service's status hostname, or None.

        Without ``parts``, only the load balancer and its tags (two calls: what a refusal needs);
        with them, everything a delete would remove (node rules on the groups tagged with the
        cluster tag and on the groups of ``instance_ids``). ``classic_only``: the caller knows there is
        no NLB of that name. Reads only.
        """
        if not claimed_hostname(request):
            return None
        name = upstream_load_balancer_name(request.uid)
        stack = (None if classic_only else self.nlb(name, key=request.key)) or self.clb(name, key=request.key)
        if stack is None:
            return None
        if parts and stack.owned:
            if stack.kind == NLB:
                stack.target_groups = self._target_groups(stack.arn)
            else:
                stack.security_groups = self._clb_security_groups(name)
            stack.node_rules = self._node_rules(stack, instance_ids=instance_ids)
        if not stack.owned:
            logger.warning(
                "%s: %s %s serves the Service's address but its tags do not name this cluster (%s=owned) "
                "and the Service (%s=%s): it is never deleted",
                request.key,
                stack.kind,
                name,
                self.ctx.cluster_tag,
                model.SERVICE_NAME_TAG,
                request.key,
            )
        return stack

    def _owned(self, tags: Mapping[str, str], *, key: str) -> bool:
        return tags.get(self.ctx.cluster_tag) == model.OWNED and tags.get(model.SERVICE_NAME_TAG) == key

    def nlb(self, name: str, *, key: str) -> ForeignStack | None:
        """The NLB ``name`` with its tags; ``owned`` when they name this cluster and the Service ``key``."""
        elbv2 = self.ctx.clients.elbv2
        with suppress_codes("LoadBalancerNotFound"):
            for lb in elbv2.describe_load_balancers(Names=[name])["LoadBalancers"]:
                described = elbv2.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"]
                tags = {t["Key"]: t["Value"] for t in (described[0]["Tags"] if described else [])}
                return ForeignStack(
                    kind=NLB if lb.get("Type") == "network" else str(lb.get("Type", "load balancer")),
                    name=name,
                    dns_name=lb["DNSName"],
                    arn=lb["LoadBalancerArn"],
                    owned=self._owned(tags, key=key) and lb.get("Type") == "network",
                    described=dict(lb),
                    tags=tags,
                )
        return None

    def clb(self, name: str, *, key: str) -> ForeignStack | None:
        """The Classic ELB ``name`` with its tags, as :meth:`nlb`."""
        elb = self.ctx.clients.elb
        with suppress_codes("LoadBalancerNotFound", "AccessPointNotFound"):
            for lb in elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"]:
                described = elb.describe_tags(LoadBalancerNames=[name])["TagDescriptions"]
                tags = {t["Key"]: t["Value"] for t in (described[0]["Tags"] if described else [])}
                return ForeignStack(
                    kind=CLB,
                    name=name,
                    dns_name=lb["DNSName"],
                    owned=self._owned(tags, key=key),
                    described=dict(lb),
                    tags=tags,
                )
        return None

    def _target_groups(self, lb_arn: str) -> list[str]:
        """The NLB's target groups; none is an empty answer (or ``TargetGroupNotFound`` from moto)."""
        with suppress_codes("TargetGroupNotFound"):
            described = self.ctx.clients.elbv2.describe_target_groups(LoadBalancerArn=lb_arn)["TargetGroups"]
            return [tg["TargetGroupArn"] for tg in described]
        return []

    def _clb_security_groups(self, name: str) -> list[str]:
        """The Classic ELB's own group, found by upstream's name (also once the ELB is gone), if owned."""
        groups = self.ctx.clients.ec2.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [CLB_SECURITY_GROUP_PREFIX + name]},
                {"Name": "vpc-id", "Values": [self.discovery.cluster_info().vpc_id]},
            ]
        )["SecurityGroups"]
        return [
            g["GroupId"]
            for g in groups
            if {t["Key"]: t["Value"] for t in g.get("Tags", [])}.get(self.ctx.cluster_tag) == model.OWNED
        ]

    def clb_node_rules(
        self, *, security_groups: Sequence[str], instance_ids: Sequence[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Upstream's rules that let a Classic ELB's ``security_groups`` into the nodes' groups."""
        stack = ForeignStack(kind=CLB, name="", dns_name="", security_groups=list(security_groups))
        return self._node_rules(stack, instance_ids=instance_ids)

    def revoke(self, rules: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Revoke ``rules`` ((security group, permission) pairs); rules already gone are no error."""
        self._revoke(rules)

    def _node_rules(
        self, stack: ForeignStack, *, instance_ids: Sequence[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Upstream's rules for this load balancer on the nodes' security groups (and the cluster's)."""
        ec2 = self.ctx.clients.ec2
        node_sgs: set[str] = set()
        if instance_ids:
            for instance in self.ctx.describe_instances(instance_ids).values():
                node_sgs.update(g["GroupId"] for g in instance.get("SecurityGroups", []))
        filters = [
            {"Name": "vpc-id", "Values": [self.discovery.cluster_info().vpc_id]},
            {"Name": "tag-key", "Values": [self.ctx.cluster_tag]},
        ]
        groups = {g["GroupId"]: g for g in ec2.describe_security_groups(Filters=filters)["SecurityGroups"]}
        missing = sorted(node_sgs - set(groups))
        if missing:
            groups.update(
                (g["GroupId"], g) for g in ec2.describe_security_groups(GroupIds=missing)["SecurityGroups"]
            )
        rules: list[tuple[str, dict[str, Any]]] = []
        for sg_id, group in sorted(groups.items()):
            permissions = group.get("IpPermissions", [])
            if stack.kind == NLB:
                found = nlb_rules(permissions, lb_name=stack.name)
            else:
                found = group_sourced_rules(permissions, source_groups=stack.security_groups)
            rules.extend((sg_id, p) for p in found)
        return rules

    # -- delete ---------------------------------------------------------------------------------------

    def delete(self, stack: ForeignStack) -> None:
        """Delete upstream's load balancer and its parts in upstream's own order; idempotent.

        Raises ``RuntimeError`` for a stack whose tags do not prove it is this Service's.
        """
        if not stack.owned:
            raise RuntimeError(f"{stack.kind} {stack.name} is not this cluster's and Service's: not deleted")
        if model.RESOURCE_TAG in stack.tags:
            # taken over: the load balancer and the parts it took over carry this controller's tags and go
            # with the Service's own resources; only upstream's rules on the nodes' groups are left (an
            # NLB's; a Classic ELB's went at the takeover)
            self._revoke(stack.node_rules)
            return
        ec2 = self.ctx.clients.ec2
        if stack.kind == NLB:
            with suppress_codes("LoadBalancerNotFound"):
                self.ctx.clients.elbv2.delete_load_balancer(LoadBalancerArn=stack.arn)
            for arn in stack.target_groups:
                with suppress_codes("TargetGroupNotFound"):
                    self.ctx.clients.elbv2.delete_target_group(TargetGroupArn=arn)
            self._revoke(stack.node_rules)
            return
        # Classic ELB (upstream EnsureLoadBalancerDeleted): the node rules that let its group in, the
        # load balancer, then its group, which AWS frees a while after the load balancer's interfaces
        self._revoke(stack.node_rules)
        self.ctx.clients.elb.delete_load_balancer(LoadBalancerName=stack.name)  # absent: success
        for sg in stack.security_groups:
            try:
                ec2.delete_security_group(GroupId=sg)
            except ClientError as exc:
                if error_code(exc) == "InvalidGroup.NotFound":
                    continue
                raise

    def _revoke(self, rules: Iterable[tuple[str, dict[str, Any]]]) -> None:
        by_group: dict[str, list[dict[str, Any]]] = {}
        for sg, permission in rules:
            by_group.setdefault(sg, []).append(permission)
        for sg, permissions in sorted(by_group.items()):
            with suppress_codes("InvalidPermission.NotFound", "InvalidGroup.NotFound"):
                self.ctx.clients.ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=permissions)


# -- pure ------------------------------------------------------------------------------------------------


def claimed_hostname(request: LoadBalancerRequest) -> str:
    """The Service's status hostname that upstream's load balancer name starts, or ''.

    An NLB's DNS name is ``<name>-<id>.elb.<region>.amazonaws.com``, a Classic ELB's
    ``<name>-<id>.<region>.elb.amazonaws.com``, an internal Classic ELB's ``internal-<name>-…``
    (moto leaves the ``-<id>`` out of a Classic ELB's: ``<name>.<region>.elb.amazonaws.com``).
    """
    name = upstream_load_balancer_name(request.uid).lower()
    for address in request.status_addresses:
        host = address.lower().removeprefix("internal-")
        if host.startswith((f"{name}-", f"{name}.")):
            return address
    return ""


def _ip_ranges(permission: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, CIDR, description) of each IPv4 and IPv6 range of a permission."""
    return [
        ("IpRanges", r.get("CidrIp", ""), r.get("Description", "")) for r in permission.get("IpRanges", [])
    ] + [
        ("Ipv6Ranges", r.get("CidrIpv6", ""), r.get("Description", ""))
        for r in permission.get("Ipv6Ranges", [])
    ]


def _single(permission: Mapping[str, Any], kind: str, cidr: str, description: str) -> dict[str, Any]:
    key = "CidrIp" if kind == "IpRanges" else "CidrIpv6"
    out: dict[str, Any] = {"IpProtocol": permission.get("IpProtocol")}
    for port in ("FromPort", "ToPort"):
        if port in permission:
            out[port] = permission[port]
    out[kind] = [{key: cidr, "Description": description}]
    return out


def nlb_rules(permissions: Sequence[Mapping[str, Any]], *, lb_name: str) -> list[dict[str, Any]]:
    """The permissions (one range each) upstream made for NLB ``lb_name``, and the MTU rules that no
    other NLB's client rule keeps."""
    mine = {f"{NLB_CLIENT_RULE}={lb_name}", f"{NLB_HEALTH_RULE}={lb_name}"}
    out: list[dict[str, Any]] = []
    kept_client_cidrs: set[str] = set()
    mtu: list[dict[str, Any]] = []
    for permission in permissions:
        for kind, cidr, description in _ip_ranges(permission):
            if description in mine:
                out.append(_single(permission, kind, cidr, description))
            elif description.startswith(NLB_CLIENT_RULE):
                kept_client_cidrs.add(cidr)
            elif description == NLB_MTU_RULE:
                mtu.append(_single(permission, kind, cidr, description))
    out += [p for p in mtu if _ip_ranges(p)[0][1] not in kept_client_cidrs]
    return out


def group_sourced_rules(
    permissions: Sequence[Mapping[str, Any]], *, source_groups: Sequence[str]
) -> list[dict[str, Any]]:
    """The permissions whose source is one of ``source_groups`` (a Classic ELB's group)."""
    out: list[dict[str, Any]] = []
    for permission in permissions:
        pairs = [p for p in permission.get("UserIdGroupPairs", []) if p.get("GroupId") in source_groups]
        if pairs:
            out.append(
                {
                    **{k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in permission},
                    "UserIdGroupPairs": [{"GroupId": p["GroupId"]} for p in pairs],
                }
            )
    return out


def describe_permission(permission: Mapping[str, Any]) -> str:
    """``tcp 30080 from 0.0.0.0/0 (kubernetes.io/rule/nlb/client=a…)``, for a reviewer."""
    protocol = str(permission.get("IpProtocol", ""))
    lo, hi = permission.get("FromPort", ""), permission.get("ToPort", "")
    ports = "" if protocol == "-1" else (f" {lo}" if lo == hi else f" {lo}-{hi}")
    sources = [
        f"{cidr} ({description})" if description else cidr for _, cidr, description in _ip_ranges(permission)
    ]
    sources += [p["GroupId"] for p in permission.get("UserIdGroupPairs", [])]
    return f"{protocol}{ports} from {', '.join(sources)}"

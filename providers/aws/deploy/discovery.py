"""What exists: the cluster's VPC and subnets (read once per process), and a Service's resources.

* one Resource Groups Tagging API listing (``GetResources``) finds a Service's load balancer, target
  groups and security group *with their tags*, so ownership is read back before any change, and a
  spec-hash tag says whether a part needs any attention at all;
* the tagging API is eventually consistent (it lists deleted resources for a while, new ones late): a
  listed part is confirmed by a describe wherever it is acted on (the full ensure, the orphan sweep,
  ``get_load_balancer``), never in the unchanged resync, which trusts the spec-hash tags;
* a Service whose stack is not listed yet is found by its deterministic names (:meth:`by_name`),
  read back as owned first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from providers.aws import model
from providers.aws.client import error_code, suppress_codes
from providers.aws.deploy.context import Context
from providers.aws.deploy.parts import (
    LB_TYPE,
    SG_TYPE,
    TG_TYPE,
    ActualStack,
    Found,
    chunks,
    classic_name,
    is_classic_arn,
)

logger = logging.getLogger(__name__)


class Discovery:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cluster: model.ClusterInfo | None = None
        self._account = ""  # the account of the cluster's subnets (their OwnerId), read with them
        self._setup_lock = threading.Lock()  # concurrent workers at start: one reads the VPC

    # -- the cluster --------------------------------------------------------------------------------

    def cluster_info(self) -> model.ClusterInfo:
        """The VPC, its subnets, their zone types and which are public; cached for the life of the process.

        One DescribeSubnets (two when the VPC is found by the cluster tag), one DescribeAvailabilityZones
        and one DescribeRouteTables, once per process.
        """
        if self._cluster is not None:
            return self._cluster
        with self._setup_lock:
            if self._cluster is None:
                self._cluster = self._read_cluster_info()
            return self._cluster

    def _read_cluster_info(self) -> model.ClusterInfo:
        ec2 = self.ctx.clients.ec2
        config = self.ctx.config
        vpc = config.vpc
        if not vpc and config.subnet_id:
            vpc = ec2.describe_subnets(SubnetIds=[config.subnet_id])["Subnets"][0]["VpcId"]
        filters = (
            [{"Name": "vpc-id", "Values": [vpc]}]
            if vpc
            else [{"Name": "tag-key", "Values": [self.ctx.cluster_tag]}]
        )
        subnets = self._subnets(filters)
        if not vpc:
            vpcs = sorted({s["VpcId"] for s in subnets})
            if len(vpcs) != 1:
                raise RuntimeError(
                    f"cannot tell the cluster's VPC: subnets tagged {self.ctx.cluster_tag} are in "
                    f"{vpcs or 'no VPC'}; set VPC (or SubnetID) in [Global] of --cloud-config"
                )
            vpc = vpcs[0]
            subnets = self._subnets([{"Name": "vpc-id", "Values": [vpc]}])
        self._account = next((str(s["OwnerId"]) for s in subnets if s.get("OwnerId")), "")
        zone_types = self._zone_types(sorted({s["AvailabilityZone"] for s in subnets}))
        public = self._public_subnets(vpc_id=vpc, subnet_ids=[s["SubnetId"] for s in subnets])
        return model.ClusterInfo(
            scope=self.ctx.scope,
            cluster_name=self.ctx.cluster_name,
            vpc_id=vpc,
            subnets=tuple(
                sorted(
                    (_subnet(s, zone_types=zone_types, public=public) for s in subnets),
                    key=lambda s: s.subnet_id,
                )
            ),
        )

    def classic_arn(self, name: str) -> str:
        """The ARN of the Classic ELB ``name``, as the tagging API lists it:
        ``arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/<name>`` (the account is the
        subnets' ``OwnerId``, read once with the cluster's facts)."""
        self.cluster_info()
        region = self.ctx.clients.region
        return f"arn:aws:elasticloadbalancing:{region}:{self._account}:loadbalancer/{name}"

    def _subnets(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        subnets: list[dict[str, Any]] = []
        for page in self.ctx.clients.ec2.get_paginator("describe_subnets").paginate(Filters=filters):
            subnets.extend(page["Subnets"])
        return subnets

    def _zone_types(self, zones: Sequence[str]) -> dict[str, str]:
        """Zone name → ``ZoneType`` (availability-zone, local-zone, wavelength-zone).

        The Subnet shape has no zone type (botocore ec2 service-2.json); the AvailabilityZone shape of
        DescribeAvailabilityZones has ``ZoneType``, as upstream cloud-provider-aws reads it to keep
        load balancers out of Local and Wavelength Zones.
        """
        if not zones:
            return {}
        described = self.ctx.clients.ec2.describe_availability_zones(ZoneNames=list(zones))[
            "AvailabilityZones"
        ]
        return {z["ZoneName"]: z.get("ZoneType", "availability-zone") for z in described}

    def _public_subnets(self, *, vpc_id: str, subnet_ids: Iterable[str]) -> frozenset[str]:
        """Subnets whose route table (their own, else the VPC's main one) routes to an internet gateway.

        Upstream cloud-provider-aws (pkg/providers/v1/aws.go, ``isSubnetPublic``) gives an
        internet-facing load balancer only such subnets; a subnet without an association of its own
        uses the main route table (EC2 API reference, DescribeRouteTables ``association.main``).
        """
        tables = []
        for page in self.ctx.clients.ec2.get_paginator("describe_route_tables").paginate(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
        ):
            tables.extend(page["RouteTables"])
        return public_subnets(tables=tables, subnet_ids=subnet_ids)

    # -- a Service's resources ----------------------------------------------------------------------

    def list_owned(
        self, *, uid: str | None = None, types: Sequence[str] = (LB_TYPE, TG_TYPE, SG_TYPE)
    ) -> list[Found]:
        """Resources of this cluster and scope (and the Service UID, if given), with their tags.

        A classed instance filters on its scope tag; the tagging API cannot filter on a tag's absence,
        so the default instance drops the other scopes' resources from the answer.
        """
        filters = [{"Key": self.ctx.cluster_tag, "Values": [model.OWNED]}]
        if self.ctx.scope:
            filters.append({"Key": model.SCOPE_TAG, "Values": [self.ctx.scope]})
        if uid is not None:
            filters.append({"Key": model.SERVICE_UID_TAG, "Values": [uid]})
        found: list[Found] = []
        token = ""
        while True:
            kwargs: dict[str, Any] = {
                "TagFilters": filters,
                "ResourceTypeFilters": list(types),
                "ResourcesPerPage": 100,
            }
            if token:
                kwargs["PaginationToken"] = token
            page = self.ctx.clients.tagging.get_resources(**kwargs)
            for item in page.get("ResourceTagMappingList", []):
                tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                if self.ctx.owns(tags):  # read back: never trust the filter alone
                    found.append(Found(arn=item["ResourceARN"], tags=tags))
            token = page.get("PaginationToken", "")
            if not token:
                return found

    def actual(self, uid: str) -> ActualStack:
        """The Service's stack as the tagging API lists it (one call)."""
        return group_stack(self.list_owned(uid=uid))

    def by_name(self, *, uid: str, names: model.StackNames) -> ActualStack:
        """The Service's stack found by its deterministic names; only what this cluster, scope and
        Service own counts. One call per name, one DescribeTags, one DescribeSecurityGroups."""
        elbv2 = self.ctx.clients.elbv2
        lbs: list[str] = []
        for name in names.load_balancers:
            with suppress_codes("LoadBalancerNotFound"):
                lbs.extend(
                    d["LoadBalancerArn"] for d in elbv2.describe_load_balancers(Names=[name])["LoadBalancers"]
                )
        tgs: list[str] = []
        for name in names.target_groups:
            with suppress_codes("TargetGroupNotFound"):
                tgs.extend(
                    d["TargetGroupArn"] for d in elbv2.describe_target_groups(Names=[name])["TargetGroups"]
                )
        actual = ActualStack()
        for chunk in chunks([*lbs, *tgs], 20):
            for described in elbv2.describe_tags(ResourceArns=list(chunk))["TagDescriptions"]:
                found = Found(
                    arn=described["ResourceArn"], tags={t["Key"]: t["Value"] for t in described["Tags"]}
                )
                if not self.ctx.owned_by(found.tags, uid=uid):
                    logger.warning("%s has this Service's name but is not ours: left alone", found.arn)
                elif found.arn in lbs:
                    actual.replaced.append(found)
                else:
                    actual.target_groups.append(found)
        actual.prefer("")
        groups = self.ctx.clients.ec2.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [names.security_group]},
                {"Name": f"tag:{self.ctx.cluster_tag}", "Values": [model.OWNED]},
            ]
        )["SecurityGroups"]
        for group in groups:
            tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
            if self.ctx.owned_by(tags, uid=uid):
                actual.security_groups.append(Found(arn=f"security-group/{group['GroupId']}", tags=tags))
        if not actual.empty:
            logger.info("%s: not listed by the tagging API yet; found by name and deleted", uid)
        return actual

    # -- confirming what the tagging API lists ------------------------------------------------------

    def described_load_balancers(self, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The load balancers of ``arns`` that exist (ARN → description), 20 per call.

        The tagging API is eventually consistent and lists resources that were "previously tagged"
        (Resource Groups Tagging API reference, GetResources), deleted ones included: a hit is
        confirmed before it is acted on. DescribeLoadBalancers takes at most 20 ARNs (botocore elbv2
        service-2.json, ``LoadBalancerArns``) and fails as a whole with ``LoadBalancerNotFound``, in
        which case the batch is described one by one.
        """
        elbv2 = self.ctx.clients.elbv2
        return _described(
            [arn for arn in arns if not is_classic_arn(arn)],  # never sent to elbv2
            describe=lambda chunk: elbv2.describe_load_balancers(LoadBalancerArns=list(chunk))[
                "LoadBalancers"
            ],
            key="LoadBalancerArn",
            missing="LoadBalancerNotFound",
        )

    def described_classic(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The Classic ELBs of ``names`` that exist (name → description), 20 names per call.

        ``DescribeLoadBalancers`` of the ``elb`` API takes up to 20 names and fails as a whole with
        ``LoadBalancerNotFound`` (botocore elb service-2.json, ``AccessPointNotFoundException``) when
        one is missing; then the batch is described one by one.
        """
        elb = self.ctx.clients.elb
        return _described(
            names,
            describe=lambda chunk: elb.describe_load_balancers(LoadBalancerNames=list(chunk))[
                "LoadBalancerDescriptions"
            ],
            key="LoadBalancerName",
            missing="LoadBalancerNotFound",
        )

    def described_target_groups(self, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The target groups of ``arns`` that exist (as :meth:`described_load_balancers`)."""
        elbv2 = self.ctx.clients.elbv2
        return _described(
            arns,
            describe=lambda chunk: elbv2.describe_target_groups(TargetGroupArns=list(chunk))["TargetGroups"],
            key="TargetGroupArn",
            missing="TargetGroupNotFound",
        )

    def confirmed_target_groups(self, listed: list[Found]) -> list[Found]:
        """The listed target groups that still exist."""
        if not listed:
            return listed
        exists = self.described_target_groups([tg.arn for tg in listed])
        gone = [tg.arn for tg in listed if tg.arn not in exists]
        if gone:
            logger.info("the tagging API still lists deleted target groups %s: ignored", ", ".join(gone))
        return [tg for tg in listed if tg.arn in exists]

    def existing(self, items: Sequence[Found]) -> list[Found]:
        """The listed resources (of any kind) that still exist."""
        lbs = [
            i.arn
            for i in items
            if i.resource_id == model.RESOURCE_LOAD_BALANCER and not is_classic_arn(i.arn)
        ]
        classic = [classic_name(i.arn) for i in items if is_classic_arn(i.arn)]
        tgs = [i.arn for i in items if i.resource_id.startswith(model.TARGET_GROUP_PREFIX)]
        sgs = [i.sg_id for i in items if i.resource_id == model.RESOURCE_FRONTEND_SG]
        exists: set[str] = set()
        if lbs:
            exists |= set(self.described_load_balancers(lbs))
        if classic:
            described = self.described_classic(classic)
            exists |= {i.arn for i in items if is_classic_arn(i.arn) and classic_name(i.arn) in described}
        if tgs:
            exists |= set(self.described_target_groups(tgs))
        for chunk in chunks(sorted(set(sgs)), 200):  # a group-id filter tolerates unknown IDs
            groups = self.ctx.clients.ec2.describe_security_groups(
                Filters=[{"Name": "group-id", "Values": list(chunk)}]
            )
            exists |= {g["GroupId"] for g in groups["SecurityGroups"]}
        return [i for i in items if i.arn in exists or i.sg_id in exists]


# -- pure ------------------------------------------------------------------------------------------------


def group_stack(items: Iterable[Found]) -> ActualStack:
    """Listed resources of one Service, sorted into its stack by their ``ccm-lb/resource`` tag."""
    actual = ActualStack()
    for item in items:
        rid = item.resource_id
        if is_classic_arn(item.arn):  # listed under the same resource type as NLBs
            actual.classic.append(item)
        elif rid == model.RESOURCE_LOAD_BALANCER and ":loadbalancer/" in item.arn:
            if actual.load_balancer is None:
                actual.load_balancer = item
            else:
                actual.replaced.append(item)
        elif rid.startswith(model.TARGET_GROUP_PREFIX):
            actual.target_groups.append(item)
        elif rid == model.RESOURCE_FRONTEND_SG:
            actual.security_groups.append(item)
    return actual


def public_subnets(*, tables: Sequence[Mapping[str, Any]], subnet_ids: Iterable[str]) -> frozenset[str]:
    """Of ``subnet_ids``, those whose route table (own association, else the main one) has an IGW route."""

    def to_igw(table: Mapping[str, Any] | None) -> bool:
        routes = table.get("Routes", []) if table else []
        return any(str(r.get("GatewayId", "")).startswith("igw-") for r in routes)

    main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
    own = {a["SubnetId"]: t for t in tables for a in t.get("Associations", []) if a.get("SubnetId")}
    return frozenset(sid for sid in subnet_ids if to_igw(own.get(sid, main)))


def _subnet(s: Mapping[str, Any], *, zone_types: Mapping[str, str], public: frozenset[str]) -> model.Subnet:
    return model.Subnet(
        subnet_id=s["SubnetId"],
        vpc_id=s["VpcId"],
        availability_zone=s["AvailabilityZone"],
        cidr_block=s.get("CidrBlock", ""),
        zone_type=zone_types.get(s["AvailabilityZone"], "availability-zone"),
        public=s["SubnetId"] in public,
        ipv6_cidr_blocks=tuple(
            a["Ipv6CidrBlock"]
            for a in s.get("Ipv6CidrBlockAssociationSet", [])
            if a.get("Ipv6CidrBlockState", {}).get("State") == "associated"
        ),
        tags=tuple(sorted((t["Key"], t["Value"]) for t in s.get("Tags", []))),
    )


def _described(
    arns: Sequence[str],
    *,
    describe: Callable[[Sequence[str]], list[dict[str, Any]]],
    key: str,
    missing: str,
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(arns)), 20):
        try:
            found.update((d[key], d) for d in describe(chunk))
            continue
        except ClientError as exc:
            if error_code(exc) != missing:
                raise
        for arn in chunk:
            try:
                found.update((d[key], d) for d in describe([arn]))
            except ClientError as exc:
                if error_code(exc) != missing:
                    raise
    return found

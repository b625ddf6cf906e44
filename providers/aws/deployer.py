"""Deploying a :class:`~providers.aws.model.Stack`: find what exists by tags, then create, update, delete.

The aws-load-balancer-controller pattern, tuned for few calls:

* one Resource Groups Tagging API listing (``GetResources``) finds a Service's load balancer, target
  groups and security group *with their tags*, so ownership is read back before any change, and a
  spec-hash tag says whether a part needs any attention at all;
* parts are matched by their ``ccm-lb/resource`` tag, never by name alone; nothing without this
  cluster's ``owned`` tag is ever modified or deleted;
* an instance's scope (its ``--load-balancer-class``) is tagged ``ccm-lb/scope`` on what it creates;
  it lists, changes and deletes only resources of its scope (the default instance: those without the
  tag, which includes everything made before scopes existed). The cluster's shared backend security
  group belongs to no scope;
* every create is idempotent (AWS returns the existing load balancer or target group for the same
  name and settings; a duplicate listener or security group is looked up), so a process killed
  between two calls converges on the next try;
* deleting is deploying nothing: the same listing, then deletes, in dependency order;
* the tagging API is eventually consistent (it lists deleted resources for a while, new ones late): a
  listed part is confirmed by a describe wherever it is acted on (the full ensure, the orphan sweep,
  ``get_load_balancer``), never in the unchanged resync, which trusts the spec-hash tags.

Cluster-wide state (subnets, the shared backend security group, which node security groups carry our
rule) and per-Service state (ARNs, registered targets, DNS name) is cached in memory; the cache is
only an optimisation, every path works from an empty one.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ccm.cloudprovider import RetryAfter
from providers.aws import model
from providers.aws.client import AWSClients, error_code
from providers.aws.config import AWSConfig

logger = logging.getLogger(__name__)

LB_TYPE = "elasticloadbalancing:loadbalancer"
TG_TYPE = "elasticloadbalancing:targetgroup"
SG_TYPE = "ec2:security-group"
# Reasons of the Warning events the deployer asks for (:class:`Deployed` ``notices``).
NOT_APPLIED = "LoadBalancerChangeNotApplied"  # a change the Service asked for that AWS cannot make in place
ADDRESS_CHANGED = "LoadBalancerIPChanged"  # the Service's address changed (as the GCP provider says it)

# Load-balancer attributes put back to AWS's default when the annotation that set them is removed
# (botocore elbv2 service-2.json, LoadBalancerAttribute.Key).
MANAGED_LB_ATTRIBUTES = {
    "load_balancing.cross_zone.enabled": "false",
    "access_logs.s3.enabled": "false",
    "deletion_protection.enabled": "false",
    "dns_record.client_routing_policy": "any_availability_zone",
    "zonal_shift.config.enabled": "false",
}
# Listener attributes of each protocol, with AWS's defaults (botocore elbv2 ListenerAttribute.Key:
# tcp.idle_timeout.seconds, "The default is 350 seconds"); other protocols have none to set.
LISTENER_ATTRIBUTE_DEFAULTS: Mapping[str, Mapping[str, str]] = {"TCP": {"tcp.idle_timeout.seconds": "350"}}
DEFAULT_SUCCESS_CODES = "200-399"  # botocore elbv2 Matcher.HttpCode, the NLB default
TG_ATTRIBUTE_DEFAULTS = {
    "preserve_client_ip.enabled": "true",
    "proxy_protocol_v2.enabled": "false",
    "deregistration_delay.timeout_seconds": "300",
    "deregistration_delay.connection_termination.enabled": "false",
    "stickiness.enabled": "false",
    "stickiness.type": "source_ip",
    "load_balancing.cross_zone.enabled": "use_load_balancer_configuration",
    "target_health_state.unhealthy.connection_termination.enabled": "true",
    "target_health_state.unhealthy.draining_interval_seconds": "0",
}
# UDP and TCP_UDP differ (botocore elbv2 service-2.json, TargetGroupAttribute.Key): connections are
# terminated at the end of deregistration by default, and unhealthy connection termination cannot be
# enabled at all, so it is never reset.
UDP_TG_ATTRIBUTE_DEFAULTS = {
    **{
        k: v
        for k, v in TG_ATTRIBUTE_DEFAULTS.items()
        if k != "target_health_state.unhealthy.connection_termination.enabled"
    },
    "deregistration_delay.connection_termination.enabled": "true",
}


def tg_attribute_defaults(protocol: str) -> Mapping[str, str]:
    """AWS's default target-group attributes for a target group of ``protocol``."""
    return UDP_TG_ATTRIBUTE_DEFAULTS if protocol in ("UDP", "TCP_UDP") else TG_ATTRIBUTE_DEFAULTS


NOT_RUNNING_RETRY_SECONDS = 300.0  # an instance refused as not running is tried again after this
BACKEND_RULE_DESCRIPTION = "ccm-lb: NodePorts from the load balancers of cluster {cluster}"


class NodeSecurityGroupDenied(RuntimeError):
    """The backend rule could not be added to a node's security group: an IAM matter the user fixes."""


@dataclass
class Found:
    """One tagged resource from the tagging API."""

    arn: str
    tags: dict[str, str]

    @property
    def resource_id(self) -> str:
        return self.tags.get(model.RESOURCE_TAG, "")

    @property
    def sg_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


@dataclass
class ActualStack:
    load_balancer: Found | None = None
    target_groups: list[Found] = field(default_factory=list)
    security_groups: list[Found] = field(default_factory=list)
    # more NLBs of the Service: the one a scheme change replaces, left by a crash before it was deleted
    replaced: list[Found] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.load_balancer is None and not self.target_groups and not self.security_groups

    def prefer(self, name: str) -> None:
        """Make the NLB called ``name`` (if listed) the Service's; the others are replaced ones."""
        lbs = [lb for lb in (self.load_balancer, *self.replaced) if lb is not None]
        chosen = next((lb for lb in lbs if _lb_name(lb.arn) == name), lbs[0] if lbs else None)
        self.load_balancer = chosen
        self.replaced = [lb for lb in lbs if lb is not chosen]


def _lb_name(arn: str) -> str:
    """``…:loadbalancer/net/<name>/<id>`` → ``<name>``."""
    parts = arn.split("/")
    return parts[-2] if len(parts) >= 3 else ""


@dataclass
class StackCache:
    """What we know of one Service's stack from our own calls."""

    lb_arn: str = ""
    dns_name: str = ""
    spec_hash: str = ""
    listeners_hash: str = ""  # the spec hash whose listeners were seen complete
    tg_arns: dict[str, str] = field(default_factory=dict)  # resource id → ARN
    tg_ports: dict[str, int] = field(default_factory=dict)  # ARN → NodePort
    targets: dict[str, frozenset[str]] = field(default_factory=dict)  # TG ARN → instance IDs
    # listener ARN → the attributes we set or saw on it; an ARN not here is described before it is set
    listener_attributes: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    notices: list[tuple[str, str]] = field(default_factory=list)  # (event reason, message) of the last ensure


@dataclass(frozen=True)
class Deployed:
    """What :meth:`Deployer.ensure` made: the NLB's DNS name and ARN, and the changes AWS cannot make."""

    dns_name: str
    lb_arn: str
    notices: tuple[
        tuple[str, str], ...
    ] = ()  # (reason, message) of Warning events, said by the ensure that met them


def _without(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags to compare across parts: without the spec hash and the part's own resource id."""
    return {k: v for k, v in tags.items() if k not in (model.SPEC_HASH_TAG, model.RESOURCE_TAG)}


def _tag_list(tags: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags]


class Deployer:
    """Creates, updates and deletes the AWS resources of Services; thread-safe across Services."""

    def __init__(self, *, clients: AWSClients, config: AWSConfig, cluster_name: str, scope: str = "") -> None:
        self.clients = clients
        self.scope = scope
        self.config = config
        self.cluster_name = config.cluster_id or cluster_name
        self.cluster_tag = model.cluster_tag(self.cluster_name)
        self._lock = threading.Lock()
        self._setup_lock = threading.RLock()  # the cluster-wide set-up (VPC, shared backend group): once
        self._cluster: model.ClusterInfo | None = None
        self._backend_sg = ""
        self._node_sgs_done: set[str] = set()
        self._instance_sgs: dict[str, tuple[str, ...]] = {}
        self._stacks: dict[str, StackCache] = {}
        self._orphans_seen: dict[str, float] = {}
        self._not_running: dict[str, float] = {}  # instance ID → when RegisterTargets refused it
        self._sg_permissions: dict[str, list[dict[str, Any]]] = {}  # node SG → its ingress, as last read
        self._sweep_lock = threading.Lock()  # one sweep at a time

    # -- discovery ----------------------------------------------------------------------------------

    def cluster_info(self) -> model.ClusterInfo:
        """The VPC, its subnets, their zone types and which are public; cached for the life of the process.

        One DescribeSubnets (two when the VPC is found by the cluster tag), one DescribeAvailabilityZones
        and one DescribeRouteTables, once per process.
        """
        with self._lock:
            if self._cluster is not None:
                return self._cluster
        with self._setup_lock:  # concurrent workers at start: one reads the VPC, the others wait for it
            with self._lock:
                if self._cluster is not None:
                    return self._cluster
            return self._read_cluster_info()

    def _read_cluster_info(self) -> model.ClusterInfo:
        ec2 = self.clients.ec2
        vpc = self.config.vpc
        if not vpc and self.config.subnet_id:
            vpc = ec2.describe_subnets(SubnetIds=[self.config.subnet_id])["Subnets"][0]["VpcId"]
        filters = (
            [{"Name": "vpc-id", "Values": [vpc]}]
            if vpc
            else [{"Name": "tag-key", "Values": [self.cluster_tag]}]
        )
        subnets = []
        for page in ec2.get_paginator("describe_subnets").paginate(Filters=filters):
            subnets.extend(page["Subnets"])
        if not vpc:
            vpcs = sorted({s["VpcId"] for s in subnets})
            if len(vpcs) != 1:
                raise RuntimeError(
                    f"cannot tell the cluster's VPC: subnets tagged {self.cluster_tag} are in "
                    f"{vpcs or 'no VPC'}; set VPC (or SubnetID) in [Global] of --cloud-config"
                )
            vpc = vpcs[0]
            subnets = []
            for page in ec2.get_paginator("describe_subnets").paginate(
                Filters=[{"Name": "vpc-id", "Values": [vpc]}]
            ):
                subnets.extend(page["Subnets"])
        zone_types = self._zone_types(sorted({s["AvailabilityZone"] for s in subnets}))
        public = self._public_subnets(vpc_id=vpc, subnet_ids=[s["SubnetId"] for s in subnets])
        info = model.ClusterInfo(
            scope=self.scope,
            cluster_name=self.cluster_name,
            vpc_id=vpc,
            subnets=tuple(
                sorted(
                    (
                        model.Subnet(
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
                        for s in subnets
                    ),
                    key=lambda s: s.subnet_id,
                )
            ),
        )
        with self._lock:
            self._cluster = info
        return info

    def _zone_types(self, zones: Sequence[str]) -> dict[str, str]:
        """Zone name → ``ZoneType`` (availability-zone, local-zone, wavelength-zone).

        The Subnet shape has no zone type (botocore ec2 service-2.json); the AvailabilityZone shape of
        DescribeAvailabilityZones has ``ZoneType``, as upstream cloud-provider-aws reads it to keep
        load balancers out of Local and Wavelength Zones.
        """
        if not zones:
            return {}
        described = self.clients.ec2.describe_availability_zones(ZoneNames=list(zones))["AvailabilityZones"]
        return {z["ZoneName"]: z.get("ZoneType", "availability-zone") for z in described}

    def _public_subnets(self, *, vpc_id: str, subnet_ids: Iterable[str]) -> frozenset[str]:
        """Subnets whose route table (their own, else the VPC's main one) routes to an internet gateway.

        Upstream cloud-provider-aws (pkg/providers/v1/aws.go, ``isSubnetPublic``) gives an
        internet-facing load balancer only such subnets; a subnet without an association of its own
        uses the main route table (EC2 API reference, DescribeRouteTables ``association.main``).
        """
        tables = []
        for page in self.clients.ec2.get_paginator("describe_route_tables").paginate(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
        ):
            tables.extend(page["RouteTables"])

        def to_igw(table: Mapping[str, Any] | None) -> bool:
            routes = table.get("Routes", []) if table else []
            return any(str(r.get("GatewayId", "")).startswith("igw-") for r in routes)

        main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
        own = {a["SubnetId"]: t for t in tables for a in t.get("Associations", []) if a.get("SubnetId")}
        return frozenset(sid for sid in subnet_ids if to_igw(own.get(sid, main)))

    def owns(self, tags: Mapping[str, str]) -> bool:
        """This cluster's ``owned`` tag, and this instance's scope (no scope tag for the default)."""
        return tags.get(self.cluster_tag) == model.OWNED and tags.get(model.SCOPE_TAG, "") == self.scope

    def list_owned(
        self, *, uid: str | None = None, types: Sequence[str] = (LB_TYPE, TG_TYPE, SG_TYPE)
    ) -> list[Found]:
        """Resources of this cluster and scope (and the Service UID, if given), with their tags.

        A classed instance filters on its scope tag; the tagging API cannot filter on a tag's absence,
        so the default instance drops the other scopes' resources from the answer.
        """
        filters = [{"Key": self.cluster_tag, "Values": [model.OWNED]}]
        if self.scope:
            filters.append({"Key": model.SCOPE_TAG, "Values": [self.scope]})
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
            page = self.clients.tagging.get_resources(**kwargs)
            for item in page.get("ResourceTagMappingList", []):
                tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                if self.owns(tags):  # read back: never trust the filter alone
                    found.append(Found(arn=item["ResourceARN"], tags=tags))
            token = page.get("PaginationToken", "")
            if not token:
                return found

    def confirmed_load_balancers(self, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The load balancers of ``arns`` that exist, by ARN (see :meth:`_described_load_balancers`)."""
        return self._described_load_balancers(arns)

    def _described_load_balancers(self, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The load balancers of ``arns`` that exist (ARN → description), 20 per call.

        The tagging API is eventually consistent and lists resources that were "previously tagged"
        (Resource Groups Tagging API reference, GetResources), deleted ones included: a hit is
        confirmed before it is acted on. DescribeLoadBalancers takes at most 20 ARNs (botocore elbv2
        service-2.json, ``LoadBalancerArns``) and fails as a whole with ``LoadBalancerNotFound``, in
        which case the batch is described one by one.
        """
        return self._described(arns, describe=self._describe_lbs, missing="LoadBalancerNotFound")

    def _describe_lbs(self, arns: Sequence[str]) -> list[dict[str, Any]]:
        return list(self.clients.elbv2.describe_load_balancers(LoadBalancerArns=list(arns))["LoadBalancers"])

    def _describe_tgs(self, arns: Sequence[str]) -> list[dict[str, Any]]:
        return list(self.clients.elbv2.describe_target_groups(TargetGroupArns=list(arns))["TargetGroups"])

    @staticmethod
    def _described(arns: Sequence[str], *, describe: Any, missing: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        key = "LoadBalancerArn" if missing == "LoadBalancerNotFound" else "TargetGroupArn"
        for chunk in _chunks(sorted(set(arns)), 20):
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

    def _confirmed_target_groups(self, listed: list[Found]) -> list[Found]:
        """The listed target groups that still exist (see :meth:`_described_load_balancers`)."""
        if not listed:
            return listed
        exists = self._described(
            [tg.arn for tg in listed], describe=self._describe_tgs, missing="TargetGroupNotFound"
        )
        gone = [tg.arn for tg in listed if tg.arn not in exists]
        if gone:
            logger.info("the tagging API still lists deleted target groups %s: ignored", ", ".join(gone))
        return [tg for tg in listed if tg.arn in exists]

    def _actual(self, uid: str) -> ActualStack:
        actual = ActualStack()
        for item in self.list_owned(uid=uid):
            rid = item.resource_id
            if rid == model.RESOURCE_LOAD_BALANCER and ":loadbalancer/" in item.arn:
                if actual.load_balancer is None:
                    actual.load_balancer = item
                else:
                    actual.replaced.append(item)
            elif rid.startswith(model.TARGET_GROUP_PREFIX):
                actual.target_groups.append(item)
            elif rid == model.RESOURCE_FRONTEND_SG:
                actual.security_groups.append(item)
        return actual

    # -- ensure -------------------------------------------------------------------------------------

    def ensure(self, *, key: str, uid: str, stack: model.Stack) -> Deployed:
        """Make AWS match ``stack``; returns its DNS name, ARN and what could not be applied.

        Creation order makes every crash point recoverable: security group and its rules, target
        groups (and attributes), then the load balancer (carrying the spec hash), its listeners, and
        the targets. A load balancer whose hash matches is trusted only once its listeners were seen
        complete (by this process, or by one DescribeListeners after a restart).
        """
        backend_sg = self.ensure_backend(instance_ids=stack.targets)
        actual = self._actual(uid)
        actual.prefer(stack.load_balancer.name)
        cache = self._stacks.setdefault(key, StackCache())
        cache.notices = []
        desired_hash = stack.spec_hash()
        lb = actual.load_balancer
        if (
            lb is not None
            and not actual.replaced
            and lb.tags.get(model.SPEC_HASH_TAG) == desired_hash
            and self._parts_match(stack, actual)
            and self._listeners_complete(lb_arn=lb.arn, stack=stack, actual=actual, cache=cache)
        ):
            cache.lb_arn = lb.arn
            cache.spec_hash = desired_hash
            cache.tg_arns = {tg.resource_id: tg.arn for tg in actual.target_groups}
            self._sync_targets(cache=cache, stack=stack)
            return Deployed(dns_name=self._dns_name(cache), lb_arn=cache.lb_arn)

        actual.target_groups = self._confirmed_target_groups(actual.target_groups)
        frontend = self._ensure_frontend_sg(stack=stack, actual=actual)
        # The backend group is attached in every case (BYO groups included): the node rules reference it.
        sg_ids = [*([frontend] if frontend else []), *stack.byo_security_groups, backend_sg]
        tg_arns = self._ensure_target_groups(stack=stack, actual=actual, cache=cache)
        lb_arn, created = self._ensure_load_balancer(
            stack=stack, actual=actual, sg_ids=sg_ids, desired_hash=desired_hash, cache=cache
        )
        for old in actual.replaced:  # the new NLB exists: the one it replaces goes, freeing its target groups
            self._delete_load_balancer(old.arn, keep_protection=False)
        tags_changed = lb is not None and _without(lb.tags) != _without(dict(stack.load_balancer.tags))
        self._ensure_listeners(
            stack=stack, lb_arn=lb_arn, tg_arns=tg_arns, created=created, cache=cache, retag=tags_changed
        )
        cache.listeners_hash = desired_hash
        desired_tgs = set(tg_arns.values())
        for tg in actual.target_groups:
            if tg.arn not in desired_tgs:
                self._delete_target_group(tg.arn)
                cache.targets.pop(tg.arn, None)
        for sg in actual.security_groups:
            if sg.sg_id != frontend:
                self._delete_security_group(sg.sg_id)
        self._sync_targets(cache=cache, stack=stack)
        if not created and (lb is None or lb.tags.get(model.SPEC_HASH_TAG) != desired_hash):
            self.clients.elbv2.add_tags(
                ResourceArns=[lb_arn], Tags=[{"Key": model.SPEC_HASH_TAG, "Value": desired_hash}]
            )
        cache.spec_hash = desired_hash
        return Deployed(dns_name=self._dns_name(cache), lb_arn=lb_arn, notices=tuple(cache.notices))

    def _listeners_complete(
        self, *, lb_arn: str, stack: model.Stack, actual: ActualStack, cache: StackCache
    ) -> bool:
        desired_hash = stack.spec_hash()
        if cache.lb_arn == lb_arn and cache.listeners_hash == desired_hash:
            return True
        tg_arns = {tg.resource_id: tg.arn for tg in actual.target_groups}
        want = {
            (spec.port, spec.protocol, tg_arns.get(spec.target_group, "?"), spec.certificate_arn)
            for spec in stack.listeners
        }
        have = set()
        try:
            for page in self.clients.elbv2.get_paginator("describe_listeners").paginate(
                LoadBalancerArn=lb_arn
            ):
                for listener in page["Listeners"]:
                    tg = (listener.get("DefaultActions") or [{}])[0].get("TargetGroupArn", "")
                    cert = (listener.get("Certificates") or [{}])[0].get("CertificateArn", "")
                    have.add((int(listener["Port"]), listener["Protocol"], tg, cert))
        except ClientError as exc:
            if error_code(exc) != "LoadBalancerNotFound":
                raise
            return False  # listed by the tagging API, but deleted: the full path recreates it
        if have != want:
            return False
        cache.lb_arn, cache.listeners_hash = lb_arn, desired_hash
        return True

    def _parts_match(self, stack: model.Stack, actual: ActualStack) -> bool:
        want_tgs = {tg.resource_id: (tg.name, model.spec_hash(tg)) for tg in stack.target_groups}
        have_tgs = {
            tg.resource_id: (tg.arn.split("/")[-2], tg.tags.get(model.SPEC_HASH_TAG, ""))
            for tg in actual.target_groups
        }
        if want_tgs != have_tgs:
            return False
        want_sg = model.spec_hash(stack.frontend_security_group) if stack.frontend_security_group else ""
        have_sg = [sg.tags.get(model.SPEC_HASH_TAG, "") for sg in actual.security_groups]
        return have_sg == ([want_sg] if want_sg else [])

    def _dns_name(self, cache: StackCache) -> str:
        if not cache.dns_name:
            lb = self.clients.elbv2.describe_load_balancers(LoadBalancerArns=[cache.lb_arn])["LoadBalancers"][
                0
            ]
            cache.dns_name = lb["DNSName"]
        return cache.dns_name

    # security groups

    def ensure_backend(self, *, instance_ids: Sequence[str]) -> str:
        """The cluster's shared backend security group, and its rule on every node security group."""
        with self._lock:
            backend = self._backend_sg
        if not backend:
            with self._setup_lock:  # concurrent workers: one finds or creates it, the others wait for it
                with self._lock:
                    backend = self._backend_sg
                if not backend:
                    backend = self._find_or_create_backend_sg()
                    with self._lock:
                        self._backend_sg = backend
        if self.config.disable_security_group_ingress:
            return backend
        unknown = [i for i in instance_ids if i not in self._instance_sgs]
        if unknown:
            self._learn_instance_sgs(unknown)
        wanted = {sg for i in instance_ids for sg in self._instance_sgs.get(i, ())}
        todo = sorted(wanted - self._node_sgs_done)
        for sg in todo:
            self._authorize_backend_on_node_sg(node_sg=sg, backend_sg=backend)
            with self._lock:
                self._node_sgs_done.add(sg)
        return backend

    def _find_or_create_backend_sg(self) -> str:
        info = self.cluster_info()
        ec2 = self.clients.ec2
        found = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [info.vpc_id]},
                {"Name": f"tag:{self.cluster_tag}", "Values": [model.OWNED]},
                {"Name": f"tag:{model.RESOURCE_TAG}", "Values": [model.RESOURCE_BACKEND_SG]},
            ]
        )["SecurityGroups"]
        if found:
            return str(sorted(g["GroupId"] for g in found)[0])
        digest = hashlib.sha256(f"{self.cluster_name}/{info.vpc_id}".encode()).hexdigest()[:10]
        name = f"k8s-traffic-{self.cluster_name[:200]}-{digest}"
        tags = [(self.cluster_tag, model.OWNED), (model.RESOURCE_TAG, model.RESOURCE_BACKEND_SG)]
        try:
            created = ec2.create_security_group(
                GroupName=name,
                VpcId=info.vpc_id,
                Description=f"ccm-lb: shared backend security group of cluster {self.cluster_name}"[:255],
                TagSpecifications=[{"ResourceType": "security-group", "Tags": _tag_list(tags)}],
            )
            return str(created["GroupId"])
        except ClientError as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
        return self._owned_sg_by_name(name=name, vpc_id=info.vpc_id, shared=True)

    def _owned_sg_by_name(self, *, name: str, vpc_id: str, shared: bool = False) -> str:
        groups = self.clients.ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
        )["SecurityGroups"]
        for group in groups:
            tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
            if tags.get(self.cluster_tag) == model.OWNED and (shared or self.owns(tags)):
                return str(group["GroupId"])
        raise RuntimeError(
            f"security group {name} exists in {vpc_id} but is not owned by cluster "
            f"{self.cluster_name} (no {self.cluster_tag}=owned tag){self._scope_hint()}; refusing to use it"
        )

    def _describe_instances(self, instance_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The instances that exist, by ID; IDs AWS no longer knows are simply absent.

        ``DescribeInstances(InstanceIds=…)`` fails the whole call with ``InvalidInstanceID.NotFound``
        for one unknown ID (a node whose instance was terminated more than about an hour ago: EC2 API
        reference, DescribeInstances). The ``instance-id`` filter returns what exists instead.
        """
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(sorted(set(instance_ids)), 200):
            for page in self.clients.ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": list(chunk)}]
            ):
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        found[instance["InstanceId"]] = instance
        return found

    def _scope_hint(self) -> str:
        scope = f"{model.SCOPE_TAG}={self.scope}" if self.scope else f"no {model.SCOPE_TAG}"
        return f" or not of this controller's scope ({scope})"

    def _learn_instance_sgs(self, instance_ids: Sequence[str]) -> None:
        """Which security group of each instance gets our rule (upstream's choice: the cluster-tagged one)."""
        instances = self._describe_instances(instance_ids)
        groups_of: dict[str, list[str]] = {
            iid: [g["GroupId"] for g in instance.get("SecurityGroups", [])]
            for iid, instance in instances.items()
        }
        missing = sorted(set(instance_ids) - set(instances))
        if missing:
            logger.warning(
                "instances %s of cluster nodes do not exist (terminated): they get no load balancer rule "
                "and are not registered as targets",
                ", ".join(missing),
            )
        all_groups = sorted({g for gs in groups_of.values() for g in gs})
        tagged: set[str] = set()
        if all_groups:
            for group in self.clients.ec2.describe_security_groups(GroupIds=all_groups)["SecurityGroups"]:
                keys = {t["Key"] for t in group.get("Tags", [])}
                if self.cluster_tag in keys:
                    tagged.add(group["GroupId"])
                with self._lock:  # read once here, so the backend rule is diffed without another call
                    self._sg_permissions[group["GroupId"]] = list(group.get("IpPermissions", []))
        with self._lock:
            for instance_id in missing:
                self._instance_sgs[instance_id] = ()  # a terminated instance never comes back
            for instance_id, groups in groups_of.items():
                chosen = [g for g in groups if g in tagged] or (groups if len(groups) == 1 else [])
                if not chosen:
                    logger.warning(
                        "instance %s has %d security groups and none is tagged %s: not adding the "
                        "load balancer rule to any",
                        instance_id,
                        len(groups),
                        self.cluster_tag,
                    )
                self._instance_sgs[instance_id] = tuple(chosen[:1])

    def _backend_permissions(self, backend_sg: str) -> list[dict[str, Any]]:
        lo, hi = self.config.node_port_range
        description = BACKEND_RULE_DESCRIPTION.format(cluster=self.cluster_name)[:255]
        pair = [{"GroupId": backend_sg, "Description": description}]
        perms = [
            {"IpProtocol": proto, "FromPort": lo, "ToPort": hi, "UserIdGroupPairs": pair}
            for proto in ("tcp", "udp")
        ]
        probe = self.config.shared_probe_port
        if not lo <= probe <= hi:  # kube-proxy's healthz: shared probe mode and UDP target groups
            perms.append({"IpProtocol": "tcp", "FromPort": probe, "ToPort": probe, "UserIdGroupPairs": pair})
        return perms

    @staticmethod
    def _pair_rules(permissions: Iterable[Mapping[str, Any]]) -> set[tuple[str, int, int, str]]:
        """Security-group-sourced rules of a group's permissions: (protocol, from, to, source group)."""
        return {
            (str(p.get("IpProtocol")), int(p.get("FromPort", -1)), int(p.get("ToPort", -1)), g["GroupId"])
            for p in permissions
            for g in p.get("UserIdGroupPairs", [])
        }

    def _authorize_backend_on_node_sg(self, *, node_sg: str, backend_sg: str) -> None:
        """Add only the backend rules the node group lacks (as upstream's ``addSecurityGroupIngress``).

        AuthorizeSecurityGroupIngress fails as a whole (``InvalidPermission.Duplicate``) when one of its
        permissions exists, so a group that has one of the three rules would never get the others if
        the duplicate were taken for success. The group's permissions come from the DescribeSecurityGroups
        that found the node groups; a duplicate (someone added a rule meanwhile) reads the group again.
        """
        with self._lock:
            known = self._sg_permissions.get(node_sg)
        for attempt in range(2):
            if known is None:
                group = self.clients.ec2.describe_security_groups(GroupIds=[node_sg])["SecurityGroups"][0]
                known = list(group.get("IpPermissions", []))
            have = self._pair_rules(known)
            missing = [p for p in self._backend_permissions(backend_sg) if not self._pair_rules([p]) <= have]
            if not missing:
                return
            try:
                self.clients.ec2.authorize_security_group_ingress(GroupId=node_sg, IpPermissions=missing)
                with self._lock:
                    self._sg_permissions[node_sg] = [*known, *missing]
                return
            except ClientError as exc:
                code = error_code(exc)
                if code == "InvalidPermission.Duplicate" and attempt == 0:
                    known = None
                    continue
                if code in ("UnauthorizedOperation", "AccessDenied"):
                    raise NodeSecurityGroupDenied(
                        f"not allowed to add the load balancer's rule to node security group {node_sg} "
                        f"({code}). The least-privilege policy (terraform/aws) allows it only on security "
                        f"groups tagged {self.cluster_tag} (owned or shared): tag the nodes' security group "
                        f"with it, or grant ec2:AuthorizeSecurityGroupIngress on {node_sg}"
                    ) from exc
                raise

    def _ensure_frontend_sg(self, *, stack: model.Stack, actual: ActualStack) -> str:
        spec = stack.frontend_security_group
        if spec is None:
            return ""
        want_hash = model.spec_hash(spec)
        existing = next((sg for sg in actual.security_groups), None)
        ec2 = self.clients.ec2
        if existing is None:
            info = self.cluster_info()
            tags = [*spec.tags, (model.SPEC_HASH_TAG, want_hash)]
            try:
                sg_id = str(
                    ec2.create_security_group(
                        GroupName=spec.name,
                        Description=spec.description,
                        VpcId=info.vpc_id,
                        TagSpecifications=[{"ResourceType": "security-group", "Tags": _tag_list(tags)}],
                    )["GroupId"]
                )
            except ClientError as exc:
                if error_code(exc) != "InvalidGroup.Duplicate":
                    raise
                sg_id = self._owned_sg_by_name(name=spec.name, vpc_id=info.vpc_id)
                self._sync_rules(sg_id=sg_id, rules=spec.rules)
                ec2.create_tags(Resources=[sg_id], Tags=_tag_list(tags))
                return sg_id
            self._authorize(sg_id, spec.rules)
            return sg_id
        # Reconciling: the rules are checked even when the hash tag matches, because a crash between
        # CreateSecurityGroup (which carries the tag) and the authorize call leaves a tagged, empty group.
        try:
            self._sync_rules(sg_id=existing.sg_id, rules=spec.rules)
        except ClientError as exc:
            if error_code(exc) != "InvalidGroup.NotFound":
                raise
            logger.info("the tagging API still lists deleted security group %s: made again", existing.sg_id)
            actual.security_groups = [g for g in actual.security_groups if g is not existing]
            return self._ensure_frontend_sg(stack=stack, actual=actual)
        if existing.tags.get(model.SPEC_HASH_TAG) != want_hash:
            want_tags = {**dict(spec.tags), model.SPEC_HASH_TAG: want_hash}
            stale = [k for k in existing.tags if k not in want_tags and not k.startswith("aws:")]
            if stale:
                ec2.delete_tags(Resources=[existing.sg_id], Tags=[{"Key": k} for k in stale])
            changed = [(k, v) for k, v in want_tags.items() if existing.tags.get(k) != v]
            ec2.create_tags(Resources=[existing.sg_id], Tags=_tag_list(changed))
        return existing.sg_id

    @staticmethod
    def _permission(rule: model.Rule) -> dict[str, Any]:
        perm: dict[str, Any] = {
            "IpProtocol": rule.protocol,
            "FromPort": rule.from_port,
            "ToPort": rule.to_port,
        }
        if ":" in rule.cidr:
            perm["Ipv6Ranges"] = [{"CidrIpv6": rule.cidr, "Description": rule.description}]
        else:
            perm["IpRanges"] = [{"CidrIp": rule.cidr, "Description": rule.description}]
        return perm

    def _authorize(self, sg_id: str, rules: Iterable[model.Rule]) -> None:
        perms = [self._permission(r) for r in rules]
        if perms:
            self.clients.ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=perms)

    def _sync_rules(self, *, sg_id: str, rules: Sequence[model.Rule]) -> None:
        group = self.clients.ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]
        have: set[tuple[str, int, int, str]] = set()
        for perm in group.get("IpPermissions", []):
            for r in perm.get("IpRanges", []):
                have.add((perm["IpProtocol"], perm.get("FromPort", -1), perm.get("ToPort", -1), r["CidrIp"]))
            for r in perm.get("Ipv6Ranges", []):
                have.add(
                    (perm["IpProtocol"], perm.get("FromPort", -1), perm.get("ToPort", -1), r["CidrIpv6"])
                )
        want = {(r.protocol, r.from_port, r.to_port, r.cidr): r for r in rules}
        extra = have - set(want)
        missing = [rule for k, rule in want.items() if k not in have]
        if extra:
            self.clients.ec2.revoke_security_group_ingress(
                GroupId=sg_id,
                IpPermissions=[
                    self._permission(model.Rule(protocol=p, from_port=f, to_port=t, cidr=c))
                    for p, f, t, c in sorted(extra)
                ],
            )
        if missing:
            self._authorize(sg_id, missing)

    # load balancer

    def _ensure_load_balancer(
        self,
        *,
        stack: model.Stack,
        actual: ActualStack,
        sg_ids: list[str],
        desired_hash: str,
        cache: StackCache,
    ) -> tuple[str, bool]:
        spec = stack.load_balancer
        elbv2 = self.clients.elbv2
        existing = actual.load_balancer
        described: dict[str, Any] = {}
        replacing: Mapping[str, Any] = {}
        if existing is not None:
            described = self._described_load_balancers([existing.arn]).get(existing.arn, {})
            if not described:  # listed by the tagging API, but deleted since: made again
                existing = None
            elif described.get("Scheme") != spec.scheme:
                self._replace_for_scheme(existing=existing, described=described, spec=spec, actual=actual)
                cache.dns_name = ""
                existing = None
                replacing = described
        if existing is None:
            kwargs: dict[str, Any] = {
                "Name": spec.name,
                "Type": "network",
                "Scheme": spec.scheme,
                "IpAddressType": spec.ip_address_type,
                "SubnetMappings": [self._mapping(m) for m in spec.subnet_mappings],
                "SecurityGroups": sg_ids,
                "Tags": _tag_list([*spec.tags, (model.SPEC_HASH_TAG, desired_hash)]),
            }
            started = datetime.datetime.now(datetime.UTC)
            try:
                lb = elbv2.create_load_balancer(**kwargs)["LoadBalancers"][0]
            except ClientError as exc:
                if error_code(exc) == "DuplicateLoadBalancerName":
                    raise RuntimeError(
                        f"a load balancer named {spec.name} already exists with other settings and is not "
                        f"this Service's (no {self.cluster_tag}=owned and {model.SERVICE_UID_TAG} tags); "
                        "refusing to touch it"
                    ) from exc
                raise
            created = lb.get("CreatedTime")
            if isinstance(created, datetime.datetime) and created < started - datetime.timedelta(minutes=1):
                # AWS handed back an existing LB of the same name: use it only if it is ours.
                self._require_owned(lb["LoadBalancerArn"], what=f"load balancer {spec.name}")
            cache.lb_arn, cache.dns_name = lb["LoadBalancerArn"], lb["DNSName"]
            if replacing:
                cache.notices.append(
                    (
                        ADDRESS_CHANGED,
                        f"the scheme changed from {replacing.get('Scheme')} to {spec.scheme}: AWS cannot "
                        f"change it in place, so a new NLB {lb['DNSName']} replaces "
                        f"{replacing.get('DNSName')}; "
                        "update DNS records and allowlists that name the old one",
                    )
                )
            if spec.attributes:
                self._apply_lb_attributes(lb["LoadBalancerArn"], spec.attributes, described=None)
            return cache.lb_arn, True
        cache.lb_arn, cache.dns_name = existing.arn, described["DNSName"]
        if sorted(described.get("SecurityGroups", [])) != sorted(sg_ids):
            elbv2.set_security_groups(LoadBalancerArn=existing.arn, SecurityGroups=sg_ids)
        address_type_changes = described.get("IpAddressType", "ipv4") != spec.ip_address_type
        if address_type_changes and spec.ip_address_type == "ipv4":  # before subnets that may lack IPv6
            elbv2.set_ip_address_type(LoadBalancerArn=existing.arn, IpAddressType=spec.ip_address_type)
        self._set_subnets(arn=existing.arn, spec=spec, described=described, cache=cache)
        if address_type_changes and spec.ip_address_type != "ipv4":  # after the subnets it needs
            elbv2.set_ip_address_type(LoadBalancerArn=existing.arn, IpAddressType=spec.ip_address_type)
        self._apply_lb_attributes(existing.arn, spec.attributes, described=True)
        self._retag(existing.arn, have=existing.tags, want=dict(spec.tags))
        return existing.arn, False

    def _replace_for_scheme(
        self, *, existing: Found, described: Mapping[str, Any], spec: model.LoadBalancer, actual: ActualStack
    ) -> None:
        """A scheme cannot change in place: a new NLB replaces the old one, made before it is deleted.

        The new NLB is created while the old one still serves (its name differs: the scheme is in
        the name hash), then :meth:`ensure` deletes the old one before it gives the new one its
        listeners, because an NLB target group serves one load balancer only (NLB quotas, "Load
        balancers per target group: 1"). An NLB named before the scheme was in the name (an internal
        one of an earlier release) goes first, since the new one takes its name. The Service's address
        changes either way, and the provider says so in an event.
        """
        if "deletion_protection.enabled" in dict(spec.attributes) and (
            dict(spec.attributes)["deletion_protection.enabled"] == "true"
        ):
            raise RuntimeError(
                f"the scheme changes from {described.get('Scheme')} to {spec.scheme}, which needs a new NLB "
                "and the old one deleted, but the Service asks for deletion protection: set "
                "deletion_protection.enabled=false in aws-load-balancer-attributes for the change, then "
                "back to true"
            )
        logger.info(
            "%s: scheme changes from %s to %s: a new load balancer replaces %s",
            spec.name,
            described.get("Scheme"),
            spec.scheme,
            existing.arn,
        )
        if _lb_name(existing.arn) == spec.name:
            self._delete_load_balancer(existing.arn, keep_protection=False)
        else:
            actual.replaced.append(existing)

    def _set_subnets(
        self, *, arn: str, spec: model.LoadBalancer, described: Mapping[str, Any], cache: StackCache
    ) -> None:
        """Move the NLB to the wanted subnets in the order AWS allows; name what it cannot change.

        A subnet that stays keeps its addresses: AWS fixes the Elastic IP or private IPv4 address of an
        enabled subnet (SetSubnets: previously enabled subnets are given "with their existing
        configurations"), so a changed eip-allocations or private-ipv4-addresses for it is reported
        in an event and the NLB keeps its addresses. Swapping the subnet of a zone that stays enabled
        takes two calls: the zone is left out first, then added back with its new subnet.
        """
        az_of = {s.subnet_id: s.availability_zone for s in self.cluster_info().subnets}
        zones = {z["ZoneName"]: z for z in described.get("AvailabilityZones", [])}
        want: dict[str, dict[str, str]] = {}
        for mapping in spec.subnet_mappings:
            zone = zones.get(az_of.get(mapping.subnet_id, ""))
            if zone is None or zone["SubnetId"] != mapping.subnet_id:
                want[mapping.subnet_id] = self._mapping(mapping)
                continue
            have = self._zone_mapping(zone)
            wanted = self._mapping(mapping)
            if wanted != have:
                cache.notices.append(
                    (
                        NOT_APPLIED,
                        f"the NLB keeps the address of subnet {mapping.subnet_id} "
                        f"({self._describe_mapping(have)}): AWS cannot change the Elastic IP or private IPv4 "
                        f"address of a subnet in use, so the new setting ({self._describe_mapping(wanted)}) "
                        "is not applied. To move the address, recreate the Service (a new NLB)",
                    )
                )
            want[mapping.subnet_id] = have
        if sorted(want) == sorted(z["SubnetId"] for z in zones.values()):
            return
        swapped = {
            az_of.get(subnet_id, "")
            for subnet_id in want
            if az_of.get(subnet_id, "") in zones and zones[az_of.get(subnet_id, "")]["SubnetId"] != subnet_id
        }
        if swapped:
            interim = [m for subnet_id, m in want.items() if az_of.get(subnet_id, "") not in swapped]
            if not interim:
                raise RuntimeError(
                    f"every availability zone of the NLB changes its subnet ({', '.join(sorted(swapped))}); "
                    "AWS moves a zone to another subnet only by leaving it out first, and an NLB needs one "
                    "zone at all times: change the subnets one zone at a time"
                )
            self.clients.elbv2.set_subnets(LoadBalancerArn=arn, SubnetMappings=interim)
        self.clients.elbv2.set_subnets(LoadBalancerArn=arn, SubnetMappings=list(want.values()))

    @staticmethod
    def _zone_mapping(zone: Mapping[str, Any]) -> dict[str, str]:
        out = {"SubnetId": str(zone["SubnetId"])}
        for address in zone.get("LoadBalancerAddresses", []):
            if address.get("AllocationId"):
                out["AllocationId"] = address["AllocationId"]
            if address.get("PrivateIPv4Address"):
                out["PrivateIPv4Address"] = address["PrivateIPv4Address"]
        return out

    @staticmethod
    def _describe_mapping(mapping: Mapping[str, str]) -> str:
        parts = [mapping[k] for k in ("AllocationId", "PrivateIPv4Address") if mapping.get(k)]
        return ", ".join(parts) or "an address AWS chose"

    @staticmethod
    def _mapping(mapping: model.SubnetMapping) -> dict[str, str]:
        out = {"SubnetId": mapping.subnet_id}
        if mapping.allocation_id:
            out["AllocationId"] = mapping.allocation_id
        if mapping.private_ipv4_address:
            out["PrivateIPv4Address"] = mapping.private_ipv4_address
        return out

    def _apply_lb_attributes(
        self, arn: str, attributes: Sequence[tuple[str, str]], *, described: bool | None
    ) -> None:
        want = dict(attributes)
        if described:
            have = {
                a["Key"]: a["Value"]
                for a in self.clients.elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)[
                    "Attributes"
                ]
            }
            for key, default in MANAGED_LB_ATTRIBUTES.items():
                want.setdefault(key, default)
            changes = {k: v for k, v in want.items() if have.get(k, MANAGED_LB_ATTRIBUTES.get(k)) != v}
        else:
            changes = want
        if changes:
            self.clients.elbv2.modify_load_balancer_attributes(
                LoadBalancerArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(changes.items())]
            )

    def _retag(self, arn: str, *, have: Mapping[str, str], want: Mapping[str, str]) -> None:
        """Keep our tags and the user's additional-resource-tags current (added and removed)."""
        stale = [k for k in have if k not in want and k != model.SPEC_HASH_TAG and not k.startswith("aws:")]
        changed = [(k, v) for k, v in want.items() if have.get(k) != v]
        if stale:
            self.clients.elbv2.remove_tags(ResourceArns=[arn], TagKeys=stale)
        if changed:
            self.clients.elbv2.add_tags(ResourceArns=[arn], Tags=_tag_list(changed))

    # target groups and listeners

    def _ensure_target_groups(
        self, *, stack: model.Stack, actual: ActualStack, cache: StackCache
    ) -> dict[str, str]:
        elbv2 = self.clients.elbv2
        info = self.cluster_info()
        by_id = {tg.resource_id: tg for tg in actual.target_groups}
        arns: dict[str, str] = {}
        for spec in stack.target_groups:
            want_hash = model.spec_hash(spec)
            existing = by_id.get(spec.resource_id)
            if existing is not None and existing.arn.split("/")[-2] == spec.name:
                if existing.tags.get(model.SPEC_HASH_TAG) != want_hash:
                    self._modify_target_group(existing.arn, spec)
                    self._retag(existing.arn, have=existing.tags, want=dict(spec.tags))
                    elbv2.add_tags(
                        ResourceArns=[existing.arn], Tags=[{"Key": model.SPEC_HASH_TAG, "Value": want_hash}]
                    )
                elif spec.attributes:  # a crash may have come between create and the attributes
                    self._sync_target_group_attributes(existing.arn, spec)
                arns[spec.resource_id] = existing.arn
                cache.tg_ports[existing.arn] = spec.port
                continue
            hc = spec.health_check
            kwargs: dict[str, Any] = {
                "Name": spec.name,
                "Protocol": spec.protocol,
                "Port": spec.port,
                "VpcId": info.vpc_id,
                "TargetType": "instance",
                "HealthCheckProtocol": hc.protocol,
                "HealthCheckPort": hc.port,
                "HealthCheckEnabled": True,
                "HealthCheckIntervalSeconds": hc.interval_seconds,
                "HealthCheckTimeoutSeconds": hc.timeout_seconds,
                "HealthyThresholdCount": hc.healthy_threshold,
                "UnhealthyThresholdCount": hc.unhealthy_threshold,
                "Tags": _tag_list([*spec.tags, (model.SPEC_HASH_TAG, want_hash)]),
            }
            if hc.path:
                kwargs["HealthCheckPath"] = hc.path
            if hc.success_codes:
                kwargs["Matcher"] = {"HttpCode": hc.success_codes}
            created_new = True
            try:
                arn = elbv2.create_target_group(**kwargs)["TargetGroups"][0]["TargetGroupArn"]
            except ClientError as exc:
                if error_code(exc) != "DuplicateTargetGroupName":
                    raise
                arn = self._owned_target_group_by_name(spec.name)
                created_new = False
            if spec.attributes:
                elbv2.modify_target_group_attributes(
                    TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in spec.attributes]
                )
            arns[spec.resource_id] = arn
            cache.tg_ports[arn] = spec.port
            if created_new:
                cache.targets[arn] = frozenset()  # a new target group has no targets: no describe needed
            else:
                cache.targets.pop(arn, None)
        cache.tg_arns = dict(arns)
        return arns

    def _require_owned(self, arn: str, *, what: str) -> None:
        described = self.clients.elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
        tags = {t["Key"]: t["Value"] for t in (described[0]["Tags"] if described else [])}
        if not self.owns(tags):
            raise RuntimeError(
                f"{what} exists but is not owned by cluster {self.cluster_name} (no "
                f"{self.cluster_tag}=owned tag){self._scope_hint()}; refusing to use or change it"
            )

    def _owned_target_group_by_name(self, name: str) -> str:
        tg = self.clients.elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]
        self._require_owned(tg["TargetGroupArn"], what=f"target group {name}")
        return str(tg["TargetGroupArn"])

    def _modify_target_group(self, arn: str, spec: model.TargetGroup) -> None:
        elbv2 = self.clients.elbv2
        hc = spec.health_check
        kwargs: dict[str, Any] = {
            "TargetGroupArn": arn,
            "HealthCheckProtocol": hc.protocol,
            "HealthCheckPort": hc.port,
            "HealthCheckEnabled": True,
            "HealthCheckIntervalSeconds": hc.interval_seconds,
            "HealthCheckTimeoutSeconds": hc.timeout_seconds,
            "HealthyThresholdCount": hc.healthy_threshold,
            "UnhealthyThresholdCount": hc.unhealthy_threshold,
        }
        if hc.path:
            kwargs["HealthCheckPath"] = hc.path
        if hc.protocol in ("HTTP", "HTTPS"):  # a removed annotation restores AWS's default matcher
            kwargs["Matcher"] = {"HttpCode": hc.success_codes or DEFAULT_SUCCESS_CODES}
        elbv2.modify_target_group(**kwargs)
        self._sync_target_group_attributes(arn, spec)

    def _sync_target_group_attributes(self, arn: str, spec: model.TargetGroup) -> None:
        elbv2 = self.clients.elbv2
        described = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        have = {a["Key"]: a["Value"] for a in described}
        want = dict(spec.attributes)
        changes = {k: v for k, v in want.items() if have.get(k) != v}
        for key, default in tg_attribute_defaults(spec.protocol).items():  # annotation removed: AWS's default
            if key not in want and key in have and have[key] != default:
                changes[key] = default
        if changes:
            elbv2.modify_target_group_attributes(
                TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(changes.items())]
            )

    def _ensure_listeners(
        self,
        *,
        stack: model.Stack,
        lb_arn: str,
        tg_arns: Mapping[str, str],
        created: bool,
        cache: StackCache,
        retag: bool = False,
    ) -> None:
        """Listeners as the stack says; with ``retag`` (the user's tags changed) the kept ones are re-tagged.

        Listeners are not in the tagging API's listing, so their tags are read (DescribeTags, 20 per
        call) only when the load balancer's own tags show that the additional tags changed.
        """
        elbv2 = self.clients.elbv2
        have: dict[int, dict[str, Any]] = {}
        if not created:
            for page in elbv2.get_paginator("describe_listeners").paginate(LoadBalancerArn=lb_arn):
                for listener in page["Listeners"]:
                    have[int(listener["Port"])] = listener
        for port, listener in sorted(have.items()):
            spec = next((w for w in stack.listeners if w.port == port), None)
            if spec is None or spec.protocol != listener["Protocol"]:
                elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
                have.pop(port)
        kept: dict[str, model.Listener] = {}
        for spec in stack.listeners:
            action = [{"Type": "forward", "TargetGroupArn": tg_arns[spec.target_group]}]
            existing = have.get(spec.port)
            certs = [{"CertificateArn": spec.certificate_arn}] if spec.certificate_arn else []
            if existing is None:
                kwargs: dict[str, Any] = {
                    "LoadBalancerArn": lb_arn,
                    "Port": spec.port,
                    "Protocol": spec.protocol,
                    "DefaultActions": action,
                    "Tags": _tag_list(spec.tags),
                }
                if certs:
                    kwargs["Certificates"] = certs
                if spec.ssl_policy:
                    kwargs["SslPolicy"] = spec.ssl_policy
                try:
                    made = elbv2.create_listener(**kwargs)["Listeners"][0]["ListenerArn"]
                except ClientError as exc:
                    if error_code(exc) == "CertificateNotFound":
                        raise RuntimeError(
                            f"the certificate {spec.certificate_arn} (annotation "
                            "service.beta.kubernetes.io/aws-load-balancer-ssl-cert) does not exist in this "
                            f"account and region, so the TLS listener on port {spec.port} cannot be made; "
                            "import or request it in ACM (or fix the ARN): the load balancer gets its "
                            "listeners as soon as it exists"
                        ) from exc
                    if error_code(exc) != "DuplicateListener":
                        raise
                    logger.info(
                        "listener %d of %s already exists (an earlier attempt made it)", spec.port, lb_arn
                    )
                    made = self._modify_listener(lb_arn=lb_arn, spec=spec, action=action, certs=certs)
                    cache.listener_attributes.pop(made, None)  # unknown: described before it is set
                else:
                    cache.listener_attributes[made] = ()  # a new listener has AWS's defaults
                self._sync_listener_attributes(arn=made, spec=spec, cache=cache)
                continue
            self._sync_listener_attributes(arn=existing["ListenerArn"], spec=spec, cache=cache)
            if retag:
                kept[existing["ListenerArn"]] = spec
            have_tg = (existing.get("DefaultActions") or [{}])[0].get("TargetGroupArn")
            have_cert = [c["CertificateArn"] for c in existing.get("Certificates", [])]
            if (
                have_tg != tg_arns[spec.target_group]
                or have_cert != [c["CertificateArn"] for c in certs]
                or (spec.ssl_policy and existing.get("SslPolicy") != spec.ssl_policy)
            ):
                kwargs = {"ListenerArn": existing["ListenerArn"], "DefaultActions": action}
                if certs:
                    kwargs["Certificates"] = certs
                if spec.ssl_policy:
                    kwargs["SslPolicy"] = spec.ssl_policy
                elbv2.modify_listener(**kwargs)
        if kept:
            self._retag_listeners(kept)

    def _retag_listeners(self, kept: Mapping[str, model.Listener]) -> None:
        arns = sorted(kept)
        for chunk in _chunks(arns, 20):
            for described in self.clients.elbv2.describe_tags(ResourceArns=list(chunk))["TagDescriptions"]:
                have = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
                self._retag(
                    described["ResourceArn"], have=have, want=dict(kept[described["ResourceArn"]].tags)
                )

    def _modify_listener(
        self, *, lb_arn: str, spec: model.Listener, action: list[dict[str, Any]], certs: list[dict[str, str]]
    ) -> str:
        elbv2 = self.clients.elbv2
        for page in elbv2.get_paginator("describe_listeners").paginate(LoadBalancerArn=lb_arn):
            for listener in page["Listeners"]:
                if int(listener["Port"]) == spec.port:
                    kwargs: dict[str, Any] = {
                        "ListenerArn": listener["ListenerArn"],
                        "DefaultActions": action,
                    }
                    if certs:
                        kwargs["Certificates"] = certs
                    elbv2.modify_listener(**kwargs)
                    return str(listener["ListenerArn"])
        raise RuntimeError(f"listener {spec.port} of {lb_arn} was reported as existing but is not listed")

    def _sync_listener_attributes(self, *, arn: str, spec: model.Listener, cache: StackCache) -> None:
        """Set the listener attributes the user asked for; put back AWS's default of a removed one.

        Free when nothing changed: what this process set or saw is remembered per listener, so only
        a listener unknown since a restart is described (once), and only when its protocol has
        attributes at all (TCP).
        """
        defaults = LISTENER_ATTRIBUTE_DEFAULTS.get(spec.protocol)
        if not defaults or cache.listener_attributes.get(arn) == spec.attributes:
            return
        elbv2 = self.clients.elbv2
        want = {**defaults, **dict(spec.attributes)}
        if arn in cache.listener_attributes:
            have = {**defaults, **dict(cache.listener_attributes[arn])}
        else:
            described = elbv2.describe_listener_attributes(ListenerArn=arn)["Attributes"]
            have = {**defaults, **{a["Key"]: a["Value"] for a in described}}
        changes = {k: v for k, v in want.items() if have.get(k) != v}
        if changes:
            elbv2.modify_listener_attributes(
                ListenerArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(changes.items())]
            )
        cache.listener_attributes[arn] = spec.attributes

    # targets

    def _sync_targets(self, *, cache: StackCache, stack: model.Stack) -> None:
        """Deregister, then register (as upstream: a node swap never needs room for both in the
        500-targets-per-AZ quota), skipping instances AWS recently refused as not running."""
        want = frozenset(stack.targets)
        now = time.monotonic()
        with self._lock:
            for iid, since in list(self._not_running.items()):
                if now - since >= NOT_RUNNING_RETRY_SECONDS:
                    del self._not_running[iid]
        for arn in cache.tg_arns.values():
            with self._lock:
                skip = frozenset(self._not_running)
            have = cache.targets.get(arn)
            if have is None:
                have = self._registered(arn)
            remove = sorted(have - want)
            try:
                self._deregister(arn=arn, instance_ids=remove)
            except ClientError as exc:
                # A target we remember is no longer registered (its instance was terminated, or someone
                # deregistered it): the whole call is refused. What is registered is read, once.
                if error_code(exc) != "InvalidTarget" or arn not in cache.targets:
                    raise
                have = self._registered(arn)
                remove = sorted(have - want)
                self._deregister(arn=arn, instance_ids=remove)
            add = sorted(want - have - skip)
            refused: set[str] = set()
            for chunk in _chunks(add, 100):
                refused |= self._register(arn=arn, instance_ids=chunk)
            cache.targets[arn] = (have - set(remove)) | (set(add) - refused)

    def _registered(self, arn: str) -> frozenset[str]:
        health = self.clients.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return frozenset(
            h["Target"]["Id"] for h in health if h.get("TargetHealth", {}).get("State") != "draining"
        )

    def _deregister(self, *, arn: str, instance_ids: Sequence[str]) -> None:
        for chunk in _chunks(instance_ids, 100):
            self.clients.elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in chunk])

    def _register(self, *, arn: str, instance_ids: Sequence[str]) -> set[str]:
        """Register ``instance_ids``; returns those AWS refuses because they are not running.

        RegisterTargets refuses the whole call (``InvalidTarget``) when one instance is not running
        or no longer exists (ELBv2 API reference, RegisterTargets). Then the instances are described
        once, the running ones registered, and the rest reported and left out for a while, so that
        one stopped node never keeps every other node (and every Service) out of the load balancer.
        """
        elbv2 = self.clients.elbv2
        try:
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in instance_ids])
            return set()
        except ClientError as exc:
            if error_code(exc) != "InvalidTarget":
                raise
        found = self._describe_instances(instance_ids)
        running = [i for i in instance_ids if found.get(i, {}).get("State", {}).get("Name") == "running"]
        refused = {i for i in instance_ids if i not in running}
        logger.warning(
            "not registering instances that are not running with %s: %s",
            arn,
            ", ".join(
                f"{i} ({found[i]['State']['Name'] if i in found else 'does not exist'})"
                for i in sorted(refused)
            ),
        )
        now = time.monotonic()
        with self._lock:
            for iid in refused:
                self._not_running[iid] = now
        if running:
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in running])
        return refused

    def update_targets(self, *, key: str, uid: str, stack: model.Stack) -> bool:
        """Only the targets (node sync). Returns False if the stack is unknown (the caller ensures)."""
        cache = self._stacks.get(key)
        if cache is None or not cache.tg_arns:
            actual = self._actual(uid)
            if actual.load_balancer is None or not actual.target_groups:
                return False
            cache = self._stacks.setdefault(key, StackCache())
            cache.lb_arn = actual.load_balancer.arn
            cache.tg_arns = {tg.resource_id: tg.arn for tg in actual.target_groups}
        self._sync_targets(cache=cache, stack=stack)
        return True

    # -- delete -------------------------------------------------------------------------------------

    def delete(self, *, key: str, uid: str, keep_protection: bool = False) -> None:
        """Delete everything of the Service's stack that this cluster owns.

        An NLB with deletion protection is deleted only when the Service no longer asks for the
        protection (``keep_protection`` false: the attribute is ours to manage, as every ensure puts it
        back to false once the annotation is gone); otherwise the delete fails, saying how to let it go.
        """
        actual = self._actual(uid)
        cache = self._stacks.pop(key, None)
        if actual.empty and cache is not None and cache.lb_arn:
            # The tagging API may not list what was made a moment ago: delete what this process made.
            actual.load_balancer = Found(arn=cache.lb_arn, tags={})
            actual.target_groups = [Found(arn=arn, tags={}) for arn in cache.tg_arns.values()]
        for lb in (actual.load_balancer, *actual.replaced):
            if lb is not None:
                self._delete_load_balancer(lb.arn, keep_protection=keep_protection)
        for tg in actual.target_groups:
            self._delete_target_group(tg.arn)
        for sg in actual.security_groups:
            self._delete_security_group(sg.sg_id)

    def _delete_load_balancer(self, arn: str, *, keep_protection: bool) -> None:
        elbv2 = self.clients.elbv2
        try:
            elbv2.delete_load_balancer(LoadBalancerArn=arn)
        except ClientError as exc:
            code = error_code(exc)
            if code == "LoadBalancerNotFound":
                return
            if code != "OperationNotPermitted":
                raise
            if keep_protection:
                raise RuntimeError(
                    f"the NLB {arn} has deletion protection on, as the Service asks "
                    "(aws-load-balancer-attributes: deletion_protection.enabled=true): remove that key or "
                    "set it to false to let the load balancer be deleted; until then it stays"
                ) from exc
            logger.info("%s: deletion protection is on but no longer asked for: turning it off", arn)
            elbv2.modify_load_balancer_attributes(
                LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}]
            )
            elbv2.delete_load_balancer(LoadBalancerArn=arn)

    def _delete_target_group(self, arn: str) -> None:
        try:
            self.clients.elbv2.delete_target_group(TargetGroupArn=arn)
        except ClientError as exc:
            code = error_code(exc)
            if code == "TargetGroupNotFound":
                return
            if code == "ResourceInUse":
                raise RetryAfter(
                    f"target group {arn} is still in use by a deleting load balancer", seconds=10
                ) from exc
            raise

    def _delete_security_group(self, sg_id: str) -> bool:
        """Delete an owned SG; one still attached (DependencyViolation) is left to the orphan sweep."""
        try:
            self.clients.ec2.delete_security_group(GroupId=sg_id)
            return True
        except ClientError as exc:
            code = error_code(exc)
            if code == "InvalidGroup.NotFound":
                return True
            if code == "DependencyViolation":
                logger.info(
                    "security group %s is still in use (network interfaces of a deleted load "
                    "balancer take a few minutes to go); the orphan sweep will delete it",
                    sg_id,
                )
                return False
            raise

    # -- drift and orphans ---------------------------------------------------------------------------

    def drifted(
        self,
        *,
        stacks: Mapping[str, tuple[str, model.Stack]],
        live_uids: frozenset[str] | None,
        full: bool,
        orphan_grace: float,
        now: float,
    ) -> frozenset[str]:
        """Keys (of ``stacks``: key → (uid, stack)) whose LB is missing or differs; deletes orphans.

        A normal pass lists only load balancers (one call per 100). A ``full`` pass also lists target
        groups and security groups, so a missing part or a leaked one (left by a failure midway) is
        found too. A resource of this scope is an orphan when its Service UID is not in ``live_uids``
        (every Service of the cluster); it is deleted once it has been an orphan for ``orphan_grace``
        seconds. ``live_uids=None`` sweeps nothing.
        """
        with self._sweep_lock:
            types = (LB_TYPE, TG_TYPE, SG_TYPE) if full else (LB_TYPE,)
            found = self.list_owned(types=types)
            by_uid: dict[str, list[Found]] = {}
            for item in found:
                by_uid.setdefault(item.tags.get(model.SERVICE_UID_TAG, ""), []).append(item)
            drifted: set[str] = set()
            for key, (uid, stack) in stacks.items():
                items = by_uid.get(uid, [])
                lbs = [i for i in items if i.resource_id == model.RESOURCE_LOAD_BALANCER]
                if len(lbs) != 1 or lbs[0].tags.get(model.SPEC_HASH_TAG) != stack.spec_hash():
                    drifted.add(key)
                    continue
                if full:
                    have = {i.resource_id: i for i in items}
                    want = {tg.resource_id: model.spec_hash(tg) for tg in stack.target_groups}
                    if stack.frontend_security_group is not None:
                        want[model.RESOURCE_FRONTEND_SG] = model.spec_hash(stack.frontend_security_group)
                    if any(
                        rid not in have or have[rid].tags.get(model.SPEC_HASH_TAG) != h
                        for rid, h in want.items()
                    ):
                        drifted.add(key)
            if live_uids is None:
                return frozenset(drifted)
            live = live_uids | {uid for uid, _stack in stacks.values()}
            orphans = [item for uid, items in by_uid.items() if uid and uid not in live for item in items]
            seen = self._orphans_seen
            current = {o.arn for o in orphans}
            for arn in list(seen):
                # A partial listing (not full) leaves the target groups' and SGs' clocks running.
                if arn not in current and (full or ":loadbalancer/" in arn):
                    del seen[arn]
            due = [o for o in orphans if now - seen.setdefault(o.arn, now) >= orphan_grace]
            self._delete_orphans(due)
            return frozenset(drifted)

    def _existing(self, items: Sequence[Found]) -> list[Found]:
        """The listed resources that still exist: the tagging API also lists deleted ones."""
        lbs = [i.arn for i in items if i.resource_id == model.RESOURCE_LOAD_BALANCER]
        tgs = [i.arn for i in items if i.resource_id.startswith(model.TARGET_GROUP_PREFIX)]
        sgs = [i.sg_id for i in items if i.resource_id == model.RESOURCE_FRONTEND_SG]
        exists: set[str] = set()
        if lbs:
            exists |= set(self._described_load_balancers(lbs))
        if tgs:
            exists |= set(self._described(tgs, describe=self._describe_tgs, missing="TargetGroupNotFound"))
        for chunk in _chunks(sorted(set(sgs)), 200):  # a group-id filter tolerates unknown IDs
            groups = self.clients.ec2.describe_security_groups(
                Filters=[{"Name": "group-id", "Values": list(chunk)}]
            )
            exists |= {g["GroupId"] for g in groups["SecurityGroups"]}
        kept = [i for i in items if i.arn in exists or i.sg_id in exists]
        gone = [i.arn for i in items if i not in kept]
        if gone:
            logger.info(
                "the tagging API still lists deleted resources %s: nothing to delete", ", ".join(gone)
            )
            with self._lock:
                for arn in gone:
                    self._orphans_seen.pop(arn, None)
        return kept

    def _delete_orphans(self, orphans: Sequence[Found]) -> None:
        """Delete in dependency order; an entry is forgotten only once its resource is gone."""
        order = {model.RESOURCE_LOAD_BALANCER: 0, model.RESOURCE_FRONTEND_SG: 2}
        if orphans:
            orphans = self._existing(orphans)
        for item in sorted(orphans, key=lambda i: order.get(i.resource_id, 1)):
            logger.info(
                "deleting orphaned %s %s of Service %s (uid %s): no Service with this UID exists",
                item.resource_id,
                item.arn,
                item.tags.get(model.SERVICE_NAME_TAG, "?"),
                item.tags.get(model.SERVICE_UID_TAG, "?"),
            )
            try:
                gone = True
                if item.resource_id == model.RESOURCE_LOAD_BALANCER:
                    try:
                        self.clients.elbv2.delete_load_balancer(LoadBalancerArn=item.arn)
                    except ClientError as exc:
                        if error_code(exc) != "LoadBalancerNotFound":
                            raise
                elif item.resource_id.startswith(model.TARGET_GROUP_PREFIX):
                    self._delete_target_group(item.arn)
                elif item.resource_id == model.RESOURCE_FRONTEND_SG:
                    gone = self._delete_security_group(item.sg_id)
                else:
                    gone = False  # not a part we make: left alone
                if gone:
                    self._orphans_seen.pop(item.arn, None)
            except Exception as exc:  # the next sweep tries again; the others still go now
                logger.warning("could not delete orphaned %s yet: %s", item.arn, exc)

    def forget(self, key: str) -> None:
        self._stacks.pop(key, None)

    def cached_spec_hash(self, key: str) -> str:
        cache = self._stacks.get(key)
        return cache.spec_hash if cache else ""


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

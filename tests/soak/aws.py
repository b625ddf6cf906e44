"""The soak's AWS: moto over HTTP, with :class:`tests.soak.awsproxy.FaultProxy` between it and the controller.

Seeded like a cluster's account (VPC, internet gateway, public and internal subnets per zone, a node
security group), plus foreign resources the controller must never touch: another cluster's NLB named
after one of our Services, an NLB with no tags and our naming, another scope's target group of a UID
that exists nowhere, a security group our cluster only *shares*, and a rule of someone else's on the
node security group. Changes by hand: an NLB deleted, its spec-hash tag changed, a target group deleted
(with the listener that used it).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import botocore.config
from botocore.exceptions import ClientError

from sandbox.aws import IMAGE_ID, REGION, MotoServer
from sandbox.aws import controller_env as moto_env
from tests.soak.awsproxy import FaultProxy, Faults
from tests.soak.cloud import Inventory, LoadBalancer
from tests.soak.workload import Flavour, Invalid, Machine, Spec

ZONES = ("us-east-1a", "us-east-1b")
P = "service.beta.kubernetes.io/aws-load-balancer-"
INTERNAL, SCHEME = P + "internal", P + "scheme"
INTERVAL, TIMEOUT = P + "healthcheck-interval", P + "healthcheck-timeout"
UID_TAG, RESOURCE_TAG, SCOPE_TAG = "ccm-lb/service-uid", "ccm-lb/resource", "ccm-lb/scope"
SERVICE_TAG, HASH_TAG = "kubernetes.io/service-name", "ccm-lb/spec-hash"
TYPES = ("elasticloadbalancing:loadbalancer", "elasticloadbalancing:targetgroup", "ec2:security-group")


def _annotations(service: Mapping[str, Any]) -> Mapping[str, str]:
    return (service.get("metadata") or {}).get("annotations") or {}


def _with(spec: Spec, **annotations: str) -> Spec:
    merged = {**spec.annotation_map(), **annotations}
    return Spec(**{**spec.__dict__, "annotations": tuple(sorted(merged.items()))})


FLAVOUR = Flavour(
    port_pool=((80, "TCP"), (443, "TCP"), (8080, "TCP"), (53, "UDP")),
    one_protocol=False,
    annotation_choices=(
        ((INTERNAL, "true"),),
        ((P + "additional-resource-tags", "team=soak,tier=web"),),
        ((INTERVAL, "30"),),
    ),
    address_keys=(INTERNAL, SCHEME),
    invalids=(
        Invalid(
            name="interval-not-a-number",
            apply=lambda s: _with(s, **{INTERVAL: "ten"}),
            matches=lambda svc: _annotations(svc).get(INTERVAL) == "ten",
        ),
        Invalid(
            name="timeout-over-interval",
            apply=lambda s: _with(s, **{INTERVAL: "10", TIMEOUT: "30"}),
            matches=lambda svc: (
                _annotations(svc).get(TIMEOUT) == "30" and _annotations(svc).get(INTERVAL) == "10"
            ),
        ),
        Invalid(
            name="scheme-contradiction",
            apply=lambda s: _with(s, **{INTERNAL: "true", SCHEME: "internet-facing"}),
            matches=lambda svc: (
                _annotations(svc).get(SCHEME) == "internet-facing"
                and _annotations(svc).get(INTERNAL) == "true"
            ),
        ),
    ),
)


def _tags(items: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or ()}


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class AwsCloud:
    name = "aws"
    flavour = FLAVOUR
    fault_kinds: tuple[str, ...] = ("aws-throttle", "aws-5xx", "aws-latency", "aws-reset")
    hand_kinds: tuple[str, ...] = ("hand-delete-lb", "hand-retag-lb", "hand-delete-tg")
    shared_parts_stay = True  # the cluster's backend security group is made once and kept

    def __init__(self, *, cluster: str, seed: int) -> None:
        self.cluster = cluster
        self.cluster_tag = f"kubernetes.io/cluster/{cluster}"
        self.moto = MotoServer()
        self.proxy: FaultProxy | None = None
        self.seed_value = seed
        self.subnets: dict[str, str] = {}
        self.node_sg = ""
        self.vpc = ""
        self.foreign: dict[str, str] = {}  # role → id/arn
        self._machines = 0

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.moto.start()
        self.proxy = FaultProxy(upstream=self.moto.endpoint, seed=self.seed_value)
        self.proxy.start()
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        config = botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"})
        self.ec2 = session.client("ec2", endpoint_url=self.moto.endpoint, config=config)
        self.elbv2 = session.client("elbv2", endpoint_url=self.moto.endpoint, config=config)
        self.tagging = session.client(
            "resourcegroupstaggingapi", endpoint_url=self.moto.endpoint, config=config
        )

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.moto.stop()

    def controller_args(self, *, workdir: Path) -> list[str]:
        return []

    def controller_env(self, *, base: Mapping[str, str]) -> dict[str, str]:
        assert self.proxy is not None
        return moto_env(endpoint=self.proxy.url, base=base)

    # -- seeding ------------------------------------------------------------------------------------

    def seed(self) -> None:
        owned = {self.cluster_tag: "owned"}
        ec2 = self.ec2
        self.vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=self.vpc)
        main = ec2.describe_route_tables(
            Filters=[
                {"Name": "vpc-id", "Values": [self.vpc]},
                {"Name": "association.main", "Values": ["true"]},
            ]
        )["RouteTables"][0]["RouteTableId"]
        ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        private_table = ec2.create_route_table(VpcId=self.vpc)["RouteTable"]["RouteTableId"]
        for index, zone in enumerate(ZONES):
            for kind, role, offset in (("public", "elb", 1), ("private", "internal-elb", 11)):
                subnet = ec2.create_subnet(
                    VpcId=self.vpc,
                    CidrBlock=f"10.0.{index + offset}.0/24",
                    AvailabilityZone=zone,
                    TagSpecifications=[
                        {
                            "ResourceType": "subnet",
                            "Tags": _tag_list({**owned, f"kubernetes.io/role/{role}": "1", "Name": kind}),
                        }
                    ],
                )["Subnet"]["SubnetId"]
                if kind == "public":
                    self.subnets[zone] = subnet
                else:
                    ec2.associate_route_table(RouteTableId=private_table, SubnetId=subnet)
        self.node_sg = ec2.create_security_group(
            GroupName="nodes",
            Description="nodes",
            VpcId=self.vpc,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": _tag_list(owned)}],
        )["GroupId"]

    def seed_foreign(self) -> None:
        ec2, elbv2 = self.ec2, self.elbv2
        subnets = list(self.subnets.values())
        # another cluster's NLB for a Service of the same name as ours, with a UID that exists nowhere
        other = {
            "kubernetes.io/cluster/other": "owned",
            SERVICE_TAG: "soak-a/s00",
            UID_TAG: str(uuid.uuid4()),
            RESOURCE_TAG: "load-balancer",
        }
        sg = ec2.create_security_group(
            GroupName="other-cluster-lb",
            Description="another cluster's",
            VpcId=self.vpc,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": _tag_list(other)}],
        )["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            ],
        )
        lb = elbv2.create_load_balancer(
            Name="k8s-soaka-s00-other",
            Type="network",
            Subnets=subnets,
            SecurityGroups=[sg],
            Tags=_tag_list(other),
        )["LoadBalancers"][0]["LoadBalancerArn"]
        tg = elbv2.create_target_group(
            Name="k8s-soaka-s00-other-tg",
            Protocol="TCP",
            Port=30080,
            VpcId=self.vpc,
            TargetType="instance",
            Tags=_tag_list(other),
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.create_listener(
            LoadBalancerArn=lb,
            Protocol="TCP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
        )
        # no tags at all, and a name of our pattern
        bare = elbv2.create_load_balancer(Name="k8s-soaka-s01-0123456789", Type="network", Subnets=subnets)
        # this cluster's, but another scope's (another --load-balancer-class instance), UID gone
        scoped = elbv2.create_target_group(
            Name="k8s-other-scope-tg",
            Protocol="TCP",
            Port=30081,
            VpcId=self.vpc,
            TargetType="instance",
            Tags=_tag_list(
                {
                    self.cluster_tag: "owned",
                    SCOPE_TAG: "example.com/other",
                    UID_TAG: str(uuid.uuid4()),
                    RESOURCE_TAG: "target-group-tcp-80",
                    SERVICE_TAG: "soak-b/s01",
                }
            ),
        )["TargetGroups"][0]["TargetGroupArn"]
        shared = ec2.create_security_group(
            GroupName="shared-with-cluster",
            Description="shared",
            VpcId=self.vpc,
            TagSpecifications=[
                {"ResourceType": "security-group", "Tags": _tag_list({self.cluster_tag: "shared"})}
            ],
        )["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=self.node_sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}
            ],
        )
        self.foreign = {
            "other-cluster-lb": lb,
            "other-cluster-tg": tg,
            "other-cluster-sg": sg,
            "untagged-lb": bare["LoadBalancers"][0]["LoadBalancerArn"],
            "other-scope-tg": scoped,
            "shared-sg": shared,
        }

    def foreign_snapshot(self) -> dict[str, Any]:
        elbv2, ec2 = self.elbv2, self.ec2
        out: dict[str, Any] = {}
        lbs = [self.foreign["other-cluster-lb"], self.foreign["untagged-lb"]]
        found = elbv2.describe_load_balancers(LoadBalancerArns=lbs)["LoadBalancers"]
        out["lbs"] = sorted(
            (lb["LoadBalancerName"], lb["DNSName"], lb.get("Scheme", ""), tuple(lb.get("SecurityGroups", [])))
            for lb in found
        )
        tgs = [self.foreign["other-cluster-tg"], self.foreign["other-scope-tg"]]
        out["tgs"] = sorted(
            (tg["TargetGroupName"], tg["Port"], tg.get("HealthCheckIntervalSeconds"))
            for tg in elbv2.describe_target_groups(TargetGroupArns=tgs)["TargetGroups"]
        )
        out["tags"] = {
            d["ResourceArn"]: _tags(d["Tags"])
            for d in elbv2.describe_tags(ResourceArns=lbs + tgs)["TagDescriptions"]
        }
        out["listeners"] = sorted(
            (x["Port"], x["Protocol"]) for x in elbv2.describe_listeners(LoadBalancerArn=lbs[0])["Listeners"]
        )
        groups = ec2.describe_security_groups(
            GroupIds=[self.foreign["other-cluster-sg"], self.foreign["shared-sg"]]
        )["SecurityGroups"]
        out["sgs"] = sorted(
            (
                g["GroupId"],
                repr(sorted(map(repr, g.get("IpPermissions", [])))),
                repr(sorted(_tags(g.get("Tags")).items())),
            )
            for g in groups
        )
        node = ec2.describe_security_groups(GroupIds=[self.node_sg])["SecurityGroups"][0]
        out["node-sg-foreign-rule"] = any(
            p.get("FromPort") == 22 and any(r.get("CidrIp") == "10.9.0.0/16" for r in p.get("IpRanges", []))
            for p in node.get("IpPermissions", [])
        )
        return out

    # -- machines -----------------------------------------------------------------------------------

    def new_machine(self, *, rng: random.Random) -> Machine:
        zone = rng.choice(ZONES)
        iid = self.ec2.run_instances(
            ImageId=IMAGE_ID,
            MinCount=1,
            MaxCount=1,
            SubnetId=self.subnets[zone],
            SecurityGroupIds=[self.node_sg],
        )["Instances"][0]["InstanceId"]
        self._machines += 1
        return Machine(node=f"ip-{iid}", provider_id=f"aws:///{zone}/{iid}", zone=zone, instance=iid)

    def remove_machine(self, machine: Machine) -> None:
        self.ec2.terminate_instances(InstanceIds=[machine.instance])

    def instance_of(self, provider_id: str) -> str:
        return provider_id.rsplit("/", 1)[-1]

    # -- reading ------------------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        inv = Inventory()
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = self.tagging.get_resources(
                TagFilters=[{"Key": self.cluster_tag, "Values": ["owned"]}],
                ResourceTypeFilters=list(TYPES),
                **({"PaginationToken": token} if token else {}),
            )
            items += page["ResourceTagMappingList"]
            token = page.get("PaginationToken", "")
            if not token:
                break
        lbs: dict[str, dict[str, Any]] = {}
        marker = None
        while True:
            page = self.elbv2.describe_load_balancers(**({"Marker": marker} if marker else {}))
            lbs.update({lb["LoadBalancerArn"]: lb for lb in page["LoadBalancers"]})
            marker = page.get("NextMarker")
            if not marker:
                break
        for item in items:
            tags = _tags(item["Tags"])
            if SCOPE_TAG in tags:
                continue  # another instance's
            arn = item["ResourceARN"]
            uid = tags.get(UID_TAG, "")
            if not uid:
                inv.shared.append(arn)
                continue
            inv.parts.setdefault(uid, []).append(arn)
            if tags.get(RESOURCE_TAG) == "load-balancer" and arn in lbs:
                lb = lbs[arn]
                inv.load_balancers.setdefault(uid, []).append(
                    LoadBalancer(
                        id=arn,
                        scheme=lb.get("Scheme", "internet-facing"),
                        address=lb["DNSName"],
                        service=tags.get(SERVICE_TAG, ""),
                    )
                )
        return inv

    def check_service(
        self, *, service: Mapping[str, Any], inventory: Inventory, targets: Sequence[Machine]
    ) -> list[str]:
        uid = service["metadata"]["uid"]
        lbs = inventory.load_balancers.get(uid, [])
        if len(lbs) != 1:
            return [f"{len(lbs)} load balancers"]
        lb = lbs[0]
        problems = []
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not ingress or ingress[0].get("hostname") != lb.address:
            problems.append(f"ingress {ingress} is not the NLB's {lb.address}")
        annotations = _annotations(service)
        want_scheme = "internal" if annotations.get(INTERNAL) == "true" else "internet-facing"
        if lb.scheme != want_scheme:
            problems.append(f"scheme {lb.scheme}, wanted {want_scheme}")
        try:
            return problems + self._listener_problems(service=service, lb=lb, targets=targets)
        except ClientError as exc:  # the controller replaced or deleted it since the inventory was read
            if exc.response.get("Error", {}).get("Code") not in (
                "LoadBalancerNotFound",
                "TargetGroupNotFound",
            ):
                raise
            return [*problems, f"{lb.id} went away while it was checked"]

    def _listener_problems(
        self, *, service: Mapping[str, Any], lb: LoadBalancer, targets: Sequence[Machine]
    ) -> list[str]:
        problems: list[str] = []
        listeners = self.elbv2.describe_listeners(LoadBalancerArn=lb.id)["Listeners"]
        have = {(x["Port"], x["Protocol"]) for x in listeners}
        want = {(int(p["port"]), p.get("protocol", "TCP")) for p in service["spec"]["ports"]}
        if have != want:
            problems.append(f"listeners {sorted(have)}, wanted {sorted(want)}")
        expected = {m.instance for m in targets}
        for listener in listeners:
            for action in listener.get("DefaultActions", []):
                arn = action.get("TargetGroupArn")
                if not arn:
                    continue
                health = self.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
                registered = {h["Target"]["Id"] for h in health}
                if registered != expected:
                    port = listener["Port"]
                    problems.append(
                        f"listener {port}: targets {sorted(registered)}, wanted {sorted(expected)}"
                    )
        return problems

    # -- faults -------------------------------------------------------------------------------------

    def inject(self, kind: str, *, rng: random.Random) -> None:
        assert self.proxy is not None
        faults = {
            "aws-throttle": Faults(throttle=rng.uniform(0.2, 0.6)),
            "aws-5xx": Faults(server_error=rng.uniform(0.1, 0.4)),
            "aws-latency": Faults(latency=(0.05, rng.uniform(0.5, 3.0))),
            "aws-reset": Faults(reset_before=rng.uniform(0.05, 0.2), reset_after=rng.uniform(0.05, 0.2)),
        }[kind]
        self.proxy.set(faults)

    def clear(self) -> None:
        if self.proxy is not None:
            self.proxy.clear()

    def by_hand(
        self, kind: str, *, rng: random.Random, inventory: Inventory, before: Callable[[str, str], None]
    ) -> str | None:
        candidates = sorted((uid, lbs[0]) for uid, lbs in inventory.load_balancers.items() if lbs)
        if not candidates:
            return None
        _uid, lb = rng.choice(candidates)
        before(kind, lb.service)
        if kind == "hand-delete-lb":
            self.elbv2.delete_load_balancer(LoadBalancerArn=lb.id)
        elif kind == "hand-retag-lb":
            self.elbv2.add_tags(ResourceArns=[lb.id], Tags=[{"Key": HASH_TAG, "Value": "changed-by-hand"}])
        else:
            listeners = self.elbv2.describe_listeners(LoadBalancerArn=lb.id)["Listeners"]
            if not listeners:
                return None
            listener = rng.choice(listeners)
            self.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
            for action in listener.get("DefaultActions", []):
                if action.get("TargetGroupArn"):
                    self.elbv2.delete_target_group(TargetGroupArn=action["TargetGroupArn"])
        return lb.service

    def controller_calls(self) -> int:
        return self.proxy.total_requests() if self.proxy is not None else 0

    def injected(self) -> dict[str, int]:
        return dict(self.proxy.injected) if self.proxy is not None else {}

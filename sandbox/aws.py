"""A fake AWS account for the sandbox: moto as an HTTP server, seeded like a Kubernetes cluster's account.

The controller runs as its own process and reaches moto exactly as it reaches AWS, through boto3's
standard ``AWS_ENDPOINT_URL``; nothing in it knows that the cloud is fake. The seed is what the AWS
provider discovers in a real account: a VPC with an internet gateway on its main route table, one public
subnet per availability zone tagged
``kubernetes.io/cluster/<cluster>=owned`` and ``kubernetes.io/role/elb=1``, a cluster-tagged node security
group, and the instances the Nodes point at. The same clients then read back what the controller built,
for the sandbox's table.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from sandbox.cloud import Machine, Seeded, without_prefixes
from sandbox.report import section, table

logger = logging.getLogger(__name__)

REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b")
INSTANCE_TYPE = "t3.medium"
IMAGE_ID = "ami-12c6146b"  # one of moto's built-in AMIs
FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"
RESOURCE_TAG = "ccm-lb/resource"  # the AWS provider's tag naming each part; read for display only
SERVICE_NAME_TAG = "kubernetes.io/service-name"


class MotoServer:
    """moto's HTTP server on 127.0.0.1, serving from a daemon thread of this process.

    The sandbox binds the socket itself and hands it to werkzeug: on a busy port, moto's
    ``ThreadedMotoServer`` would wait forever and werkzeug alone would print two lines and call
    ``sys.exit``; here :meth:`start` raises :class:`OSError` and the sandbox explains.
    """

    def __init__(self, *, port: int = 0) -> None:
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - moto takes a second to import
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415 - only needed with moto

        from sandbox.moto_corrections import correct_moto  # noqa: PLC0415 - imports moto

        correct_moto()  # moto behaves like AWS where the provider meets it (Classic ELBs by tag, DNS names)

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))  # OSError (EADDRINUSE, EACCES) for the caller
            sock.listen(128)
            self.port = int(sock.getsockname()[1])
            app = DomainDispatcherApplication(create_backend_app)
            # werkzeug duplicates the descriptor, so closing ours at the end of the block is fine.
            self._server = make_server(
                "127.0.0.1",
                self.port,
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=sock.fileno(),
            )
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None


def controller_env(*, endpoint: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without the user's own AWS settings, plus fake credentials and the moto endpoint."""
    env = without_prefixes(base, "AWS_")
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=FAKE_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET_KEY,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnets: Mapping[str, str]  # zone → subnet id
    node_security_group: str
    instances: tuple[Machine, ...]


@dataclass(frozen=True)
class LoadBalancerInfo:
    name: str
    dns_name: str
    scheme: str
    state: str
    service: str


@dataclass(frozen=True)
class ListenerInfo:
    load_balancer: str
    port: int
    protocol: str
    target_group: str


@dataclass(frozen=True)
class TargetGroupInfo:
    name: str
    protocol: str
    port: int
    health_check: str
    targets: int
    states: str  # "healthy 3" etc.


@dataclass(frozen=True)
class SecurityGroupInfo:
    group_id: str
    name: str
    role: str
    inbound: str


@dataclass(frozen=True)
class Inventory:
    """What exists in the account, sorted so that two readings of the same state compare equal."""

    load_balancers: tuple[LoadBalancerInfo, ...]
    listeners: tuple[ListenerInfo, ...]
    target_groups: tuple[TargetGroupInfo, ...]
    security_groups: tuple[SecurityGroupInfo, ...]


def _classic_rows(
    described: list[dict[str, Any]], tags_by_name: Mapping[str, dict[str, str]]
) -> tuple[list[LoadBalancerInfo], list[ListenerInfo]]:
    """Classic ELBs as rows of the same tables: a listener forwards to instances on a port, not to a
    target group, so its target column says that (``instances:30080``)."""
    lbs, listeners = [], []
    for lb in described:
        name = lb["LoadBalancerName"]
        lbs.append(
            LoadBalancerInfo(
                name=name,
                dns_name=lb.get("DNSName", ""),
                scheme=lb.get("Scheme", ""),
                state="classic",  # the Classic ELB API has no state
                service=tags_by_name.get(name, {}).get(SERVICE_NAME_TAG, "-"),
            )
        )
        for item in lb.get("ListenerDescriptions", []):
            listener = item["Listener"]
            listeners.append(
                ListenerInfo(
                    load_balancer=name,
                    port=int(listener["LoadBalancerPort"]),
                    protocol=listener.get("Protocol", ""),
                    target_group=f"instances:{listener.get('InstancePort', '?')}",
                )
            )
    return lbs, listeners


def _tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in items or ()}


def _tag_spec(resource: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def _rule(perm: Mapping[str, Any]) -> str:
    proto = str(perm.get("IpProtocol", ""))
    proto = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp"}.get(proto, proto)
    low, high = perm.get("FromPort"), perm.get("ToPort")
    ports = "" if low is None or proto == "all" else f" {low}" if low == high else f" {low}-{high}"
    if proto in ("icmp", "icmpv6") and low is not None:
        ports = f" type {low} code {high}"
    sources = [r["CidrIp"] for r in perm.get("IpRanges", [])]
    sources += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
    sources += [p["GroupId"] for p in perm.get("UserIdGroupPairs", [])]
    return f"{proto}{ports} from {','.join(sources) or '-'}"


class Account:
    """boto3 clients for the moto endpoint with fake credentials (the user's AWS settings never apply)."""

    def __init__(self, *, endpoint: str, cluster: str) -> None:
        self.cluster = cluster
        self.cluster_tag = f"kubernetes.io/cluster/{cluster}"
        session = boto3.session.Session(
            aws_access_key_id=FAKE_ACCESS_KEY, aws_secret_access_key=FAKE_SECRET_KEY, region_name=REGION
        )
        config = botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
        self.ec2 = session.client("ec2", endpoint_url=endpoint, config=config)
        self.elbv2 = session.client("elbv2", endpoint_url=endpoint, config=config)
        self.elb = session.client("elb", endpoint_url=endpoint, config=config)  # Classic ELBs

    def seed(self, *, nodes: int) -> Network:
        """A VPC with an internet gateway, a tagged public subnet in each of two zones, a node security group
        and ``nodes`` instances."""
        owned = {self.cluster_tag: "owned"}
        vpc = self.ec2.create_vpc(
            CidrBlock="10.0.0.0/16",
            TagSpecifications=_tag_spec("vpc", {"Name": f"{self.cluster}-vpc", **owned}),
        )["Vpc"]["VpcId"]
        # public subnets, as internet-facing NLBs need (AWS refuses an internet-facing load balancer on a
        # subnet without a route to an internet gateway): the VPC's main route table, which subnets
        # without a table of their own use, routes 0.0.0.0/0 to one
        igw = self.ec2.create_internet_gateway(
            TagSpecifications=_tag_spec("internet-gateway", {"Name": f"{self.cluster}-igw", **owned}),
        )["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        main_table = self.ec2.describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
        )["RouteTables"][0]["RouteTableId"]
        self.ec2.create_route(RouteTableId=main_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        subnets: dict[str, str] = {}
        for index, zone in enumerate(ZONES):
            subnets[zone] = self.ec2.create_subnet(
                VpcId=vpc,
                CidrBlock=f"10.0.{index + 1}.0/24",
                AvailabilityZone=zone,
                TagSpecifications=_tag_spec(
                    "subnet",
                    {"Name": f"{self.cluster}-public-{zone}", "kubernetes.io/role/elb": "1", **owned},
                ),
            )["Subnet"]["SubnetId"]
        node_sg = self.ec2.create_security_group(
            GroupName=f"{self.cluster}-nodes",
            Description="Kubernetes nodes of the sandbox cluster",
            VpcId=vpc,
            TagSpecifications=_tag_spec("security-group", {"Name": f"{self.cluster}-nodes", **owned}),
        )["GroupId"]
        instances = []
        for index in range(nodes):
            zone = ZONES[index % len(ZONES)]
            made = self.ec2.run_instances(
                ImageId=IMAGE_ID,
                InstanceType=INSTANCE_TYPE,
                MinCount=1,
                MaxCount=1,
                SubnetId=subnets[zone],
                SecurityGroupIds=[node_sg],
                TagSpecifications=_tag_spec("instance", {"Name": f"{self.cluster}-node-{index}", **owned}),
            )["Instances"][0]
            instances.append(
                Machine(
                    node_name=made["PrivateDnsName"],
                    provider_id=f"aws:///{zone}/{made['InstanceId']}",
                    region=REGION,
                    zone=zone,
                    private_ip=made["PrivateIpAddress"],
                    instance_type=INSTANCE_TYPE,
                    internal_dns=made["PrivateDnsName"],
                )
            )
        return Network(vpc_id=vpc, subnets=subnets, node_security_group=node_sg, instances=tuple(instances))

    def _classic(self) -> tuple[list[LoadBalancerInfo], list[ListenerInfo]]:
        described = self.elb.describe_load_balancers().get("LoadBalancerDescriptions", [])
        names = [lb["LoadBalancerName"] for lb in described]
        tags_by_name: dict[str, dict[str, str]] = {}
        for start in range(0, len(names), 20):
            for desc in self.elb.describe_tags(LoadBalancerNames=names[start : start + 20])[
                "TagDescriptions"
            ]:
                tags_by_name[desc["LoadBalancerName"]] = _tags(desc.get("Tags"))
        return _classic_rows(described, tags_by_name)

    def inventory(self) -> Inventory:
        """Load balancers (NLBs and Classic ELBs), their listeners and target groups, and the cluster's
        security groups."""
        lbs = self.elbv2.describe_load_balancers().get("LoadBalancers", [])
        tags_by_arn: dict[str, dict[str, str]] = {}
        arns = [lb["LoadBalancerArn"] for lb in lbs]
        for start in range(0, len(arns), 20):
            for desc in self.elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
                tags_by_arn[desc["ResourceArn"]] = _tags(desc.get("Tags"))
        tg_names = {
            tg["TargetGroupArn"]: tg["TargetGroupName"]
            for tg in self.elbv2.describe_target_groups().get("TargetGroups", [])
        }
        load_balancers, listeners = [], []
        for lb in lbs:
            tags = tags_by_arn.get(lb["LoadBalancerArn"], {})
            service = tags.get(SERVICE_NAME_TAG, "-")
            load_balancers.append(
                LoadBalancerInfo(
                    name=lb["LoadBalancerName"],
                    dns_name=lb.get("DNSName", ""),
                    scheme=lb.get("Scheme", ""),
                    state=(lb.get("State") or {}).get("Code", ""),
                    service=service,
                )
            )
            for listener in self.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
                forward = [a for a in listener.get("DefaultActions", []) if a.get("TargetGroupArn")]
                target = tg_names.get(forward[0]["TargetGroupArn"], "?") if forward else "-"
                listeners.append(
                    ListenerInfo(
                        load_balancer=lb["LoadBalancerName"],
                        port=int(listener["Port"]),
                        protocol=listener.get("Protocol", ""),
                        target_group=target,
                    )
                )
        classic_lbs, classic_listeners = self._classic()
        load_balancers += classic_lbs
        listeners += classic_listeners
        target_groups = []
        for tg in self.elbv2.describe_target_groups().get("TargetGroups", []):
            health = self.elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])[
                "TargetHealthDescriptions"
            ]
            states: dict[str, int] = {}
            for desc in health:
                state = (desc.get("TargetHealth") or {}).get("State", "unknown")
                states[state] = states.get(state, 0) + 1
            check = f"{tg.get('HealthCheckProtocol', '')}:{tg.get('HealthCheckPort', '')}"
            if tg.get("HealthCheckProtocol") in ("HTTP", "HTTPS"):
                check += str(tg.get("HealthCheckPath", ""))
            target_groups.append(
                TargetGroupInfo(
                    name=tg["TargetGroupName"],
                    protocol=tg.get("Protocol", ""),
                    port=int(tg.get("Port", 0)),
                    health_check=check,
                    targets=len(health),
                    states=", ".join(f"{state} {count}" for state, count in sorted(states.items())),
                )
            )
        groups = []
        for sg in self.ec2.describe_security_groups(
            Filters=[{"Name": f"tag:{self.cluster_tag}", "Values": ["owned"]}]
        ).get("SecurityGroups", []):
            tags = _tags(sg.get("Tags"))
            resource = tags.get(RESOURCE_TAG, "")
            if resource == "frontend-security-group":
                role = f"frontend of {tags.get(SERVICE_NAME_TAG, '?')}"
            elif resource == "backend-security-group":
                role = "backend (shared by the cluster's LBs)"
            elif resource:
                role = resource
            else:
                role = "nodes (seeded)"
            groups.append(
                SecurityGroupInfo(
                    group_id=sg["GroupId"],
                    name=sg.get("GroupName", ""),
                    role=role,
                    inbound="; ".join(sorted(_rule(p) for p in sg.get("IpPermissions", []))) or "-",
                )
            )
        return Inventory(
            load_balancers=tuple(sorted(load_balancers, key=lambda x: x.name)),
            listeners=tuple(sorted(listeners, key=lambda x: (x.load_balancer, x.port, x.protocol))),
            target_groups=tuple(sorted(target_groups, key=lambda x: x.name)),
            security_groups=tuple(sorted(groups, key=lambda x: (x.role, x.name))),
        )


def render(inventory: Inventory, *, endpoint: str) -> str:
    """The load balancers, listeners, target groups and security groups, as tables."""
    return section(
        f"AWS resources (moto at {endpoint}, region {REGION})",
        table(
            headers=("LOAD BALANCER", "SERVICE", "SCHEME", "STATE", "DNS NAME"),
            rows=[(lb.name, lb.service, lb.scheme, lb.state, lb.dns_name) for lb in inventory.load_balancers],
        ),
        table(
            headers=("LISTENER", "LOAD BALANCER", "TARGET GROUP"),
            rows=[(f"{x.protocol}:{x.port}", x.load_balancer, x.target_group) for x in inventory.listeners],
        ),
        table(
            headers=("TARGET GROUP", "PROTOCOL:PORT", "HEALTH CHECK", "TARGETS", "TARGET HEALTH"),
            rows=[
                (tg.name, f"{tg.protocol}:{tg.port}", tg.health_check, str(tg.targets), tg.states or "-")
                for tg in inventory.target_groups
            ],
        ),
        table(
            headers=("SECURITY GROUP", "NAME", "ROLE", "INBOUND"),
            rows=[(sg.group_id, sg.name, sg.role, sg.inbound) for sg in inventory.security_groups],
        ),
    )


class AwsCloud:
    """The :class:`sandbox.cloud.Cloud` of ``--cloud-provider=aws``: moto, reached through boto3."""

    label = "AWS"
    server = "moto"
    provider = "aws"
    provider_id_scheme = "aws:///"
    address_kind = "hostname"
    load_balancers = "NLBs"
    port_flag = "--aws-port"

    def __init__(self, *, cluster: str, port: int = 0) -> None:
        self.cluster = cluster
        self.moto = MotoServer(port=port)
        self._account: Account | None = None

    @property
    def account(self) -> Account:
        assert self._account is not None, "start() first"
        return self._account

    def start(self) -> str:
        self.moto.start()
        self._account = Account(endpoint=self.moto.endpoint, cluster=self.cluster)
        return f"moto listening on {self.moto.endpoint} (region {REGION})"

    def stop(self) -> None:
        self.moto.stop()

    def seed(self, *, nodes: int) -> Seeded:
        network = self.account.seed(nodes=nodes)
        subnets = ", ".join(f"{subnet} ({zone})" for zone, subnet in network.subnets.items())
        return Seeded(
            machines=network.instances,
            summary=f"seeded {network.vpc_id}, subnets {subnets} tagged "
            f"{self.account.cluster_tag}=owned and kubernetes.io/role/elb=1, "
            f"node security group {network.node_security_group}, {len(network.instances)} instances",
        )

    def controller_args(self, *, workdir: Path) -> list[str]:
        return []  # everything comes from the environment

    def controller_env(self, *, base: Mapping[str, str]) -> dict[str, str]:
        return controller_env(endpoint=self.moto.endpoint, base=base)

    def render(self) -> str:
        return render(self.account.inventory(), endpoint=self.moto.endpoint)

    def footer(self) -> list[str]:
        endpoint = self.moto.endpoint
        return [
            f"AWS (moto): {endpoint}",
            f"  AWS_ACCESS_KEY_ID={FAKE_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={FAKE_SECRET_KEY} aws "
            f"--endpoint-url={endpoint} --region={REGION} elbv2 describe-load-balancers",
        ]


def new(*, cluster: str, port: int) -> AwsCloud:
    return AwsCloud(cluster=cluster, port=port)

"""Side-by-side benchmark (not a test): upstream aws-cloud-controller-manager vs ``ccm run``, both on moto.

Each side gets an identical fresh set-up: a fresh etcd + kube-apiserver, a fresh moto
(``bench/moto_corrected.py``: two moto gaps that skew upstream corrected, every AWS call counted) seeded
the same way (a VPC, two subnets tagged for the cluster, a node security group, M instances and their
M Nodes), and the same phases:

1. ``create``: N Services of type LoadBalancer (NLB, two TCP ports; with ``--type classic``, Classic ELBs,
   upstream's default kind) until every one has an address and the cloud is quiet;
2. ``steady``: nothing changes for ``--steady`` seconds;
3. ``restart``: the controller is stopped and started again with N provisioned Services;
4. ``node-add``: one instance and its Node are added, until the cloud is quiet (then every target group,
   or every Classic ELB, is checked for the new instance);
5. ``delete``: all N Services are deleted, until they are gone and the cloud is quiet (then moto is
   checked for what is left).

Per phase it prints the AWS calls the controller made (counted at moto, retries included: total,
writes, errors, the top operations), the time to converge (until the condition of the phase holds and
the last AWS call of the phase was sent), the controller's peak RSS and CPU from ``/proc``, and the ratio
ours / upstream. Upstream is built by ``hack/build-upstream-aws-ccm``. See ``bench/README.md``.

    .venv/bin/python bench/side_by_side.py --services 100 --nodes 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
from controller_scale import (
    BENCH_LABEL,
    Api,
    BenchError,
    log,
    ready_patch,
    run_parallel,
)
from moto_corrected import CALLS_PATH, SEED_ACCESS_KEY
from phases import PHASES, Calls, PhaseRunner

from ccm.envtest.assets import find_assets
from ccm.envtest.controlplane import ControlPlane, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b")
CLUSTER = "bench"
CLUSTER_TAG = f"kubernetes.io/cluster/{CLUSTER}"
IMAGE_ID = "ami-12c6146b"  # one of moto's built-in AMIs
ACCESS_KEY = "testing"  # the controllers' (counted); the benchmark signs with SEED_ACCESS_KEY
READ_PREFIXES = ("Describe", "Get", "List")
SIDES = ("upstream", "ours")


def is_write(operation: str) -> bool:
    return not operation.split(":", 1)[-1].startswith(READ_PREFIXES)


# -- moto --------------------------------------------------------------------------------------------


class Moto:
    """``bench/moto_corrected.py`` as a child process on a free loopback port."""

    def __init__(self, *, log_path: Path, corrected: bool = True) -> None:
        self.corrected = corrected
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60.0) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).with_name("moto_corrected.py")),
                    f"--port={self.port}",
                    f"--access-log={self.log_path.with_name('moto-access.log')}",
                    *([] if self.corrected else ["--no-corrections"]),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=REPO_ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"moto exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                self.read()
                return
            time.sleep(0.2)
        raise BenchError(f"moto did not answer within {timeout:.0f}s; see {self.log_path}")

    def read(self) -> Calls:
        with urllib.request.urlopen(self.endpoint + CALLS_PATH, timeout=30) as resp:
            data = json.loads(resp.read())
        return Calls(**data)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc, grace=10)
        self.proc = None


def stop_process(proc: subprocess.Popen[bytes] | None, *, grace: float) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace`` s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"pid {proc.pid} did not stop within {grace:.0f}s of SIGTERM; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


@dataclass(frozen=True)
class Instance:
    instance_id: str
    zone: str
    private_ip: str
    private_dns: str


@dataclass
class Network:
    vpc_id: str
    subnets: dict[str, str]  # zone → subnet id
    node_sg: str
    instances: list[Instance] = field(default_factory=list)


class Account:
    """The benchmark's own boto3 clients (signed with SEED_ACCESS_KEY, so moto does not count them)."""

    def __init__(self, endpoint: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id=SEED_ACCESS_KEY, aws_secret_access_key="bench", region_name=REGION
        )
        config = botocore.config.Config(retries={"max_attempts": 5, "mode": "standard"})
        self.ec2 = session.client("ec2", endpoint_url=endpoint, config=config)
        self.elbv2 = session.client("elbv2", endpoint_url=endpoint, config=config)
        self.elb = session.client("elb", endpoint_url=endpoint, config=config)

    @staticmethod
    def _tags(resource: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        return [{"ResourceType": resource, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]

    def seed(self, *, nodes: int) -> Network:
        """A VPC with an internet gateway, a public subnet per zone tagged for the cluster and for
        internet-facing ELBs, a cluster-tagged node security group and ``nodes`` running instances."""
        owned = {CLUSTER_TAG: "owned"}
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        igw = self.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        main = self.ec2.describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
        )["RouteTables"][0]["RouteTableId"]
        self.ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        subnets = {}
        for index, zone in enumerate(ZONES):
            subnets[zone] = self.ec2.create_subnet(
                VpcId=vpc,
                CidrBlock=f"10.0.{16 * index}.0/20",
                AvailabilityZone=zone,
                TagSpecifications=self._tags(
                    "subnet", {**owned, "kubernetes.io/role/elb": "1", "Name": f"public-{zone}"}
                ),
            )["Subnet"]["SubnetId"]
        node_sg = self.ec2.create_security_group(
            GroupName=f"{CLUSTER}-nodes",
            Description="nodes",
            VpcId=vpc,
            TagSpecifications=self._tags("security-group", owned),
        )["GroupId"]
        network = Network(vpc_id=vpc, subnets=subnets, node_sg=node_sg)
        for index, zone in enumerate(ZONES):
            count = len(range(index, nodes, len(ZONES)))
            if count:
                network.instances += self.run_instances(network, zone=zone, count=count)
        return network

    def run_instances(self, network: Network, *, zone: str, count: int) -> list[Instance]:
        reservation = self.ec2.run_instances(
            ImageId=IMAGE_ID,
            InstanceType="t3.medium",
            MinCount=count,
            MaxCount=count,
            SubnetId=network.subnets[zone],
            SecurityGroupIds=[network.node_sg],
            TagSpecifications=self._tags("instance", {CLUSTER_TAG: "owned"}),
        )
        return [
            Instance(
                instance_id=i["InstanceId"],
                zone=zone,
                private_ip=i["PrivateIpAddress"],
                private_dns=i["PrivateDnsName"],
            )
            for i in reservation["Instances"]
        ]

    def load_balancers(self) -> list[dict[str, Any]]:
        pages = self.elbv2.get_paginator("describe_load_balancers").paginate()
        return [lb for page in pages for lb in page["LoadBalancers"]]

    def target_groups(self) -> list[dict[str, Any]]:
        pages = self.elbv2.get_paginator("describe_target_groups").paginate()
        return [tg for page in pages for tg in page["TargetGroups"]]

    def security_groups(self) -> list[dict[str, Any]]:
        pages = self.ec2.get_paginator("describe_security_groups").paginate()
        return [sg for page in pages for sg in page["SecurityGroups"]]

    def classic_load_balancers(self) -> list[dict[str, Any]]:
        pages = self.elb.get_paginator("describe_load_balancers").paginate()
        return [lb for page in pages for lb in page["LoadBalancerDescriptions"]]

    def inventory(self) -> dict[str, int]:
        """What the controller left in the account (the seed's node group and default groups left out)."""
        groups = [
            sg for sg in self.security_groups() if sg["GroupName"] not in ("default", f"{CLUSTER}-nodes")
        ]
        return {
            "load_balancers": len(self.load_balancers()),
            "classic_load_balancers": len(self.classic_load_balancers()),
            "target_groups": len(self.target_groups()),
            "security_groups": len(groups),
        }

    def classic_load_balancers_with(self, instance_id: str) -> tuple[int, int]:
        """(Classic ELBs that list ``instance_id``, all Classic ELBs)."""
        elbs = self.classic_load_balancers()
        having = sum(1 for lb in elbs if instance_id in {i["InstanceId"] for i in lb.get("Instances", [])})
        return having, len(elbs)

    def target_groups_with(self, instance_id: str) -> tuple[int, int]:
        """(target groups that list ``instance_id``, all target groups)."""
        groups = self.target_groups()
        having = 0
        for tg in groups:
            health = self.elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
            if any(d["Target"]["Id"] == instance_id for d in health["TargetHealthDescriptions"]):
                having += 1
        return having, len(groups)


# -- the cloud config and the two controllers -------------------------------------------------------


def cloud_config(*, network: Network, endpoint: str, node_sg_rules: bool, nlb_sg_managed: bool) -> str:
    """The same gcfg INI for both: ``[Global]`` (read by both) and upstream's ``[ServiceOverride]``s
    (our provider reads only ``[Global]`` and reaches moto through ``AWS_ENDPOINT_URL``)."""
    first_zone = ZONES[0]
    lines = [
        "[Global]",
        f"Region = {REGION}",
        f"Zone = {first_zone}",
        f"VPC = {network.vpc_id}",
        f"SubnetID = {network.subnets[first_zone]}",
        f"KubernetesClusterID = {CLUSTER}",
        f"DisableSecurityGroupIngress = {'false' if node_sg_rules else 'true'}",
    ]
    if nlb_sg_managed:
        lines.append("NLBSecurityGroupMode = Managed")
    overrides = (
        ("ec2", "EC2", "ec2"),
        ("elb", "Elastic Load Balancing", "elasticloadbalancing"),
        ("elbv2", "Elastic Load Balancing v2", "elasticloadbalancing"),
    )
    for section, service, signing in overrides:
        lines += [
            "",
            f'[ServiceOverride "{section}"]',
            f'Service = "{service}"',
            f"Region = {REGION}",
            f"URL = {endpoint}",
            f"SigningRegion = {REGION}",
            f"SigningName = {signing}",
        ]
    return "\n".join(lines) + "\n"


def aws_env(endpoint: str, *, with_endpoint_url: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=ACCESS_KEY,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    if with_endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


class ControllerProcess:
    """One controller (either side) as a child process in its own session, its log in the work dir."""

    def __init__(
        self,
        *,
        command: list[str],
        env: dict[str, str],
        port: int,
        health: str,
        log_path: Path,
        profile: Path | None = None,
    ):
        self.command, self.env, self.port, self.health, self.log_path = command, env, port, health, log_path
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.spy: subprocess.Popen[bytes] | None = None
        self._ssl = ssl.create_default_context()
        self._ssl.check_hostname = False
        self._ssl.verify_mode = ssl.CERT_NONE  # self-signed serving certificates

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, timeout: float) -> float:
        """Start and wait until its health endpoint answers ok; returns the seconds taken."""
        t = time.monotonic()
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
                cwd=REPO_ROOT,
            )
        if self.profile is not None:
            self.spy = start_py_spy(self.proc.pid, self.profile)
        while time.monotonic() - t < timeout:
            self.check_alive()
            with contextlib.suppress(OSError, urllib.error.URLError):
                url = f"https://127.0.0.1:{self.port}{self.health}"
                with urllib.request.urlopen(url, timeout=2, context=self._ssl) as resp:
                    if resp.read().strip() == b"ok":
                        return time.monotonic() - t
            time.sleep(0.2)
        raise BenchError(f"the controller was not healthy within {timeout:.0f}s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"the controller exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.proc, grace=30)
        if self.spy is not None:  # py-spy writes its profile when the process it samples has exited
            try:
                self.spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stop_process(self.spy, grace=5)
            log(f"py-spy profile of pid {self.pid}: {self.profile}")
            self.spy = None


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` until it exits, into ``out`` (collapsed stacks, thread names as the root
    frames; ``flamegraph.pl`` and https://speedscope.app read them). ``--nonblocking``: the controller is
    never paused, so its CPU and timings stay its own; py-spy's own CPU is py-spy's process's. ``--gil``:
    only the thread holding the GIL is sampled, i.e. Python running; without it a thread blocked in a
    socket read, ``connect`` or ``time.sleep`` counts as busy (py-spy cannot tell without pausing the
    process), which made waits on moto and the apiserver a third of the samples."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise BenchError(f"--py-spy needs py-spy next to {sys.executable} (pip install py-spy)")
    command = [str(spy), "record", "--pid", str(pid), "--nonblocking", "--gil", "--threads"]
    command += ["--format", "raw"]
    command += ["--rate", "200", "--output", str(out)]
    with open(out.with_suffix(".log"), "ab") as log_file:
        return subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def compile_checkout() -> None:
    """Byte-compile the checkout's ``ccm`` and ``providers`` (into their git-ignored ``__pycache__``), as
    installing the wheel does in the image: with ``PYTHONDONTWRITEBYTECODE=1`` in the environment (the
    image sets it too) and no cached bytecode, every start of ours compiled its own ~100 modules again,
    ~0.14 s of CPU that a deployed controller does not spend (bench/README.md, "Controller CPU profile")."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "ccm", "providers"], cwd=REPO_ROOT, check=True)


def controller_command(
    side: str, *, args: argparse.Namespace, kubeconfig: Path, conf: Path, port: int, workdir: Path
) -> tuple[list[str], str]:
    """The command line of a side's controller and its health path."""
    common = [
        "--cloud-provider=aws",
        f"--cloud-config={conf}",
        f"--kubeconfig={kubeconfig}",
        f"--cluster-name={CLUSTER}",
        "--controllers=service-lb-controller",
        f"--leader-elect={'true' if args.leader_elect else 'false'}",
        f"--concurrent-service-syncs={args.workers}",
        f"--kube-api-qps={args.qps:g}",
        f"--kube-api-burst={args.burst}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        "--use-service-account-credentials=false",
        "--allocate-node-cidrs=false",
        "--configure-cloud-routes=false",
        "--v=2",
    ]
    if side == "upstream":
        extra = ["--authentication-skip-lookup=true", f"--cert-dir={workdir / 'upstream-certs'}"]
        return [str(args.upstream_binary), *common, *extra], "/healthz"
    # ``-m`` from the checkout (the process runs with cwd=REPO_ROOT): the checkout's code, also from a git
    # worktree sharing another checkout's virtualenv, whose ``ccm`` script imports that checkout's
    resync = getattr(args, "resync_period", "")  # gce_phases.py has no such flag
    extra = [f"--load-balancer-resync-period={resync}"] if resync else []
    return [sys.executable, "-m", "ccm.cli", "run", *common, *extra], "/readyz"


# -- measuring a controller process -------------------------------------------------------------------


# -- one side ---------------------------------------------------------------------------------------


def service_body(index: int, *, kind: str = "nlb") -> dict[str, Any]:
    """Service ``svc-<index>``: two TCP ports, ``aws-load-balancer-type`` ``kind`` (nlb or classic, which
    both read: upstream builds a Classic ELB for any value but nlb and external)."""
    name = f"svc-{index:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "labels": {BENCH_LABEL: "1", "app": name},
            "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": kind},
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
            ],
        },
    }


def node_body(instance: Instance) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": instance.private_dns,
            "labels": {
                "topology.kubernetes.io/zone": instance.zone,
                "topology.kubernetes.io/region": REGION,
                "node.kubernetes.io/instance-type": "t3.medium",
                BENCH_LABEL: "1",
            },
        },
        "spec": {"providerID": f"aws:///{instance.zone}/{instance.instance_id}"},
    }


DEFAULT_NODE_PORTS = 2768  # kube-apiserver's --service-node-port-range 30000-32767


def node_port_range(services: int) -> tuple[str, ...]:
    """A wider NodePort range when N two-port Services need more than the default's 2,768 ports (1,384
    Services); a cluster of that size widens it too. The flag is given again: the last one counts."""
    if 2 * services <= DEFAULT_NODE_PORTS:
        return ()
    return (f"--service-node-port-range=30000-{30000 + 2 * services + 99}",)


class Side(PhaseRunner):
    """One side's fresh set-up (moto, control plane, seed, Nodes) and its controller, through the phases
    of :class:`phases.PhaseRunner`."""

    def __init__(self, name: str, *, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args=args, label=f"[{name}] ", thread_prefix=f"{name}-client")
        self.name, self.m = name, args.nodes
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.moto = Moto(log_path=self.workdir / "moto.log", corrected=args.corrections)
        self.plane = ControlPlane(
            assets=find_assets(), service_cidr="10.96.0.0/16", extra_apiserver_args=node_port_range(self.n)
        )
        self._account: Account | None = None
        self._network: Network | None = None

    @property
    def account(self) -> Account:
        assert self._account is not None
        return self._account

    @property
    def network(self) -> Network:
        assert self._network is not None
        return self._network

    def setup(self) -> None:
        t = time.monotonic()
        self.moto.start()
        self._account = Account(self.moto.endpoint)
        self._network = self.account.seed(nodes=self.m)
        self.plane.start()
        self._api = Api(self.plane.kubeconfig, pool_size=self.args.threads + 2)
        self.api.request("POST", "/api/v1/namespaces", {"metadata": {"name": self.NAMESPACE}})
        run_parallel(self.pool, lambda i: self.create_node(self.network.instances[i], i), self.m)
        conf = self.workdir / "cloud.conf"
        conf.write_text(
            cloud_config(
                network=self.network,
                endpoint=self.moto.endpoint,
                node_sg_rules=self.args.node_sg_rules,
                nlb_sg_managed=self.args.nlb_sg_managed,
            )
        )
        if self.name == "ours":
            compile_checkout()
        self.info["setup_s"] = round(time.monotonic() - t, 1)
        log(
            f"[{self.name}] moto at {self.moto.endpoint}, apiserver at {self.plane.server}, "
            f"{self.m} instances and Nodes, in {self.info['setup_s']}s"
        )

    def create_node(self, instance: Instance, index: int) -> None:
        self.api.request("POST", "/api/v1/nodes", node_body(instance))
        patch = ready_patch(index)
        patch["status"]["addresses"] = [
            {"type": "InternalIP", "address": instance.private_ip},
            {"type": "InternalDNS", "address": instance.private_dns},
            {"type": "Hostname", "address": instance.private_dns},
        ]
        self.api.request(
            "PATCH",
            f"/api/v1/nodes/{instance.private_dns}/status",
            patch,
            content_type="application/strategic-merge-patch+json",
        )

    def start_controller(self) -> float:
        self.starts += 1
        port = free_port()
        command, health = controller_command(
            self.name,
            args=self.args,
            kubeconfig=self.plane.kubeconfig,
            conf=self.workdir / "cloud.conf",
            port=port,
            workdir=self.workdir,
        )
        process = ControllerProcess(
            command=command,
            env=aws_env(self.moto.endpoint, with_endpoint_url=self.name == "ours"),
            port=port,
            health=health,
            log_path=self.workdir / f"controller-{self.starts}.log",
            profile=(
                self.workdir / f"controller-{self.starts}.py-spy.txt"
                if self.args.py_spy and self.name == "ours"
                else None
            ),
        )
        if self.starts == 1:
            log(f"[{self.name}] {' '.join(command)}")
        return self.launch(process)

    def close(self) -> None:
        super().close()
        self.plane.stop()
        self.moto.stop()

    # -- what the phases ask of AWS ---------------------------------------------------------------------

    def read_calls(self) -> Calls:
        return self.moto.read()

    def is_write(self, operation: str) -> bool:
        return is_write(operation)

    def service_body(self, index: int) -> dict[str, Any]:
        return service_body(index, kind=self.args.type)

    def add_node(self) -> None:
        (instance,) = self.account.run_instances(self.network, zone=ZONES[0], count=1)
        self.network.instances.append(instance)
        self.create_node(instance, self.m)

    def node_check(self) -> str:
        added = self.network.instances[-1].instance_id
        if self.args.type == "classic":
            having, elbs = self.account.classic_load_balancers_with(added)
            return f"new instance in {having}/{elbs} Classic ELBs"
        having, groups = self.account.target_groups_with(added)
        return f"new instance in {having}/{groups} target groups"

    def inventory(self) -> dict[str, int]:
        return self.account.inventory()


# -- report ------------------------------------------------------------------------------------------


def ratio(ours: float, upstream: float) -> str:
    if not upstream:
        return "-" if not ours else "inf"
    return f"{ours / upstream:.2f}"


def report(results: Mapping[str, Mapping[str, Any]], *, top: int) -> str:
    """Per phase: each side's figures, then a table ours vs upstream with the ratio."""
    lines: list[str] = []
    for phase in PHASES:
        lines.append(f"== {phase}")
        for side in SIDES:
            if side not in results or phase not in results[side]["phases"]:
                continue
            s = results[side]["phases"][phase]
            ops = ", ".join(f"{k} {v}" for k, v in list(s["by_operation"].items())[:top])
            lines.append(
                f"  {side:8s} {s['calls']:6d} calls ({s['writes']} writes, {s['errors']} errors), "
                f"converged {s['converge_s']}s, CPU {s['cpu_s']}s, peak RSS {s['peak_rss_mib']} MiB"
            )
            if ops:
                lines.append(f"           top: {ops}")
            if s["errors_by_operation"]:
                lines.append(f"           errors: {s['errors_by_operation']}")
            if s["repeated_creates"]:
                lines.append(f"           creates repeated (answered as AWS does): {s['repeated_creates']}")
            if s["check"]:
                lines.append(f"           check: {s['check']}")
    if all(side in results for side in SIDES):
        lines += ["", "| phase | figure | ours | upstream | ours/upstream |", "|---|---|---|---|---|"]
        for phase in PHASES:
            ours, up = results["ours"]["phases"].get(phase), results["upstream"]["phases"].get(phase)
            if ours is None or up is None:
                continue
            for key, label in (
                ("calls", "AWS calls"),
                ("writes", "AWS writes"),
                ("converge_s", "time to converge, s"),
                ("cpu_s", "controller CPU, s"),
                ("peak_rss_mib", "controller peak RSS, MiB"),
            ):
                if phase == "steady" and key == "converge_s":
                    continue
                lines.append(f"| {phase} | {label} | {ours[key]} | {up[key]} | {ratio(ours[key], up[key])} |")
    return "\n".join(lines)


def run_side(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    side = Side(name, args=args, workdir=workdir)
    try:
        side.run()
    except BaseException:
        if side.controller is not None:
            log(f"[{name}] controller log tail:\n{side.ctl.log_tail()}")
        raise
    finally:
        side.close()
    return {"info": side.info, "phases": {p.name: p.summary() for p in side.phases}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=100, help="N Services (two TCP ports each)")
    parser.add_argument(
        "--type",
        choices=("nlb", "classic"),
        default="nlb",
        help="aws-load-balancer-type of the Services: nlb, or classic (Classic ELBs, upstream's default)",
    )
    parser.add_argument("--nodes", type=int, default=20, help="M instances and Nodes (one more is added)")
    parser.add_argument("--workers", type=int, default=1, help="--concurrent-service-syncs of both")
    parser.add_argument("--qps", type=float, default=20.0, help="--kube-api-qps of both (their default)")
    parser.add_argument("--burst", type=int, default=30, help="--kube-api-burst of both (their default)")
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of the steady phase")
    parser.add_argument(
        "--quiet",
        type=float,
        default=5.0,
        help="converged = no AWS call for this many seconds (and the phase's condition)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="bound of each wait, seconds")
    parser.add_argument("--threads", type=int, default=8, help="client threads creating/deleting objects")
    parser.add_argument("--sides", default="upstream,ours", help="which sides, in order (default both)")
    parser.add_argument(
        "--node-sg-rules",
        action="store_true",
        help="let both add node security-group rules (DisableSecurityGroupIngress=false); "
        "upstream then hits moto's 60-rules-per-group limit beyond ~30 NLBs",
    )
    parser.add_argument(
        "--nlb-sg-managed",
        action="store_true",
        help="NLBSecurityGroupMode = Managed: upstream gives each NLB its own security group, as ours "
        "always does (upstream's default is none)",
    )
    parser.add_argument(
        "--no-corrections",
        dest="corrections",
        action="store_false",
        help="plain moto, without the NLB DNS name and SslPolicy corrections (to see what they change)",
    )
    parser.add_argument(
        "--upstream-binary",
        type=Path,
        default=None,
        help="aws-cloud-controller-manager (default: built by hack/build-upstream-aws-ccm)",
    )
    parser.add_argument("--top", type=int, default=6, help="operations listed per phase")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="logs and cloud configs go here (default: a new temporary directory, kept)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        help="run both with leader election (ours trusts its restart checkpoint only then: a restart "
        "with nothing changed makes one tagging listing per 100 Services; upstream's new process may "
        "wait for its old Lease to expire)",
    )
    parser.add_argument(
        "--resync-period",
        default="",
        help="ours' --load-balancer-resync-period (default: its own, 10m); at N = 5,000 on moto a resync "
        "during create reads a listing moto truncates while the workers create (bench/README.md)",
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="sample ours' controller with py-spy (pip install -e .[bench]) into "
        "<workdir>/ours/controller-<n>.py-spy.txt",
    )
    args = parser.parse_args(argv)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        parser.error(f"--sides {args.sides!r}: accepted: upstream, ours or both, comma-separated")
    args.sides = sides
    if args.services < 1 or args.nodes < 1:
        parser.error("--services and --nodes must be at least 1")
    return args


def upstream_binary() -> Path:
    """The cached build of hack/build-upstream-aws-ccm (built now if missing; minutes)."""
    out = subprocess.run(
        [str(REPO_ROOT / "hack" / "build-upstream-aws-ccm")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_sigterm(signum: int, _frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_sigterm)
    if "upstream" in args.sides and args.upstream_binary is None:
        args.upstream_binary = upstream_binary()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ccm-side-by-side-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any((workdir / side).exists() for side in args.sides):
        log(f"--workdir {workdir} holds a previous run's logs; give an empty or new directory")
        return 2
    log(f"work directory (logs, cloud configs): {workdir}")
    results: dict[str, Any] = {}
    config = {
        "services": args.services,
        "type": args.type,
        "nodes": args.nodes,
        "workers": args.workers,
        "qps": args.qps,
        "burst": args.burst,
        "steady_s": args.steady,
        "quiet_s": args.quiet,
        "node_sg_rules": args.node_sg_rules,
        "nlb_sg_managed": args.nlb_sg_managed,
        "moto_corrections": args.corrections,
        "leader_elect": args.leader_elect,
        "cpus": os.cpu_count(),
        "upstream_binary": str(args.upstream_binary or ""),
    }
    try:
        for name in args.sides:
            results[name] = run_side(name, args, workdir)
    except KeyboardInterrupt:
        log("interrupted; everything was stopped")
        return 130
    except BenchError as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        if results and args.json is not None:
            args.json.write_text(json.dumps({"config": config, "results": results}, indent=2) + "\n")
    sys.stdout.write(
        f"{args.services} two-port {'Classic ELB' if args.type == 'classic' else 'NLB'} Services, "
        f"{args.nodes} Nodes, "
        f"--concurrent-service-syncs={args.workers}, "
        f"--kube-api-qps={args.qps:g}, node SG rules {'on' if args.node_sg_rules else 'off'}, "
        f"NLB security groups {'Managed (both)' if args.nlb_sg_managed else 'upstream default (none)'}, "
        f"moto {'corrected' if args.corrections else 'uncorrected'}, {os.cpu_count()} CPUs\n"
    )
    sys.stdout.write(report(results, top=args.top) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

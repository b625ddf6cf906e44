"""One soak run: start everything, alternate chaos and settling, measure the idle cost, delete all, report.

Layout of a run::

    control plane (own etcd + kube-apiserver) ─ cuttable proxy ─ 2 × ccm run (leader-elected)
    fake cloud (moto behind the fault proxy, or the fake GCE) ─ seeded network, foreign resources
    repeat until the duration is spent:
        chaos:  the workload (Services and Nodes) and the fault injector, both seeded
        settle: faults stop; the time until every invariant of a settled system holds (bounded)
    idle:   nothing changes for a while; cloud calls and apiserver writes of the controller counted
    end:    every Service deleted; nothing of ours left in the cloud; the foreign resources unchanged

The figures line says what happened; :attr:`Figures.passed` whether every invariant held.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ccm.envtest.assets import find_assets
from ccm.envtest.controlplane import ControlPlane
from tests.plugins.controlplane import api_client_for
from tests.soak.apiproxy import CuttableProxy
from tests.soak.cloud import SoakCloud
from tests.soak.faults import FaultInjector
from tests.soak.invariants import Observer, Violations, leftovers, list_services, problems
from tests.soak.replicas import ReplicaSet
from tests.soak.workload import NAMESPACES, UNREACHABLE, Workload
from tests.support import kube

logger = logging.getLogger(__name__)

CLUSTER = "soak"


@dataclass(frozen=True)
class Options:
    cloud: str = "aws"
    seed: int = 1
    duration: float = 120.0  # seconds of chaos in all (the run takes longer: settling, idle, end)
    cycle: float = 60.0  # seconds of chaos before each settling
    settle_bound: float = 180.0  # a settled system must converge within this after faults stop
    idle: float = 30.0  # seconds of the idle measurement
    resync: float = 5.0  # --load-balancer-resync-period of the replicas
    orphan_grace: float = 10.0  # --load-balancer-orphan-grace-period
    op_gap: float = 1.0  # mean seconds between two workload operations
    fault_gap: float = 6.0  # mean seconds between two faults
    names_per_namespace: int = 8
    nodes: int = 3
    workdir: Path | None = None  # kept when given; a temporary one (removed) otherwise


@dataclass
class Figures:
    cloud: str
    seed: int
    started: str
    machine: str
    duration: float = 0.0  # seconds of chaos
    wall: float = 0.0  # seconds of the whole run
    cycles: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    fault_errors: dict[str, int] = field(default_factory=dict)
    cloud_injected: dict[str, int] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)
    convergence: list[float] = field(default_factory=list)  # seconds to settle, per cycle
    final_delete: float = 0.0  # seconds from delete-all until nothing of ours is left
    leaks: int = 0
    duplicates: int = 0
    flaps: int = 0
    foreign_touched: int = 0
    crashes: int = 0
    unconverged: int = 0  # settlings that did not converge within the bound
    idle_cloud_calls_per_min: float = 0.0
    idle_cloud_budget: float = 0.0
    idle_k8s_writes_per_min: float = 0.0
    idle_k8s_budget: float = 0.0
    observations: int = 0
    violations: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.violations

    def line(self) -> str:
        def kv(counts: dict[str, int]) -> str:
            return " ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "-"

        ops = {k: v for k, v in self.ops.items() if not k.endswith("-invalid")}
        cycles = ", ".join(f"{c:.1f}" for c in self.convergence)
        verdict = "PASS" if self.passed else "FAIL " + kv(self.violations)
        parts = [
            f"soak cloud={self.cloud} seed={self.seed} started={self.started} chaos={self.duration:.0f}s "
            f"wall={self.wall:.0f}s cycles={self.cycles}",
            f"ops={sum(ops.values())} ({kv(ops)}; invalid creates={self.ops.get('create-invalid', 0)}; "
            f"refused by the apiserver={sum(self.refused.values())})",
            f"faults={sum(self.faults.values())} ({kv(self.faults)})",
            f"cloud faults injected: {kv(self.cloud_injected)}",
            f"replica exits: {kv(self.exits)}",
            f"max convergence={max(self.convergence, default=0.0):.1f}s (per cycle: {cycles}) "
            f"final delete-all={self.final_delete:.1f}s",
            f"leaks={self.leaks} duplicates={self.duplicates} flaps={self.flaps} "
            f"foreign-touched={self.foreign_touched} crashes={self.crashes} unconverged={self.unconverged}",
            f"idle cloud calls/min={self.idle_cloud_calls_per_min:.1f} (budget {self.idle_cloud_budget:.0f}) "
            f"idle apiserver writes/min={self.idle_k8s_writes_per_min:.1f} "
            f"(budget {self.idle_k8s_budget:.0f})",
            verdict,
        ]
        return " | ".join(parts)


def new_cloud(name: str, *, seed: int) -> SoakCloud:
    if name == "aws":
        from tests.soak.aws import AwsCloud

        return AwsCloud(cluster=CLUSTER, seed=seed)
    if name in ("gce", "gcp"):
        from tests.soak.gce import GceCloud

        return GceCloud(cluster=CLUSTER, seed=seed)
    raise ValueError(f"--cloud={name!r}; accepted: aws, gce")


def apiserver_writes(api: client.ApiClient) -> int:
    """Writes the apiserver has served (all clients), Lease renewals excluded: from its own metrics."""
    _status, body = kube.request(api, "GET", "/metrics")
    total = 0
    for line in body.decode().splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = line[line.index("{") + 1 : line.rindex("}")]
        fields = dict(part.split("=", 1) for part in labels.split('",') if "=" in part)
        fields = {k: v.strip('"') for k, v in fields.items()}
        if fields.get("verb") in ("POST", "PUT", "PATCH", "DELETE") and fields.get("resource") != "leases":
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


@contextlib.contextmanager
def _workdir(options: Options) -> Iterator[Path]:
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
        yield options.workdir
        return
    path = Path(tempfile.mkdtemp(prefix="ccm-soak-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def machine_description() -> str:
    cpus = os.cpu_count() or 0
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    system = f"{platform.system()} {platform.release()}"
    return f"{cpus} CPU ({model}){memory}, {system}, Python {platform.python_version()}"


def run(options: Options, *, out: TextIO | None = None) -> Figures:
    """A whole soak run; the figures (also written to ``out`` as one line, and progress lines before)."""

    def say(text: str) -> None:
        logger.info("%s", text)
        if out is not None:
            out.write(f"[soak] {text}\n")
            out.flush()

    started = datetime.datetime.now(datetime.UTC)
    figures = Figures(
        cloud=options.cloud,
        seed=options.seed,
        started=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        machine=machine_description(),
    )
    wall = time.monotonic()
    rng = random.Random(options.seed)
    violations = Violations()
    with contextlib.ExitStack() as stack, _workdir(options) as workdir:
        plane = ControlPlane(assets=find_assets(), workdir=workdir / "control-plane")
        plane.start()
        stack.callback(plane.stop)
        api = api_client_for(plane.kubeconfig)
        stack.callback(api.close)
        for ns in NAMESPACES:
            kube.raw(api, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        proxy = CuttableProxy(upstream=("127.0.0.1", plane.port))
        stack.callback(proxy.close)
        proxied = workdir / "proxied.kubeconfig"
        proxied.write_text(proxy.kubeconfig_text(plane.kubeconfig.read_text(), plane.server))

        cloud = new_cloud(options.cloud, seed=options.seed)
        cloud.start()
        stack.callback(cloud.stop)
        cloud.seed()
        cloud.seed_foreign()
        foreign_before = cloud.foreign_snapshot()
        say(
            f"control plane on {plane.server}, {options.cloud} cloud seeded, foreign resources made; "
            f"workdir {workdir}"
        )

        workload = Workload(
            api=api,
            cloud=cloud,
            flavour=cloud.flavour,
            rng=random.Random(rng.random()),
            names_per_namespace=options.names_per_namespace,
        )
        for _ in range(options.nodes):
            workload.add_node()

        replicas = ReplicaSet(
            api=api,
            common_args=[
                f"--cloud-provider={options.cloud}",
                *cloud.controller_args(workdir=workdir),
                f"--kubeconfig={proxied}",
                f"--cluster-name={CLUSTER}",
                "--secure-port=0",
                "--concurrent-service-syncs=4",
                f"--load-balancer-resync-period={options.resync}s",
                f"--load-balancer-orphan-grace-period={options.orphan_grace}s",
                "--kube-api-qps=50",
                "--kube-api-burst=100",
                "--v=2",
            ],
            env=cloud.controller_env(base=os.environ),
            workdir=workdir,
        )
        replicas.start()
        stack.callback(replicas.stop)
        replicas.wait_all_running(timeout=90)
        say("2 replicas running, one leads")

        def hand_change(kind: str, service: str) -> None:
            if kind.startswith("hand-delete") and service:
                workload.bump(service)

        faults = FaultInjector(
            plane=plane,
            proxy=proxy,
            replicas=replicas,
            cloud=cloud,
            rng=random.Random(rng.random()),
            on_hand_change=hand_change,
            mean_gap=options.fault_gap,
        )
        observer = Observer(api=api, cloud=cloud, workload=workload, violations=violations)
        observer.start()
        stack.callback(observer.stop)

        chaos_left = options.duration
        while chaos_left > 0:
            length = min(options.cycle, chaos_left)
            chaos_left -= length
            figures.cycles += 1
            say(f"cycle {figures.cycles}: {length:.0f}s of chaos")
            faults.start()
            deadline = time.monotonic() + length
            while time.monotonic() < deadline:
                try:
                    workload.step()
                except Exception:  # the soak's own trouble (a cloud call of its own), not a finding
                    logger.warning("workload step failed", exc_info=True)
                    workload.refused["soak-error"] += 1
                time.sleep(min(rng.expovariate(1.0 / options.op_gap), max(0.0, deadline - time.monotonic())))
            faults.stop()
            figures.duration += length
            seconds, left = settle(
                api=api, cloud=cloud, workload=workload, replicas=replicas, bound=options.settle_bound
            )
            figures.convergence.append(seconds)
            if left:
                figures.unconverged += 1
                for problem in left:
                    violations.add("unconverged", problem.split(":", 1)[0] + f"@{figures.cycles}", problem)
            say(
                f"cycle {figures.cycles}: faults {dict(faults.counts)}; "
                + (
                    f"converged {seconds:.1f}s after the faults stopped"
                    if not left
                    else f"NOT converged: {left[:5]}"
                )
            )

        # idle: nothing changes; what does the controller cost?
        invalid = sum(1 for s in list_services(api) if cloud.flavour.invalid_reason(s))
        calls0, writes0, t0 = cloud.controller_calls(), apiserver_writes(api), time.monotonic()
        time.sleep(options.idle)
        minutes = (time.monotonic() - t0) / 60
        figures.idle_cloud_calls_per_min = (cloud.controller_calls() - calls0) / minutes
        figures.idle_k8s_writes_per_min = (apiserver_writes(api) - writes0) / minutes
        per_resync = 60.0 / options.resync
        # Each resync lists the load balancers; every 6th (AWS's full check) also lists target groups and
        # security groups and reads each target group's targets once (docs/running.md): designed cost,
        # bounded by the cluster's size, not a loop.
        target_groups = sum(
            1 for parts in cloud.inventory().parts.values() for part in parts if ":targetgroup/" in part
        )
        figures.idle_cloud_budget = per_resync * 3 + per_resync / 6 * target_groups + 10
        figures.idle_k8s_budget = per_resync * (2 * invalid + 2) + 10
        if figures.idle_cloud_calls_per_min > figures.idle_cloud_budget:
            violations.add(
                "hot-loop", "cloud", f"{figures.idle_cloud_calls_per_min:.0f} calls/min while idle"
            )
        if figures.idle_k8s_writes_per_min > figures.idle_k8s_budget:
            violations.add(
                "hot-loop", "apiserver", f"{figures.idle_k8s_writes_per_min:.0f} writes/min while idle"
            )
        say(
            f"idle {options.idle:.0f}s: {figures.idle_cloud_calls_per_min:.1f} cloud calls/min, "
            f"{figures.idle_k8s_writes_per_min:.1f} apiserver writes/min ({invalid} invalid Services)"
        )

        # the end: delete everything, nothing of ours may stay, nothing foreign may have changed
        t_delete = time.monotonic()
        workload.delete_all()
        left = wait_gone(api=api, cloud=cloud, bound=options.settle_bound)
        figures.final_delete = time.monotonic() - t_delete
        for part in left:
            violations.add("leak", part, "left after every Service was deleted")
        foreign_after = cloud.foreign_snapshot()
        for key in sorted(set(foreign_before) | set(foreign_after)):
            if foreign_before.get(key) != foreign_after.get(key):
                violations.add(
                    "foreign-touched",
                    key,
                    f"before {foreign_before.get(key)!r}, after {foreign_after.get(key)!r}",
                )
        observer.stop()
        replicas.stop()
        for log in replicas.crash_logs:
            violations.add("crash", log.split(":", 1)[0], log.split("\n", 1)[-1][-2000:])
        for text in replicas.uncaught():
            violations.add("crash", text.splitlines()[0], text)
        say(f"deleted all in {figures.final_delete:.1f}s; left: {left or 'nothing'}")

        figures.ops = dict(workload.ops)
        figures.refused = dict(workload.refused)
        figures.faults = dict(faults.counts)
        figures.fault_errors = dict(faults.errors)
        figures.cloud_injected = cloud.injected()
        figures.exits = dict(replicas.exits)
        figures.observations = observer.rounds
    figures.violations = dict(violations.counts)
    figures.examples = violations.examples
    figures.leaks = violations.counts["leak"]
    figures.duplicates = violations.counts["duplicate"]
    figures.flaps = violations.counts["flap"]
    figures.foreign_touched = violations.counts["foreign-touched"]
    figures.crashes = violations.counts["crash"]
    figures.wall = time.monotonic() - wall
    if out is not None:
        out.write(figures.line() + "\n")
        for kind, shown in sorted(figures.examples.items()):
            for example in shown:
                out.write(f"  {kind}: {example}\n")
        out.flush()
    return figures


def settle(
    *, api: client.ApiClient, cloud: SoakCloud, workload: Workload, replicas: ReplicaSet, bound: float
) -> tuple[float, list[str]]:
    """Seconds from now until :func:`problems` finds none (or ``bound``), and what was left then."""
    started = time.monotonic()
    left: list[str] = ["not checked yet"]
    while time.monotonic() - started < bound:
        try:
            left = problems(api=api, cloud=cloud, workload=workload)
        except (ApiException, *UNREACHABLE) as exc:
            left = [f"the apiserver did not answer: {exc}"]
        if not left:
            return time.monotonic() - started, []
        time.sleep(1.0)
    return time.monotonic() - started, left


def wait_gone(*, api: client.ApiClient, cloud: SoakCloud, bound: float) -> list[str]:
    """After delete-all: wait until no Service is left and nothing of ours is in the cloud; what is left."""
    started = time.monotonic()
    left: list[str] = []
    while time.monotonic() - started < bound:
        with contextlib.suppress(ApiException, *UNREACHABLE):
            services = [
                f"Service {s['metadata']['namespace']}/{s['metadata']['name']}" for s in list_services(api)
            ]
            left = services + leftovers(cloud=cloud)
            if not left:
                return []
        time.sleep(1.0)
    return left


def to_json(figures: Figures) -> str:
    data: dict[str, Any] = asdict(figures)
    data["passed"] = figures.passed
    data["max_convergence"] = max(figures.convergence, default=0.0)
    return json.dumps(data, indent=2, sort_keys=True)

"""The side-by-side phases (``bench/side_by_side.py``) for GCP, ours only, on the fake GCE (not a test).

There is no upstream binary to run against the fake: upstream cloud-provider-gcp's calls for the same
operations are derived from its call sequences in ``../shared/reference/gcp-provider.md`` (see
``bench/README.md``, section "GCP: the same phases on the fake GCE").

Set-up: a fresh etcd + kube-apiserver (``ccm.envtest.controlplane``), a fresh fake GCE server
(``fakegce.FakeCompute``) **in this process** (its threads share this interpreter, not the
controller's), seeded with the network ``default``, the subnetwork ``nodes``, and M instances tagged
``k8s-node`` in two zones, and their M Nodes (``spec.providerID`` ``gce://project/zone/name``). Seeding
goes straight into the fake's state, not over HTTP, so every call the fake counts is the controller's.
``ccm run --cloud-provider=gce`` runs as its own process with the flags ``side_by_side.py`` gives ours
(``--leader-elect=false`` unless ``--leader-elect``: the controller trusts its restart checkpoint only
with leader election, docs/running.md "Restart and fail-over").

Phases, as in ``side_by_side.py`` (both run ``bench/phases.py``'s): ``start``; ``create`` (N Services of
type LoadBalancer, two TCP ports, until every one has an address and the fake has counted no call for
``--quiet`` s); ``steady`` (``--steady`` s of nothing); ``restart`` (stop, start); ``node-add`` (one
instance + Node, then the zone's instance group must hold it and every backend service must use that
group); ``delete`` (all N, until they are gone and the fake is quiet, then the fake must hold none of
the cluster's LB resources).

Per phase: the GCE calls (HTTP requests counted at the fake, operation waits included: total,
mutations (the ``writes`` of the JSON), errors, the top operations), the time to converge, the
controller's CPU and peak RSS.

    KUBEBUILDER_ASSETS=$HOME/.cache/ccm-lb/control-plane/bin \\
        .venv/bin/python bench/gce_phases.py --services 100 --nodes 20 [--leader-elect]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import types
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from controller_scale import (
    BENCH_LABEL,
    Api,
    BenchError,
    log,
    ready_patch,
    run_parallel,
)
from phases import PHASES, Calls, PhaseRunner
from side_by_side import ControllerProcess, controller_command, node_port_range, service_body

from ccm.envtest.assets import find_assets
from ccm.envtest.controlplane import ControlPlane, free_port
from fakegce import FakeCompute

PROJECT, REGION = "test-project", "us-central1"
ZONES = ("us-central1-a", "us-central1-b")
NODE_TAG = "k8s-node"
CLUSTER = "bench"
LB_KINDS = ("forwardingRules", "backendServices", "healthChecks", "firewalls", "instanceGroups", "addresses")

Key = tuple[str, str]  # (HTTP method, the fake's path template)


# -- the fake, counting ------------------------------------------------------------------------------


class CountingFake(FakeCompute):
    """The fake GCE server, also counting errors (status ≥ 400) per route and the time of the last call."""

    def __init__(self) -> None:
        super().__init__(project=PROJECT, region=REGION)
        self.errors: Counter[Key] = Counter()
        self.last = 0.0
        self.mutation_keys = {(r.method, r.template) for r, _ in self._routes if r.mutation}

    def dispatch(self, method: str, raw_path: str, raw_body: bytes) -> tuple[int, Any]:
        with self._lock:  # the fake handles one call at a time anyway; this makes requests[-1] this call's
            seen = len(self.requests)
            status, body = super().dispatch(method, raw_path, raw_body)
            if status >= 400:
                if len(self.requests) > seen:
                    key = (self.requests[-1]["method"], self.requests[-1]["template"])
                else:
                    key = (method, unquote(urlsplit(raw_path).path))
                self.errors[key] += 1
            self.last = time.time()
            return status, body

    def read(self) -> Calls:
        with self._lock:
            return Calls(
                calls={operation(k): n for k, n in self.calls.items()},
                errors={operation(k): n for k, n in self.errors.items()},
                total=sum(self.calls.values()),
                last=self.last,
                now=time.time(),
            )

    def is_mutation(self, name: str) -> bool:
        return name in {operation(k) for k in self.mutation_keys}

    def lb_resources(self) -> dict[str, list[str]]:
        """Names of every LB-related resource in the project (instances and networks are the seed's)."""
        return {kind: sorted(r["name"] for r in self.resources(kind)) for kind in LB_KINDS}


def operation(key: Key) -> str:
    """(method, template) as the API's method name: ``forwardingRules.get``, ``regionOperations.wait``."""
    method, template = key
    parts = template.split("/")
    if parts[0] in ("regions", "zones") and len(parts) >= 3:
        scope, parts = parts[0], parts[2:]
    elif parts[0] == "global":
        scope, parts = "global", parts[1:]
    else:
        scope = ""
    if template.startswith("/") or not parts or parts[0].startswith("{"):
        return f"{method} {template}"  # not a route of the fake
    collection = parts[0]
    if collection == "operations":
        collection = {"regions": "regionOperations", "zones": "zoneOperations"}.get(scope, "globalOperations")
    elif collection == "healthChecks" and scope == "regions":
        collection = "regionHealthChecks"
    if len(parts) >= 3:  # a custom verb: addInstances, setLabels, wait, ...
        return f"{collection}.{parts[2]}"
    verbs = {"GET": "get", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}
    if len(parts) == 1:
        return f"{collection}.{'list' if method == 'GET' else 'insert'}"
    return f"{collection}.{verbs.get(method, method)}"


def cloud_config(url: str) -> str:
    """The ``--cloud-config`` of tests/support/gcp.py (``write_cloud_config``): anonymous, on the fake."""
    return (
        f"[global]\nproject-id = {PROJECT}\nregion = {REGION}\nnetwork-name = default\n"
        f"subnetwork-name = nodes\nnode-tags = {NODE_TAG}\napi-endpoint = {url}\ntoken-url = nil\n"
    )


# -- figures -----------------------------------------------------------------------------------------


def gce_service_body(index: int) -> dict[str, Any]:
    """``side_by_side``'s two-port Service, without its AWS annotation (external LB, ETP Cluster)."""
    body = service_body(index)
    body["metadata"].pop("annotations", None)
    return body


def node_body(name: str, zone: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "topology.kubernetes.io/zone": zone,
                "topology.kubernetes.io/region": REGION,
                BENCH_LABEL: "1",
            },
        },
        "spec": {"providerID": f"gce://{PROJECT}/{zone}/{name}"},
    }


# -- the run -----------------------------------------------------------------------------------------


class GceBench(PhaseRunner):
    """The fake, the control plane, the seed and the controller process, through the phases of
    :class:`phases.PhaseRunner`."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args=args)
        self.m, self.workdir = args.nodes, workdir
        self.fake = CountingFake()
        self.plane = ControlPlane(
            assets=find_assets(), service_cidr="10.96.0.0/16", extra_apiserver_args=node_port_range(self.n)
        )
        self.instances: list[tuple[str, str]] = []  # (name, zone)
        self.info.update({"leader_elect": args.leader_elect, "fake_gce": "in the benchmark's process"})

    def setup(self) -> None:
        t = time.monotonic()
        self.fake.start()
        self.fake.seed_network("default")
        self.fake.seed_subnetwork("nodes", "default", "10.128.0.0/20")
        self.plane.start()
        self._api = Api(self.plane.kubeconfig, pool_size=self.args.threads + 2)
        self.api.request("POST", "/api/v1/namespaces", {"metadata": {"name": self.NAMESPACE}})
        for i in range(self.m):
            self.add_instance(i)
        run_parallel(self.pool, self.create_node, self.m)
        (self.workdir / "gce.conf").write_text(cloud_config(self.fake.url))
        self.info["setup_s"] = round(time.monotonic() - t, 1)
        log(
            f"fake GCE at {self.fake.url} (in this process), apiserver at {self.plane.server}, "
            f"{self.m} instances and Nodes in {len(ZONES)} zones, in {self.info['setup_s']}s"
        )

    def add_instance(self, index: int) -> None:
        name, zone = f"gke-node-{index:03d}", ZONES[index % len(ZONES)]
        self.fake.seed_instance(zone, name, tags=(NODE_TAG,), network="default", subnetwork="nodes")
        self.instances.append((name, zone))

    def create_node(self, index: int) -> None:
        name, zone = self.instances[index]
        ip = next(
            i["networkInterfaces"][0]["networkIP"]
            for i in self.fake.resources("instances")
            if i["name"] == name
        )
        self.api.request("POST", "/api/v1/nodes", node_body(name, zone))
        patch = ready_patch(index)
        patch["status"]["addresses"] = [
            {"type": "InternalIP", "address": ip},
            {"type": "Hostname", "address": name},
        ]
        self.api.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            patch,
            content_type="application/strategic-merge-patch+json",
        )

    def start_controller(self) -> float:
        self.starts += 1
        port = free_port()
        command, health = controller_command(
            "ours",
            args=self.args,
            kubeconfig=self.plane.kubeconfig,
            conf=self.workdir / "gce.conf",
            port=port,
            workdir=self.workdir,
        )
        command = [c.replace("--cloud-provider=aws", "--cloud-provider=gce") for c in command]
        process = ControllerProcess(
            command=command,
            env=dict(os.environ),
            port=port,
            health=health,
            log_path=self.workdir / f"controller-{self.starts}.log",
        )
        if self.starts == 1:
            log(" ".join(command))
        return self.launch(process)

    def close(self) -> None:
        super().close()
        self.plane.stop()
        self.fake.stop()

    # -- what the phases ask of GCE (the fake's counters) -----------------------------------------------

    def read_calls(self) -> Calls:
        return self.fake.read()

    def is_write(self, operation: str) -> bool:
        return self.fake.is_mutation(operation)

    def service_body(self, index: int) -> dict[str, Any]:
        return gce_service_body(index)

    def add_node(self) -> None:
        self.add_instance(self.m)
        self.create_node(self.m)

    def inventory(self) -> dict[str, int]:
        return {kind: len(names) for kind, names in self.fake.lb_resources().items()}

    def node_check(self) -> str:
        """Is the new instance in its zone's instance group(s), and do all backend services use one?"""
        name, zone = self.instances[-1]
        groups = [g for g in self.fake.resources("instanceGroups") if g["zone"].endswith(f"/{zone}")]
        holding = {
            g["selfLink"]
            for g in groups
            if any(m.endswith(f"/{name}") for m in self.fake.members(zone, g["name"]))
        }
        services = self.fake.resources("backendServices")
        using = sum(1 for bs in services if any(b.get("group") in holding for b in bs.get("backends", [])))
        return (
            f"{name} in {len(holding)}/{len(groups)} instance groups of {zone}; "
            f"{using}/{len(services)} backend services use such a group"
        )


# -- report ------------------------------------------------------------------------------------------


def report(results: Mapping[str, Any], *, top: int) -> str:
    lines: list[str] = []
    for phase in PHASES:
        s = results["phases"].get(phase)
        if s is None:
            continue
        ops = ", ".join(f"{k} {v}" for k, v in list(s["by_operation"].items())[:top])
        lines.append(
            f"== {phase}: {s['calls']} calls ({s['writes']} mutations, {s['errors']} errors), "
            f"converged {s['converge_s']}s, CPU {s['cpu_s']}s, peak RSS {s['peak_rss_mib']} MiB"
        )
        if ops:
            lines.append(f"   top: {ops}")
        if s["errors_by_operation"]:
            lines.append(f"   errors: {s['errors_by_operation']}")
        if s["check"]:
            lines.append(f"   check: {s['check']}")
    lines += ["", "| phase | GCE calls | mutations | errors | converge, s | CPU, s | peak RSS, MiB |"]
    lines.append("|---|---|---|---|---|---|---|")
    for phase in PHASES:
        s = results["phases"].get(phase)
        if s is not None:
            converge = "-" if phase == "steady" else s["converge_s"]
            lines.append(
                f"| {phase} | {s['calls']} | {s['writes']} | {s['errors']} | {converge} | "
                f"{s['cpu_s']} | {s['peak_rss_mib']} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=100, help="N Services (two TCP ports each)")
    parser.add_argument("--nodes", type=int, default=20, help="M instances and Nodes (one more is added)")
    parser.add_argument("--workers", type=int, default=1, help="--concurrent-service-syncs")
    parser.add_argument("--qps", type=float, default=20.0, help="--kube-api-qps")
    parser.add_argument("--burst", type=int, default=30, help="--kube-api-burst")
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of the steady phase")
    parser.add_argument(
        "--quiet",
        type=float,
        default=5.0,
        help="converged = no GCE call for this many seconds (and the condition)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="bound of each wait, seconds")
    parser.add_argument("--threads", type=int, default=8, help="client threads creating/deleting objects")
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        help="run the controller with leader election (its restart checkpoint is trusted only then)",
    )
    parser.add_argument("--top", type=int, default=6, help="operations listed per phase")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="logs and the cloud config (default: new temp dir)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.services < 1 or args.nodes < 1:
        parser.error("--services and --nodes must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_sigterm(signum: int, _frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_sigterm)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ccm-gce-phases-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work directory (logs, cloud config): {workdir}")
    bench = GceBench(args, workdir)
    try:
        bench.run()
    except KeyboardInterrupt:
        log("interrupted; everything was stopped")
        return 130
    except BenchError as exc:
        if bench.controller is not None:
            log(f"controller log tail:\n{bench.ctl.log_tail()}")
        log(f"failed: {exc}")
        return 1
    finally:
        bench.close()
        if bench.phases and args.json is not None:
            config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            results = {"info": bench.info, "phases": {p.name: p.summary() for p in bench.phases}}
            args.json.write_text(json.dumps({"config": config, "results": results}, indent=2) + "\n")
    sys.stdout.write(
        f"{args.services} two-port TCP Services (external, ETP Cluster), "
        f"{args.nodes} Nodes in {len(ZONES)} zones, "
        f"--concurrent-service-syncs={args.workers}, --kube-api-qps={args.qps:g}, "
        f"leader election {'on' if args.leader_elect else 'off'}, fake GCE in the benchmark's process, "
        f"{os.cpu_count()} CPUs\n"
    )
    results = {"info": bench.info, "phases": {p.name: p.summary() for p in bench.phases}}
    sys.stdout.write(report(results, top=args.top) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the AWS provider's memory per Service goes (not a test): the real provider against moto.

The side-by-side benchmark sees the controller's peak RSS grow by ~28 KiB per NLB Service; this says
which of the provider's caches hold it, and how much of it grows with the number of nodes as well
(what grows with Services × nodes matters most at 5,000 Services). It runs the provider in this process
(no Kubernetes) against ``bench/moto_corrected.py`` as a child process, seeded as ``side_by_side.py``
seeds it, and ensures N one-request-per-Service NLB Services (two TCP ports, every node a target, one
``nodes`` tuple shared by every request as the controller's node sync shares it), then reports the
deep size of each part of the provider, per Service, and the process's RSS:

    .venv/bin/python bench/memory_per_service.py --services 200 --nodes 20
    .venv/bin/python bench/memory_per_service.py --services 200 --nodes 200 --tracemalloc 15

Sizes are measured between a warm-up Service (the cluster's set-up, the clients, the imports) and the
last one, so the per-Service figure is what the N-1 later Services added. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

# This checkout's code, not that of the checkout whose virtualenv it shares (a git worktree's `.venv`
# may be another checkout's, whose editable install points there).
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from controller_scale import _deep_size, log
from side_by_side import REGION, ZONES, Account, Moto, aws_env, cloud_config

from ccm.cloudprovider import LoadBalancerRequest, Node, ServicePort
from providers.aws import provider as aws_provider
from providers.aws.provider import AWSProvider

CLUSTER = "bench"
TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"


def request(index: int, *, nodes: tuple[Node, ...]) -> LoadBalancerRequest:
    """What the controller hands the provider for ``side_by_side.service_body(index)``."""
    return LoadBalancerRequest(
        cluster_name=CLUSTER,
        namespace="bench",
        name=f"svc-{index:05d}",
        uid=f"00000000-0000-4000-8000-{index:012d}",
        ports=(
            ServicePort(name="http", protocol="TCP", port=80, node_port=30000 + 2 * index % 2700),
            ServicePort(name="https", protocol="TCP", port=443, node_port=30001 + 2 * index % 2700),
        ),
        nodes=nodes,
        annotations=MappingProxyType({TYPE_ANNOTATION: "nlb"}),
    )


def parts_of(provider: AWSProvider) -> list[tuple[str, Any]]:
    """The provider's state, part by part (the clients first: shared, never per Service)."""
    deployer = provider.deployer
    return [
        ("boto3 clients (botocore models, pools)", provider.clients),
        ("deployer._stacks (StackCache per Service)", deployer._stacks),
        ("  of which StackCache.targets", [c.targets for c in deployer._stacks.values()]),
        ("classic._known", deployer.classic._known),
        ("backend security group caches", deployer.backend),
        ("not-running instances", deployer.targets.not_running),
        ("the rest of the provider", provider),
    ]


def sizes(provider: AWSProvider) -> dict[str, tuple[int, int]]:
    """Deep size and object count of each part; an object shared is charged to the first part."""
    gc.collect()
    seen: set[int] = set()
    out = {}
    parts = parts_of(provider)
    # the breakdown line is measured before its parent so that its objects are charged to it, then
    # added back into the parent's figure
    stacks_label, targets_label = parts[1][0], parts[2][0]
    out[targets_label] = _deep_size(parts[2][1], seen)
    seen.discard(id(parts[2][1]))  # the list made for the measurement is not the provider's
    for label, root in parts:
        if label == targets_label:
            continue
        size, count = _deep_size(root, seen)
        if label == stacks_label:
            size, count = size + out[targets_label][0], count + out[targets_label][1]
        out[label] = (size, count)
    return out


def rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process, KiB."""
    fields = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def table(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], services: int) -> list[str]:
    lines = [
        f"{'part':45s} {'at 1, KiB':>10s} {'at N, KiB':>10s} {'per Service, B':>15s} {'objects/Svc':>12s}"
    ]
    for label, (size, count) in after.items():
        size0, count0 = before[label]
        per = (size - size0) / max(1, services - 1)
        objs = (count - count0) / max(1, services - 1)
        lines.append(f"{label:45s} {size0 / 1024:10.1f} {size / 1024:10.1f} {per:15.0f} {objs:12.1f}")
    return lines


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="ccm-mem-"))
    moto = Moto(log_path=workdir / "moto.log")
    moto.start()
    try:
        network = Account(moto.endpoint).seed(nodes=args.nodes)
        os.environ.clear()
        os.environ.update(aws_env(moto.endpoint, with_endpoint_url=True))
        config_path = workdir / "cloud.conf"
        config_path.write_text(
            cloud_config(network=network, endpoint=moto.endpoint, node_sg_rules=False, nlb_sg_managed=False)
        )
        provider = aws_provider.new(cluster_name=CLUSTER, cloud_config=str(config_path))
        nodes = tuple(
            Node(name=i.private_dns, provider_id=f"aws:///{i.zone}/{i.instance_id}", zone=i.zone)
            for i in network.instances
        )
        started = time.monotonic()
        provider.ensure_load_balancer(request=request(0, nodes=nodes))
        before = sizes(provider)
        rss_before = rss_kib()
        if args.tracemalloc:
            tracemalloc.start(args.traceback)
            snap_before = tracemalloc.take_snapshot()
        for index in range(1, args.services):
            provider.ensure_load_balancer(request=request(index, nodes=nodes))
            if index % 50 == 0:
                log(f"{index + 1}/{args.services} Services ensured ({time.monotonic() - started:.0f} s)")
        if args.sync:  # a node sync as the controller sends it: every Service's targets, nothing changed
            for index in range(args.services):
                provider.update_load_balancer(request=request(index, nodes=nodes))
        gc.collect()
        top: list[str] = []
        if args.tracemalloc:
            snap_after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            stats = snap_after.compare_to(snap_before, "traceback" if args.traceback > 1 else "lineno")
            top = [_stat_line(s) for s in stats[: args.tracemalloc]]
        after = sizes(provider)
        rss_after = rss_kib()
        return {
            "services": args.services,
            "nodes": args.nodes,
            "zones": len(ZONES),
            "region": REGION,
            "seconds": round(time.monotonic() - started, 1),
            "sizes_at_1": {k: list(v) for k, v in before.items()},
            "sizes_at_n": {k: list(v) for k, v in after.items()},
            "rss_kib_at_1": rss_before[0],
            "rss_kib_at_n": rss_after[0],
            "hwm_kib_at_n": rss_after[1],
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "tracemalloc_top": top,
            "table": table(before, after, args.services),
        }
    finally:
        moto.stop()


def _stat_line(stat: Any) -> str:
    frames: Iterable[Any] = stat.traceback
    where = " -> ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames)
    return f"{stat.size_diff / 1024:9.1f} KiB {stat.count_diff:+8d} blocks  {where}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=200, help="NLB Services ensured (N)")
    parser.add_argument("--nodes", type=int, default=20, help="instances, every one a target (M)")
    parser.add_argument("--sync", action="store_true", help="then one node sync of every Service")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="K", help="print the K top growths")
    parser.add_argument("--traceback", type=int, default=1, help="frames per tracemalloc entry")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = run(args)
    out = [f"{args.services} NLB Services x {args.nodes} nodes, {figures['seconds']} s", *figures["table"]]
    out.append(
        f"RSS {figures['rss_kib_at_1'] / 1024:.1f} -> {figures['rss_kib_at_n'] / 1024:.1f} MiB "
        f"({(figures['rss_kib_at_n'] - figures['rss_kib_at_1']) / max(1, args.services - 1):.1f} KiB per "
        f"Service), VmHWM {figures['hwm_kib_at_n'] / 1024:.1f} MiB"
    )
    if figures["tracemalloc_top"]:
        out += ["tracemalloc, growth from Service 1 to N:", *figures["tracemalloc_top"]]
    sys.stdout.write("\n".join(out) + "\n")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

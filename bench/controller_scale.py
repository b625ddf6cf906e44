"""Scale benchmark of the service controller against a real etcd + kube-apiserver (not a test).

It starts its own control plane on loopback, creates M Nodes and then N Services of type LoadBalancer,
and runs ``ccm run --cloud-provider=fake`` as a separate process, so that the controller's own memory
and CPU can be read from ``/proc``. It measures

1. the time from starting to create the Services until every one has ``status.loadBalancer.ingress``
   (observed with one list + watch stream, never by polling objects);
2. the node fan-out: one Node is added and the controller's ``/metrics`` are scraped until
   ``service_controller_loadbalancer_sync_total`` has grown by N (every LB got the new host set);
3. the controller's peak RSS (``VmHWM``) and CPU seconds (``utime + stime``), per phase;
4. its API requests by method (``rest_client_requests_total``), e.g. status PATCHes per Service.

Everything it starts is stopped on exit, also on Ctrl-C, SIGTERM and errors. See ``bench/README.md``.

    .venv/bin/python bench/controller_scale.py --services 2000 --nodes 200 --workers 8
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import re
import resource
import signal
import ssl
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ccm import cli
from ccm.envtest.assets import find_assets
from ccm.envtest.controlplane import ControlPlane, free_port
from ccm.k8s.reflector import _lines  # the same line splitting as the controller

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_LABEL = "ccm-bench"
NODE_PORT_RANGE_SIZE = 32767 - 30000 + 1  # the ControlPlane's --service-node-port-range
CLK_TCK = os.sysconf("SC_CLK_TCK")
RETRYABLE = {429, 500, 502, 503, 504}


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


class BenchError(RuntimeError):
    """The benchmark could not go on (a timeout, the controller died, …)."""


# -- the API, as plain JSON ---------------------------------------------------------------------------


class Api:
    """Raw JSON requests with the admin kubeconfig (the generated models would cost CPU on the machine
    being measured)."""

    def __init__(self, kubeconfig: Path, *, pool_size: int) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        configuration.connection_pool_maxsize = pool_size
        self.client = client.ApiClient(configuration)
        self.host = configuration.host
        self.requests = 0  # sent by the benchmark (all threads)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 60.0,
    ) -> Any:
        """One request; 429 and 5xx are retried a few times. Returns the decoded JSON body."""
        url = self.host + path + (f"?{urllib.parse.urlencode(dict(query))}" if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        for attempt in range(6):
            with self._lock:
                self.requests += 1
            resp = self.client.call_api(
                method, url, header_params=headers, body=body, _request_timeout=timeout
            )
            data = resp.read()
            if 200 <= resp.status <= 299:
                return json.loads(data) if data else None
            if resp.status not in RETRYABLE or attempt == 5:
                raise ApiException.from_response(
                    http_resp=resp, body=(data or b"").decode(errors="replace"), data=None
                )
            time.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    def stream(self, path: str, query: Mapping[str, str], *, read_timeout: float) -> Any:
        """A streaming GET (a watch); returns the urllib3 response, not yet read."""
        url = f"{self.host}{path}?{urllib.parse.urlencode(dict(query))}"
        resp = self.client.call_api(
            "GET", url, header_params={"Accept": "application/json"}, _request_timeout=(10, read_timeout)
        )
        if resp.status != 200:
            data = resp.read()
            raise ApiException.from_response(
                http_resp=resp, body=(data or b"").decode(errors="replace"), data=None
            )
        return resp.response


# -- objects ------------------------------------------------------------------------------------------


def node_body(name: str, zone: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone, BENCH_LABEL: "1"}},
        "spec": {"providerID": f"fake://{zone}/{name}"},
    }


def ready_patch(index: int) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00Z"
    return {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "benchmark node",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
            "addresses": [{"type": "InternalIP", "address": f"10.0.{index // 250}.{1 + index % 250}"}],
        }
    }


def create_node(api: Api, index: int, zones: int) -> str:
    name = f"bench-node-{index:05d}"
    api.request("POST", "/api/v1/nodes", node_body(name, f"zone-{'abcdefgh'[index % zones]}"))
    api.request(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        ready_patch(index),
        content_type="application/strategic-merge-patch+json",
    )
    return name


def service_body(name: str, *, node_ports: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }
    if not node_ports:
        spec["allocateLoadBalancerNodePorts"] = False
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {BENCH_LABEL: "1", "app": name}},
        "spec": spec,
    }


def has_ingress(obj: Mapping[str, Any]) -> bool:
    return bool(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


def key_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


# -- watching Services for their ingress ----------------------------------------------------------


class Gone(Exception):
    pass


class IngressWatcher:
    """One list + watch of the benchmark's Services; records when each first shows an ingress."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.first_ingress: dict[str, float] = {}
        self.events = 0
        self.relists = 0
        self.listed = threading.Event()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name="ingress-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown() if hasattr(response, "shutdown") else None
                response.close()
        self._thread.join(timeout=5)

    def count(self) -> int:
        with self._cond:
            return len(self.first_ingress)

    def wait_for(self, n: int, *, timeout: float, progress: Callable[[int], None] | None = None) -> float:
        """Block until ``n`` Services have an ingress; returns the monotonic time it happened."""
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        with self._cond:
            while len(self.first_ingress) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(
                        f"only {len(self.first_ingress)} of {n} Services got an ingress within {timeout:.0f}s"
                    )
                self._cond.wait(timeout=min(remaining, 1.0))
                if progress is not None and time.monotonic() - last_report >= 10:
                    last_report = time.monotonic()
                    progress(len(self.first_ingress))
            return max(self.first_ingress.values()) if n else time.monotonic()

    def _seen(self, obj: Mapping[str, Any]) -> None:
        if has_ingress(obj):
            key = key_of(obj)
            with self._cond:
                if key not in self.first_ingress:
                    self.first_ingress[key] = time.monotonic()
                    self._cond.notify_all()

    def _run(self) -> None:
        resource_version = ""
        while not self._stop.is_set():
            try:
                if not resource_version:
                    resource_version = self._list()
                    self.listed.set()
                resource_version = self._watch(resource_version)
            except Gone:
                resource_version = ""
            except Exception as exc:
                if self._stop.is_set():
                    return
                log(f"ingress watcher: {exc!r}; retrying")
                self._stop.wait(1.0)

    def _list(self) -> str:
        self.relists += 1
        token = ""
        while True:
            query = {"labelSelector": f"{BENCH_LABEL}=1", "limit": "500"}
            if token:
                query["continue"] = token
            page = self.api.request("GET", "/api/v1/services", query=query)
            for obj in page.get("items") or ():
                self._seen(obj)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return str(meta["resourceVersion"])

    def _watch(self, resource_version: str) -> str:
        query = {
            "labelSelector": f"{BENCH_LABEL}=1",
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "900",
        }
        try:
            response = self.api.stream("/api/v1/services", query, read_timeout=960)
        except ApiException as exc:
            if exc.status == 410:
                raise Gone from exc
            raise
        self._response = response
        try:
            for line in _lines(response):
                if self._stop.is_set():
                    break
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone
                    raise BenchError(f"watch error: {obj.get('message', obj)}")
                self.events += 1
                resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                if event.get("type") in {"ADDED", "MODIFIED"}:
                    self._seen(obj)
        finally:
            self._response = None
            response.release_conn()
        return resource_version


# -- the controller process, its /metrics and /proc ---------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = list[tuple[str, dict[str, str], float]]


def parse_metrics(text: str) -> Samples:
    samples: Samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def metric(samples: Samples, name: str, /, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def requests_by(samples: Samples, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, labels, value in samples:
        if name == "rest_client_requests_total":
            out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + value
    return out


@dataclass
class ProcStats:
    cpu_seconds: float
    vm_hwm_kib: int
    vm_rss_kib: int
    threads: int


def proc_stats(pid: int) -> ProcStats:
    """CPU (utime+stime) and memory of a live process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 (state) of proc(5)
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    status: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        status[name] = value.strip()

    def kib(name: str) -> int:
        return int(status.get(name, "0 kB").split()[0])

    return ProcStats(
        cpu_seconds=cpu,
        vm_hwm_kib=kib("VmHWM"),
        vm_rss_kib=kib("VmRSS"),
        threads=int(status.get("Threads", "0")),
    )


def cpu_seconds(pid: int) -> float:
    try:
        return proc_stats(pid).cpu_seconds
    except (OSError, ValueError, IndexError):
        return 0.0


class Controller:
    """``ccm run --cloud-provider=fake`` as a child process (own session), with its log in ``workdir``."""

    def __init__(self, *, kubeconfig: Path, workdir: Path, args: argparse.Namespace, seq: int = 1) -> None:
        self.seq = seq
        self.port = free_port()
        self.log_path = workdir / f"controller-{seq}.log"
        self.profile_path = workdir / f"controller-{seq}.profile.txt"
        flags = [
            "run",
            "--cloud-provider=fake",
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            f"--concurrent-service-syncs={args.workers}",
            f"--kube-api-qps={args.qps:g}",
            f"--kube-api-burst={args.burst}",
            "--cluster-name=bench",
        ]
        self.profiling = bool(args.profile)
        if args.profile:
            self.command = [
                sys.executable,
                str(Path(__file__).resolve()),
                PROFILE_ARGV0,
                str(self.profile_path),
            ]
            self.command += flags
        else:
            # ``-m`` from the checkout (cwd=REPO_ROOT): the checkout's code, also from a git worktree sharing
            # another checkout's virtualenv, whose ``ccm`` script imports that checkout's
            self.command = [sys.executable, "-m", "ccm.cli", *flags]
        self._ssl = ssl.create_default_context()
        self._ssl.check_hostname = False
        self._ssl.verify_mode = ssl.CERT_NONE  # the controller's self-signed serving certificate
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, timeout: float) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches only us; we stop it in order
                cwd=REPO_ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, urllib.error.URLError):
                if self._get("/readyz", timeout=2).strip() == "ok":
                    return
            time.sleep(0.2)
        raise BenchError(f"the controller was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"the controller exited with {self.proc.returncode}:\n{self.log_tail()}")

    def _get(self, path: str, *, timeout: float) -> str:
        url = f"https://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=timeout, context=self._ssl) as resp:
            body: bytes = resp.read()
        return body.decode()

    def metrics(self) -> Samples:
        self.check_alive()
        return parse_metrics(self._get("/metrics", timeout=30))

    def stats(self) -> ProcStats:
        return proc_stats(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, grace: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` s (60 s when profiling: it writes its report on exit)."""
        if self.profiling:
            grace = max(grace, 60.0)
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log(f"the controller did not stop within {grace:.0f}s of SIGTERM; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)


# -- helpers ------------------------------------------------------------------------------------------


def run_parallel(pool: ThreadPoolExecutor, fn: Callable[[int], Any], count: int) -> list[Any]:
    """``fn(0..count-1)`` on the pool; the first failure cancels the rest and is raised."""
    futures: list[Future[Any]] = [pool.submit(fn, i) for i in range(count)]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def percentiles(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 3)}


def settle(
    controller: Controller, *, quiet: float = 3.0, timeout: float = 300.0, poll: float = 0.5
) -> tuple[float, Samples]:
    """Wait until the controller sends no API request for ``quiet`` s (its event backlog is drained).

    Returns the monotonic time at which the last request was seen (to within ``poll``) and the metrics.
    """
    started = time.monotonic()
    samples = controller.metrics()
    last_total = metric(samples, "rest_client_requests_total")
    last_change = started
    while time.monotonic() - last_change < quiet:
        if time.monotonic() - started > timeout:
            log(f"the controller still sends requests after {timeout:.0f}s; going on")
            break
        time.sleep(poll)
        samples = controller.metrics()
        total = metric(samples, "rest_client_requests_total")
        if total != last_total:
            last_total, last_change = total, time.monotonic()
    return last_change, samples


def delta(after: Samples, before: Samples, name: str, /, **labels: str) -> float:
    return metric(after, name, **labels) - metric(before, name, **labels)


# -- the benchmark ------------------------------------------------------------------------------------


def requests_delta(after: Samples, before: Samples, label: str) -> dict[str, int]:
    """``rest_client_requests_total`` grown between two scrapes, by ``label`` (zeros left out)."""
    old = requests_by(before, label)
    grown = {k: int(v - old.get(k, 0.0)) for k, v in requests_by(after, label).items()}
    return {k: v for k, v in sorted(grown.items()) if v}


def histogram(after: Samples, before: Samples, name: str, /, **labels: str) -> dict[str, float]:
    """Count, sum and mean of a histogram between two scrapes."""
    count = delta(after, before, f"{name}_count", **labels)
    total = delta(after, before, f"{name}_sum", **labels)
    return {"count": count, "sum_s": round(total, 3), "mean_s": round(total / count, 4) if count else 0.0}


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


class Bench:
    """The control plane, the client, the controller and the phases, in order; :meth:`close` stops all."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.n, self.m = args.services, args.nodes
        self.node_ports = self.n <= NODE_PORT_RANGE_SIZE - 50
        self.namespaces = [f"bench-{i}" for i in range(args.namespaces)]
        self.figures: dict[str, Any] = {}
        self.plane = ControlPlane(assets=find_assets(), service_cidr="10.96.0.0/16")
        self.pool = ThreadPoolExecutor(max_workers=args.threads, thread_name_prefix="bench-client")
        self._api: Api | None = None
        self.controller: Controller | None = None
        self.controllers = 0
        self.watcher: IngressWatcher | None = None

    @property
    def api(self) -> Api:
        assert self._api is not None, "setup() first"
        return self._api

    @property
    def ctl(self) -> Controller:
        assert self.controller is not None, "start_controller() first"
        return self.controller

    def config(self) -> dict[str, Any]:
        a = self.args
        return {
            "services": self.n,
            "nodes": self.m,
            "workers": a.workers,
            "qps": a.qps,
            "burst": a.burst,
            "namespaces": a.namespaces,
            "client_threads": a.threads,
            "node_ports": self.node_ports,
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
        }

    # -- setup and teardown -----------------------------------------------------------------------------

    def setup(self) -> None:
        """Control plane, namespaces, M Ready Nodes."""
        if not self.node_ports:
            log(
                f"{self.n} Services do not fit the {NODE_PORT_RANGE_SIZE} NodePorts: "
                "creating them with allocateLoadBalancerNodePorts=false"
            )
        t = time.monotonic()
        self.plane.start()
        log(f"control plane up in {time.monotonic() - t:.1f}s at {self.plane.server} ({self.plane.workdir})")
        self._api = Api(self.plane.kubeconfig, pool_size=self.args.threads + 2)
        for ns in self.namespaces:
            self.api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        t = time.monotonic()
        api, zones = self.api, self.args.zones
        run_parallel(self.pool, lambda i: create_node(api, i, zones), self.m)
        self.figures["nodes_create_s"] = round(time.monotonic() - t, 2)
        log(f"created {self.m} Nodes in {self.figures['nodes_create_s']}s")

    def start_controller(self) -> float:
        """Start a controller process and wait for /readyz (caches synced); returns the seconds taken."""
        self.controllers += 1
        self.controller = Controller(
            kubeconfig=self.plane.kubeconfig, workdir=self.plane.workdir, args=self.args, seq=self.controllers
        )
        t = time.monotonic()
        self.controller.start(timeout=120)
        return round(time.monotonic() - t, 2)

    def stop_controller(self) -> float:
        controller, self.controller = self.controller, None
        if controller is None:
            return 0.0
        t = time.monotonic()
        controller.stop()
        if self.args.profile and controller.profile_path.exists():
            target = Path(self.args.profile).with_suffix(f".{controller.seq}.txt")
            target.write_text(controller.profile_path.read_text())
            log(f"profile of controller {controller.seq} written to {target}")
        return round(time.monotonic() - t, 2)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.watcher is not None:
            self.watcher.stop()
        self.stop_controller()
        if self._api is not None:
            self._api.close()
        self.plane.stop()
        log("control plane stopped")

    # -- phase 1 ------------------------------------------------------------------------------------------

    def phase_services(self) -> dict[str, Any]:
        """Create N Services; time until every one has an ingress; then wait for the event backlog."""
        n, ctl, api = self.n, self.ctl, self.api
        base, base_cpu = ctl.metrics(), ctl.stats().cpu_seconds
        self.watcher = watcher = IngressWatcher(api)
        watcher.start()
        if not watcher.listed.wait(30):
            raise BenchError("the ingress watcher could not list Services")
        created_at: dict[str, float] = {}

        def create(i: int) -> None:
            ns, name = self.namespaces[i % len(self.namespaces)], f"svc-{i:05d}"
            body = service_body(name, node_ports=self.node_ports)
            api.request("POST", f"/api/v1/namespaces/{ns}/services", body)
            created_at[f"{ns}/{name}"] = time.monotonic()

        def progress(done: int) -> None:
            ctl.check_alive()
            log(f"  {done}/{n} Services have an ingress after {time.monotonic() - t0:.0f}s")

        log(f"creating {n} Services with {self.args.threads} client threads")
        t0 = time.monotonic()
        run_parallel(self.pool, create, n)
        t_created = time.monotonic()
        log(f"created {n} Services in {t_created - t0:.1f}s; {watcher.count()} already have an ingress")
        t_all = watcher.wait_for(n, timeout=self.args.timeout, progress=progress)
        cpu_at_ingress = ctl.stats().cpu_seconds
        log(f"all {n} Services have an ingress {t_all - t0:.1f}s after the first create")
        last_request, after = settle(ctl, timeout=self.args.timeout)
        by_method = requests_delta(after, base, "method")
        return {
            "create_s": round(t_created - t0, 2),
            "create_per_s": round(n / max(t_created - t0, 1e-9), 1),
            "all_ingress_s": round(t_all - t0, 2),
            "ingress_per_s": round(n / max(t_all - t0, 1e-9), 1),
            "after_last_create_s": round(t_all - t_created, 2),
            "per_service_latency_s": percentiles(watcher.first_ingress[k] - t for k, t in created_at.items()),
            "controller_cpu_s": round(cpu_at_ingress - base_cpu, 2),
            "controller_cpu_incl_drain_s": round(ctl.stats().cpu_seconds - base_cpu, 2),
            "requests_drained_after_all_ingress_s": round(max(0.0, last_request - t_all), 1),
            "requests_by_method": by_method,
            "requests_by_code": requests_delta(after, base, "code"),
            "patches_per_service": round(by_method.get("PATCH", 0) / n, 3),
            "loadbalancer_syncs": delta(after, base, "service_controller_loadbalancer_sync_total"),
            "service_work": histogram(after, base, "workqueue_work_duration_seconds", name="service"),
            "service_queue_wait": histogram(after, base, "workqueue_queue_duration_seconds", name="service"),
            "retries": delta(after, base, "workqueue_retries_total", name="service"),
            "watch_events_seen": watcher.events,
        }

    # -- phase 2 ------------------------------------------------------------------------------------------

    def phase_node_fanout(self) -> dict[str, Any]:
        """Add one Node; scrape /metrics until N more LB syncs and one more nodesync were counted."""
        n, ctl = self.n, self.ctl
        before, cpu0 = ctl.metrics(), ctl.stats().cpu_seconds
        syncs0 = metric(before, "service_controller_loadbalancer_sync_total")
        count0 = metric(before, "service_controller_nodesync_latency_seconds_count")
        t = time.monotonic()
        create_node(self.api, self.m, self.args.zones)
        t_added = time.monotonic()
        t_all_synced = t_nodesync_done = 0.0
        while not (t_all_synced and t_nodesync_done):
            if time.monotonic() - t > self.args.timeout:
                raise BenchError(f"the node fan-out did not finish within {self.args.timeout:.0f}s")
            time.sleep(self.args.scrape_interval)
            samples = ctl.metrics()
            now = time.monotonic()
            if (
                not t_all_synced
                and metric(samples, "service_controller_loadbalancer_sync_total") >= syncs0 + n
            ):
                t_all_synced = now
            if (
                not t_nodesync_done
                and metric(samples, "service_controller_nodesync_latency_seconds_count") > count0
            ):
                t_nodesync_done = now
        after_fanout, cpu1 = ctl.metrics(), ctl.stats().cpu_seconds
        log(f"node fan-out: all {n} LBs updated {t_all_synced - t:.2f}s after the Node was created")
        last_request, after = settle(ctl, timeout=self.args.timeout)
        return {
            "node_create_s": round(t_added - t, 3),
            "all_lbs_updated_s": round(t_all_synced - t, 2),
            "nodesync_done_s": round(t_nodesync_done - t, 2),
            "scrape_interval_s": self.args.scrape_interval,
            "loadbalancer_syncs": delta(after_fanout, before, "service_controller_loadbalancer_sync_total"),
            "nodesync": histogram(after_fanout, before, "service_controller_nodesync_latency_seconds"),
            "update_host": histogram(
                after_fanout, before, "service_controller_update_loadbalancer_host_latency_seconds"
            ),
            "nodesync_errors": delta(after_fanout, before, "service_controller_nodesync_error_total"),
            "controller_cpu_s": round(cpu1 - cpu0, 2),
            "controller_cpu_incl_drain_s": round(ctl.stats().cpu_seconds - cpu0, 2),
            "requests_by_method": requests_delta(after, before, "method"),
            "requests_drained_after_node_s": round(max(0.0, last_request - t), 1),
        }

    # -- phase 3 ------------------------------------------------------------------------------------------

    def phase_restart(self) -> dict[str, Any]:
        """Restart the controller with N provisioned Services: all N are queued at once (a backlog)."""
        n = self.n
        stop_s = self.stop_controller()
        ready_s = self.start_controller()
        ctl = self.ctl
        t = time.monotonic() - ready_s
        while True:
            samples = ctl.metrics()
            done = metric(samples, "workqueue_work_duration_seconds_count", name="service")
            if done >= n and metric(samples, "workqueue_depth", name="service") == 0:
                break
            if time.monotonic() - t > self.args.timeout:
                raise BenchError(f"the restarted controller synced {done:g} of {n} within the timeout")
            time.sleep(0.2)
        t_synced = time.monotonic()
        cpu_synced = ctl.stats().cpu_seconds
        log(f"restart: all {n} Services synced {t_synced - t:.1f}s after the new controller started")
        last_request, after = settle(ctl, timeout=self.args.timeout)
        stats = ctl.stats()
        by_method = requests_delta(after, [], "method")
        return {
            "old_controller_stop_s": stop_s,
            "ready_s": ready_s,
            "all_synced_s": round(t_synced - t, 2),
            "syncs_per_s": round(n / max(t_synced - t, 1e-9), 1),
            "requests_drained_after_start_s": round(max(0.0, last_request - t), 1),
            "requests_by_method": by_method,
            "patches": by_method.get("PATCH", 0),
            "service_work": histogram(after, [], "workqueue_work_duration_seconds", name="service"),
            "controller_cpu_at_synced_s": round(cpu_synced, 2),
            "controller_cpu_s": round(stats.cpu_seconds, 2),
            "vm_hwm_mib": mib(stats.vm_hwm_kib),
        }

    # -- all ----------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        fig = self.figures
        self.setup()
        fig["controller_ready_s"] = self.start_controller()
        ctl = self.ctl
        idle = ctl.stats()
        fig["controller_idle"] = {"cpu_s": round(idle.cpu_seconds, 2), "rss_mib": mib(idle.vm_rss_kib)}
        log(f"controller pid {ctl.pid} ready in {fig['controller_ready_s']}s ({fig['controller_idle']}):")
        log(f"  {' '.join(ctl.command)}")
        plane_pids = self.plane.pids()
        plane_cpu0 = {pid: cpu_seconds(pid) for pid in plane_pids}
        bench_cpu0 = _own_cpu()

        fig["phase1"] = self.phase_services()
        fig["phase2"] = self.phase_node_fanout()
        final = ctl.stats()
        fig["controller"] = {
            "pid": ctl.pid,
            "vm_hwm_mib": mib(final.vm_hwm_kib),
            "vm_rss_mib": mib(final.vm_rss_kib),
            "threads": final.threads,
            "cpu_s_total": round(final.cpu_seconds, 2),
            "cpu_s_since_ready": round(final.cpu_seconds - idle.cpu_seconds, 2),
            "command": ctl.command,
        }
        fig["other_cpu_s_phase1_2"] = {
            **{
                name: round(cpu_seconds(pid) - plane_cpu0.get(pid, 0.0), 2)
                for name, pid in zip(("etcd", "kube-apiserver"), plane_pids, strict=False)
            },
            "benchmark": round(_own_cpu() - bench_cpu0, 2),
        }
        if self.args.restart:
            fig["phase3"] = self.phase_restart()
        fig["bench_api_requests"] = self.api.requests
        fig["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return fig


def run_benchmark(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run every phase; always stop what was started. Returns (config, figures)."""
    bench = Bench(args)
    config = bench.config()
    try:
        return config, bench.run()
    except BaseException:
        if bench.controller is not None:
            log(f"controller log tail:\n{bench.controller.log_tail()}")
        raise
    finally:
        bench.close()


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- profiling the controller (optional) -------------------------------------------------------------

PROFILE_ARGV0 = "--as-profiled-controller"

# (module, class or None, function, label): project functions and the client's hot paths, timed in
# thread CPU (CLOCK_THREAD_CPUTIME_ID) per call. Inclusive: _ensure contains build_request, etc.
INSTRUMENTED: tuple[tuple[str, str | None, str, str], ...] = (
    ("ccm.controllers.service", "ServiceController", "sync_service", "service sync (all)"),
    ("ccm.controllers.service", "ServiceController", "_ensure", "  _ensure"),
    ("ccm.controllers.service", "ServiceController", "targets", "    targets (cached per node change)"),
    ("ccm.controllers.service", "ServiceController", "_request", "    _request (build_request)"),
    ("ccm.controllers.predicates", None, "node_fingerprint", "    predicates.node_fingerprint"),
    ("ccm.k8s.patches", "ServicePatcher", "add_finalizer", "    patcher.add_finalizer"),
    ("ccm.k8s.patches", "ServicePatcher", "patch_status", "    patcher.patch_status"),
    ("providers.fake", "FakeCloud", "ensure_load_balancer", "    fake.ensure_load_balancer"),
    ("ccm.controllers.service", "ServiceController", "sync_nodes", "node sync (one pass)"),
    ("ccm.controllers.service", "ServiceController", "_sync_nodes_for", "  _sync_nodes_for (per Service)"),
    ("providers.fake", "FakeCloud", "update_load_balancer", "    fake.update_load_balancer"),
    ("ccm.k8s.events", "EventRecorder", "_post", "event recorder: _post"),
    ("ccm.k8s.reflector", "Reflector", "_apply", "reflector: _apply (one watch event)"),
    ("ccm.k8s.reflector", "Reflector", "_list", "reflector: _list"),
    ("kubernetes.client.rest", "RESTClientObject", "request", "HTTP: RESTClientObject.request"),
    ("kubernetes.client.api_client", "ApiClient", "response_deserialize", "client: response_deserialize"),
    ("kubernetes.client.api_client", "ApiClient", "sanitize_for_serialization", "client: sanitize (body)"),
    ("kubernetes.client.api_client", "ApiClient", "param_serialize", "client: param_serialize"),
    ("prometheus_client.exposition", None, "generate_latest", "/metrics: generate_latest"),
)


class _Timings:
    """Per label: calls, thread CPU and wall time (outermost call only, so recursion is not doubled)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            active: set[str] = self._local.__dict__.setdefault("active", set())
            if label in active:
                return fn(*args, **kwargs)
            active.add(label)
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
                active.discard(label)
                with self._lock:
                    self.calls[label] = self.calls.get(label, 0) + 1
                    self.cpu[label] = self.cpu.get(label, 0.0) + cpu
                    self.wall[label] = self.wall.get(label, 0.0) + wall

        return timed

    def install(self) -> None:
        for module_name, class_name, func, label in INSTRUMENTED:
            module = importlib.import_module(module_name)
            owner = getattr(module, class_name) if class_name else module
            setattr(owner, func, self.wrap(label, getattr(owner, func)))
        # modules that imported a function by name keep the original: patch their reference too
        health = importlib.import_module("ccm.health")
        exposition = importlib.import_module("prometheus_client.exposition")
        setattr(health, "generate_latest", exposition.generate_latest)  # noqa: B010

    def lines(self) -> list[str]:
        out = [f"  {'cpu s':>8} {'wall s':>8} {'calls':>8} {'cpu ms/call':>11}  function"]
        for _module, _cls, _func, label in INSTRUMENTED:
            calls = self.calls.get(label, 0)
            cpu, wall = self.cpu.get(label, 0.0), self.wall.get(label, 0.0)
            per = 1000 * cpu / calls if calls else 0.0
            out.append(f"  {cpu:8.2f} {wall:8.2f} {calls:8d} {per:11.3f}  {label}")
        return out


def profiled_controller(out: Path, argv: list[str]) -> int:
    """Run ``ccm <argv>`` in this process, measuring CPU per thread and per instrumented function.

    pyinstrument and cProfile follow one thread; the controller works in worker, node-sync, reflector
    and event threads. So: every 0.5 s each thread's CPU clock is read from /proc (exact per-thread
    CPU), and the functions in INSTRUMENTED are timed per call in thread CPU time.
    """
    timings = _Timings()
    timings.install()
    sampler = _ThreadCpu()
    sampler.start()
    started: list[Any] = []
    service_module = importlib.import_module("ccm.controllers.service")
    original_start = service_module.ServiceController.start

    def start(self: Any) -> None:
        started.append(self)
        original_start(self)

    service_module.ServiceController.start = start
    try:
        return cli.main(argv)
    finally:
        sampler.stop()
        total = sum(sampler.by_thread.values()) or 1.0
        lines = [f"controller CPU by thread (from /proc/self/task/*/schedstat): {total:.2f}s in all"]
        lines += [f"  {s:8.2f}s {100 * s / total:5.1f}%  {name}" for name, s in _top(sampler.by_thread, 15)]
        lines += ["", "CPU by function (thread CPU time, inclusive, all callers; indented = called inside):"]
        lines += timings.lines()
        if started:
            lines += ["", "memory held at exit (deep size; an object shared is charged to the first line):"]
            lines += _memory_lines(started[0])
        out.write_text("\n".join(lines) + "\n")


def _memory_lines(controller: Any) -> list[str]:
    provider = controller.provider
    parts: list[tuple[str, Any]] = [
        ("Service cache (reflector store)", controller.services.store._items),
        ("Node cache (reflector store)", controller.nodes.store._items),
        ("controller._known", controller._known),
        ("controller._last_synced_nodes (node fingerprints)", controller._last_synced_nodes),
        ("controller._locks", controller._locks),
        ("fake provider: balancers (each holds its LoadBalancerRequest)", getattr(provider, "balancers", {})),
        ("fake provider: calls (never trimmed)", getattr(provider, "calls", [])),
    ]
    seen: set[int] = set()
    out = []
    for label, root in parts:
        size, count = _deep_size(root, seen)
        out.append(f"  {size / 2**20:8.1f} MiB {count:9d} objects {len(root):6d} entries  {label}")
    return out


def _deep_size(root: Any, seen: set[int]) -> tuple[int, int]:
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
    size = count = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        count += 1
        stack.extend(gc.get_referents(obj))
        if isinstance(obj, dict):
            stack.extend(obj)  # str keys are not among a dict's referents
    return size, count


class _ThreadCpu:
    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.by_thread: dict[str, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for thread in threading.enumerate():
            native = thread.native_id
            if native is None:
                continue
            try:
                cpu = int(Path(f"/proc/self/task/{native}/schedstat").read_text().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                continue
            used = cpu - self._last.get(native, 0.0)
            self._last[native] = cpu
            name = re.sub(r"[-_]\d+$", "", re.sub(r"^Thread-\d+ \((.*)\)$", r"\1", thread.name))
            self.by_thread[name] = self.by_thread.get(name, 0.0) + used


def _top(values: Mapping[Any, float], n: int) -> list[tuple[Any, float]]:
    return sorted(values.items(), key=lambda kv: -kv[1])[:n]


# -- command line -------------------------------------------------------------------------------------


def report(config: Mapping[str, Any], figures: Mapping[str, Any]) -> str:
    """The figures as text."""
    c, f = config, figures
    p1, p2, ctl = f["phase1"], f["phase2"], f["controller"]
    lat = p1["per_service_latency_s"]
    lines = [
        f"{c['services']} Services x {c['nodes']} Nodes, --concurrent-service-syncs={c['workers']}, "
        f"--kube-api-qps={c['qps']:g} --kube-api-burst={c['burst']}, {c['cpus']} CPUs, "
        f"load average at start {c['loadavg_at_start']}",
        f"setup: {c['nodes']} Nodes created in {f['nodes_create_s']}s; controller ready in "
        f"{f['controller_ready_s']}s (idle: {f['controller_idle']})",
        "",
        "phase 1: create N Services until all have an ingress",
        f"  created in {p1['create_s']}s ({p1['create_per_s']}/s, {c['client_threads']} client threads)",
        f"  all have an ingress after {p1['all_ingress_s']}s ({p1['ingress_per_s']}/s), "
        f"{p1['after_last_create_s']}s after the last create",
        f"  per Service create->ingress: p50 {lat['p50']}s  p90 {lat['p90']}s  p99 {lat['p99']}s  "
        f"max {lat['max']}s",
        f"  controller CPU {p1['controller_cpu_s']}s until the last ingress, "
        f"{p1['controller_cpu_incl_drain_s']}s until its last request "
        f"({p1['requests_drained_after_all_ingress_s']}s after the last ingress)",
        f"  requests: {p1['requests_by_method']}  codes: {p1['requests_by_code']}  "
        f"PATCH per Service: {p1['patches_per_service']}",
        f"  service syncs: {p1['service_work']}; queue wait: {p1['service_queue_wait']}; "
        f"retries: {p1['retries']:g}",
        "",
        "phase 2: add one Node, until every LB has the new host set",
        f"  all {int(p2['loadbalancer_syncs'])} LBs updated after {p2['all_lbs_updated_s']}s "
        f"(scraped every {p2['scrape_interval_s']}s); nodesync observed after {p2['nodesync_done_s']}s",
        f"  nodesync latency (controller's histogram): {p2['nodesync']}",
        f"  update_load_balancer per LB: {p2['update_host']}; errors {p2['nodesync_errors']:g}",
        f"  controller CPU {p2['controller_cpu_s']}s, {p2['controller_cpu_incl_drain_s']}s until its last "
        f"request ({p2['requests_drained_after_node_s']}s after the Node); "
        f"requests: {p2['requests_by_method']}",
        "",
        f"controller after phases 1-2: VmHWM {ctl['vm_hwm_mib']} MiB, VmRSS {ctl['vm_rss_mib']} MiB, "
        f"{ctl['threads']} threads, CPU {ctl['cpu_s_total']}s ({ctl['cpu_s_since_ready']}s after ready)",
        f"other CPU during phases 1-2: {f['other_cpu_s_phase1_2']}; "
        f"load average at the end {f['loadavg_at_end']} (other work on the machine skews every figure)",
    ]
    if "phase3" in f:
        p3 = f["phase3"]
        lines += [
            "",
            "phase 3: restart the controller with N provisioned Services (all queued at once)",
            f"  old one stopped in {p3['old_controller_stop_s']}s; new one ready in {p3['ready_s']}s, "
            f"all synced after {p3['all_synced_s']}s ({p3['syncs_per_s']}/s), last request after "
            f"{p3['requests_drained_after_start_s']}s",
            f"  requests: {p3['requests_by_method']}; service syncs: {p3['service_work']}",
            f"  CPU {p3['controller_cpu_at_synced_s']}s until synced, {p3['controller_cpu_s']}s in all; "
            f"VmHWM {p3['vm_hwm_mib']} MiB",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=2000, help="N Services of type LoadBalancer")
    parser.add_argument("--nodes", type=int, default=200, help="M Nodes (one more is added in phase 2)")
    parser.add_argument("--workers", type=int, default=8, help="--concurrent-service-syncs")
    parser.add_argument("--qps", type=float, default=200.0, help="--kube-api-qps of the controller")
    parser.add_argument("--burst", type=int, default=400, help="--kube-api-burst of the controller")
    parser.add_argument("--namespaces", type=int, default=4, help="Services are spread over these")
    parser.add_argument("--zones", type=int, default=3, help="Nodes are spread over these zone labels")
    parser.add_argument("--threads", type=int, default=8, help="client threads creating objects")
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound of each wait, seconds")
    parser.add_argument("--scrape-interval", type=float, default=0.1, help="/metrics poll in phase 2")
    parser.add_argument(
        "--profile", metavar="FILE", default="", help="sample the controller's CPU by stack into FILE"
    )
    parser.add_argument(
        "--no-restart", dest="restart", action="store_false", help="skip phase 3 (controller restart)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    if args.services < 1 or args.nodes < 1 or args.namespaces < 1 or args.threads < 1:
        parser.error("--services, --nodes, --namespaces and --threads must be at least 1")
    if not 1 <= args.zones <= 8:
        parser.error("--zones must be 1..8")
    return args


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw and raw[0] == PROFILE_ARGV0:
        return profiled_controller(Path(raw[1]), raw[2:])
    args = parse_args(raw)

    def on_sigterm(signum: int, _frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        config, figures = run_benchmark(args)
    except KeyboardInterrupt:
        log("interrupted; everything was stopped")
        return 130
    except BenchError as exc:
        log(f"failed: {exc}")
        return 1
    if args.json:
        sys.stdout.write(json.dumps({"config": config, "figures": figures}, indent=2) + "\n")
    else:
        sys.stdout.write(report(config, figures) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

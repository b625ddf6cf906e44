"""The phases a cloud benchmark puts one controller process through, written once (not a test).

``side_by_side.py`` (AWS, on moto, ours and upstream) and ``gce_phases.py`` (GCE, on the fake) run the
same phases on a fresh set-up, and measure them the same way:

``start`` (the controller until healthy), ``create`` (N Services, until every one has an address),
``steady`` (nothing changes), ``restart`` (the controller stopped and started again), ``node-add`` (one
instance and its Node), ``delete`` (all N Services, until they are gone).

Each phase but ``steady`` lasts until its condition holds and the cloud has counted no call for
``--quiet`` seconds, counted from the end of the phase's action (for ``restart``: from when the new
process is healthy), never before. Per phase: the cloud's calls (total, writes, errors, by operation),
the time to converge, the controller's CPU (``/proc``) and its peak RSS (sampled). What a cloud differs
in (its counter, its Service, its node, its checks) is what a :class:`PhaseRunner` subclass says.
"""

from __future__ import annotations

import abc
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller_scale import (
    BENCH_LABEL,
    Api,
    BenchError,
    IngressWatcher,
    log,
    proc_stats,
    run_parallel,
)

PHASES = ("start", "create", "steady", "restart", "node-add", "delete")


@dataclass
class Calls:
    """A reading of the cloud's counters: calls and errors by operation, and when the last was seen."""

    calls: dict[str, int]
    errors: dict[str, int]
    total: int
    last: float  # time.time() of the last counted request
    now: float
    repeats: dict[str, int] = field(default_factory=dict)  # idempotent creates answered (moto_corrected)

    def minus(self, before: Calls) -> Calls:
        grown = {k: v - before.calls.get(k, 0) for k, v in self.calls.items()}
        errs = {k: v - before.errors.get(k, 0) for k, v in self.errors.items()}
        return Calls(
            calls={k: v for k, v in grown.items() if v},
            errors={k: v for k, v in errs.items() if v},
            total=self.total - before.total,
            last=self.last,
            now=self.now,
            repeats={
                k: v - before.repeats.get(k, 0)
                for k, v in self.repeats.items()
                if v - before.repeats.get(k, 0)
            },
        )


@dataclass
class Phase:
    name: str
    calls: Calls
    writes: int
    converge_s: float
    condition_s: float  # when the phase's own condition held (addresses, Services gone), else 0
    cpu_s: float
    peak_rss_mib: float
    check: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "calls": self.calls.total,
            "writes": self.writes,
            "errors": sum(self.calls.errors.values()),
            "converge_s": round(self.converge_s, 2),
            "condition_s": round(self.condition_s, 2),
            "cpu_s": round(self.cpu_s, 2),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "by_operation": dict(sorted(self.calls.calls.items(), key=lambda kv: (-kv[1], kv[0]))),
            "errors_by_operation": dict(sorted(self.calls.errors.items())),
            "repeated_creates": self.calls.repeats,
            "check": self.check,
        }


class Sampler:
    """Reads the controller's VmRSS every ``interval`` s; :meth:`take` returns the peak since the last."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.pid = 0
        self.peak_kib = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def follow(self, pid: int) -> None:
        with self._lock:
            self.pid, self.peak_kib = pid, 0

    def take(self) -> int:
        self._sample()
        with self._lock:
            peak, self.peak_kib = self.peak_kib, 0
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        with self._lock:
            pid = self.pid
        if not pid:
            return
        try:
            rss = proc_stats(pid).vm_rss_kib
        except (OSError, ValueError, IndexError):
            return
        with self._lock:
            if pid == self.pid:
                self.peak_kib = max(self.peak_kib, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


class Controller(Protocol):
    """What the phases need of the controller process (``side_by_side.ControllerProcess``)."""

    @property
    def pid(self) -> int: ...

    def start(self, *, timeout: float) -> float: ...

    def check_alive(self) -> None: ...

    def stop(self) -> None: ...

    def log_tail(self, lines: int = 30) -> str: ...


class PhaseRunner(abc.ABC):
    """One controller's phases on one fresh set-up; subclasses bring the cloud and the controller."""

    NAMESPACE = "bench"

    def __init__(self, *, args: Any, label: str = "", thread_prefix: str = "client") -> None:
        self.args, self.n = args, args.services
        self.label = label  # prefixed to every line logged, e.g. "[ours] "
        self.pool = ThreadPoolExecutor(max_workers=args.threads, thread_name_prefix=thread_prefix)
        self.sampler = Sampler()
        self._api: Api | None = None
        self.controller: Controller | None = None
        self.starts = 0  # controllers started: each one's log is controller-<starts>.log
        self.phases: list[Phase] = []
        self.info: dict[str, Any] = {}

    @property
    def api(self) -> Api:
        assert self._api is not None
        return self._api

    @property
    def ctl(self) -> Controller:
        assert self.controller is not None
        return self.controller

    # -- what a cloud says ------------------------------------------------------------------------------

    @abc.abstractmethod
    def setup(self) -> None:
        """Start the cloud and the control plane (setting ``_api``), seed the cloud, create the Nodes."""

    @abc.abstractmethod
    def start_controller(self) -> float:
        """Start the controller (setting ``controller``), follow it with the sampler; seconds to healthy."""

    @abc.abstractmethod
    def read_calls(self) -> Calls:
        """The cloud's counters now."""

    @abc.abstractmethod
    def is_write(self, operation: str) -> bool:
        """Whether an operation of :meth:`read_calls` changes the cloud."""

    @abc.abstractmethod
    def service_body(self, index: int) -> dict[str, Any]:
        """The ``index``-th Service of ``create`` (named ``svc-<index:05d>``, labelled ``BENCH_LABEL``)."""

    @abc.abstractmethod
    def add_node(self) -> None:
        """Add one instance to the cloud and its Node."""

    @abc.abstractmethod
    def node_check(self) -> str:
        """After ``node-add``: where the new instance is."""

    @abc.abstractmethod
    def inventory(self) -> Mapping[str, Any]:
        """The load-balancer resources the cloud holds (after ``create`` and ``delete``)."""

    def launch(self, process: Controller) -> float:
        """Start ``process`` as the controller the phases measure; the seconds until it was healthy."""
        self.controller = process
        seconds = process.start(timeout=self.args.timeout)
        self.sampler.follow(process.pid)
        return seconds

    def close(self) -> None:
        self.sampler.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.controller is not None:
            self.controller.stop()
        if self._api is not None:
            self._api.close()

    # -- measuring --------------------------------------------------------------------------------------

    def quiet(self, *, since: float, condition: Callable[[], bool] | None = None) -> tuple[Calls, float]:
        """Wait until ``condition`` holds and the cloud has counted no call for ``--quiet`` s. Returns the
        reading and the wall time (time.time()) at which the condition was first seen to hold."""
        held = 0.0
        deadline = time.monotonic() + self.args.timeout
        last_progress = time.monotonic()
        while True:
            if self.controller is not None:
                self.ctl.check_alive()
            reading = self.read_calls()
            if not held and (condition is None or condition()):
                held = time.time()
            if held and reading.now - max(reading.last, since) >= self.args.quiet:
                return reading, held
            if time.monotonic() > deadline:
                raise BenchError(f"{self.label}not converged within {self.args.timeout:.0f}s")
            if time.monotonic() - last_progress >= 30:
                last_progress = time.monotonic()
                log(
                    f"{self.label}  ... {reading.total} calls so far, "
                    f"the last {reading.now - reading.last:.1f}s ago"
                )
            time.sleep(0.5)

    def measure(
        self,
        name: str,
        action: Callable[[], None],
        *,
        condition: Callable[[], bool] | None = None,
        fixed: float = 0.0,
    ) -> Phase:
        """Run ``action`` and wait for convergence (or ``fixed`` s); the phase's calls, time, CPU, RSS."""
        before = self.read_calls()
        cpu0 = proc_stats(self.ctl.pid).cpu_seconds if self.controller is not None else 0.0
        pid0 = self.ctl.pid if self.controller is not None else 0
        self.sampler.take()
        t0 = time.time()
        action()
        if fixed:
            time.sleep(fixed)
            after, held = self.read_calls(), 0.0
            converge = fixed
        else:
            # the quiet window starts when the action is done (for ``restart``: once the new process is
            # healthy), never before: a controller slow to make its first call must not end the phase
            after, held = self.quiet(since=time.time(), condition=condition)
            converge = max(held, after.last if after.last > t0 else t0) - t0
        cpu = proc_stats(self.ctl.pid).cpu_seconds - (cpu0 if self.ctl.pid == pid0 else 0.0)
        calls = after.minus(before)
        phase = Phase(
            name=name,
            calls=calls,
            writes=sum(n for k, n in calls.calls.items() if self.is_write(k)),
            converge_s=converge,
            condition_s=(held - t0) if held and condition is not None else 0.0,
            cpu_s=cpu,
            peak_rss_mib=self.sampler.take() / 1024,
        )
        self.phases.append(phase)
        s = phase.summary()
        log(
            f"{self.label}{name}: {s['calls']} calls ({s['writes']} writes, {s['errors']} errors), "
            f"converged in {s['converge_s']}s, CPU {s['cpu_s']}s, peak RSS {s['peak_rss_mib']} MiB"
        )
        return phase

    # -- the phases --------------------------------------------------------------------------------------

    def run(self) -> None:
        self.setup()
        self.info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
        start = self.measure(
            "start", lambda: self.info.__setitem__("ready_s", round(self.start_controller(), 2))
        )
        start.check = f"healthy after {self.info['ready_s']}s"

        watcher = IngressWatcher(self.api)
        watcher.start()
        try:
            if not watcher.listed.wait(30):
                raise BenchError("the ingress watcher could not list Services")

            def create_all() -> None:
                path = f"/api/v1/namespaces/{self.NAMESPACE}/services"
                run_parallel(
                    self.pool, lambda i: self.api.request("POST", path, self.service_body(i)), self.n
                )

            create = self.measure("create", create_all, condition=lambda: watcher.count() >= self.n)
            create.check = f"{watcher.count()}/{self.n} addresses; the cloud holds {dict(self.inventory())}"
        finally:
            watcher.stop()

        self.measure("steady", lambda: None, fixed=self.args.steady)

        def restart() -> None:
            self.ctl.stop()
            self.info["restart_ready_s"] = round(self.start_controller(), 2)

        restarted = self.measure("restart", restart)
        restarted.check = f"healthy after {self.info['restart_ready_s']}s"

        node = self.measure("node-add", self.add_node)
        node.check = self.node_check()

        def delete_all() -> None:
            path = f"/api/v1/namespaces/{self.NAMESPACE}/services/svc-"
            run_parallel(self.pool, lambda i: self.api.request("DELETE", f"{path}{i:05d}"), self.n)

        delete = self.measure("delete", delete_all, condition=self.no_services_left)
        left = dict(self.inventory())
        self.info["left_after_delete"] = left
        delete.check = f"the cloud holds {left}"
        self.info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    def no_services_left(self) -> bool:
        page = self.api.request(
            "GET",
            f"/api/v1/namespaces/{self.NAMESPACE}/services",
            query={"labelSelector": f"{BENCH_LABEL}=1", "limit": "1"},
        )
        return not page.get("items")

"""``ccm sandbox``: start everything, apply Services, show what the controller built, clean up.

Order matters for the user: every input is checked before anything starts (a bad manifest or a busy
port costs a second, not a control-plane start), and everything that was started is stopped in
reverse order on every way out (success, error, Ctrl-C, SIGTERM), so no process and no temporary
directory outlives the command unless ``--keep-dir`` asks for the directory.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from ccm.envtest.assets import BUILD_SCRIPT, Assets, AssetsNotFound, find_assets
from ccm.envtest.controlplane import ControlPlane, ControlPlaneError
from sandbox import manifests
from sandbox.cloud import Cloud
from sandbox.cluster import ApplyError, Cluster, ServiceInfo
from sandbox.controller import ControllerProcess
from sandbox.report import Printer, render

CLUSTER = "sandbox"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
POLL_SECONDS = 2.0
ASSET_ENV = ("TEST_ASSET_ETCD", "TEST_ASSET_KUBE_APISERVER")
FIRST_BUILD = "about 11 minutes on 2 cores, once per machine"
# --cloud-provider → the module whose ``new(*, cluster, port)`` makes its Cloud. Imported by name when
# chosen: a run needs one fake cloud, not both (moto takes a second to import).
CLOUD_MODULES = {"aws": "sandbox.aws", "gce": "sandbox.gce", "gcp": "sandbox.gce"}
ACCEPTED_PROVIDERS = "aws, gce (alias gcp)"


@dataclass(frozen=True)
class Options:
    """What ``ccm sandbox`` was asked to do (see ``ccm sandbox --help``)."""

    once: bool = False
    manifests: tuple[str, ...] = ()
    demo: bool = True
    nodes: int = 3
    keep_dir: bool = False
    aws_port: int = 0
    timeout: float = 120.0
    cloud_provider: str = "aws"


class SandboxError(Exception):
    """Ends the sandbox with one error line (and optional indented details) and an exit code."""

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILED, details: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.details = details


class _Stopped(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM; a BaseException so no ``except Exception`` eats it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """SIGINT and SIGTERM interrupt the main thread once; later ones are ignored while cleaning up."""

    def __init__(self) -> None:
        self.stopping = False
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stopping = True
        raise _Stopped(signum)

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_provider(options: Options) -> None:
    name = options.cloud_provider
    if name not in CLOUD_MODULES:
        raise SandboxError(f"--cloud-provider={name}: accepted: {ACCEPTED_PROVIDERS}", exit_code=EXIT_USAGE)
    if options.aws_port and CLOUD_MODULES[name] != CLOUD_MODULES["aws"]:
        raise SandboxError(
            f"--aws-port applies to --cloud-provider=aws only (the fake GCE API of --cloud-provider={name} "
            "listens on a free port, printed at start); drop --aws-port",
            exit_code=EXIT_USAGE,
        )


def _new_cloud(options: Options) -> Cloud:
    module = importlib.import_module(CLOUD_MODULES[options.cloud_provider])
    cloud: Cloud = module.new(cluster=CLUSTER, port=options.aws_port)
    return cloud


def _assets(printer: Printer) -> Assets:
    """The control plane's binaries, found the envtest way, built with the project's script if missing.

    Nothing is built when the user named the binaries (TEST_ASSET_*), on CI (a build there is a setup
    mistake that should fail fast), or without the script (an installed package).
    """
    try:
        return find_assets()
    except AssetsNotFound as exc:
        explicit = [name for name in ASSET_ENV if os.environ.get(name)]
        if explicit:
            raise SandboxError(
                f"{exc}. Fix: unset {' and '.join(explicit)}, or point it at the binary", exit_code=EXIT_USAGE
            ) from None
        if os.environ.get("CI"):
            raise SandboxError(f"{exc} (not building on CI, where CI is set)") from None
        if not BUILD_SCRIPT.exists():
            raise SandboxError(str(exc)) from None
    printer.progress(
        f"control plane: etcd/kube-apiserver not found; building them with {BUILD_SCRIPT.name} "
        f"({FIRST_BUILD})"
    )
    last_error = ""
    proc = subprocess.Popen(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        printer.progress(line.rstrip())
        if "error:" in line:
            last_error = line.split("error:", 1)[1].strip()
    if proc.wait() != 0:
        raise SandboxError(
            f"building the control plane failed ({last_error or f'exit code {proc.returncode}'}). "
            f"Fix: install Go 1.24+ and run {BUILD_SCRIPT}, or set KUBEBUILDER_ASSETS to a folder "
            "holding etcd and kube-apiserver"
        )
    try:
        return find_assets()
    except AssetsNotFound as exc:
        raise SandboxError(f"{exc}") from None


def _waiting_for(documents: Sequence[manifests.Document]) -> list[tuple[str, str]]:
    """The applied Services this controller should give an address to."""
    out = []
    for doc in documents:
        spec = doc.body.get("spec") or {}
        if doc.kind == "Service" and spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass"):
            out.append((doc.namespace, doc.name))
    return out


def _footer(*, workdir: Path, kubeconfig: Path, cloud: Cloud, log: Path, options: Options) -> str:
    removed = "" if options.keep_dir else "   (removed at exit; --keep-dir keeps it)"
    lines = [
        "",
        f"Kubeconfig: {kubeconfig}{removed}",
        f"  kubectl --kubeconfig={kubeconfig} get services -A",
        f"  kubectl --kubeconfig={kubeconfig} apply -f my-service.yaml   "
        f"# LoadBalancer Services get {cloud.load_balancers}",
        *cloud.footer(),
        f"Controller log: {log}",
        f"Work directory: {workdir}",
    ]
    return "\n".join(lines) + "\n"


class _Sandbox:
    """One run: what was started, in an ExitStack that stops it in reverse order."""

    def __init__(
        self, *, options: Options, cloud: Cloud, printer: Printer, stack: contextlib.ExitStack
    ) -> None:
        self.options = options
        self.cloud = cloud
        self.printer = printer
        self.stack = stack
        self.workdir = Path()
        self.ready = False

    def run(self, *, assets: Assets, documents: list[manifests.Document]) -> int:
        options, cloud, printer, stack = self.options, self.cloud, self.printer, self.stack

        try:
            started = cloud.start()
        except OSError as exc:
            if not cloud.port_flag:
                raise SandboxError(f"{cloud.server} did not start: {exc}") from None
            raise SandboxError(
                f"{cloud.port_flag}={options.aws_port}: {exc.strerror or exc}; "
                "choose another port, or 0 for a free one",
                exit_code=EXIT_USAGE,
            ) from None
        stack.callback(self._step, f"stopping {cloud.server}", cloud.stop)
        self.workdir = Path(tempfile.mkdtemp(prefix="ccm-sandbox-"))
        stack.callback(_remove, printer, self.workdir, options.keep_dir)
        printer.progress(f"{cloud.label}: {started}")
        # Seeding (seconds for moto, mostly warming up) overlaps with starting the control plane.
        seeding = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed")
        stack.callback(seeding.shutdown, wait=True, cancel_futures=True)
        seeded = seeding.submit(cloud.seed, nodes=options.nodes)

        printer.progress(
            f"control plane: starting etcd and kube-apiserver from {assets.kube_apiserver.parent}"
        )
        plane = ControlPlane(assets=assets, workdir=self.workdir / "control-plane")
        stack.callback(self._step, "stopping the control plane", plane.stop)
        try:
            plane.start()
        except ControlPlaneError as exc:
            first, _, rest = str(exc).partition("\n")
            raise SandboxError(f"the control plane did not start: {first}", details=rest) from None
        etcd_pid, apiserver_pid = plane.pids()
        printer.progress(
            f"control plane: kube-apiserver ready at {plane.server} (etcd pid {etcd_pid}, "
            f"kube-apiserver pid {apiserver_pid})"
        )
        seed = seeded.result()
        printer.progress(f"{cloud.label}: {seed.summary}")
        kubeconfig = self.workdir / "kubeconfig"
        shutil.copyfile(plane.kubeconfig, kubeconfig)
        cluster = Cluster(kubeconfig=kubeconfig)
        stack.callback(cluster.close)
        cluster.wait_for_namespace()
        names = [cluster.register_node(machine=machine) for machine in seed.machines]
        printer.progress(
            f"nodes: registered {len(names)} Ready nodes ({', '.join(names)}) "
            f"with {cloud.provider_id_scheme} providerIDs"
        )

        log = self.workdir / "ccm.log"
        controller = ControllerProcess(
            kubeconfig=kubeconfig,
            cluster=CLUSTER,
            provider=cloud.provider,
            cloud_args=cloud.controller_args(workdir=self.workdir),
            log=log,
            env=cloud.controller_env(base=os.environ),
        )
        controller.start()
        stack.callback(self._step, f"stopping the controller (pid {controller.pid})", controller.stop)
        printer.progress(
            f"controller: python {' '.join(controller.args[1:])} (pid {controller.pid}); log: {log}"
        )
        if not controller.wait_started(timeout=60):
            raise SandboxError(
                f"the controller did not start (exit code {controller.exit_code()}); its last log lines:",
                details=controller.tail(),
            )

        for doc in documents:
            try:
                outcome = cluster.apply(document=doc)
            except ApplyError as exc:
                raise SandboxError(f"{exc}; fix the manifest and run again", exit_code=EXIT_USAGE) from None
            printer.progress(f"applied {doc.describe()} ({doc.source}): {outcome}")

        wanted = _waiting_for(documents)
        services = self._wait(cluster=cluster, controller=controller, wanted=wanted)
        snapshot = self._render(services)
        printer.result(snapshot)
        printer.result(
            _footer(workdir=self.workdir, kubeconfig=kubeconfig, cloud=cloud, log=log, options=options)
        )
        missing = [s for s in services if (s.namespace, s.name) in wanted and not s.address]
        if missing:
            summary = "; ".join(f"{s.namespace}/{s.name}: {s.status}" for s in missing)
            if options.once:
                stuck = not any(s.failed for s in missing)  # no failure to show: the log says more
                raise SandboxError(
                    f"no load balancer for {summary}",
                    details=f"the controller's last log lines:\n{controller.tail()}" if stuck else "",
                )
            printer.progress(f"no load balancer yet for {summary}; the controller keeps retrying")
        if options.once:
            printer.progress("done (--once)")
            return EXIT_OK

        self.ready = True
        printer.progress("ready; press Ctrl-C to stop (the tables are printed again when something changes)")
        while True:
            time.sleep(POLL_SECONDS)
            self._check_alive(controller)
            current = self._render(cluster.load_balancer_services())
            if current != snapshot:
                snapshot = current
                printer.result(f"\n--- {time.strftime('%H:%M:%S')}: changed\n{snapshot}")

    def _render(self, services: Sequence[ServiceInfo]) -> str:
        return render(services=services, address_kind=self.cloud.address_kind, resources=self.cloud.render())

    def _step(self, message: str, fn: Callable[[], None]) -> None:
        self.printer.progress(message)
        fn()

    def _check_alive(self, controller: ControllerProcess) -> None:
        code = controller.exit_code()
        if code is not None:
            raise SandboxError(
                f"the controller exited with code {code}; its last log lines:", details=controller.tail()
            )

    def _wait(
        self, *, cluster: Cluster, controller: ControllerProcess, wanted: list[tuple[str, str]]
    ) -> list[ServiceInfo]:
        """Until each wanted Service has an address or a failed sync, or ``--timeout`` passed."""
        if wanted:
            self.printer.progress(
                "waiting for the controller to give "
                f"{', '.join(f'{ns}/{n}' for ns, n in wanted)} a load balancer"
            )
        deadline = time.monotonic() + self.options.timeout
        reported: dict[tuple[str, str], str] = {}
        while True:
            self._check_alive(controller)
            services = cluster.load_balancer_services()
            by_key = {(s.namespace, s.name): s for s in services}
            settled = True  # every one has an address, or a failed sync the user should see now
            for key in wanted:
                svc = by_key.get(key)
                if svc is None or not (svc.address or svc.failed):
                    settled = False
                text = (
                    f"{self.cloud.address_kind} {svc.address}"
                    if svc and svc.address
                    else (svc.status if svc else "not found")
                )
                if reported.get(key) != text:
                    reported[key] = text
                    self.printer.progress(f"{key[0]}/{key[1]}: {text}")
            if settled or time.monotonic() > deadline:
                return services
            time.sleep(0.25)


def _remove(printer: Printer, workdir: Path, keep: bool) -> None:
    if keep:
        printer.progress(f"kept {workdir} (--keep-dir)")
        return
    shutil.rmtree(workdir, ignore_errors=True)
    printer.progress(f"removed {workdir}")


def run(*, options: Options, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the sandbox until done (``--once``) or until SIGINT/SIGTERM; return the exit code."""
    printer = Printer(out=out, err=err)
    try:
        _check_provider(options)
        documents = [manifests.demo_service()] if options.demo else []
        documents += manifests.load(paths=list(options.manifests))
    except manifests.ManifestError as exc:
        printer.error(str(exc))
        return EXIT_USAGE
    except SandboxError as exc:
        printer.error(str(exc), details=exc.details)
        return exc.exit_code

    if CLOUD_MODULES[options.cloud_provider] == "sandbox.aws" and importlib.util.find_spec("moto") is None:
        printer.error(
            "ccm sandbox needs moto, which is not installed; "
            "run pip install 'ccm-lb[sandbox]' (hack/sandbox installs it)"
        )
        return EXIT_FAILED

    signals = _Signals()
    signals.install()
    code = EXIT_FAILED
    sandbox: _Sandbox | None = None
    try:
        with contextlib.ExitStack() as stack:
            try:
                assets = _assets(printer)
                sandbox = _Sandbox(options=options, cloud=_new_cloud(options), printer=printer, stack=stack)
                code = sandbox.run(assets=assets, documents=documents)
            except _Stopped as stopped:
                signals.stopping = True
                printer.progress(f"received {signal.Signals(stopped.signum).name}; stopping")
                code = EXIT_OK if sandbox is not None and sandbox.ready else 128 + stopped.signum
            except SandboxError as exc:
                signals.stopping = True
                printer.error(str(exc), details=exc.details)
                code = exc.exit_code
            finally:
                signals.stopping = True  # a second Ctrl-C must not cut the clean-up short
    finally:
        signals.restore()
    return code

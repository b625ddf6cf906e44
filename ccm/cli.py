"""The ``ccm`` command: ``ccm run`` is the controller, as a cloud-controller-manager is started.

Bad flags and bad configuration end with one line on stderr and exit code 2; losing leadership ends
the process at once (exit 1) so that the Deployment restarts it as a candidate, as upstream does.
SIGTERM or SIGINT stops the controller, releases the Lease and exits 0. Other packages add commands
(``ccm sandbox``) through entry points (:mod:`ccm.commands`); the core never imports them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Sequence

from ccm import commands, connect, flags, logs, migrate
from ccm.connect import UsageError, provider_from_flags
from ccm.controllers.service import ServiceController
from ccm.health import HealthServer
from ccm.k8s.checkpoint import Checkpoint
from ccm.k8s.events import EventRecorder
from ccm.k8s.leader import LeaderElector, validate_timings

logger = logging.getLogger(__name__)

EXIT_USAGE = 2


def _fail(message: str) -> int:
    sys.stderr.write(f"ccm: error: {message}\n")
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    """``ccm run``: wire the API client, provider, controller, health server and leader election."""
    logs.setup(verbosity=args.v, fmt=args.logging_format)
    try:
        connect.require_cloud_provider(args)
    except UsageError as exc:
        return _fail(str(exc))
    if args.tls_private_key_file and not args.tls_cert_file:
        return _fail(f"--tls-private-key-file={args.tls_private_key_file}: needs --tls-cert-file")
    try:
        controllers = flags.parse_controllers(args.controllers or ["*"])
        if args.leader_elect:
            validate_timings(
                lease_duration=args.leader_elect_lease_duration,
                renew_deadline=args.leader_elect_renew_deadline,
                retry_period=args.leader_elect_retry_period,
            )
    except ValueError as exc:
        return _fail(str(exc))
    provider_name = connect.provider_name(args)
    try:
        provider = provider_from_flags(args, orphan_grace_seconds=args.load_balancer_orphan_grace_period)
        api = connect.api_client_from_flags(args)
    except UsageError as exc:
        return _fail(str(exc))

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    recorder = EventRecorder(api=api)
    # The checkpoint lives beside the Lease, in the namespace the leader-election RBAC covers.
    checkpoint = (
        Checkpoint(
            api=api,
            namespace=args.leader_elect_resource_namespace,
            name=f"{args.leader_elect_resource_name}-state",
        )
        if args.leader_elect
        else None
    )
    controller = ServiceController(
        api=api,
        checkpoint=checkpoint,
        provider=provider,
        cluster_name=args.cluster_name,
        recorder=recorder,
        load_balancer_class=args.load_balancer_class,
        workers=args.concurrent_service_syncs,
        resync_period=args.load_balancer_resync_period,
    )
    started = threading.Event()

    def start_controllers() -> None:
        if controllers.service and not started.is_set():
            started.set()
            controller.start()

    def lost_leadership() -> None:
        # As upstream (klog.Fatal): exit at once, without waiting for workers that may be mid-write;
        # another candidate holds the Lease (or soon will) and must be the only one acting.
        logger.error("leader election lost; exiting")
        logging.shutdown()
        os._exit(1)

    elector: LeaderElector | None = None
    if args.leader_elect:
        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaderElector(
            api=api,
            name=args.leader_elect_resource_name,
            namespace=args.leader_elect_resource_namespace,
            identity=identity,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
            on_started_leading=start_controllers,
            on_stopped_leading=lost_leadership,
        )

    def ready() -> tuple[bool, str]:
        if elector is not None and not elector.is_leader:
            return True, "standby"
        return (
            controller.has_synced(),
            "informers synced" if controller.has_synced() else "informers not synced",
        )

    server = None
    if args.secure_port:
        healthz = {"leaderElection": elector.healthy} if elector is not None else {}
        try:
            server = HealthServer(
                bind_address=args.bind_address,
                port=args.secure_port,
                cert_file=args.tls_cert_file,
                key_file=args.tls_private_key_file,
                healthz=healthz,
                readyz={"informer-sync": ready},
                before_metrics=controller.update_metrics,
            )
        except ValueError as exc:  # the serving certificate or key
            return _fail(str(exc))
        except OSError as exc:
            return _fail(
                f"--secure-port={args.secure_port} on --bind-address={args.bind_address}: "
                f"{exc.strerror or exc}"
            )
        server.start()
    # Warnings only once every flag is known good: a bad flag gets its one line of stderr alone.
    for name in controllers.ignored:
        logger.warning("--controllers: %s is not implemented here and is ignored", name)
    logger.info(
        "starting: provider=%s cluster=%s class=%r workers=%d leader-elect=%s",
        provider_name,
        args.cluster_name,
        args.load_balancer_class,
        args.concurrent_service_syncs,
        args.leader_elect,
    )
    if elector is not None:
        elector.start()
    else:
        start_controllers()
    stop.wait()
    if started.is_set():
        controller.stop()
    if elector is not None:
        elector.release()  # the election thread, which cannot be stopped, no longer writes the Lease
    recorder.flush(timeout=5)
    if server is not None:
        server.stop()
    logger.info("stopped")
    logs.exit_at_once(0)  # the election's and the watches' daemon threads cannot be stopped


def main(argv: Sequence[str] | None = None) -> int:
    others = commands.installed()
    for name, why in others.broken.items():
        sys.stderr.write(f"ccm: warning: command {name!r} cannot be loaded and is not offered: {why}\n")
    parser = flags.new_parser(commands=others.commands)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "migrate":
        return migrate.run(args)
    if args.command in others.commands:
        return others.commands[args.command].run(args)
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

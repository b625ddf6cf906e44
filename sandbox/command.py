"""``ccm sandbox`` as a command of ``ccm``: its flags, and the call into :mod:`sandbox.app`.

The sandbox package declares this command in the ``ccm.commands`` entry-point group (pyproject.toml),
so ``ccm`` offers it without importing the sandbox (:mod:`ccm.commands`). ``ccm run`` loads this
module too, to build its parser: it imports only argparse and ``ccm``'s flag types, and
:mod:`sandbox.app` (PyYAML, and boto3 and moto or fakegce) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import logging

from ccm.commands import Command
from ccm.flags import port, positive_duration, positive_int


def node_count(value: str) -> int:
    number = positive_int(value)
    if number > 100:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; accepted: 1 to 100")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``ccm sandbox``: the controller against an embedded control plane and a fake AWS (moto) or GCE."""
    parser.add_argument(
        "--cloud-provider",
        default="aws",
        help="aws (moto) or gce, alias gcp (a fake Compute Engine API) (default aws)",
    )
    parser.add_argument(
        "-f",
        "--manifest",
        action="append",
        default=[],
        metavar="PATH",
        help="apply this YAML manifest (multi-document; - for stdin); repeatable",
    )
    parser.add_argument(
        "--no-demo", dest="demo", action="store_false", help="do not create the demo Service default/demo"
    )
    parser.add_argument(
        "--nodes", type=node_count, default=3, help="instances and Nodes to create (default 3)"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit 0 once the Services have their addresses and the tables are printed",
    )
    parser.add_argument(
        "--keep-dir", action="store_true", help="keep the work directory (kubeconfig, logs) at exit"
    )
    parser.add_argument(
        "--aws-port",
        type=port,
        default=0,
        help="port of the moto endpoint on 127.0.0.1 (default: a free one); --cloud-provider=aws only",
    )
    parser.add_argument(
        "--timeout",
        type=positive_duration,
        default=120.0,
        help="how long to wait for the load balancers, e.g. 90s or 2m (default 2m)",
    )


def run(args: argparse.Namespace) -> int:
    """``ccm sandbox``: the controller on an embedded control plane with a fake AWS or GCE (see README)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Imported here, not at the top: ``ccm run`` loads this module to build its parser, and must not
    # load PyYAML, boto3 or moto (a second at start-up, and absent without the sandbox extra).
    from sandbox.app import Options  # noqa: PLC0415 - lazy on purpose, see above
    from sandbox.app import run as run_sandbox  # noqa: PLC0415 - lazy on purpose, see above

    return run_sandbox(
        options=Options(
            once=args.once,
            manifests=tuple(args.manifest),
            demo=args.demo,
            nodes=args.nodes,
            keep_dir=args.keep_dir,
            aws_port=args.aws_port,
            timeout=args.timeout,
            cloud_provider=args.cloud_provider,
        )
    )


COMMAND = Command(
    help="try the controller locally: embedded API server, a fake AWS or GCE, a demo Service",
    description="Start an embedded etcd + kube-apiserver, a fake cloud (moto as AWS, or a fake "
    "Compute Engine API with --cloud-provider=gce) and `ccm run` against it, apply a demo "
    "LoadBalancer Service (and -f manifests), and show the Services and the cloud resources built "
    "for them. Runs until Ctrl-C unless --once.",
    add_arguments=add_arguments,
    run=run,
)

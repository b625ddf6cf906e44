"""Command-line flags of ``ccm run``, spelled and defaulted as upstream's cloud-controller-manager.

Manifests copied from the AWS or GCP CCM must keep working, so values are parsed the Go way:
``--leader-elect=false``, ``--leader-elect-lease-duration=15s``, ``--v=2``. Flags that only matter to
other CCM controllers are accepted and ignored with a warning.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ccm.commands import Command

_GO_BOOL = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_BARE_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
KNOWN_CONTROLLERS = (
    "service-lb-controller",
    "service",
    "cloud-node-controller",
    "cloud-node-lifecycle-controller",
    "node-route-controller",
    "route",
    "cloud-node",
    "cloud-node-lifecycle",
    "node-ipam-controller",
)


def go_bool(value: str) -> bool:
    """strconv.ParseBool."""
    try:
        return _GO_BOOL[value]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"invalid boolean {value!r}; accepted: true, false, 1, 0, t, f"
        ) from None


def go_duration(value: str) -> float:
    """time.ParseDuration, in seconds (a bare number is taken as seconds; nan, inf and 1e3 are not)."""
    text = value.strip()
    if _BARE_SECONDS.fullmatch(text):
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match:
            raise argparse.ArgumentTypeError(
                f"invalid duration {value!r}; accepted: Go durations such as 15s, 2m, 1h30m"
            )
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if not body:
        raise argparse.ArgumentTypeError(
            f"invalid duration {value!r}; accepted: Go durations such as 15s, 2m, 1h30m"
        )
    return sign * total


def positive_duration(value: str) -> float:
    """A Go duration greater than zero (a period of 0 would be a busy loop)."""
    seconds = go_duration(value)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {value!r}; accepted: greater than 0, such as 10m")
    return seconds


def port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}; accepted: 0 (disabled) to 65535")
    return number


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; accepted: a whole number of at least 1")
    return number


@dataclass(frozen=True)
class Controllers:
    """``--controllers``: ``*`` (all on by default), names, and ``-name`` to disable."""

    service: bool
    ignored: tuple[str, ...]


def parse_controllers(raw: list[str]) -> Controllers:
    names = [n.strip() for item in raw for n in item.split(",") if n.strip()]
    for name in names:
        base = name.lstrip("-")
        if base != "*" and base not in KNOWN_CONTROLLERS:
            raise ValueError(
                f"--controllers: unknown controller {name!r}; accepted: *, "
                f"{', '.join(KNOWN_CONTROLLERS)} (prefix - to disable)"
            )
    service_names = {"service-lb-controller", "service"}
    disabled = any(n.lstrip("-") in service_names for n in names if n.startswith("-"))
    enabled = "*" in names or any(n in service_names for n in names)
    ignored = tuple(n for n in names if not n.startswith("-") and n not in service_names and n != "*")
    return Controllers(service=enabled and not disabled, ignored=ignored)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line and exit code 2, as Go's pflag does."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_cloud_flags(generic: argparse._ArgumentGroup) -> None:
    """The flags every command that reaches the cluster and the cloud takes (``run``, ``migrate``)."""
    # Not required=True: argparse would then report a missing --cloud-provider before an unknown flag
    # given with it; the command rejects an empty one itself, as upstream does.
    generic.add_argument("--cloud-provider", default="", help="aws, gce (alias gcp) or fake; required")
    generic.add_argument("--cloud-config", default="", help="path to the provider's configuration file")
    generic.add_argument(
        "--kubeconfig", default="", help="path to a kubeconfig; in-cluster config when empty"
    )
    generic.add_argument("--master", default="", help="API server address; overrides the kubeconfig's")
    generic.add_argument(
        "--cluster-name", default="kubernetes", help="name of the cluster, used in cloud names and tags"
    )
    generic.add_argument("--kube-api-qps", type=float, default=20.0, help="QPS towards the API server")
    generic.add_argument(
        "--kube-api-burst", type=positive_int, default=30, help="burst towards the API server"
    )
    generic.add_argument("--v", "-v", type=int, default=0, help="log verbosity (0 info, 2 more, 4+ debug)")
    generic.add_argument("--logging-format", choices=("text", "json"), default="text", help="log format")


LOAD_BALANCER_CLASS_HELP = "handle only Services with this spec.loadBalancerClass; empty = those without one"


def add_migrate_flags(parser: argparse.ArgumentParser) -> None:
    add_cloud_flags(parser.add_argument_group("generic"))
    parser.add_argument("--load-balancer-class", default="", help=LOAD_BALANCER_CLASS_HELP)
    parser.add_argument(
        "--dry-run",
        type=go_bool,
        nargs="?",
        const=True,
        default=True,
        help="only say what would happen (the default); false: apply the plan once, Service by Service, "
        "with the controller's own sync while holding its leader Lease, and print each result",
    )
    parser.add_argument(
        "--output", "-o", choices=("text", "json"), default="text", help="a table for review, or JSON"
    )
    parser.add_argument(
        "--leader-elect-resource-name",
        default="ccm-lb-controller",
        help="the controller's Lease, held while --dry-run=false applies the plan (as ccm run's)",
    )
    parser.add_argument("--leader-elect-resource-namespace", default="kube-system")
    parser.add_argument("--leader-elect-lease-duration", type=go_duration, default=15.0)
    parser.add_argument("--leader-elect-renew-deadline", type=go_duration, default=10.0)
    parser.add_argument("--leader-elect-retry-period", type=go_duration, default=2.0)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    generic = parser.add_argument_group("generic")
    add_cloud_flags(generic)
    generic.add_argument(
        "--controllers",
        action="append",
        default=[],
        help="controllers to run: * or service-lb-controller (alias service); -name disables",
    )
    generic.add_argument(
        "--use-service-account-credentials",
        type=go_bool,
        nargs="?",
        const=True,
        default=False,
        help="accepted for compatibility; this controller uses its own credentials",
    )
    generic.add_argument(
        "--configure-cloud-routes",
        type=go_bool,
        nargs="?",
        const=True,
        default=True,
        help="accepted and ignored (no route controller)",
    )
    generic.add_argument(
        "--allocate-node-cidrs",
        type=go_bool,
        nargs="?",
        const=True,
        default=False,
        help="accepted and ignored (no IPAM controller)",
    )
    generic.add_argument("--cluster-cidr", default="", help="accepted and ignored")

    service = parser.add_argument_group("service controller")
    service.add_argument(
        "--concurrent-service-syncs",
        type=positive_int,
        default=1,
        help="services synced at once (upstream default 1)",
    )
    service.add_argument("--load-balancer-class", default="", help=LOAD_BALANCER_CLASS_HELP)
    service.add_argument(
        "--load-balancer-resync-period",
        type=positive_duration,
        default=600.0,
        help="how often to check every LB for drift (one bulk cloud listing)",
    )
    service.add_argument(
        "--load-balancer-orphan-grace-period",
        type=positive_duration,
        default=600.0,
        help="how long a cloud resource of this instance's scope must have had no Service (of any "
        "type or class) with its UID before the resync deletes it",
    )

    election = parser.add_argument_group("leader election")
    election.add_argument("--leader-elect", type=go_bool, nargs="?", const=True, default=True)
    election.add_argument("--leader-elect-lease-duration", type=go_duration, default=15.0)
    election.add_argument("--leader-elect-renew-deadline", type=go_duration, default=10.0)
    election.add_argument("--leader-elect-retry-period", type=go_duration, default=2.0)
    election.add_argument("--leader-elect-resource-lock", default="leases", choices=("leases",))
    election.add_argument("--leader-elect-resource-name", default="ccm-lb-controller")
    election.add_argument("--leader-elect-resource-namespace", default="kube-system")

    serving = parser.add_argument_group("secure serving")
    serving.add_argument(
        "--secure-port", type=port, default=10258, help="HTTPS port for health and metrics; 0 disables"
    )
    serving.add_argument("--bind-address", default="0.0.0.0", help="address for --secure-port")
    serving.add_argument("--tls-cert-file", default="", help="serving certificate; self-signed when empty")
    serving.add_argument("--tls-private-key-file", default="", help="key of --tls-cert-file")


def new_parser(*, commands: Mapping[str, Command] | None = None) -> argparse.ArgumentParser:
    """``ccm``'s parser: ``run``, and the ``commands`` other packages add (:mod:`ccm.commands`)."""
    parser = _Parser(prog="ccm", description="Kubernetes cloud LoadBalancer provisioner", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser(
        "run", help="run the controller (flags as upstream's cloud-controller-manager)", allow_abbrev=False
    )
    add_run_flags(run)
    migrate = sub.add_parser(
        "migrate",
        help="say, for every LoadBalancer Service, what the controller would do with its load balancer",
        description=(
            "Reads the cluster and the cloud and prints, for every LoadBalancer Service this instance "
            "handles, whether its load balancer is kept, created, replaced or refused (another "
            "controller's serves it), what of the other controller's would be deleted, and whether "
            "the address would change. Changes nothing, unless --dry-run=false: then it applies the plan "
            "once and prints what each Service got."
        ),
        allow_abbrev=False,
    )
    add_migrate_flags(migrate)
    for name, command in sorted((commands or {}).items()):
        if name in ("run", "migrate"):
            continue  # the core's own commands; no package replaces them
        command.add_arguments(
            sub.add_parser(name, help=command.help, description=command.description, allow_abbrev=False)
        )
    return parser

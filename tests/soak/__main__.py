"""``python -m tests.soak`` (what ``hack/soak`` runs): one soak run from the command line.

Prints progress lines, then the figures line; exits 0 when every invariant held, 1 when one broke,
2 on bad arguments. ``--json FILE`` also writes every figure (and examples of each violation).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ccm.flags import go_duration
from tests.soak.runner import Options, run, to_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/soak", description=__doc__)
    parser.add_argument("--cloud", choices=("aws", "gce"), default="aws", help="moto (aws) or the fake GCE")
    parser.add_argument("--seed", type=int, default=1, help="seed of the workload and the faults")
    parser.add_argument("--duration", type=go_duration, default=600.0, help="chaos time in all (10m)")
    parser.add_argument("--cycle", type=go_duration, default=90.0, help="chaos before each settling (90s)")
    parser.add_argument("--settle-bound", type=go_duration, default=180.0, help="convergence bound (3m)")
    parser.add_argument("--idle", type=go_duration, default=60.0, help="idle measurement (1m)")
    parser.add_argument("--resync", type=go_duration, default=5.0, help="the replicas' resync period (5s)")
    parser.add_argument("--services", type=int, default=10, help="Service names per namespace (2 namespaces)")
    parser.add_argument("--workdir", type=Path, help="keep logs and state here (default: a temporary dir)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the soak's own steps")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s"
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto's server logs a traceback for each request it fails (its tagging API is not thread-safe:
    # "OrderedDict mutated during iteration" under concurrent calls); the client sees a 500 and retries.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # "Retrying..." while the apiserver restarts
    options = Options(
        cloud=args.cloud,
        seed=args.seed,
        duration=args.duration,
        cycle=args.cycle,
        settle_bound=args.settle_bound,
        idle=args.idle,
        resync=args.resync,
        names_per_namespace=args.services,
        workdir=args.workdir,
    )
    figures = run(options, out=sys.stdout)
    if args.json:
        args.json.write_text(to_json(figures) + "\n")
    return 0 if figures.passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""The short soak of the normal suite (issue 17): a fixed seed, a minute or so of chaos per cloud.

Each run starts its own control plane (it restarts its apiserver, which the session's must not
suffer), its own fake cloud and two leader-elected ``ccm run`` replicas, and fails on any broken
invariant, naming it with examples. The seed fixes the schedule of operations and faults; their
timing against the controller's threads is the machine's, so a failure is re-run with the same seed
and ``hack/soak --workdir`` to keep the logs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.soak.runner import Figures, Options, run

SEED = 17


def verdict(figures: Figures) -> str:
    lines = [figures.line()]
    for kind, shown in sorted(figures.examples.items()):
        lines += [f"  {kind}: {example}" for example in shown]
    return "\n".join(lines)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("cloud", "chaos"),
    [("aws", 60.0), ("gce", 30.0)],
)
def test_a_short_soak_with_every_kind_of_fault_keeps_every_invariant(
    cloud: str, chaos: float, tmp_path: Path
) -> None:
    options = Options(
        cloud=cloud,
        seed=SEED,
        duration=chaos,
        cycle=30.0,
        idle=15.0,
        settle_bound=150.0,
        fault_gap=2.5,
        op_gap=0.7,
        names_per_namespace=5,
        workdir=tmp_path / "soak",
    )
    figures = run(options, out=sys.stdout)
    assert figures.passed, verdict(figures)
    # not vacuous: the workload and the faults happened, and the observer watched them
    assert figures.ops.get("create", 0) >= 5 and figures.ops.get("edit", 0) >= 5, verdict(figures)
    assert {"leader-kill", "apiserver-restart", "watch-cut"} <= set(figures.faults), verdict(figures)
    assert figures.observations >= chaos / 2, verdict(figures)

"""checkov's Kubernetes policies on what users apply: the plain manifests and the chart's variants.

Checks that do not apply are skipped in deploy/.checkov.yaml, each with its reason; every other check
must pass.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tests.deploy import chart
from tests.deploy.chart import CHART, MANIFESTS, REPO
from tests.support.checkov import run_checkov

CONFIG = REPO / "deploy" / ".checkov.yaml"


def test_checkov_finds_no_failed_check_in_the_rendered_manifests(
    tool: Callable[[str], Path], helm: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "rendered"
    folder.mkdir()
    for manifest in sorted(MANIFESTS.glob("*.yaml")):
        shutil.copy(manifest, folder / manifest.name)
    for variant in ("daemonset", "servicemonitor"):
        values = CHART / "ci" / f"{variant}-values.yaml"
        (folder / f"{variant}.yaml").write_text(chart.render_text(helm, "--values", str(values)))
    rendered = sorted(p.name for p in folder.iterdir())
    assert rendered == ["aws.yaml", "daemonset.yaml", "gce.yaml", "servicemonitor.yaml"]

    result = run_checkov(
        tool("checkov"), "--framework", "kubernetes", "-d", folder, "--config-file", CONFIG, timeout=300
    )
    assert result.stdout.strip().startswith(("{", "[")), (
        f"checkov printed no JSON:\n{result.stdout}{result.stderr}"
    )
    kubernetes = [r for r in result.reports if r.get("check_type") == "kubernetes"]
    assert kubernetes, f"no kubernetes report in {[r.get('check_type') for r in result.reports]}"
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for c in result.results("failed_checks", check_type="kubernetes")
    ]
    assert not failed, (
        "checkov failed checks (fix the chart, or skip in deploy/.checkov.yaml with a reason):\n"
        + ("\n".join(failed))
    )
    summary = kubernetes[0]["summary"]
    assert summary["failed"] == 0 and summary["passed"] > 100, summary  # it did check the workloads
    assert result.returncode == 0, result.stderr

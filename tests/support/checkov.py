"""Running checkov for the deploy and Terraform checks, and reading its JSON reports.

Both callers scan with the bundled policies only (``--skip-download``: no Prisma Cloud calls) and want
the failed checks out of ``-o json``, which prints one report, a list of them (one per framework), or a
bare summary when there was nothing to scan.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CheckovRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def reports(self) -> list[dict[str, Any]]:
        document = json.loads(self.stdout)
        reports = document if isinstance(document, list) else [document]
        return [r for r in reports if isinstance(r, dict)]

    def results(self, key: str, *, check_type: str | None = None) -> list[dict[str, Any]]:
        """``failed_checks``, ``parsing_errors``, ... of every report (of one framework, if given)."""
        return [
            item
            for report in self.reports
            if check_type is None or report.get("check_type") == check_type
            for item in report.get("results", {}).get(key, [])
        ]


def run_checkov(
    checkov: Path, *args: str | Path, cwd: Path | None = None, timeout: float = 600
) -> CheckovRun:
    result = subprocess.run(
        [str(checkov), *(str(a) for a in args), "--compact", "--quiet", "--skip-download", "-o", "json"],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    return CheckovRun(returncode=result.returncode, stdout=result.stdout, stderr=result.stderr)

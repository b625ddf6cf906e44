"""The README's generated parts (annotation reference) match the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_annotation_reference_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "update_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_honoured_aws_annotation_appears_in_the_readme() -> None:
    from providers.aws.annotations import REGISTRY

    readme = (ROOT / "README.md").read_text()
    for annotation in REGISTRY:
        assert f"`{annotation.key}`" in readme, annotation.key


def test_every_gcp_annotation_appears_in_the_readme() -> None:
    from providers.gcp.annotations import REGISTRY

    readme = (ROOT / "README.md").read_text()
    for annotation in REGISTRY:
        assert f"`{annotation.key}`" in readme, annotation.key

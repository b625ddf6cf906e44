"""The documentation matches the code: the generated annotation references in docs/ are current.

The site itself (broken links and anchors, pages missing from the nav) is checked by
``mkdocs build --strict``, a step of ``hack/test``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _update_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("update_docs", ROOT / "hack" / "update_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the generated annotation references ---------------------------------------------------------------


def test_the_generated_annotation_references_in_docs_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "update_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_a_stale_generated_page_fails_the_check_and_is_rewritten_by_update_docs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    update_docs = _update_docs()
    (tmp_path / "docs").mkdir()
    for page, _ in update_docs.BLOCKS.values():
        shutil.copy(ROOT / page, tmp_path / page)
    page = tmp_path / "docs" / "aws-annotations.md"
    fresh = page.read_text()
    key = "`service.beta.kubernetes.io/aws-load-balancer-internal` |"
    assert key in fresh
    page.write_text(fresh.replace(key, "`service.beta.kubernetes.io/aws-load-balancer-internal-typo` |"))

    assert update_docs.main(["--check"], root=tmp_path) == 1
    assert "docs/aws-annotations.md out of date" in capsys.readouterr().err
    assert update_docs.main([], root=tmp_path) == 0
    assert page.read_text() == fresh
    assert update_docs.main(["--check"], root=tmp_path) == 0


def test_every_honoured_aws_annotation_appears_in_the_aws_reference() -> None:
    from providers.aws.annotations import REGISTRY

    reference = (DOCS / "aws-annotations.md").read_text()
    for annotation in REGISTRY:
        assert f"`{annotation.key}`" in reference, annotation.key


def test_every_gcp_annotation_appears_in_the_gcp_reference() -> None:
    from providers.gcp.annotations import REGISTRY

    reference = (DOCS / "gcp-annotations.md").read_text()
    for annotation in REGISTRY:
        assert f"`{annotation.key}`" in reference, annotation.key

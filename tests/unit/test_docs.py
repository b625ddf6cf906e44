"""The documentation matches the code: the generated annotation references in docs/ are current, every event
reason and metric the code emits is documented, and the README keeps the quick start and links that resolve.

The site itself (broken links and anchors, pages missing from the nav) is checked by
``mkdocs build --strict``, a step of ``hack/test``.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _docs_text() -> str:
    return "\n".join(page.read_text() for page in sorted(DOCS.glob("*.md")))


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


# -- events, conditions and metrics ---------------------------------------------------------------------


def _modules() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text())
        for package in ("ccm", "providers")
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"``."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            text = node.value.value
            for target in node.targets:
                if isinstance(text, str) and isinstance(target, ast.Name):
                    found[target.id] = text
    return found


def _called(node: ast.Call) -> str:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return node.func.id if isinstance(node.func, ast.Name) else ""


def _reasons() -> set[str]:
    """Every event and condition reason the controller or a provider gives as a literal or a constant:
    ``recorder.event(reason=...)``, ``ProviderEvent(reason=...)``, an AWS notice ``(reason, message)``,
    and the condition's reasons (``_condition(reason=...)``, ``reason = "..."`` in the controller)."""
    modules = _modules()
    everywhere: dict[str, str] = {}
    for tree in modules.values():
        everywhere.update(_string_constants(tree))
    reasons: set[str] = set()
    for path, tree in modules.items():
        local = {**everywhere, **_string_constants(tree)}

        def value(expr: ast.expr, local: dict[str, str] = local) -> str | None:
            if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                return expr.value
            return local.get(expr.id) if isinstance(expr, ast.Name) else None

        for node in ast.walk(tree):
            found: str | None = None
            if isinstance(node, ast.Call) and _called(node) in ("event", "ProviderEvent", "_condition"):
                found = next((value(kw.value) for kw in node.keywords if kw.arg == "reason"), None)
            elif (
                isinstance(node, ast.Call)
                and _called(node) == "append"
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "notices"
                and node.args
                and isinstance(node.args[0], ast.Tuple)
            ):
                found = value(node.args[0].elts[0])
            elif (
                isinstance(node, ast.Assign)
                and "controllers" in path.parts
                and any(isinstance(t, ast.Name) and t.id == "reason" for t in node.targets)
            ):
                found = value(node.value)
            if found:
                reasons.add(found)
    return reasons


def test_every_event_and_condition_reason_is_documented() -> None:
    reasons = _reasons()
    # the scan still sees the controller's events, its conditions and each provider's own Warnings
    assert {"EnsuredLoadBalancer", "InvalidSpec", "UnsupportedAnnotation"} <= reasons, reasons
    assert {"LoadBalancerIPChanged", "LoadBalancerNodeRefused", "LoadBalancerChangeNotApplied"} <= reasons
    docs = _docs_text()
    undocumented = sorted(r for r in reasons if f"`{r}`" not in docs)
    assert not undocumented, f"event or condition reasons not documented in docs/: {undocumented}"


def test_the_condition_type_is_documented() -> None:
    from ccm.controllers.status import CONDITION_TYPE

    assert f"`{CONDITION_TYPE}`" in _docs_text()


def _metric_names() -> set[str]:
    """The name (first argument) of every prometheus_client metric made in ccm/ and providers/."""
    names: set[str] = set()
    for tree in _modules().values():
        imported = {
            alias.asname or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client"
            for alias in node.names
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
                continue
            first = node.args[0]
            if node.func.id in imported and isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
    return names


def test_every_metric_is_documented() -> None:
    names = _metric_names()
    assert {"service_controller_loadbalancer_sync", "cloudprovider_aws_api_requests"} <= names, names
    docs = _docs_text()
    wildcards = re.findall(r"`([a-z0-9_]+_)\*", docs)  # `workqueue_*`, `cloudprovider_aws_api_*`
    undocumented = sorted(
        name for name in names if name not in docs and not any(name.startswith(w) for w in wildcards)
    )
    assert not undocumented, f"metrics not documented in docs/: {undocumented}"


# -- the README ---------------------------------------------------------------------------------------------


def test_the_readme_gives_the_sandbox_and_the_test_command_and_ci_runs_that_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```sh\n(.*?)```", readme, re.S))
    commands = {line.split()[0] for line in blocks.splitlines() if line.strip() and not line.startswith(" ")}
    assert {"hack/sandbox", "hack/test"} <= commands, commands
    assert "exec hack/test" in (ROOT / ".ci" / "run").read_text()


def _slug(heading: str) -> str:
    """A heading's anchor as the Markdown toc extension makes it."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def test_every_link_of_the_readme_points_at_an_existing_file_and_heading() -> None:
    readme = (ROOT / "README.md").read_text()
    links = [t for t in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in t]
    assert any(link.startswith("docs/") for link in links), links
    for link in links:
        target, _, anchor = link.partition("#")
        path = ROOT / target
        assert path.is_file(), f"README links to {target}, which does not exist"
        if anchor:
            prose = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)  # no shell comments
            headings = re.findall(r"^#+ (.+)$", prose, re.M)
            assert anchor in {_slug(h) for h in headings}, f"README links to {link}: no such heading"

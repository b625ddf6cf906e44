"""Declare exactly what you import: every third-party module the product imports is a declared dependency,
and every declared runtime dependency is imported (the developers' guide; issue 14)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("ccm", "providers", "fakegce")  # the sandbox has its own extra
FIRST_PARTY = {"ccm", "providers", "fakegce", "sandbox", "tests", "bench"}


def _imports(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level module → the files importing it."""
    found: dict[str, set[str]] = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if path.name.startswith("_generate"):
                continue  # maintenance scripts (fakegce's schema generator reads the client's protos)
            for node in ast.walk(ast.parse(path.read_text())):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                    if node.module.startswith("google."):  # from google.cloud import compute_v1
                        names = [f"{node.module}.{alias.name}" for alias in node.names]
                for name in names:
                    top = name.split(".")[0]
                    if top not in FIRST_PARTY and top not in sys.stdlib_module_names and top != "__future__":
                        # google.* is a namespace: the distribution is found by the full module path
                        found.setdefault(name if top == "google" else top, set()).add(
                            str(path.relative_to(ROOT))
                        )
    return found


def _distribution(module: str) -> set[str]:
    mapping = metadata.packages_distributions()
    if module.startswith("google."):
        parts = module.split(".")
        for size in range(len(parts), 1, -1):
            candidate = "/".join(parts[:size])
            for dist in metadata.distributions():
                files = dist.files or []
                if any(str(f).startswith(candidate + "/") for f in files):
                    return {_normal(dist.metadata["Name"])}
        return set()
    return {_normal(d) for d in mapping.get(module, [])}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(section: list[str]) -> set[str]:
    return {_normal(re.split(r"[<>=!\[ ;]", spec, maxsplit=1)[0]) for spec in section}


def test_every_third_party_import_of_the_product_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _declared(project["dependencies"])
    missing = {
        module: sorted(files)
        for module, files in _imports(PRODUCT).items()
        if not _distribution(module) & declared
    }
    assert not missing, f"imported but not declared in [project] dependencies: {missing}"


def test_every_declared_runtime_dependency_is_imported() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    imported: set[str] = set()
    for module in _imports(PRODUCT):
        imported |= _distribution(module)
    unused = sorted(_declared(project["dependencies"]) - imported)
    assert not unused, f"declared but never imported by ccm/, providers/ or fakegce/: {unused}"


def test_the_sandbox_imports_only_what_the_product_and_its_extra_declare() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _declared(project["dependencies"]) | _declared(project["optional-dependencies"]["sandbox"])
    declared |= {"werkzeug", "flask"}  # moto[server]'s own server stack, which the sandbox drives
    missing = {
        module: sorted(files)
        for module, files in _imports(("sandbox",)).items()
        if not _distribution(module) & declared
    }
    assert not missing, f"the sandbox imports undeclared modules: {missing}"

"""How the tests share code: through tests/support (or a helper module of their own directory), never by
importing a conftest.py or another test module (pytest imports those itself; importing them again runs
their module code twice and hides which fixtures a test uses)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def is_test_or_conftest(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "tests" and (parts[-1] == "conftest" or parts[-1].startswith("test_"))


def test_no_module_of_the_tests_imports_a_conftest_or_a_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}: {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in imported_modules(path)
        if is_test_or_conftest(module)
    ]
    assert offenders == [], "import from tests/support instead:\n" + "\n".join(offenders)


def test_the_rule_catches_both_kinds_of_import() -> None:
    assert is_test_or_conftest("tests.cli.conftest")
    assert is_test_or_conftest("tests.e2e.test_aws_lifecycle")
    assert not is_test_or_conftest("tests.support.ccm_run")
    assert not is_test_or_conftest("tests.unit.builders")

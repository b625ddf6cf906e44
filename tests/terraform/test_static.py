"""Every Terraform module under terraform/ parses, is formatted, passes checkov and is documented.

The modules are found on disk (any folder holding ``*.tf``), so a module added later is checked with
no change here. Parsing uses python-hcl2, formatting ``tofu fmt``, security checkov; a missing tool
fails the test (tests/plugins/tools.py), it never skips.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.support.checkov import run_checkov

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
Tool = Callable[[str], Path]


def _files(pattern: str) -> list[Path]:
    return sorted(p for p in TERRAFORM.rglob(pattern) if ".terraform" not in p.parts)


TF_FILES = _files("*.tf")
JSON_FILES = _files("*.json")
MODULES = sorted({p.parent for p in TF_FILES})
REQUIRED_FILES = ("variables.tf", "outputs.tf", "versions.tf", "README.md")


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and block labels."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _blocks(module: Path, kind: str) -> dict[str, dict[str, Any]]:
    """The ``variable`` or ``output`` blocks of a module, by name."""
    found: dict[str, dict[str, Any]] = {}
    for tf in sorted(module.glob("*.tf")):
        with tf.open() as handle:
            parsed: dict[str, Any] = hcl2.load(handle)
        for block in parsed.get(kind, []):
            for name, body in block.items():
                found[_unquote(name)] = body
    return found


def test_there_is_terraform_to_check() -> None:
    assert TERRAFORM / "gcp" in MODULES, f"modules found: {[_id(m) for m in MODULES]}"


@pytest.mark.parametrize("path", TF_FILES, ids=_id)
def test_every_tf_file_parses(path: Path) -> None:
    with path.open() as handle:
        parsed = hcl2.load(handle)
    assert isinstance(parsed, dict) and parsed, f"{_id(path)} holds no block"


@pytest.mark.parametrize("path", JSON_FILES, ids=_id)
def test_every_json_file_is_valid_json(path: Path) -> None:
    try:
        json.loads(path.read_text())
    except json.JSONDecodeError as error:
        pytest.fail(f"{_id(path)} is not valid JSON: {error}")


@pytest.mark.parametrize("module", MODULES, ids=_id)
def test_every_module_has_its_variables_outputs_versions_and_readme(module: Path) -> None:
    missing = [name for name in REQUIRED_FILES if not (module / name).is_file()]
    assert not missing, f"{_id(module)} lacks {missing}"


@pytest.mark.parametrize("module", MODULES, ids=_id)
def test_every_variable_has_a_description_and_a_type(module: Path) -> None:
    variables = _blocks(module, "variable")
    lacking = {
        name: [key for key in ("description", "type") if not _unquote(body.get(key, "")).strip()]
        for name, body in variables.items()
    }
    lacking = {name: keys for name, keys in lacking.items() if keys}
    assert not lacking, f"{_id(module)}: variables without {lacking}"


@pytest.mark.parametrize("module", MODULES, ids=_id)
def test_every_output_has_a_description(module: Path) -> None:
    outputs = _blocks(module, "output")
    assert outputs, f"{_id(module)} has no output"
    lacking = sorted(
        name for name, body in outputs.items() if not _unquote(body.get("description", "")).strip()
    )
    assert not lacking, f"{_id(module)}: outputs without a description: {lacking}"


def test_tofu_fmt_finds_nothing_to_change(tool: Tool) -> None:
    result = subprocess.run(
        [str(tool("tofu")), "fmt", "-check", "-diff", "-recursive", "terraform"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, f"tofu fmt would change:\n{result.stdout}{result.stderr}"


def test_checkov_reports_no_failed_check(tool: Tool) -> None:
    result = run_checkov(tool("checkov"), "-d", "terraform", "--framework", "terraform", cwd=ROOT)
    assert result.returncode in (0, 1), (
        f"checkov failed to run ({result.returncode}):\n{result.stderr[-3000:]}"
    )
    failed = [
        f"{check['check_id']} terraform{check['file_path']} {check['resource']}: {check['check_name']}"
        for check in result.results("failed_checks")
    ]
    parsing_errors = result.results("parsing_errors")
    scanned = sum(report.get("summary", {}).get("resource_count", 0) for report in result.reports)
    assert not failed, "checkov failed checks:\n" + "\n".join(sorted(failed))
    assert not parsing_errors, f"checkov could not parse {parsing_errors}"
    assert scanned > 0, f"checkov scanned no resource: {result.stdout[:2000]}"

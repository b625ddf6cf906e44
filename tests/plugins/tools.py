"""pytest plugin: the command-line tools that deploy/ and terraform/ are checked with.

``hack/ensure-tools.sh`` builds helm, kubectl and tofu from the Go module proxy and installs checkov
(``hack/test`` runs it and exports ``CCM_TOOLS_BIN``). A missing tool fails the test with the command
that provides it; it is never a skip, so a machine without the tools cannot pass by checking nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tool_path(name: str) -> Path:
    """The path of a tool from ``CCM_TOOLS_BIN``, else ``.tools/bin``; a test failure when absent."""
    folders = [Path(os.environ["CCM_TOOLS_BIN"])] if os.environ.get("CCM_TOOLS_BIN") else []
    folders.append(ROOT / ".tools" / "bin")
    for folder in folders:
        candidate = folder / name
        if candidate.exists() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"{name} was not found in {', '.join(str(f) for f in folders)}; run hack/ensure-tools.sh "
        "(hack/test does) to build it from the Go module proxy, or set CCM_TOOLS_BIN to a folder holding it",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def tool() -> Callable[[str], Path]:
    """``tool("helm")`` is the path of helm (or kubectl, tofu, checkov)."""
    return tool_path

#!/usr/bin/env python3
"""Regenerate the parts of README.md that come from the code, so they cannot drift.

Each generated block sits between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``.
Run ``.venv/bin/python hack/update_docs.py``; ``--check`` exits 1 when README.md is out of date
(the test suite runs the same check).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from providers.aws.annotations import reference_markdown as aws_annotations  # noqa: E402
from providers.gcp.annotations import reference_markdown as gcp_annotations  # noqa: E402

BLOCKS: dict[str, Callable[[], str]] = {
    "aws-annotations": aws_annotations,
    "gcp-annotations": gcp_annotations,
}


def render(text: str) -> str:
    """``text`` with every generated block replaced by its current content."""
    for name, make in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {re.escape(name)} -->\n).*?(<!-- END GENERATED: {re.escape(name)} -->)",
            re.S,
        )
        if not pattern.search(text):
            raise SystemExit(f"README.md has no generated block {name!r}")
        body = make().rstrip("\n") + "\n"
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)  # type: ignore[misc]
    return text


def main(argv: list[str]) -> int:
    readme = ROOT / "README.md"
    current = readme.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            sys.stderr.write("README.md is out of date: run .venv/bin/python hack/update_docs.py\n")
            return 1
        return 0
    readme.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

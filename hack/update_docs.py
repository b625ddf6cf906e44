#!/usr/bin/env python3
"""Regenerate the parts of the documentation (docs/) that come from the code, so they cannot drift.

Each generated block sits between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``
in the page :data:`BLOCKS` names. Run ``.venv/bin/python hack/update_docs.py``; ``--check`` writes nothing
and exits 1 naming every stale page (the test suite runs the same check).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from providers.aws.annotations import reference_markdown as aws_annotations  # noqa: E402
from providers.gcp.annotations import reference_markdown as gcp_annotations  # noqa: E402

# block name -> (the page holding it, relative to the repository's root; what renders it)
BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "aws-annotations": ("docs/aws-annotations.md", aws_annotations),
    "gcp-annotations": ("docs/gcp-annotations.md", gcp_annotations),
}


def render(text: str, *, page: str, blocks: dict[str, Callable[[], str]]) -> str:
    """``text`` (the content of ``page``) with each of ``blocks`` replaced by its current content."""
    for name, make in blocks.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {re.escape(name)} -->\n).*?(<!-- END GENERATED: {re.escape(name)} -->)",
            re.S,
        )
        if not pattern.search(text):
            raise SystemExit(f"{page} has no generated block {name!r}")
        body = make().rstrip("\n") + "\n"
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)  # type: ignore[misc]
    return text


def main(argv: Sequence[str], *, root: Path = ROOT) -> int:
    """Rewrite every page with a generated block; with ``--check``, only report the stale ones."""
    pages: dict[str, dict[str, Callable[[], str]]] = {}
    for name, (page, make) in BLOCKS.items():
        pages.setdefault(page, {})[name] = make
    stale: list[str] = []
    for page, blocks in pages.items():
        path = root / page
        current = path.read_text()
        wanted = render(current, page=page, blocks=blocks)
        if current == wanted:
            continue
        stale.append(page)
        if "--check" not in argv:
            path.write_text(wanted)
    if "--check" in argv and stale:
        sys.stderr.write(f"{', '.join(stale)} out of date: run .venv/bin/python hack/update_docs.py\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

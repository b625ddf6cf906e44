"""What the user sees: progress lines on stderr, tables on stdout, errors as one line.

Plain text only (no curses, no colours), so the output reads the same in a terminal, a CI log or a
pipe, and tests can assert on it. Library code does not print; everything goes through
:class:`Printer`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from sandbox.cluster import ServiceInfo

PROG = "ccm sandbox"


class Printer:
    """Writes progress (stderr, with the time since start), results (stdout) and errors (stderr)."""

    def __init__(self, *, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err
        self._start = time.monotonic()

    def progress(self, message: str) -> None:
        self._err.write(f"[sandbox {time.monotonic() - self._start:6.1f}s] {message}\n")
        self._err.flush()

    def result(self, text: str) -> None:
        self._out.write(text if text.endswith("\n") else text + "\n")
        self._out.flush()

    def error(self, message: str, *, details: str = "") -> None:
        """One line saying what is wrong and how to fix it; ``details`` (a log tail) indented below."""
        self._err.write(f"{PROG}: error: {' '.join(message.split())}\n")
        for line in details.splitlines():
            self._err.write(f"    {line}\n")
        self._err.flush()


def table(*, headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str = "(none)") -> str:
    """Columns aligned with two spaces between them, like ``kubectl get``."""
    if not rows:
        return "  ".join(headers) + f"\n{empty}\n"
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]
    lines = []
    for row in (headers, *rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def section(title: str, *tables: str) -> str:
    """A cloud's resources: a title line, then its tables separated by empty lines."""
    return f"{title}\n" + "\n".join(tables)


def render(*, services: Sequence[ServiceInfo], address_kind: str, resources: str) -> str:
    """The Services, then the cloud's resources (already tables), as text equal whenever the state is."""
    parts = [
        "Services (type: LoadBalancer)\n",
        table(
            headers=("NAMESPACE", "NAME", "PORTS", f"EXTERNAL {address_kind.upper()}", "STATUS"),
            rows=[(s.namespace, s.name, s.ports, s.address or "<pending>", s.status) for s in services],
        ),
        "\n",
        resources,
    ]
    return "".join(parts)

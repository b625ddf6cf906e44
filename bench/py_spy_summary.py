"""Summarise py-spy's collapsed stacks (``side_by_side.py --py-spy``): where the controller's CPU went.

A flame graph shows one stack at a time; the question here is "whose CPU is it": this controller's
code, or a library called from it (botocore, the Kubernetes client, urllib3, ...), per thread, with
module imports apart (start-up). Each sample is charged to the library entered from the innermost frame
of ours (``ccm/``, ``providers/``), "ours" when that frame is the leaf, "imports" when the stack is
importing a module, and ``other:<library>`` when no frame of ours is on the stack (``other:?``: no
Python frame at all, the interpreter starting or exiting). The thread py-spy leaves unnamed is the main
thread before ``threading`` names it.

    .venv/bin/python bench/py_spy_summary.py /tmp/sbs/ours/controller-1.py-spy.txt [--rate 200] [--top 40]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

OURS = ("ccm/", "providers/")
_FILE = re.compile(r"\(([^()]*?)(?::\d+)?\)$")
_LINE = re.compile(r":\d+\)$")
_THREAD = re.compile(r"^thread\s*\(\d+\):?\s*")


def samples(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(thread, frames outermost first, count) per line of ``py-spy record --format raw --threads``."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue  # a frame name with a line break in it (seen once, at the interpreter's exit)
        thread, *frames = stack.split(";")
        yield _THREAD.sub("", thread), frames, int(count)


def _file(frame: str) -> str:
    match = _FILE.search(frame)
    return match.group(1) if match else ""


def _library(frame: str) -> str:
    name = _file(frame)
    if name.startswith("<frozen"):
        return "importlib"
    return name.split("/")[0].removesuffix(".py")


def charge(frames: list[str]) -> tuple[str, str]:
    """(what the sample is charged to, the innermost frame of ours or '')."""
    if any("_find_and_load" in f for f in frames):
        return "imports", ""
    ours = [i for i, f in enumerate(frames) if _file(f).startswith(OURS)]
    if not ours:
        return "other:" + (_library(frames[-1]) if frames else "?"), ""
    i = ours[-1]
    where = _LINE.sub(")", frames[i])
    return ("ours" if i == len(frames) - 1 else _library(frames[i + 1])), where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("profiles", type=Path, nargs="+")
    parser.add_argument("--rate", type=float, default=200.0, help="py-spy's --rate (samples/s)")
    parser.add_argument("--top", type=int, default=30, help="call sites listed")
    args = parser.parse_args(argv)
    total = 0
    by_thread: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_site: Counter[tuple[str, str]] = Counter()
    for path in args.profiles:
        for thread, frames, count in samples(path):
            what, where = charge(frames)
            total += count
            by_thread[thread][what] += count
            by_site[(what, where)] += count
    if not total:
        sys.stdout.write("no samples\n")
        return 1
    seconds = 1.0 / args.rate
    out = [
        f"{total} samples = {total * seconds:.2f} s of CPU (one every {seconds * 1000:g} ms)",
        "by thread:",
    ]
    for thread, charged in sorted(by_thread.items(), key=lambda kv: -sum(kv[1].values())):
        parts = ", ".join(f"{what} {n * seconds:.2f}" for what, n in charged.most_common(6))
        out.append(f"  {sum(charged.values()) * seconds:6.2f} s  {thread or '(unnamed)'}: {parts}")
    out.append("by call site (library entered from our innermost frame):")
    for (what, where), n in by_site.most_common(args.top):
        out.append(f"  {n * seconds:6.2f} s {n / total:6.1%}  {what:18} {where}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

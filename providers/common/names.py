"""Cloud resource names from Kubernetes names: lower-case ``[a-z0-9-]``, cut, no stray hyphens.

The two providers have always differed in one detail, and names already in use must not change (a
new name is a new load balancer): AWS cuts the value to the limit and then collapses repeated hyphens
(``CUT_THEN_COLLAPSE``), GCE collapses first and then cuts (``COLLAPSE_THEN_CUT``). The order is
therefore an explicit argument, and golden tests pin the names of both
(``tests/unit/test_common_names.py``).
"""

from __future__ import annotations

import re
from enum import Enum


class Order(Enum):
    CUT_THEN_COLLAPSE = "cut-then-collapse"  # AWS (providers/aws/builder.py names)
    COLLAPSE_THEN_CUT = "collapse-then-cut"  # GCE (providers/gcp/builder.py names)


_NOT_ALLOWED = re.compile(r"[^a-z0-9-]")
_REPEATED = re.compile(r"-{2,}")


def sanitise(value: str, *, limit: int, order: Order) -> str:
    """``value`` lower-cased, other characters made hyphens, at most ``limit`` long, no leading,
    trailing or repeated hyphens."""
    cleaned = _NOT_ALLOWED.sub("-", value.lower())
    if order is Order.CUT_THEN_COLLAPSE:
        return _REPEATED.sub("-", cleaned[:limit]).strip("-")
    return _REPEATED.sub("-", cleaned).strip("-")[:limit].rstrip("-")

"""One ``sanitise`` for both providers, each keeping its own order: AWS cuts and then collapses
hyphens, GCE collapses and then cuts. The expected values were produced by the providers' own
``_sanitise`` of release 83b2086, before the move; whole names are pinned in ``test_resource_names.py``.
"""

from __future__ import annotations

import pytest

from providers.common.names import Order, sanitise

CASES = [
    # (value, limit, AWS, GCE)
    ("web", 8, "web", "web"),
    ("My_Service.v2", 8, "my-servi", "my-servi"),
    ("a--b--c--d--e", 8, "a-b-c", "a-b-c-d"),
    ("--lead", 8, "lead", "lead"),
    ("team.a.b.c.d", 12, "team-a-b-c-d", "team-a-b-c-d"),
    ("ÜberApp", 16, "berapp", "berapp"),
    ("x" * 40, 16, "x" * 16, "x" * 16),
    ("a-------------------b", 16, "a", "a-b"),
]


@pytest.mark.parametrize(("value", "limit", "want_aws", "want_gce"), CASES)
def test_each_provider_keeps_its_own_order_of_cutting_and_collapsing(
    value: str, limit: int, want_aws: str, want_gce: str
) -> None:
    assert sanitise(value, limit=limit, order=Order.CUT_THEN_COLLAPSE) == want_aws
    assert sanitise(value, limit=limit, order=Order.COLLAPSE_THEN_CUT) == want_gce

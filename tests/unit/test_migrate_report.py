"""``ccm migrate``'s report (pure) and its refusals, without a cluster."""

from __future__ import annotations

import json

import pytest

from ccm.cli import main
from ccm.cloudprovider import ForeignPart, MigrationPlan
from ccm.migrate import Row, render_json, render_text, summary
from ccm.migrate_apply import Outcome, render_outcomes_text

NLB = ForeignPart(kind="NLB", name="a1b2", detail="a1b2-1.elb.us-east-1.amazonaws.com")


def _row(service: str, action: str, *, address: str = "", changes: bool = False, **plan: object) -> Row:
    return Row(
        service=service,
        uid=f"uid-{service}",
        plan=MigrationPlan(action=action, address=address, address_changes=changes, **plan),
    )


ROWS = [
    _row("shop/api", "keep", address="k8s-shop-api.elb.amazonaws.com"),
    _row("shop/web", "refuse", address=NLB.detail, foreign=(NLB,), reason="served by NLB a1b2"),
    _row("shop/old", "replace", address=NLB.detail, changes=True, foreign=(NLB,)),
    _row("shop/new", "create"),
]


def test_summary_counts_each_action_and_the_address_changes() -> None:
    counts = summary(ROWS)

    assert (counts["keep"], counts["refuse"], counts["replace"], counts["create"]) == (1, 1, 1, 1)
    assert counts["addressChanges"] == 1 and counts["error"] == 0


def test_json_report_names_every_service_its_action_and_the_other_controllers_parts() -> None:
    report = json.loads(render_json(ROWS))

    web = next(s for s in report["services"] if s["service"] == "shop/web")
    assert web == {
        "service": "shop/web",
        "uid": "uid-shop/web",
        "action": "refuse",
        "address": NLB.detail,
        "addressChanges": False,
        "foreign": [{"kind": "NLB", "name": "a1b2", "detail": NLB.detail}],
        "reason": "served by NLB a1b2",
    }
    assert report["summary"]["addressChanges"] == 1


def test_text_report_details_refusals_and_replacements_but_not_what_is_kept() -> None:
    text = render_text(ROWS)

    assert text.splitlines()[0].split() == ["SERVICE", "ACTION", "ADDRESS", "ADDRESS", "CHANGES"]
    assert "shop/web: left alone" in text and "shop/old: a new load balancer, then" in text
    assert "shop/api: " not in text  # kept as it is: nothing to review
    assert 'deleted once annotated ccm-lb.io/replace-foreign-load-balancer: "true"' in text
    assert text.rstrip().endswith(
        "4 Services: 1 keep, 1 create, 1 refuse, 1 replace; 1 would change address."
    )


def test_text_report_of_no_service_says_so() -> None:
    assert render_text([]) == "No LoadBalancer Service for this controller instance.\n"


def test_applying_with_lease_timings_the_controller_would_refuse_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["migrate", "--cloud-provider=aws", "--dry-run=false", "--leader-elect-retry-period=500ms"])

    assert code == 2
    assert "--leader-elect-retry-period=0.5s: must be at least 1s" in capsys.readouterr().err


def test_the_applied_report_lists_what_changed_and_says_why_a_service_failed() -> None:
    outcomes = [
        Outcome(service="shop/api", action="keep", result="skipped"),
        Outcome(service="shop/old", action="adopt", result="applied", address="203.0.113.7"),
        Outcome(service="shop/web", action="create", result="failed", message="quota exceeded"),
    ]

    text = render_outcomes_text(outcomes)

    assert "shop/api" not in text
    assert "shop/old  adopt   applied  203.0.113.7" in text
    assert "shop/web: failed: quota exceeded" in text and "1 applied, 1 failed" in text
    assert "Nothing to apply" in render_outcomes_text(outcomes[:1])


def test_migrate_needs_a_provider_that_can_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 2
    assert "--cloud-provider is required" in capsys.readouterr().err
    assert main(["migrate", "--cloud-provider=fake"]) == 2
    assert "--cloud-provider=fake: this provider cannot plan a migration" in capsys.readouterr().err


def test_text_report_says_what_an_adoption_takes_over() -> None:
    text = render_text([_row("shop/web", "adopt", address=NLB.detail, foreign=(NLB,))])

    assert "shop/web: the other controller's load balancer is taken over in place" in text
    assert "the other controller's parts (taken over;" in text and "NLB a1b2" in text

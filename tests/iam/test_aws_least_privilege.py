"""The shipped AWS policy is enough for the provider's whole lifecycle, and no statement of it is spare.

The provider runs as a role with exactly ``terraform/aws/policy.json`` and ``upstream-policy.json``
(rendered for the cluster, attached as two managed policies), IAM enforced by
:mod:`tests.iam.aws_enforcement`. The full policy lets the whole lifecycle pass with no
call denied; the same lifecycle without any one statement is denied, on an action of that statement.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from providers.aws.client import error_code
from providers.aws.deploy.backend_security_group import NodeSecurityGroupDenied
from tests.iam import aws_lifecycle as lifecycle
from tests.iam.aws_enforcement import Enforcement
from tests.iam.aws_iam import action_matches, actions_of
from tests.iam.aws_policy import (
    RestrictedProviders,
    policy_document,
    policy_documents,
    sids,
)
from tests.support.aws import Network


def test_the_whole_lifecycle_passes_with_exactly_the_shipped_policy_and_no_call_is_denied(
    aws_iam: Enforcement, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers = RestrictedProviders(monkeypatch, policy_documents())
    lifecycle.run(providers(), aws_network, restarted=providers)

    assert aws_iam.calls, "the provider's calls were not enforced"
    assert {c.principal for c in aws_iam.calls} == {"arn:aws:sts::123456789012:assumed-role/ccm-lb/ccm-lb"}
    assert aws_iam.denials == []
    # Nothing spare: every statement allowed some call, and every action granted was used.
    assert aws_iam.statements_used() == set(sids())
    granted = {a for s in policy_document()["Statement"] for a in actions_of(policy_document(), s["Sid"])}
    assert granted == aws_iam.actions_used()


@pytest.mark.parametrize("sid", sids())
def test_without_any_one_statement_the_lifecycle_is_denied_an_action_of_that_statement(
    sid: str, aws_iam: Enforcement, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers = RestrictedProviders(monkeypatch, policy_documents(without=[sid]))
    with pytest.raises((ClientError, NodeSecurityGroupDenied)) as failure:
        lifecycle.run(providers(), aws_network, restarted=providers)
    # the provider may explain a denial in its own words; AWS's error is then the cause
    error = failure.value if isinstance(failure.value, ClientError) else failure.value.__cause__
    assert isinstance(error, ClientError), failure.value

    denied = [d for call in aws_iam.denials for d in call.decisions if not d.allowed]
    assert denied, f"without {sid} the lifecycle failed, but not on a denial: {error}"
    first = denied[0].check.action
    expected = "UnauthorizedOperation" if first.startswith("ec2:") else "AccessDenied"
    assert error_code(error) == expected
    assert first in str(error)
    assert any(action_matches(pattern, first) for pattern in actions_of(policy_document(), sid)), (
        f"without {sid}, {first} was denied: it is not one of that statement's actions"
    )

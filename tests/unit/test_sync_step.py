"""The controller's one error path: every step's failure becomes a SyncError naming the step."""

from __future__ import annotations

import pytest

from ccm.cloudprovider import InvalidSpec
from ccm.controllers.service import SyncError, step

SERVICE = {"metadata": {"namespace": "default", "name": "web", "uid": "u1"}}


def test_a_failing_step_is_wrapped_with_upstreams_message_and_keeps_its_cause() -> None:
    cause = InvalidSpec(field="spec.ports[0].protocol", value="SCTP", accepted="TCP or UDP")
    with pytest.raises(SyncError) as caught, step("failed to ensure load balancer", service=SERVICE):
        raise cause
    assert str(caught.value) == f"failed to ensure load balancer: {cause}"
    assert caught.value.cause is cause and caught.value.service is SERVICE and not caught.value.gone


def test_an_error_already_wrapped_by_an_inner_step_is_not_wrapped_twice() -> None:
    inner = SyncError(
        "failed to delete load balancer", cause=RuntimeError("boom"), service=SERVICE, gone=True
    )
    with pytest.raises(SyncError) as caught, step("failed to ensure load balancer", service=SERVICE):
        raise inner
    assert caught.value is inner

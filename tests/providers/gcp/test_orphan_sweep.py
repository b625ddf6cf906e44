"""The orphan sweep deletes only what no Service in the cluster owns, only in this instance's scope.

Issue 11 on GCE: a converged Service whose annotation became invalid was left out of the drift
check and its forwarding rule, backend service and firewalls were deleted as an orphan's; two
instances (default and ``--load-balancer-class``) swept each other's load balancers.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from ccm.cloudprovider import scope_digest
from fakegce import FakeCompute
from providers.common.errors import NotOwned
from providers.gcp import model
from providers.gcp.provider import GCEProvider
from tests.support.gcp import RequestFactory, gce_config, lb_resources

GRACE = 600.0
SECOND = "example.com/second"
PER_SERVICE = ("forwardingRules", "backendServices")


class Clock:
    """The provider's monotonic clock, moved by the test (no sleeping, no wall-clock thresholds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def scoped_provider(gce: FakeCompute, clock: Clock, *, load_balancer_class: str = "") -> GCEProvider:
    return GCEProvider(
        cluster_name="test",
        config=gce_config(gce.url),
        orphan_grace_seconds=GRACE,
        load_balancer_class=load_balancer_class,
        clock=clock,
    )


def sweep_past_the_grace(provider: GCEProvider, clock: Clock, **kwargs: Any) -> frozenset[str]:
    drifted = frozenset[str]()
    for _ in range(3):
        drifted = provider.drifted_load_balancers(**kwargs)
        clock.now += GRACE
    return drifted


def per_service(gce: FakeCompute) -> dict[str, list[str]]:
    everything = lb_resources(gce)
    return {kind: everything.get(kind, []) for kind in PER_SERVICE}


def test_a_converged_service_whose_annotation_becomes_invalid_keeps_its_load_balancer(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(gce, clock)
    request = make_request("web")
    provider.ensure_load_balancer(request=request)
    before = lb_resources(gce)
    assert before["forwardingRules"] and before["backendServices"]
    broken = make_request(
        "web", uid=request.uid, annotations={"networking.gke.io/load-balancer-type": "Interna"}
    )
    drifted = sweep_past_the_grace(provider, clock, requests=[broken], live_uids=frozenset({request.uid}))
    assert drifted == {"default/web"}  # the full ensure reports the typo as an event
    assert lb_resources(gce) == before


def test_a_service_whose_build_fails_unexpectedly_keeps_its_load_balancer_and_the_failure_is_logged(
    gce: FakeCompute,
    make_request: RequestFactory,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = scoped_provider(gce, clock)
    request = make_request("web")
    provider.ensure_load_balancer(request=request)
    before = lb_resources(gce)

    def broken(request: Any) -> Any:
        raise RuntimeError("the network is gone")

    monkeypatch.setattr(provider, "_stack", broken)
    with caplog.at_level(logging.ERROR):
        drifted = sweep_past_the_grace(
            provider, clock, requests=[request], live_uids=frozenset({request.uid})
        )
    assert drifted == {"default/web"}
    assert lb_resources(gce) == before
    assert "the network is gone" in caplog.text


def test_the_load_balancer_of_a_live_service_that_no_longer_wants_one_is_not_swept(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(gce, clock)
    request = make_request("typechanged")
    provider.ensure_load_balancer(request=request)
    before = lb_resources(gce)
    sweep_past_the_grace(provider, clock, requests=[], live_uids=frozenset({request.uid}))
    assert lb_resources(gce) == before


def test_a_real_orphan_is_swept_after_the_grace_and_not_before(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(gce, clock)
    provider.ensure_load_balancer(request=make_request("gone"))
    before = lb_resources(gce)
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    clock.now += GRACE - 1
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    assert lb_resources(gce) == before
    clock.now += 1
    provider.drifted_load_balancers(requests=[], live_uids=frozenset())
    assert lb_resources(gce) == {}


def test_nothing_is_swept_when_the_caller_cannot_say_which_services_exist(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    provider = scoped_provider(gce, clock)
    provider.ensure_load_balancer(request=make_request("unknown"))
    before = lb_resources(gce)
    sweep_past_the_grace(provider, clock, requests=[])
    assert lb_resources(gce) == before


# -- scope ------------------------------------------------------------------------------------------


def test_a_classed_instance_marks_its_resources_with_its_class(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    classed = scoped_provider(gce, clock, load_balancer_class=SECOND)
    classed.ensure_load_balancer(request=make_request("classed", load_balancer_class=SECOND))
    [rule] = gce.resources("forwardingRules")
    assert rule["labels"][model.SCOPE_LABEL] == scope_digest(SECOND)
    for kind in ("forwardingRules", "backendServices"):
        for resource in gce.resources(kind):
            assert model.parse_description(resource["description"])[model.SCOPE_KEY] == SECOND
    per_lb_firewalls = [f for f in gce.resources("firewalls") if "service-uid" in f["description"]]
    assert per_lb_firewalls
    assert all(model.parse_description(f["description"])[model.SCOPE_KEY] == SECOND for f in per_lb_firewalls)


def test_instances_never_list_change_or_delete_each_others_resources(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    default = scoped_provider(gce, clock)
    classed = scoped_provider(gce, clock, load_balancer_class=SECOND)
    mine = make_request("mine")
    theirs = make_request("theirs", load_balancer_class=SECOND)
    default.ensure_load_balancer(request=mine)
    classed.ensure_load_balancer(request=theirs)
    everything = lb_resources(gce)
    # Each instance is told only of its own Services: the other's UIDs are not even live to it.
    sweep_past_the_grace(default, clock, requests=[mine], live_uids=frozenset({mine.uid}))
    sweep_past_the_grace(classed, clock, requests=[theirs], live_uids=frozenset({theirs.uid}))
    assert lb_resources(gce) == everything
    assert [r.name for r in default.deployer.list_forwarding_rules()] == [
        default.get_load_balancer_name(request=mine)
    ]
    with pytest.raises(NotOwned):
        default.get_load_balancer(request=theirs)
    with pytest.raises(NotOwned):
        classed.ensure_load_balancer(request=mine)
    assert lb_resources(gce) == everything
    # Each still sweeps its own orphans; the shared instance groups stay while the other uses them.
    sweep_past_the_grace(classed, clock, requests=[], live_uids=frozenset())
    assert per_service(gce) == {kind: [default.get_load_balancer_name(request=mine)] for kind in PER_SERVICE}
    sweep_past_the_grace(default, clock, requests=[], live_uids=frozenset())
    assert lb_resources(gce) == {}


def test_resources_made_before_scopes_existed_belong_to_the_default_instance(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    legacy = make_request("legacy")
    scoped_provider(gce, clock).ensure_load_balancer(request=legacy)
    [rule] = gce.resources("forwardingRules")
    assert model.SCOPE_LABEL not in rule["labels"]  # what the previous release wrote
    upgraded = scoped_provider(gce, clock)
    upgraded.clients.reset_counts()
    assert (
        upgraded.drifted_load_balancers(requests=[legacy], live_uids=frozenset({legacy.uid})) == frozenset()
    )
    upgraded.ensure_load_balancer(request=legacy)
    reads = (".get", ".list", ".listInstances")
    assert [op for op in upgraded.clients.snapshot() if not op.endswith(reads)] == []  # nothing changed
    classed = scoped_provider(gce, clock, load_balancer_class=SECOND)
    before = lb_resources(gce)
    sweep_past_the_grace(classed, clock, requests=[], live_uids=frozenset())
    assert lb_resources(gce) == before
    upgraded.ensure_load_balancer_deleted(request=legacy)
    assert lb_resources(gce) == {}


def test_a_classed_instance_refuses_resources_an_earlier_release_made_without_a_scope(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    legacy = make_request("legacy", load_balancer_class=SECOND)
    scoped_provider(gce, clock).ensure_load_balancer(request=legacy)  # what the earlier classed release made
    before = lb_resources(gce)
    classed = scoped_provider(gce, clock, load_balancer_class=SECOND)
    with pytest.raises(NotOwned, match=re.escape("in scope 'example.com/second'")):
        classed.ensure_load_balancer(request=legacy)
    assert lb_resources(gce) == before


def test_an_instance_recovers_when_the_other_one_deleted_the_shared_parts_it_remembered(
    gce: FakeCompute, make_request: RequestFactory, clock: Clock
) -> None:
    default = scoped_provider(gce, clock)
    classed = scoped_provider(gce, clock, load_balancer_class=SECOND)
    mine = make_request("mine")
    theirs = make_request("theirs", load_balancer_class=SECOND)
    default.ensure_load_balancer(request=mine)
    classed.ensure_load_balancer(request=theirs)
    classed.ensure_load_balancer_deleted(request=theirs)  # the shared parts stay: the default uses them
    default.ensure_load_balancer_deleted(request=mine)  # the last user: the shared parts go
    assert lb_resources(gce) == {}
    again = make_request("again", load_balancer_class=SECOND)
    try:
        classed.ensure_load_balancer(request=again)
    except Exception:  # at most one failed attempt: the work queue retries with backoff
        classed.ensure_load_balancer(request=again)
    resources = lb_resources(gce)
    assert resources["forwardingRules"] == [classed.get_load_balancer_name(request=again)]
    assert resources["instanceGroups"] and resources["healthChecks"]

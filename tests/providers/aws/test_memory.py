"""What the AWS provider keeps per Service: the instances its target groups (and Classic ELBs) hold
are one shared set, not a copy per target group, so its memory does not grow with Services × nodes
(``bench/memory_per_service.py``: 31 KB per two-port Service at 200 nodes before)."""

from __future__ import annotations

from providers.aws.model import Stack
from providers.aws.provider import AWSProvider
from providers.common.drift import build_stacks
from tests.support.aws import Network, RequestFactory, add_instance

CLASSIC = {"service.beta.kubernetes.io/aws-load-balancer-type": "classic"}


def remembered_sets(provider: AWSProvider) -> list[frozenset[str]]:
    return [s for cache in provider.deployer._stacks.values() for s in cache.targets.values()]


def test_the_target_groups_of_services_on_the_same_nodes_share_one_set_of_instances(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    requests = [make_request() for _ in range(3)]
    for request in requests:
        provider.ensure_load_balancer(request=request)
    sets = remembered_sets(provider)
    assert len(sets) == 3 * 2
    assert sets[0] == frozenset(iid for iid, _ in network.instances)
    assert len({id(s) for s in sets}) == 1


def test_after_a_node_sync_the_target_groups_still_share_one_set(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    requests = [make_request() for _ in range(3)]
    for request in requests:
        provider.ensure_load_balancer(request=request)
    added, _ = add_instance(network)
    for request in requests:
        provider.update_load_balancer(request=request.with_nodes(network.nodes()))
    sets = remembered_sets(provider)
    assert added in sets[0]
    assert len({id(s) for s in sets}) == 1


def test_the_classic_elbs_of_services_on_the_same_nodes_share_one_set_of_instances(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    for _ in range(3):
        provider.ensure_load_balancer(request=make_request(annotations=CLASSIC))
    known = list(provider.deployer.classic._known.values())
    assert len(known) == 3
    assert known[0].instances == frozenset(iid for iid, _ in network.instances)
    assert len({id(k.instances) for k in known}) == 1


def test_the_stacks_a_drift_check_builds_for_services_on_the_same_nodes_share_one_tuple_of_targets(
    provider: AWSProvider, make_request: RequestFactory, network: Network
) -> None:
    # The restart's bulk check (and every resync) builds the desired stack of every Service at once:
    # 7 KB each, 33 MiB at 5,000 Services, of which each stack's own copy of the same M instance IDs
    # was ~1.5 KB at 20 nodes (bench/README.md, "5,000 NLB Services"). The node sync hands each
    # request its own tuple of nodes here, as a controller restart would across resyncs.
    requests = [make_request().with_nodes(network.nodes()) for _ in range(3)]
    built = build_stacks(requests=requests, build=provider._stack_of, live_uids=None)
    stacks = [stack for _uid, stack in built.stacks.values()]
    assert isinstance(stacks[0], Stack)
    assert stacks[0].targets == tuple(sorted(iid for iid, _ in network.instances))
    assert len({id(s.targets) for s in stacks if isinstance(s, Stack)}) == 1
    added, _ = add_instance(network)
    again = provider._stack_of(requests[0].with_nodes(network.nodes()))
    assert isinstance(again, Stack)
    assert added in again.targets and again.targets != stacks[0].targets

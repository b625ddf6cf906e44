"""The skeleton of the bulk drift check both providers share: build every Service's desired stack,
keep the ones that cannot be built out of the comparison, and never let them count as orphans.

A request that cannot be built is reported as drifted (the full ensure then shows the user why) and its
UID stays live, so its resources are kept. Only the user's errors (:class:`~ccm.cloudprovider.InvalidSpec`,
:class:`~ccm.cloudprovider.ImplementedElsewhere`) are expected; anything else is a bug or an outage and
is logged with its traceback, and still never taken for drift of the cloud or for an orphan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ccm.cloudprovider import LoadBalancerRequest, build_failure_is_expected

logger = logging.getLogger(__name__)

StackT = TypeVar("StackT")


@dataclass(frozen=True)
class BuiltStacks(Generic[StackT]):
    stacks: dict[str, tuple[str, StackT]]  # key → (Service UID, desired stack)
    unbuildable: frozenset[str]  # keys whose stack could not be built: reported as drifted
    live_uids: frozenset[str] | None  # the caller's live UIDs plus every request's (None: sweep nothing)


def build_stacks(
    *,
    requests: Sequence[LoadBalancerRequest],
    build: Callable[[LoadBalancerRequest], StackT],
    live_uids: frozenset[str] | None,
) -> BuiltStacks[StackT]:
    """Each request's desired stack, by key; see the module docstring for the failures."""
    stacks: dict[str, tuple[str, StackT]] = {}
    unbuildable: set[str] = set()
    for request in requests:
        try:
            stacks[request.key] = (request.uid, build(request))
        except Exception as exc:
            if not build_failure_is_expected(exc):
                logger.error(
                    "%s: cannot build its load balancer for the drift check; keeping what exists",
                    request.key,
                    exc_info=True,
                )
            unbuildable.add(request.key)
    live = None if live_uids is None else live_uids | {r.uid for r in requests}
    return BuiltStacks(stacks=stacks, unbuildable=frozenset(unbuildable), live_uids=live)

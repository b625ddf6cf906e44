"""Which nodes are targets: the node selector annotation, and the instance ID of each node.

Nearly every Service targets the same nodes, and a drift check builds every Service's stack at once
(5,000 at a time at 5,000 Services): equal target tuples are handed out as one object, instance ID
strings included, instead of one copy per stack (~1.5 KB per stack at 20 nodes).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence

from ccm.cloudprovider import LoadBalancerRequest, Node
from providers.aws import annotations as ann
from providers.aws.build.names import instance_id

_MAX_SHARED = 64  # distinct target tuples kept for sharing (node sets in flux, selectors)
_shared: dict[tuple[str, ...], tuple[str, ...]] = {}
_shared_lock = threading.Lock()


def _share(ids: tuple[str, ...]) -> tuple[str, ...]:
    """The tuple equal to ``ids`` handed out before, or ``ids`` (then remembered)."""
    with _shared_lock:
        known = _shared.get(ids)
        if known is not None:
            return known
        if len(_shared) >= _MAX_SHARED:
            _shared.clear()
        _shared[ids] = ids
        return ids


def _node_selector(annotations: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    pairs = ann.parse_key_values(annotations=annotations, key=ann.TARGET_NODE_LABELS) or ()
    for key, _value in pairs:
        if not re.fullmatch(r"([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?", key):
            raise ann.invalid(
                key=ann.TARGET_NODE_LABELS,
                value=annotations[ann.TARGET_NODE_LABELS],
                reason=f"{key!r} is not a label key",
            )
    return pairs


def _selected(node: Node, selector: Sequence[tuple[str, str]]) -> bool:
    return all(key in node.labels and (not value or node.labels[key] == value) for key, value in selector)


def target_instances(request: LoadBalancerRequest) -> tuple[str, ...]:
    """Instance IDs of the selected nodes, sorted; nodes without an AWS instance providerID are skipped."""
    selector = _node_selector(request.annotations)
    ids: set[str] = set()
    for node in request.nodes:
        if not _selected(node, selector):
            continue
        try:
            ids.add(instance_id(node.provider_id))
        except ValueError:
            continue
    return _share(tuple(sorted(ids)))

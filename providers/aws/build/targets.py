"""Which nodes are targets: the node selector annotation, and the instance ID of each node."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ccm.cloudprovider import LoadBalancerRequest, Node
from providers.aws import annotations as ann
from providers.aws.build.names import instance_id


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
    return tuple(sorted(ids))

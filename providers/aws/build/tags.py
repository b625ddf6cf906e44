"""The user's additional tags (``aws-load-balancer-additional-resource-tags``), within AWS's tag rules."""

from __future__ import annotations

from collections.abc import Mapping

from providers.aws import annotations as ann
from providers.aws.build.common import (
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    MAX_TAGS,
    RESERVED_TAG_KEYS,
    RESERVED_TAG_PREFIXES,
    TAG_CHARS,
)
from providers.aws.model import (
    Tags,
)


def additional_tags(annotations: Mapping[str, str], *, scoped: bool = False) -> Tags:
    pairs = ann.parse_key_values(annotations=annotations, key=ann.ADDITIONAL_RESOURCE_TAGS) or ()
    raw = annotations.get(ann.ADDITIONAL_RESOURCE_TAGS, "")
    for key, value in pairs:
        problem = ""
        if key.lower().startswith(RESERVED_TAG_PREFIXES) or key in RESERVED_TAG_KEYS:
            problem = f"the key {key!r} is reserved (aws:, kubernetes.io/cluster/, ccm-lb/, service-name)"
        elif len(key) > MAX_TAG_KEY:
            problem = f"the key {key[:20]!r}... is longer than {MAX_TAG_KEY} characters"
        elif len(value) > MAX_TAG_VALUE:
            problem = f"the value of {key!r} is longer than {MAX_TAG_VALUE} characters"
        elif not TAG_CHARS.fullmatch(key) or not TAG_CHARS.fullmatch(value):
            problem = f"{key}={value} has characters AWS does not allow in tags"
        if problem:
            raise ann.invalid(key=ann.ADDITIONAL_RESOURCE_TAGS, value=raw, reason=problem)
    # ours, the spec hash, the cluster tag, and a classed instance's scope tag
    limit = MAX_TAGS - len(RESERVED_TAG_KEYS) - 1 - (1 if scoped else 0)
    if len(pairs) > limit:
        raise ann.invalid(
            key=ann.ADDITIONAL_RESOURCE_TAGS, value=raw, reason=f"{len(pairs)} tags; at most {limit} fit"
        )
    return tuple(pairs)

"""The tags of every resource made for a Service (ownership, Service, role, scope) and the user's
additional tags (``aws-load-balancer-additional-resource-tags``), within AWS's tag rules; shared by the
NLB builder and the Classic ELB builder, so both kinds of stack are owned and found the same way."""

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
    OWNED,
    RESOURCE_TAG,
    SCOPE_TAG,
    SERVICE_NAME_TAG,
    SERVICE_UID_TAG,
    Tags,
    cluster_tag,
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


def resource_tags(
    *, cluster_id: str, service_key: str, uid: str, scope: str, extra: Tags, resource: str
) -> Tags:
    """One resource's tags, sorted: ``extra`` (the user's) under ours, which win on a shared key.

    Ours: the cluster's ownership tag (``owned``), the Service's ``namespace/name`` and UID, the
    resource's role (``ccm-lb/resource``) and, from a classed instance, its scope.
    """
    base = {
        cluster_tag(cluster_id): OWNED,
        SERVICE_NAME_TAG: service_key,
        SERVICE_UID_TAG: uid,
        RESOURCE_TAG: resource,
    }
    if scope:
        base[SCOPE_TAG] = scope
    return tuple(sorted({**dict(extra), **base}.items()))

"""Resource names: ``k8s-<ns:8>-<name:8>-<hash10>`` as the aws-load-balancer-controller names them;
the hash covers the cluster and the Service UID, and for a target group what AWS cannot modify.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from ccm.cloudprovider import InvalidSpec
from providers.aws.build.common import (
    INSTANCE_ID,
    MAX_SG_NAME,
    TARGET_TYPE_INSTANCE,
)
from providers.aws.build.subnets import wants_internal
from providers.common import names


def _hash10(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:10]


def _sanitise(value: str, *, limit: int) -> str:
    return names.sanitise(value, limit=limit, order=names.Order.CUT_THEN_COLLAPSE)


def _name(*, namespace: str, name: str, digest: str, limit: int) -> str:
    parts = ["k8s", _sanitise(namespace, limit=limit), _sanitise(name, limit=limit), digest]
    return "-".join(p for p in parts if p)


def load_balancer_name(
    *, cluster_name: str, namespace: str, name: str, uid: str, internal: bool = False
) -> str:
    """``k8s-<ns:8>-<name:8>-<hash10>`` (≤ 32 characters), unique per cluster, Service UID and scheme.

    The scheme is in the hash (only for internal NLBs, so the names of existing internet-facing ones
    stay), because a scheme change replaces the NLB and the new one is made before the old one is
    deleted, as the AWS Load Balancer Controller does: the two must not share a name.
    """
    digest = _hash10(cluster_name, namespace, name, uid, *(["internal"] if internal else []))
    return _name(namespace=namespace, name=name, digest=digest, limit=8)


def is_internal(annotations: Mapping[str, str]) -> bool:
    """The scheme the annotations ask for; internet-facing when they cannot be read."""
    try:
        return wants_internal(annotations)
    except InvalidSpec:
        return False


def target_group_name(
    *,
    cluster_name: str,
    namespace: str,
    name: str,
    uid: str,
    port: int,
    protocol: str,
    node_port: int,
    target_type: str = TARGET_TYPE_INSTANCE,
) -> str:
    """``k8s-<ns:8>-<name:8>-<hash10>`` (≤ 32 characters); the hash covers what AWS cannot modify.

    ``port`` is the Service (listener) port, ``protocol`` the target group's protocol, ``node_port``
    its target port: changing any of them (or the target type) gives a new name.
    """
    digest = _hash10(cluster_name, namespace, name, uid, port, protocol, node_port, target_type)
    return _name(namespace=namespace, name=name, digest=digest, limit=8)


def frontend_security_group_name(*, cluster_name: str, namespace: str, name: str, uid: str) -> str:
    """``k8s-<ns>-<name>-<hash10>`` (≤ 255 characters), the managed frontend security group's name."""
    digest = _hash10(cluster_name, namespace, name, uid)
    return _name(namespace=namespace, name=name, digest=digest, limit=120)[:MAX_SG_NAME]


def instance_id(provider_id: str) -> str:
    """The EC2 instance ID of a node's ``spec.providerID``.

    Accepts ``aws:///<zone>/i-…``, ``aws:////i-…`` and a bare ``i-…`` (as upstream's
    ``MapToAWSInstanceID``). Raises :class:`ValueError` for anything else (an empty ID, another
    cloud, a Fargate pseudo-node).
    """
    value = provider_id.strip()
    if value.startswith("aws://"):
        tokens = value.removeprefix("aws://").strip("/").split("/")
        if len(tokens) not in (1, 2):
            raise ValueError(f"not an AWS instance providerID: {provider_id!r}")
        value = tokens[-1]
    elif "://" in value:
        raise ValueError(f"not an AWS providerID: {provider_id!r}")
    if not INSTANCE_ID.fullmatch(value):
        raise ValueError(f"not an AWS instance providerID: {provider_id!r}")
    return value


def upstream_load_balancer_name(uid: str) -> str:
    """The upstream provider's name for a Service's load balancer: ``"a"`` + the UID without dashes, cut
    to 32 characters (k8s.io/cloud-provider ``cloud.go``, ``DefaultLoadBalancerName``)."""
    return ("a" + uid).replace("-", "")[:32]

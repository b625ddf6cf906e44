"""Build the desired AWS resources of one Service: request + config + network facts → :class:`Stack`.

Why a pure function: every decision the provider makes about a Service (names, subnets, listeners,
health checks, security-group rules, tags) happens here, without one AWS call, so it is tested with
golden JSON and a malformed Service is rejected with :class:`InvalidSpec` before anything is
created. The deployer then only compares this model with what AWS has.

Naming follows the aws-load-balancer-controller: ``k8s-<ns:8>-<name:8>-<hash10>``, where the hash
covers the cluster, so two clusters in one account never share a name, and the Service UID, so a
re-created Service gets new resources. A target group's hash also covers everything AWS cannot
change on an existing target group (protocol, port, target type), so such a change yields a new
name and the deployer replaces the group instead of failing to modify it.

The builder is the package :mod:`providers.aws.build`, one module per concern (names, ports and type,
TLS, health checks, attributes, tags, subnets, security groups, targets, and the stack that puts them
together); this module is its public face.
"""

from __future__ import annotations

from providers.aws.build.attributes import asks_deletion_protection
from providers.aws.build.names import (
    frontend_security_group_name,
    instance_id,
    is_internal,
    load_balancer_name,
    target_group_name,
)
from providers.aws.build.ports import implemented_elsewhere
from providers.aws.build.stack import build_stack

__all__ = [
    "asks_deletion_protection",
    "build_stack",
    "frontend_security_group_name",
    "implemented_elsewhere",
    "instance_id",
    "is_internal",
    "load_balancer_name",
    "target_group_name",
]

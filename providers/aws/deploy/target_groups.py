"""A Service's target groups: one per Service port, named by what AWS cannot modify.

A target group's name hashes its port, protocol, NodePort and target type, so a change of any of these
is a new target group (made, listeners switched to it, then the old one deleted); everything else (the
health check, attributes, tags) is modified in place. The spec hash tag says whether a target group
needs attention at all, as ``target_group_synthesizer.go`` of the aws-load-balancer-controller matches
by its resource-id tag and then compares.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ccm.cloudprovider import RetryAfter
from providers.aws import model
from providers.aws.client import error_code
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery
from providers.aws.deploy.parts import ActualStack, Found, StackCache, effective_tg_name, tag_list
from providers.common.spec_hash import spec_hash

logger = logging.getLogger(__name__)

DEFAULT_SUCCESS_CODES = "200-399"  # botocore elbv2 Matcher.HttpCode, the NLB default
TG_ATTRIBUTE_DEFAULTS = {
    "preserve_client_ip.enabled": "true",
    "proxy_protocol_v2.enabled": "false",
    "deregistration_delay.timeout_seconds": "300",
    "deregistration_delay.connection_termination.enabled": "false",
    "stickiness.enabled": "false",
    "stickiness.type": "source_ip",
    "load_balancing.cross_zone.enabled": "use_load_balancer_configuration",
    "target_health_state.unhealthy.connection_termination.enabled": "true",
    "target_health_state.unhealthy.draining_interval_seconds": "0",
}
# UDP and TCP_UDP differ (botocore elbv2 service-2.json, TargetGroupAttribute.Key): connections are
# terminated at the end of deregistration by default, and unhealthy connection termination cannot be
# enabled at all, so it is never reset.
UDP_TG_ATTRIBUTE_DEFAULTS = {
    **{
        k: v
        for k, v in TG_ATTRIBUTE_DEFAULTS.items()
        if k != "target_health_state.unhealthy.connection_termination.enabled"
    },
    "deregistration_delay.connection_termination.enabled": "true",
}


def tg_attribute_defaults(protocol: str) -> Mapping[str, str]:
    """AWS's default target-group attributes for a target group of ``protocol``."""
    return UDP_TG_ATTRIBUTE_DEFAULTS if protocol in ("UDP", "TCP_UDP") else TG_ATTRIBUTE_DEFAULTS


class Action(enum.Enum):
    CREATE = "create"  # none of this name: create (a found one of another name is deleted later)
    MODIFY = "modify"  # the spec changed: health check, attributes and tags brought up to date
    CHECK_ATTRIBUTES = (
        "check-attributes"  # unchanged, but a crash may have come between create and attributes
    )
    KEEP = "keep"


class TargetGroups:
    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self.ctx = ctx
        self.discovery = discovery

    def ensure(self, *, stack: model.Stack, actual: ActualStack, cache: StackCache) -> dict[str, str]:
        """Resource id → ARN of every target group of ``stack``."""
        elbv2 = self.ctx.clients.elbv2
        by_id = {tg.resource_id: tg for tg in actual.target_groups}
        arns: dict[str, str] = {}
        for spec in stack.target_groups:
            existing = by_id.get(spec.resource_id)
            action = match(spec, existing)
            if existing is not None and action is not Action.CREATE:
                if action is Action.MODIFY:
                    elbv2.modify_target_group(**modify_request(existing.arn, spec))
                    self._sync_attributes(existing.arn, spec)
                    self.ctx.retag(existing.arn, have=existing.tags, want=dict(spec.tags))
                    elbv2.add_tags(
                        ResourceArns=[existing.arn],
                        Tags=[{"Key": model.SPEC_HASH_TAG, "Value": spec_hash(spec)}],
                    )
                elif action is Action.CHECK_ATTRIBUTES:
                    self._sync_attributes(existing.arn, spec)
                arns[spec.resource_id] = existing.arn
                continue
            arn, created_new = self._create(spec)
            if spec.attributes:
                elbv2.modify_target_group_attributes(
                    TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in spec.attributes]
                )
            arns[spec.resource_id] = arn
            if created_new:
                # a new target group has no targets: no describe needed
                cache.remember_targets(arn=arn, instance_ids=())
            else:
                cache.targets.pop(arn, None)
        cache.tg_arns = dict(arns)
        return arns

    def _create(self, spec: model.TargetGroup) -> tuple[str, bool]:
        """The new target group's ARN, and whether it is new (AWS answers a same-named one as a duplicate)."""
        elbv2 = self.ctx.clients.elbv2
        request = create_request(spec, vpc_id=self.discovery.cluster_info().vpc_id)
        try:
            return str(elbv2.create_target_group(**request)["TargetGroups"][0]["TargetGroupArn"]), True
        except ClientError as exc:
            if error_code(exc) != "DuplicateTargetGroupName":
                raise
        tg = elbv2.describe_target_groups(Names=[spec.name])["TargetGroups"][0]
        self.ctx.require_owned(tg["TargetGroupArn"], what=f"target group {spec.name}")
        return str(tg["TargetGroupArn"]), False

    def _sync_attributes(self, arn: str, spec: model.TargetGroup) -> None:
        elbv2 = self.ctx.clients.elbv2
        described = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        changes = attribute_changes(spec, have={a["Key"]: a["Value"] for a in described})
        if changes:
            elbv2.modify_target_group_attributes(
                TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(changes.items())]
            )

    def delete(self, arn: str) -> None:
        """Delete; one a deleting load balancer still uses is tried again later (:class:`RetryAfter`)."""
        try:
            self.ctx.clients.elbv2.delete_target_group(TargetGroupArn=arn)
        except ClientError as exc:
            code = error_code(exc)
            if code == "TargetGroupNotFound":
                return
            if code == "ResourceInUse":
                raise RetryAfter(
                    f"target group {arn} is still in use by a deleting load balancer", seconds=10
                ) from exc
            raise


# -- pure ------------------------------------------------------------------------------------------------


def match(spec: model.TargetGroup, found: Found | None) -> Action:
    """What the target group of ``spec`` needs, given the one of its resource id that was ``found``."""
    if found is None or effective_tg_name(found) != spec.name:
        return Action.CREATE
    if found.tags.get(model.SPEC_HASH_TAG) != spec_hash(spec):
        return Action.MODIFY
    return Action.CHECK_ATTRIBUTES if spec.attributes else Action.KEEP


def _health_check(hc: model.HealthCheck) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "HealthCheckProtocol": hc.protocol,
        "HealthCheckPort": hc.port,
        "HealthCheckEnabled": True,
        "HealthCheckIntervalSeconds": hc.interval_seconds,
        "HealthCheckTimeoutSeconds": hc.timeout_seconds,
        "HealthyThresholdCount": hc.healthy_threshold,
        "UnhealthyThresholdCount": hc.unhealthy_threshold,
    }
    if hc.path:
        kwargs["HealthCheckPath"] = hc.path
    return kwargs


def create_request(spec: model.TargetGroup, *, vpc_id: str) -> dict[str, Any]:
    """CreateTargetGroup's arguments: the spec hash is tagged at creation."""
    kwargs: dict[str, Any] = {
        "Name": spec.name,
        "Protocol": spec.protocol,
        "Port": spec.port,
        "VpcId": vpc_id,
        "TargetType": "instance",
        **_health_check(spec.health_check),
        "Tags": tag_list([*spec.tags, (model.SPEC_HASH_TAG, spec_hash(spec))]),
    }
    if spec.health_check.success_codes:
        kwargs["Matcher"] = {"HttpCode": spec.health_check.success_codes}
    return kwargs


def modify_request(arn: str, spec: model.TargetGroup) -> dict[str, Any]:
    """ModifyTargetGroup's arguments; a removed success-codes annotation restores AWS's default matcher."""
    hc = spec.health_check
    kwargs: dict[str, Any] = {"TargetGroupArn": arn, **_health_check(hc)}
    if hc.protocol in ("HTTP", "HTTPS"):
        kwargs["Matcher"] = {"HttpCode": hc.success_codes or DEFAULT_SUCCESS_CODES}
    return kwargs


def attribute_changes(spec: model.TargetGroup, *, have: Mapping[str, str]) -> dict[str, str]:
    """Attributes to set: the wanted ones that differ, and AWS's default for one no longer asked for."""
    want = dict(spec.attributes)
    changes = {k: v for k, v in want.items() if have.get(k) != v}
    for key, default in tg_attribute_defaults(spec.protocol).items():
        if key not in want and key in have and have[key] != default:
            changes[key] = default
    return changes

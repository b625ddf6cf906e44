"""A Service's listeners: one per Service port, forwarding to its target group.

A listener whose protocol changes is deleted and made again (its port stays); its target group,
certificate and SSL policy are modified in place. Listeners are not in the tagging API's listing, so
their tags are read only when the NLB's own tags show that the user's additional tags changed, and their
attributes are remembered per listener so an unchanged one costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from providers.aws import model
from providers.aws.client import error_code
from providers.aws.deploy.context import Context
from providers.aws.deploy.parts import ActualStack, StackCache, chunks, tag_list

logger = logging.getLogger(__name__)

# Listener attributes of each protocol, with AWS's defaults (botocore elbv2 ListenerAttribute.Key:
# tcp.idle_timeout.seconds, "The default is 350 seconds"); other protocols have none to set.
LISTENER_ATTRIBUTE_DEFAULTS: Mapping[str, Mapping[str, str]] = {"TCP": {"tcp.idle_timeout.seconds": "350"}}


@dataclass
class ListenerPlan:
    delete: list[str] = field(default_factory=list)  # listener ARNs
    create: list[model.Listener] = field(default_factory=list)
    modify: dict[str, dict[str, Any]] = field(default_factory=dict)  # ARN → ModifyListener arguments
    kept: dict[str, model.Listener] = field(default_factory=dict)  # ARN → spec of every listener that stays


class Listeners:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def described(self, lb_arn: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self.ctx.clients.elbv2.get_paginator("describe_listeners").paginate(
            LoadBalancerArn=lb_arn
        ):
            out.extend(page["Listeners"])
        return out

    def complete(self, *, lb_arn: str, stack: model.Stack, actual: ActualStack, cache: StackCache) -> bool:
        """Whether the NLB has exactly the stack's listeners (free once this process saw it so)."""
        desired_hash = stack.spec_hash()
        if cache.lb_arn == lb_arn and cache.listeners_hash == desired_hash:
            return True
        tg_arns = {tg.resource_id: tg.arn for tg in actual.target_groups}
        try:
            have = self.described(lb_arn)
        except ClientError as exc:
            if error_code(exc) != "LoadBalancerNotFound":
                raise
            return False  # listed by the tagging API, but deleted: the full path recreates it
        if summary(have) != {
            (spec.port, spec.protocol, tg_arns.get(spec.target_group, "?"), spec.certificate_arn)
            for spec in stack.listeners
        }:
            return False
        cache.lb_arn, cache.listeners_hash = lb_arn, desired_hash
        return True

    def ensure(
        self,
        *,
        stack: model.Stack,
        lb_arn: str,
        tg_arns: Mapping[str, str],
        created: bool,
        cache: StackCache,
        retag: bool = False,
    ) -> None:
        """Listeners as the stack says; ``retag`` (the user's tags changed): kept ones are re-tagged."""
        elbv2 = self.ctx.clients.elbv2
        plan = match(desired=stack.listeners, have=[] if created else self.described(lb_arn), tg_arns=tg_arns)
        for arn in plan.delete:
            elbv2.delete_listener(ListenerArn=arn)
        kept = {spec.port: arn for arn, spec in plan.kept.items()}
        for spec in stack.listeners:  # in the stack's order, as the listeners were always made
            arn = kept.get(spec.port) or self._create(
                lb_arn=lb_arn, spec=spec, tg_arn=tg_arns[spec.target_group], cache=cache
            )
            self._sync_attributes(arn=arn, spec=spec, cache=cache)
            if arn in plan.modify:
                elbv2.modify_listener(**plan.modify[arn])
        if retag and plan.kept:
            self._retag(plan.kept)

    def _create(self, *, lb_arn: str, spec: model.Listener, tg_arn: str, cache: StackCache) -> str:
        elbv2 = self.ctx.clients.elbv2
        request = {
            "LoadBalancerArn": lb_arn,
            "Port": spec.port,
            "Protocol": spec.protocol,
            "Tags": tag_list(spec.tags),
            **_settings(spec, tg_arn=tg_arn),
        }
        try:
            made = str(elbv2.create_listener(**request)["Listeners"][0]["ListenerArn"])
        except ClientError as exc:
            if error_code(exc) == "CertificateNotFound":
                raise RuntimeError(
                    f"the certificate {spec.certificate_arn} (annotation "
                    "service.beta.kubernetes.io/aws-load-balancer-ssl-cert) does not exist in this "
                    f"account and region, so the TLS listener on port {spec.port} cannot be made; "
                    "import or request it in ACM (or fix the ARN): the load balancer gets its "
                    "listeners as soon as it exists"
                ) from exc
            if error_code(exc) != "DuplicateListener":
                raise
            logger.info("listener %d of %s already exists (an earlier attempt made it)", spec.port, lb_arn)
            made = self._modify_existing(lb_arn=lb_arn, spec=spec, tg_arn=tg_arn)
            cache.listener_attributes.pop(made, None)  # unknown: described before it is set
        else:
            cache.listener_attributes[made] = ()  # a new listener has AWS's defaults
        return made

    def _modify_existing(self, *, lb_arn: str, spec: model.Listener, tg_arn: str) -> str:
        for listener in self.described(lb_arn):
            if int(listener["Port"]) == spec.port:
                settings = _settings(spec, tg_arn=tg_arn)
                settings.pop("SslPolicy", None)
                self.ctx.clients.elbv2.modify_listener(ListenerArn=listener["ListenerArn"], **settings)
                return str(listener["ListenerArn"])
        raise RuntimeError(f"listener {spec.port} of {lb_arn} was reported as existing but is not listed")

    def _retag(self, kept: Mapping[str, model.Listener]) -> None:
        for chunk in chunks(sorted(kept), 20):
            for described in self.ctx.clients.elbv2.describe_tags(ResourceArns=list(chunk))[
                "TagDescriptions"
            ]:
                have = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
                self.ctx.retag(
                    described["ResourceArn"], have=have, want=dict(kept[described["ResourceArn"]].tags)
                )

    def _sync_attributes(self, *, arn: str, spec: model.Listener, cache: StackCache) -> None:
        """Set the listener attributes the user asked for; put back AWS's default of a removed one.

        Free when nothing changed: what this process set or saw is remembered per listener, so only
        a listener unknown since a restart is described (once), and only when its protocol has
        attributes at all (TCP).
        """
        defaults = LISTENER_ATTRIBUTE_DEFAULTS.get(spec.protocol)
        if not defaults or cache.listener_attributes.get(arn) == spec.attributes:
            return
        elbv2 = self.ctx.clients.elbv2
        if arn in cache.listener_attributes:
            have = dict(cache.listener_attributes[arn])
        else:
            have = {
                a["Key"]: a["Value"]
                for a in elbv2.describe_listener_attributes(ListenerArn=arn)["Attributes"]
            }
        changes = attribute_changes(spec, have=have)
        if changes:
            elbv2.modify_listener_attributes(
                ListenerArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(changes.items())]
            )
        cache.listener_attributes[arn] = spec.attributes


# -- pure ------------------------------------------------------------------------------------------------


def _settings(spec: model.Listener, *, tg_arn: str) -> dict[str, Any]:
    """What a listener is: its default action, certificate and SSL policy (those that are set)."""
    out: dict[str, Any] = {"DefaultActions": [{"Type": "forward", "TargetGroupArn": tg_arn}]}
    if spec.certificate_arn:
        out["Certificates"] = [{"CertificateArn": spec.certificate_arn}]
    if spec.ssl_policy:
        out["SslPolicy"] = spec.ssl_policy
    return out


def summary(listeners: Sequence[Mapping[str, Any]]) -> set[tuple[int, str, str, str]]:
    """(port, protocol, target group ARN, certificate ARN) of described listeners."""
    out = set()
    for listener in listeners:
        tg = (listener.get("DefaultActions") or [{}])[0].get("TargetGroupArn", "")
        cert = (listener.get("Certificates") or [{}])[0].get("CertificateArn", "")
        out.add((int(listener["Port"]), listener["Protocol"], tg, cert))
    return out


def match(
    *, desired: Sequence[model.Listener], have: Sequence[Mapping[str, Any]], tg_arns: Mapping[str, str]
) -> ListenerPlan:
    """What to delete, create and modify so the NLB has the ``desired`` listeners.

    A listener is matched by its port; one of another protocol (or of a port no longer wanted) is
    deleted, and one whose target group, certificate or SSL policy differs is modified.
    """
    plan = ListenerPlan()
    by_port = {int(listener["Port"]): listener for listener in have}
    wanted = {spec.port: spec for spec in desired}
    for port, listener in sorted(by_port.items()):
        spec = wanted.get(port)
        if spec is None or spec.protocol != listener["Protocol"]:
            plan.delete.append(str(listener["ListenerArn"]))
            del by_port[port]
    for spec in desired:
        existing = by_port.get(spec.port)
        if existing is None:
            plan.create.append(spec)
            continue
        arn = str(existing["ListenerArn"])
        plan.kept[arn] = spec
        tg_arn = tg_arns[spec.target_group]
        have_tg = (existing.get("DefaultActions") or [{}])[0].get("TargetGroupArn")
        have_certs = [c["CertificateArn"] for c in existing.get("Certificates", [])]
        if (
            have_tg != tg_arn
            or have_certs != ([spec.certificate_arn] if spec.certificate_arn else [])
            or (spec.ssl_policy and existing.get("SslPolicy") != spec.ssl_policy)
        ):
            plan.modify[arn] = {"ListenerArn": arn, **_settings(spec, tg_arn=tg_arn)}
    return plan


def attribute_changes(spec: model.Listener, *, have: Mapping[str, str]) -> dict[str, str]:
    """Listener attributes to set: the wanted ones, and AWS's default of one no longer asked for."""
    defaults = LISTENER_ATTRIBUTE_DEFAULTS.get(spec.protocol, {})
    want = {**defaults, **dict(spec.attributes)}
    current = {**defaults, **have}
    return {k: v for k, v in want.items() if current.get(k) != v}

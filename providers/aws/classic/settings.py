"""A Classic ELB's attributes (cross-zone, connection draining, idle timeout, access logs) and its
ProxyProtocol switch, from upstream's single-purpose annotations.

Upstream (``aws.go`` EnsureLoadBalancer) starts from the values it always sends (access log off,
draining off, idle timeout 60 s, cross-zone off) and lets each annotation change one; here the same
defaults are :class:`~providers.aws.classic.model.ClassicAttributes`'. Ranges: the Classic ELB user guide
(idle timeout 1 to 4,000 s, "Configure the idle connection timeout"; draining timeout 1 to 3,600 s,
"Configure connection draining"; access-log interval 5 or 60 minutes, botocore
``elb/2012-06-01/service-2.json`` ``AccessLog.EmitInterval``). botocore's model still gives
``IdleTimeout`` a maximum of 3600, but botocore checks only minimums, and AWS takes up to 4,000.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from providers.aws import annotations as ann
from providers.aws.build.common import BUCKET
from providers.aws.classic.model import ClassicAttributes

log = logging.getLogger(__name__)


def build_attributes(annotations: Mapping[str, str]) -> ClassicAttributes:
    """The attributes the annotations ask for, each defaulting to :class:`ClassicAttributes`'."""
    defaults = ClassicAttributes()

    def flag(key: str, default: bool) -> bool:
        value = ann.parse_bool(annotations=annotations, key=key)
        return default if value is None else value

    def seconds(key: str, bounds: tuple[int, int], default: int) -> int:
        value = ann.parse_int(annotations=annotations, key=key, low=bounds[0], high=bounds[1])
        return default if value is None else value

    access_log = flag(ann.ACCESS_LOG_ENABLED, defaults.access_log_enabled)
    bucket = ann.text(annotations=annotations, key=ann.ACCESS_LOG_BUCKET) or ""
    if bucket and (not BUCKET.fullmatch(bucket) or ".." in bucket):
        raise ann.invalid(
            key=ann.ACCESS_LOG_BUCKET,
            value=annotations[ann.ACCESS_LOG_BUCKET],
            reason=f"{bucket!r} is not a valid S3 bucket name",
            accepted="3 to 63 lower-case letters, digits, dots and hyphens",
        )
    if access_log and not bucket:
        # the elb API refuses AccessLog.Enabled without S3BucketName
        raise ann.invalid(
            key=ann.ACCESS_LOG_ENABLED,
            value=annotations[ann.ACCESS_LOG_ENABLED],
            reason=f"access logs need a bucket: set {ann.ACCESS_LOG_BUCKET}",
            accepted="false, or true together with a bucket",
        )
    interval = defaults.access_log_interval
    raw = ann.text(annotations=annotations, key=ann.ACCESS_LOG_EMIT_INTERVAL)
    if raw is not None:
        if raw not in ann.ACCESS_LOG_EMIT_INTERVALS:
            raise ann.invalid(
                key=ann.ACCESS_LOG_EMIT_INTERVAL,
                value=annotations[ann.ACCESS_LOG_EMIT_INTERVAL],
                reason="AWS delivers Classic ELB access logs every 5 or every 60 minutes",
            )
        interval = int(raw)
    return ClassicAttributes(
        cross_zone=flag(ann.CROSS_ZONE, defaults.cross_zone),
        connection_draining=flag(ann.CONNECTION_DRAINING_ENABLED, defaults.connection_draining),
        connection_draining_timeout=seconds(
            ann.CONNECTION_DRAINING_TIMEOUT, ann.DRAINING_TIMEOUT_RANGE, defaults.connection_draining_timeout
        ),
        idle_timeout=seconds(
            ann.CONNECTION_IDLE_TIMEOUT, ann.CLASSIC_IDLE_TIMEOUT_RANGE, defaults.idle_timeout
        ),
        access_log_enabled=access_log,
        access_log_bucket=bucket,
        access_log_prefix=ann.text(annotations=annotations, key=ann.ACCESS_LOG_PREFIX) or "",
        access_log_interval=interval,
    )


def proxy_protocol(annotations: Mapping[str, str]) -> bool:
    """``proxy-protocol``: only ``*`` (every instance port), as upstream (aws.go EnsureLoadBalancer: "the
    only value supported currently is '*'")."""
    value = ann.text(annotations=annotations, key=ann.PROXY_PROTOCOL)
    if value is None:
        return False
    if value != "*":
        raise ann.invalid(
            key=ann.PROXY_PROTOCOL,
            value=annotations[ann.PROXY_PROTOCOL],
            reason="only '*' (every port) is supported, as upstream",
        )
    return True

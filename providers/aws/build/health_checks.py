"""Target-group health checks: kube-proxy's health port for ``externalTrafficPolicy: Local``, the
traffic port otherwise, and the annotations that change them, within AWS's rules for NLBs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ccm.cloudprovider import InvalidSpec, LoadBalancerRequest
from providers.aws import annotations as ann
from providers.aws.build.common import (
    HC_CLUSTER,
    HC_LOCAL,
    SUCCESS_CODE_RANGE,
    TIMEOUT_HTTP,
    TIMEOUT_TCP,
    TRAFFIC_PORT,
)
from providers.aws.config import AWSConfig
from providers.aws.model import (
    HealthCheck,
)


def build_udp_health_check(
    check: HealthCheck, request: LoadBalancerRequest, config: AWSConfig
) -> HealthCheck:
    """A UDP NodePort cannot answer a TCP probe: without an explicit port, ask kube-proxy instead.

    Upstream sends a TCP check to the UDP traffic port, which never succeeds. For Cluster policy
    (without shared probe mode and without a health-check-port annotation) a UDP target group is
    checked over HTTP on kube-proxy's healthz port, which says whether the node forwards traffic.
    """
    explicit = ann.text(annotations=request.annotations, key=ann.HEALTHCHECK_PORT) is not None
    if check.protocol != "TCP" or check.port != TRAFFIC_PORT or explicit:
        return check
    return HealthCheck(
        protocol="HTTP",
        port=str(config.shared_probe_port),
        path=config.shared_probe_path,
        interval_seconds=check.interval_seconds,
        timeout_seconds=_timeout(request.annotations, protocol="HTTP", interval=check.interval_seconds),
        healthy_threshold=check.healthy_threshold,
        unhealthy_threshold=check.unhealthy_threshold,
        success_codes=check.success_codes,
    )


def local_health_check_port(request: LoadBalancerRequest) -> int:
    """The health-check NodePort of an ``externalTrafficPolicy: Local`` Service (kube-proxy answers
    ``/healthz`` there), refused when the apiserver gave it none."""
    if not 1 <= request.health_check_node_port <= 65535:
        raise InvalidSpec(
            field="spec.healthCheckNodePort",
            value=request.health_check_node_port,
            accepted="a port from 1 to 65535, allocated by the apiserver for externalTrafficPolicy Local",
            reason="externalTrafficPolicy Local needs a health-check NodePort",
        )
    return request.health_check_node_port


def protocol_annotation(
    annotations: Mapping[str, str], *, accepted: tuple[str, ...], what: str = ""
) -> str | None:
    """The ``healthcheck-protocol`` annotation, upper-cased, one of ``accepted`` (None when unset); ``what``
    says whose health checks ``accepted`` are, in the refusal."""
    wanted = ann.text(annotations=annotations, key=ann.HEALTHCHECK_PROTOCOL)
    if wanted is None:
        return None
    if wanted.upper() not in accepted:
        raise ann.invalid(
            key=ann.HEALTHCHECK_PROTOCOL,
            value=annotations[ann.HEALTHCHECK_PROTOCOL],
            reason="unknown health-check protocol",
            accepted=f"{', '.join(accepted)} ({what})" if what else None,
        )
    return wanted.upper()


def build_health_check(request: LoadBalancerRequest, config: AWSConfig) -> HealthCheck:
    """aws-provider.md §4 defaults; each health-check annotation overrides one field."""
    annotations = request.annotations
    local = request.external_traffic_policy == "Local"
    if local:
        protocol, port, path = "HTTP", str(local_health_check_port(request)), "/healthz"
        interval, healthy, unhealthy = HC_LOCAL
    elif config.health_probe_mode == "Shared":
        protocol, port, path = "HTTP", str(config.shared_probe_port), config.shared_probe_path
        interval, healthy, unhealthy = HC_LOCAL
    else:
        protocol, port, path = "TCP", TRAFFIC_PORT, "/"
        interval, healthy, unhealthy = HC_CLUSTER

    protocol = protocol_annotation(annotations, accepted=ann.HEALTHCHECK_PROTOCOLS) or protocol
    wanted = ann.text(annotations=annotations, key=ann.HEALTHCHECK_PORT)
    if wanted is not None:
        if wanted == TRAFFIC_PORT:
            port = TRAFFIC_PORT
        else:
            number = ann.parse_int(
                annotations=annotations,
                key=ann.HEALTHCHECK_PORT,
                low=1,
                high=65535,
                accepted=ann.BY_KEY[ann.HEALTHCHECK_PORT].accepted,
            )
            port = str(number)
    wanted = ann.text(annotations=annotations, key=ann.HEALTHCHECK_PATH)
    if wanted is not None:
        if protocol == "TCP":
            raise ann.invalid(
                key=ann.HEALTHCHECK_PATH,
                value=annotations[ann.HEALTHCHECK_PATH],
                reason="a path applies only to HTTP and HTTPS health checks, and the protocol is TCP",
                accepted=f"a path starting with / together with {ann.HEALTHCHECK_PROTOCOL}: HTTP or HTTPS",
            )
        if not wanted.startswith("/") or len(wanted) > 1024:
            raise ann.invalid(
                key=ann.HEALTHCHECK_PATH,
                value=annotations[ann.HEALTHCHECK_PATH],
                reason="not an absolute path of at most 1024 characters",
            )
        if not (wanted.isascii() and wanted.isprintable()):
            # the check is sent as an HTTP request line: RFC 3986 allows only ASCII in a path
            raise ann.invalid(
                key=ann.HEALTHCHECK_PATH,
                value=annotations[ann.HEALTHCHECK_PATH],
                reason="has characters that are not printable ASCII",
                accepted="a path of printable ASCII starting with /; percent-encode other characters",
            )
        path = wanted
    codes = _success_codes(annotations, protocol=protocol)

    def seconds_or_count(key: str, bounds: tuple[int, int], default: int) -> int:
        value = ann.parse_int(annotations=annotations, key=key, low=bounds[0], high=bounds[1])
        return default if value is None else value

    interval = seconds_or_count(ann.HEALTHCHECK_INTERVAL, ann.INTERVAL_RANGE, interval)
    return HealthCheck(
        protocol=protocol,
        port=port,
        path="" if protocol == "TCP" else path,
        interval_seconds=interval,
        timeout_seconds=_timeout(annotations, protocol=protocol, interval=interval),
        healthy_threshold=seconds_or_count(
            ann.HEALTHCHECK_HEALTHY_THRESHOLD, ann.HEALTHY_THRESHOLD_RANGE, healthy
        ),
        unhealthy_threshold=seconds_or_count(
            ann.HEALTHCHECK_UNHEALTHY_THRESHOLD, ann.HEALTHY_THRESHOLD_RANGE, unhealthy
        ),
        success_codes=codes,
    )


def _success_codes(annotations: Mapping[str, str], *, protocol: str) -> str:
    """The HTTP(S) matcher: ``200``, ``200-399`` or ``200,202``, codes 200 to 599 (NLB's rule)."""
    value = ann.text(annotations=annotations, key=ann.HEALTHCHECK_SUCCESS_CODES)
    if value is None:
        return ""
    raw = annotations[ann.HEALTHCHECK_SUCCESS_CODES]
    if protocol == "TCP":
        raise ann.invalid(
            key=ann.HEALTHCHECK_SUCCESS_CODES,
            value=raw,
            reason="success codes apply only to HTTP and HTTPS health checks, and the protocol is TCP",
            accepted=f"codes together with {ann.HEALTHCHECK_PROTOCOL}: HTTP or HTTPS",
        )
    low, high = SUCCESS_CODE_RANGE
    value = value.replace(" ", "")
    parts = value.split(",")
    ranged = re.fullmatch(r"([0-9]{3})-([0-9]{3})", value)
    if ranged:
        codes = [int(ranged[1]), int(ranged[2])]
        ok = codes[0] <= codes[1]
    else:
        ok = all(re.fullmatch(r"[0-9]{3}", part) for part in parts)
        codes = [int(part) for part in parts] if ok else []
    if not ok or not all(low <= code <= high for code in codes):
        raise ann.invalid(
            key=ann.HEALTHCHECK_SUCCESS_CODES, value=raw, reason="not HTTP codes from 200 to 599"
        )
    return value


def _timeout(annotations: Mapping[str, str], *, protocol: str, interval: int) -> int:
    """The health-check timeout: the annotation's, or AWS's default for the protocol cut to fit.

    AWS refuses a timeout longer than the interval, and for HTTP(S) checks one that is not shorter
    ("Health check timeout '10' must be smaller than or equal to the interval '5'": the ELBv2 API's
    validation, as moto's ``create_target_group`` reproduces it). AWS's defaults (botocore elbv2
    service-2.json, ``HealthCheckTimeoutSeconds``: 10 s for TCP, 6 s for HTTP) do not fit a 5 s
    interval, so a default is shortened; a timeout the user wrote is refused instead, naming it.
    """
    http = protocol in ("HTTP", "HTTPS")
    longest = interval - 1 if http else interval
    wanted = ann.parse_int(
        annotations=annotations,
        key=ann.HEALTHCHECK_TIMEOUT,
        low=ann.TIMEOUT_RANGE[0],
        high=ann.TIMEOUT_RANGE[1],
    )
    if wanted is None:
        return min(TIMEOUT_TCP if protocol == "TCP" else TIMEOUT_HTTP, longest)
    if wanted > longest:
        rule = f"less than the interval ({interval})" if http else f"at most the interval ({interval})"
        raise ann.invalid(
            key=ann.HEALTHCHECK_TIMEOUT,
            value=annotations[ann.HEALTHCHECK_TIMEOUT],
            reason=f"AWS refuses a {protocol} health-check timeout longer than the interval",
            accepted=(
                f"seconds from {ann.TIMEOUT_RANGE[0]} to {longest}: {rule}, set by {ann.HEALTHCHECK_INTERVAL}"
            ),
        )
    return wanted

"""A Classic ELB's health check (``HealthCheck``: one per load balancer, for every instance), chosen as
the upstream provider chooses it, then overridden by the health-check annotations, within the ``elb``
API's ranges.

Upstream (``aws.go`` EnsureLoadBalancer, ``aws_loadbalancer.go`` ``ensureLoadBalancerHealthCheck`` and
``getExpectedHealthCheck``; reference/aws-provider.md §4):

* ``externalTrafficPolicy: Local``: ``HTTP:<healthCheckNodePort>/healthz``;
* otherwise ``TCP:<first port's NodePort>``, or ``SSL:`` when ``backend-protocol`` is ``https`` or
  ``ssl``; with the cloud config's ``ClusterServiceLoadBalancerHealthProbeMode = Shared``,
  ``HTTP:<shared probe port><shared probe path>`` (kube-proxy's ``10256/healthz`` by default);
* interval 10 s, timeout 5 s, healthy threshold 2, unhealthy threshold 6 (``defaultElbHC*``).

Ranges: botocore ``elb/2012-06-01/service-2.json`` (HealthCheckInterval 5-300, HealthCheckTimeout 2-60,
HealthyThreshold and UnhealthyThreshold 2-10; ``HealthCheck.Timeout``: "This value must be less than
the Interval value"). Upstream checks only the minimums and lets AWS refuse the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from ccm.cloudprovider import LoadBalancerRequest
from providers.aws import annotations as ann
from providers.aws.build.common import TRAFFIC_PORT
from providers.aws.build.health_checks import local_health_check_port, protocol_annotation
from providers.aws.classic.model import ClassicHealthCheck
from providers.aws.config import AWSConfig

log = logging.getLogger(__name__)

# upstream aws_loadbalancer.go defaultElbHCInterval, defaultElbHCTimeout, defaultElbHCHealthyThreshold,
# defaultElbHCUnhealthyThreshold
DEFAULT_INTERVAL: Final = 10
DEFAULT_TIMEOUT: Final = 5
DEFAULT_HEALTHY: Final = 2
DEFAULT_UNHEALTHY: Final = 6
MAX_PATH: Final = 1024


def build_classic_health_check(
    *, request: LoadBalancerRequest, config: AWSConfig, first_node_port: int, backend: str | None
) -> ClassicHealthCheck:
    """The health check of the Service's Classic ELB; ``first_node_port`` is the first listener's
    instance port, ``backend`` the lower-cased ``backend-protocol`` (None when unset)."""
    annotations = request.annotations
    if request.external_traffic_policy == "Local":
        protocol, port, path = "HTTP", local_health_check_port(request), "/healthz"
    elif config.health_probe_mode == "Shared":
        protocol, port, path = "HTTP", config.shared_probe_port, config.shared_probe_path
    else:
        protocol, port, path = ("SSL" if backend in ("https", "ssl") else "TCP"), first_node_port, "/"

    protocol = (
        protocol_annotation(
            annotations, accepted=ann.CLASSIC_HEALTHCHECK_PROTOCOLS, what="a Classic ELB's health checks"
        )
        or protocol
    )
    wanted = ann.text(annotations=annotations, key=ann.HEALTHCHECK_PORT)
    if wanted == TRAFFIC_PORT:
        # upstream: for Local, the first listener's NodePort; otherwise it keeps its default port, which in
        # the Shared probe mode is kube-proxy's. Here traffic-port always means the traffic port, as on NLBs.
        port = first_node_port
    elif wanted is not None:
        chosen = ann.parse_int(
            annotations=annotations,
            key=ann.HEALTHCHECK_PORT,
            low=1,
            high=65535,
            accepted=ann.BY_KEY[ann.HEALTHCHECK_PORT].accepted,
        )
        port = chosen if chosen is not None else port
    path = _path(annotations, protocol=protocol, default=path)

    def count(key: str, bounds: tuple[int, int], default: int) -> int:
        value = ann.parse_int(annotations=annotations, key=key, low=bounds[0], high=bounds[1])
        return default if value is None else value

    interval = count(ann.HEALTHCHECK_INTERVAL, ann.INTERVAL_RANGE, DEFAULT_INTERVAL)
    return ClassicHealthCheck(
        target=f"{protocol}:{port}{path}",
        interval=interval,
        timeout=_timeout(annotations, interval=interval),
        healthy_threshold=count(
            ann.HEALTHCHECK_HEALTHY_THRESHOLD, ann.HEALTHY_THRESHOLD_RANGE, DEFAULT_HEALTHY
        ),
        unhealthy_threshold=count(
            ann.HEALTHCHECK_UNHEALTHY_THRESHOLD, ann.HEALTHY_THRESHOLD_RANGE, DEFAULT_UNHEALTHY
        ),
    )


def _path(annotations: Mapping[str, str], *, protocol: str, default: str) -> str:
    """The ping path of an HTTP(S) check ('' for TCP and SSL checks, whose target has none)."""
    wanted = ann.text(annotations=annotations, key=ann.HEALTHCHECK_PATH)
    if protocol in ("TCP", "SSL"):
        if wanted is not None:
            # upstream drops the path silently; the user would believe the path is checked
            raise ann.invalid(
                key=ann.HEALTHCHECK_PATH,
                value=annotations[ann.HEALTHCHECK_PATH],
                reason=f"a path applies only to HTTP and HTTPS health checks, and the protocol is {protocol}",
                accepted=f"a path starting with / together with {ann.HEALTHCHECK_PROTOCOL}: HTTP or HTTPS",
            )
        return ""
    if wanted is None:
        return default or "/"  # upstream defaultHealthCheckPath
    if (
        not wanted.startswith("/")
        or len(wanted) > MAX_PATH
        or not (wanted.isascii() and wanted.isprintable())
    ):
        raise ann.invalid(
            key=ann.HEALTHCHECK_PATH,
            value=annotations[ann.HEALTHCHECK_PATH],
            reason=f"not an absolute path of at most {MAX_PATH} printable ASCII characters",
            accepted="a path of printable ASCII starting with /; percent-encode other characters",
        )
    return wanted


def _timeout(annotations: Mapping[str, str], *, interval: int) -> int:
    """The annotation's timeout (2-60 s, shorter than the interval), or upstream's 5 s cut to fit."""
    low, high = ann.CLASSIC_TIMEOUT_RANGE
    longest = min(high, interval - 1)
    wanted = ann.parse_int(
        annotations=annotations,
        key=ann.HEALTHCHECK_TIMEOUT,
        low=low,
        high=high,
        accepted=f"seconds from {low} to {high}, less than the interval",
    )
    if wanted is None:
        return min(DEFAULT_TIMEOUT, longest)
    if wanted > longest:
        raise ann.invalid(
            key=ann.HEALTHCHECK_TIMEOUT,
            value=annotations[ann.HEALTHCHECK_TIMEOUT],
            reason="AWS refuses a Classic ELB health-check timeout that is not less than the interval",
            accepted=f"seconds from {low} to {longest}: less than the interval ({interval}), set by "
            f"{ann.HEALTHCHECK_INTERVAL}",
        )
    return wanted

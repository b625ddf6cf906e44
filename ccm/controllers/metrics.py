"""The service controller's metrics, under upstream's names (``controllers/service/metrics.go``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_HOST_BUCKETS = tuple(2.0**e for e in range(15))  # 1 s … 16384 s, as upstream

LOADBALANCER_SYNC = Counter(
    "service_controller_loadbalancer_sync",
    "A metric counting the amount of times any load balancer has been configured, "
    "as an effect of service/node changes on the cluster",
)
NODESYNC_ERRORS = Counter(
    "service_controller_nodesync_error",
    "A metric counting the amount of times any load balancer has been configured and "
    "errored, as an effect of node changes on the cluster",
)
NODESYNC_LATENCY = Histogram(
    "service_controller_nodesync_latency_seconds",
    "A metric measuring the latency for nodesync which updates loadbalancer hosts on cluster node updates.",
    buckets=_HOST_BUCKETS,
)
UPDATE_HOST_LATENCY = Histogram(
    "service_controller_update_loadbalancer_host_latency_seconds",
    "A metric measuring the latency for updating each load balancer hosts.",
    buckets=_HOST_BUCKETS,
)
DRIFT_REPAIRS = Counter(
    "service_controller_drift_repairs",
    "Load balancers re-ensured because the periodic resync found them missing or changed",
)

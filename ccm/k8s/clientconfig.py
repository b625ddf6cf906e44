"""Building the ApiClient from ``--kubeconfig`` / ``--master`` / in-cluster config, with QPS and burst.

The Python client has no client-side rate limiter; upstream components use one (``--kube-api-qps``,
``--kube-api-burst``) so that a storm of status writes cannot overload the API server. This adds a
token bucket in front of every request the ApiClient sends (watches included, each counts once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config
from prometheus_client import Counter

REQUESTS = Counter(
    "rest_client_requests",
    "Number of HTTP requests, partitioned by status code, method, and host.",
    ["code", "method", "host"],
)


class TokenBucket:
    def __init__(self, *, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, max(1, burst)
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> None:
        if self.qps <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


def new_api_client(
    *, kubeconfig: str = "", master: str = "", qps: float = 20.0, burst: int = 30
) -> client.ApiClient:
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            raise config.ConfigException(
                f"no --kubeconfig given and not running in a cluster ({exc}); pass --kubeconfig=PATH"
            ) from exc
    if master:
        configuration.host = master
    api = client.ApiClient(configuration)
    bucket = TokenBucket(qps=qps, burst=burst)
    rest = api.rest_client
    original: Callable[..., Any] = rest.request
    host = configuration.host

    def limited(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        bucket.take()
        try:
            response = original(method, url, *args, **kwargs)
        except client.ApiException as exc:
            REQUESTS.labels(str(exc.status), method, host).inc()
            raise
        REQUESTS.labels(str(getattr(response, "status", "")), method, host).inc()
        return response

    setattr(rest, "request", limited)  # noqa: B010 - wrapping the instance's method
    return api

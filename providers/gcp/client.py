"""The google-cloud-compute clients the GCP provider uses, with every call counted and operations awaited.

* Every client is built with the same ``ClientOptions`` (``api-endpoint`` from the cloud config) and
  credentials: Application Default Credentials (Workload Identity in a cluster), or anonymous when
  the cloud config says ``token-url = nil``.
* Mutations use the ``*_unary`` methods and wait on operations clients built from the same options:
  the library's own ``ExtendedOperation.result()`` polls the public endpoint even when ``api_endpoint``
  is overridden. Each mutation carries a ``request_id`` so a retried call is applied once.
* 429 and 503 (and 500) are retried with exponential backoff; the library retries neither.
* ``calls`` counts API requests by operation (what the budgets count), and
  ``cloudprovider_gce_api_requests_total{operation}`` exports them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1
from prometheus_client import Counter

from providers.call_counter import CallCounter

logger = logging.getLogger(__name__)

REQUESTS = Counter("cloudprovider_gce_api_requests", "GCE API requests, by operation", ["operation"])
ERRORS = Counter(
    "cloudprovider_gce_api_request_errors", "GCE API requests that failed, by operation", ["operation"]
)
THROTTLES = Counter(
    "cloudprovider_gce_api_throttled_requests", "GCE API requests answered 429", ["operation"]
)

RETRYABLE = (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.InternalServerError)
OPERATION_TIMEOUT = 600.0
READ_VERBS = frozenset({"get", "list", "listInstances", "wait"})


class OperationFailed(RuntimeError):
    """A mutation's operation finished with an error (GCE reports some failures asynchronously).

    ``codes`` are the operation's error codes (``RESOURCE_IN_USE_BY_ANOTHER_RESOURCE``, ``QUOTA_EXCEEDED``…).
    """

    def __init__(self, message: str, *, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.codes = codes


class GCEClients(CallCounter):
    """One client per resource type, sharing options, credentials and the call counter."""

    def __init__(
        self,
        *,
        project: str,
        region: str,
        api_endpoint: str = "",
        anonymous: bool = False,
        credentials: Credentials | None = None,
        retry_deadline: float = 120.0,
    ) -> None:
        self.project = project
        self.region = region
        options = ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None
        if credentials is None and anonymous:
            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        kwargs: dict[str, Any] = {"client_options": options, "credentials": credentials, "transport": "rest"}
        self.forwarding_rules = compute_v1.ForwardingRulesClient(**kwargs)
        self.backend_services = compute_v1.RegionBackendServicesClient(**kwargs)
        self.health_checks = compute_v1.RegionHealthChecksClient(**kwargs)
        self.firewalls = compute_v1.FirewallsClient(**kwargs)
        self.instance_groups = compute_v1.InstanceGroupsClient(**kwargs)
        self.addresses = compute_v1.AddressesClient(**kwargs)
        self.regions = compute_v1.RegionsClient(**kwargs)
        self.region_operations = compute_v1.RegionOperationsClient(**kwargs)
        self.global_operations = compute_v1.GlobalOperationsClient(**kwargs)
        self.zone_operations = compute_v1.ZoneOperationsClient(**kwargs)
        CallCounter.__init__(self)
        self._retry = gretry.Retry(
            predicate=gretry.if_exception_type(*RETRYABLE),
            initial=0.5,
            maximum=10.0,
            multiplier=2.0,
            timeout=retry_deadline,
        )

    # -- counting -----------------------------------------------------------------------------------

    def _count(self, operation: str) -> None:
        self.count_call(operation)
        REQUESTS.labels(operation).inc()

    def mutations(self) -> dict[str, int]:
        """Counted calls that change something (not gets, lists or operation waits)."""
        return {k: v for k, v in self.snapshot().items() if k.rsplit(".", 1)[-1] not in READ_VERBS}

    # -- calls --------------------------------------------------------------------------------------

    def call(self, name: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """A read (or any call) with retries on 429/5xx; ``name`` names it for the counters."""
        attempt = 0

        def once() -> Any:
            nonlocal attempt
            attempt += 1
            self._count(name)
            try:
                return fn(**kwargs)
            except gexc.GoogleAPICallError as exc:
                ERRORS.labels(name).inc()
                if isinstance(exc, gexc.TooManyRequests):
                    THROTTLES.labels(name).inc()
                raise

        return self._retry(once)()

    def list_all(self, name: str, fn: Callable[..., Any], /, **kwargs: Any) -> list[Any]:
        """Every item of a list call, page after page; each page is one counted request.

        The first page is fetched by :meth:`call` (with its retries); the pager fetches the others.
        """
        pager = self.call(name, fn, **kwargs)
        items: list[Any] = []
        for page in pager.pages:
            items.extend(page.items)
            if page.next_page_token:
                self._count(name)  # the pager is about to fetch the next page
        return items

    def mutate(
        self, operation: str, fn: Callable[..., Any], request: Any, *, scope: str, location: str = ""
    ) -> Any:
        """Send a mutation (``request`` gets a request_id) and wait for its operation to finish."""
        if hasattr(request, "request_id") and not request.request_id:
            request.request_id = str(uuid.uuid4())
        op = self.call(operation, fn, request=request)
        return self.wait(op, scope=scope, location=location, operation=operation)

    def wait(self, op: Any, *, scope: str, location: str, operation: str) -> Any:
        deadline = time.monotonic() + OPERATION_TIMEOUT
        # An operation lives in the project of its resource: a shared VPC's firewalls are in the host
        # project, not in self.project.
        project = operation_project(op.self_link, default=self.project)
        while op.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"{operation}: operation {op.name} still not done after {OPERATION_TIMEOUT:.0f}s"
                )
            if scope == "region":
                op = self.call(
                    "regionOperations.wait",
                    self.region_operations.wait,
                    project=project,
                    region=location or self.region,
                    operation=op.name,
                )
            elif scope == "zone":
                op = self.call(
                    "zoneOperations.wait",
                    self.zone_operations.wait,
                    project=project,
                    zone=location,
                    operation=op.name,
                )
            else:
                op = self.call(
                    "globalOperations.wait",
                    self.global_operations.wait,
                    project=project,
                    operation=op.name,
                )
        if op.error and op.error.errors:
            messages = "; ".join(f"{e.code}: {e.message}" for e in op.error.errors)
            status = op.http_error_status_code or 0
            raise OperationFailed(
                f"{operation} failed (HTTP {status}): {op.http_error_message or messages} [{messages}]",
                codes=tuple(str(e.code) for e in op.error.errors),
            )
        return op


def operation_project(self_link: str, *, default: str) -> str:
    """The project in an operation's selfLink (``.../projects/<p>/global/operations/<name>``)."""
    parts = self_link.split("/")
    if "projects" in parts and parts.index("projects") + 1 < len(parts):
        return parts[parts.index("projects") + 1]
    return default

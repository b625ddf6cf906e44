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
* The legacy ``global/httpHealthChecks`` of the upstream provider's target pools have no client in
  google-cloud-compute (reference/gcp-provider.md §0): :class:`LegacyHttpHealthChecks` reads and deletes
  them over REST, on the same endpoint and with the same credentials as the clients.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import google.auth
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import AuthorizedSession
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
DEFAULT_ENDPOINT = "https://compute.googleapis.com"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REST_TIMEOUT = 60.0


@dataclass
class DeleteHttpHealthCheckRequest:
    """``httpHealthChecks.delete``; ``request_id`` makes a retried delete apply once (set by ``mutate``)."""

    project: str
    http_health_check: str
    request_id: str = ""


class LegacyHttpHealthChecks:
    """``global/httpHealthChecks`` over REST (get and delete only: what replacing upstream's LB needs).

    The endpoint is the clients' (``api-endpoint``, ``https://`` when it names no scheme, as
    google-cloud-compute does); the credentials are the clients': anonymous, given, or Application
    Default Credentials, looked up on first use. Errors are google-api-core's exceptions, as the
    clients raise them.
    """

    def __init__(self, *, api_endpoint: str, credentials: Credentials | None) -> None:
        endpoint = api_endpoint or DEFAULT_ENDPOINT
        if "://" not in endpoint:
            endpoint = f"https://{endpoint}"
        self.base = endpoint.rstrip("/") + "/compute/v1"
        self._credentials = credentials
        self._session: AuthorizedSession | None = None
        self._lock = threading.Lock()

    def _http(self) -> AuthorizedSession:
        with self._lock:
            if self._session is None:
                credentials = self._credentials
                if credentials is None:
                    credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
                self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
            return self._session

    def _url(self, project: str, name: str) -> str:
        return f"{self.base}/projects/{project}/global/httpHealthChecks/{name}"

    def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http().request(method, url, timeout=REST_TIMEOUT, **kwargs)  # type: ignore[no-untyped-call]
        if response.status_code >= 400:
            raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]
        return response

    def get(self, *, project: str, http_health_check: str) -> dict[str, Any]:
        """The check as GCE answers it (a JSON object: ``name``, ``port``, ``description``…)."""
        result: dict[str, Any] = self._send("GET", self._url(project, http_health_check)).json()
        return result

    def delete_unary(self, *, request: DeleteHttpHealthCheckRequest) -> compute_v1.Operation:
        params = {"requestId": request.request_id} if request.request_id else {}
        response = self._send("DELETE", self._url(request.project, request.http_health_check), params=params)
        operation: compute_v1.Operation = compute_v1.Operation.from_json(
            response.text, ignore_unknown_fields=True
        )
        return operation


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
        # the upstream provider's parts, read (and deleted when a Service asks to replace them)
        self.target_pools = compute_v1.TargetPoolsClient(**kwargs)
        self.global_health_checks = compute_v1.HealthChecksClient(**kwargs)
        self.http_health_checks = LegacyHttpHealthChecks(api_endpoint=api_endpoint, credentials=credentials)
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

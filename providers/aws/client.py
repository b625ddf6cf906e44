"""The boto3 clients the AWS provider uses, with every call counted.

Standard boto3 configuration only: the credential chain (environment, shared config, IRSA web
identity, instance profile), the region, and ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``
(so tests point the same code at moto). Throttling is retried by botocore's adaptive mode, which
also rate-limits the client when AWS pushes back. Counting uses botocore's event hooks:

* ``calls``: one per API operation the provider issued (what the budgets count);
* ``cloudprovider_aws_api_requests_total{operation}``: one per HTTP attempt, retries included;
* ``cloudprovider_aws_api_request_errors_total{operation}`` and
  ``cloudprovider_aws_api_throttled_requests_total{operation_name}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.parsers
from prometheus_client import Counter

from providers.call_counter import CallCounter

logger = logging.getLogger(__name__)

REQUESTS = Counter("cloudprovider_aws_api_requests", "AWS API requests sent, retries included", ["operation"])
ERRORS = Counter(
    "cloudprovider_aws_api_request_errors", "AWS API requests that returned an error", ["operation"]
)
THROTTLES = Counter(
    "cloudprovider_aws_api_throttled_requests", "AWS API requests that were throttled", ["operation_name"]
)
# The codes botocore's own retry handler takes for throttling (botocore/retries/standard.py,
# ``ThrottlingErrorDetector._THROTTLED_ERROR_CODES``) that ELBv2, EC2 and the tagging API can answer.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottledException",
        "EC2ThrottledException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


@contextmanager
def suppress_codes(*codes: str) -> Iterator[None]:
    """Swallow a ClientError whose AWS error code is one of ``codes`` (a NotFound that means "none")."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in codes:
            raise


MAX_POOL_CONNECTIONS = 50


class AWSClients(CallCounter):
    """elbv2, elb, ec2 and the resource groups tagging API, sharing one session and one call counter."""

    def __init__(self, *, region: str = "", max_attempts: int = 8) -> None:
        session = boto3.session.Session(region_name=region or None)
        config = botocore.config.Config(
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            user_agent_extra="ccm-lb",
            # botocore keeps 10 connections per client: more service workers than that (and the node
            # sync pool) would queue for a connection instead of waiting on AWS side by side
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        self.region = session.region_name or ""
        self.elbv2: Any = session.client("elbv2", config=config)
        # Classic ELB: only to find, and delete when asked, the ones the upstream provider built
        self.elb: Any = session.client("elb", config=config)
        self.ec2: Any = session.client("ec2", config=config)
        self.tagging: Any = session.client("resourcegroupstaggingapi", config=config)
        CallCounter.__init__(self)
        self.max_attempts = max_attempts
        for client in (self.elbv2, self.elb, self.ec2, self.tagging):
            events = client.meta.events
            events.register("before-call.*.*", self._count_call)
            events.register("before-send.*.*", self._count_request)
            events.register("needs-retry.*.*", self._count_outcome)
            events.register("needs-retry.*.*", self._retry_unparseable)

    # -- counting -----------------------------------------------------------------------------------

    def _count_call(self, *, model: Any, **_: Any) -> None:
        self.count_call(model.name)

    def _count_request(self, *, event_name: str, **_: Any) -> None:
        REQUESTS.labels(event_name.rsplit(".", 1)[-1]).inc()

    def _count_outcome(self, *, event_name: str, response: Any = None, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if response is None:
            return
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else {}
        code = str((parsed or {}).get("Error", {}).get("Code", "")) if isinstance(parsed, dict) else ""
        if code:
            ERRORS.labels(operation).inc()
            if code in THROTTLING_CODES:
                THROTTLES.labels(operation).inc()

    def _retry_unparseable(
        self, *, attempts: int, caught_exception: BaseException | None = None, **_: Any
    ) -> float | None:
        """Retry an answer botocore cannot parse ("invalid XML received": a 5xx from a proxy or an
        overloaded endpoint, with an HTML or truncated body), as the upstream Go SDK does and as botocore
        does for the same 5xx with a readable body; within the same attempt budget, with backoff.

        botocore's own retry handlers answer None for a ResponseParserError; this one runs after them.
        """
        if not isinstance(caught_exception, botocore.parsers.ResponseParserError):
            return None
        if attempts >= self.max_attempts:
            return None
        delay: float = min(0.05 * 2.0 ** (attempts - 1), 2.0)
        logger.info(
            "unparseable AWS answer (attempt %d); retrying in %.2fs: %s", attempts, delay, caught_exception
        )
        return delay

    def register(self, event: str, handler: Any) -> None:
        """Register a botocore event handler on every client (tests inject faults this way)."""
        for client in (self.elbv2, self.elb, self.ec2, self.tagging):
            client.meta.events.register(event, handler)

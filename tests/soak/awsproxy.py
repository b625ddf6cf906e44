"""A loopback HTTP proxy in front of moto that makes AWS misbehave on purpose, the way AWS does.

The controller reaches it through ``AWS_ENDPOINT_URL`` exactly as it reaches AWS, so every fault goes
through botocore's real retry code: a throttling answer in each API's own error shape (EC2's
``RequestLimitExceeded`` with 503, ELBv2's ``Throttling`` with 400, the tagging API's JSON
``ThrottlingException``), a 5xx (500 or 503, the API's internal error), latency before the answer, and
connection resets, before the request reaches moto (nothing happened) or after (it happened, but the
answer is lost: the case that tests that every create is idempotent). The soak's own checks go to moto
directly, so only the controller's calls are counted and disturbed.

Where moto is laxer than AWS in a way that matters here, the proxy answers as AWS does, as
:mod:`tests.providers.aws.aws_behaviour` does for the in-process tests (reference/aws-provider.md §5;
the controller is another process here, so botocore hooks cannot reach it):

* ``CreateLoadBalancer`` with the name of an existing load balancer returns that load balancer when the
  scheme and subnets are the same, and ``DuplicateLoadBalancerName`` otherwise (moto makes a second one).
  Source: ELBv2 API reference, CreateLoadBalancer: "This operation is idempotent, which means that it
  completes at most one time. If you attempt to create multiple load balancers with the same settings,
  each call succeeds", and its error ``DuplicateLoadBalancerName``;
* ``CreateListener`` on a port the load balancer already listens on is ``DuplicateListener`` (moto adds
  another). Source: ELBv2 API reference, CreateListener, error ``DuplicateListener`` ("A listener with
  the specified port already exists"), also in botocore's elbv2 service-2.json.

The throttling codes are those botocore's own retry handler treats as throttling
(botocore/retries/standard.py ``_THROTTLED_ERROR_CODES``).

Both are made atomic with the create they guard, as AWS's are.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import random
import socket
import struct
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger(__name__)

GUARDED = ("CreateLoadBalancer", "CreateListener")  # answered as AWS would where moto differs
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)


@dataclass(frozen=True)
class Faults:
    """Probabilities (0 to 1) per request, and the latency added to each one (seconds, a range)."""

    throttle: float = 0.0
    server_error: float = 0.0
    reset_before: float = 0.0
    reset_after: float = 0.0
    latency: tuple[float, float] = (0.0, 0.0)

    @property
    def any(self) -> bool:
        return bool(
            self.throttle or self.server_error or self.reset_before or self.reset_after or self.latency[1]
        )


def service_of(authorization: str) -> str:
    """The signing name of a SigV4 request ("ec2", "elasticloadbalancing", "tagging")."""
    marker = "Credential="
    if marker not in authorization:
        return "?"
    scope = authorization.split(marker, 1)[1].split(",", 1)[0].split("/")
    return scope[3] if len(scope) > 3 else "?"


def action_of(body: bytes, target: str) -> str:
    if target:  # JSON protocol: X-Amz-Target: ResourceGroupsTaggingAPI_20170126.GetResources
        return target.rsplit(".", 1)[-1]
    values = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action")
    return values[0] if values else "?"


def error_answer(service: str, kind: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a throttling or internal error, in the API's own shape."""
    if service == "tagging":
        code = "ThrottlingException" if kind == "throttle" else "InternalServiceException"
        body = f'{{"__type":"{code}","Message":"injected by the soak"}}'.encode()
        return (400 if kind == "throttle" else 500), "application/x-amz-json-1.1", body
    if service == "ec2":
        code = "RequestLimitExceeded" if kind == "throttle" else "InternalError"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
            f"<Code>{code}</Code><Message>injected by the soak</Message></Error></Errors>"
            "<RequestID>soak</RequestID></Response>"
        ).encode()
        return 503 if kind == "throttle" else 500, "text/xml", body
    code, kind_of = ("Throttling", "Sender") if kind == "throttle" else ("ServiceUnavailable", "Receiver")
    body = (
        '<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error>'
        f"<Type>{kind_of}</Type><Code>{code}</Code><Message>injected by the soak</Message></Error>"
        "<RequestId>soak</RequestId></ErrorResponse>"
    ).encode()
    return (400 if kind == "throttle" else 503), "text/xml", body


class FaultProxy:
    """``start()`` → the URL to give the controller; ``set(Faults(...))`` changes what happens next."""

    def __init__(self, *, upstream: str, seed: int = 0) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._faults = Faults()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()  # (service, action) → requests received
        self.injected: Counter[str] = Counter()  # fault kind → times injected
        self._server: ThreadingHTTPServer | None = None
        self._local = threading.local()
        self._creating = threading.Lock()  # AWS's check-and-create is atomic: ours must be too
        self.url = ""

    # -- control ------------------------------------------------------------------------------------

    def set(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def clear(self) -> None:
        self.set(Faults())

    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.requests)

    def start(self) -> str:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_GET(self) -> None:
                proxy._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: object, client_address: object) -> None:
                logger.debug("proxy connection from %s ended badly", client_address, exc_info=True)

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="aws-fault-proxy", daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- one request --------------------------------------------------------------------------------

    def _draw(self) -> tuple[str, float]:
        """The fault for this request ("" for none) and the latency to add."""
        with self._lock:
            f, rng = self._faults, self._rng
            latency = rng.uniform(*f.latency) if f.latency[1] else 0.0
            roll = rng.random()
            for kind, p in (
                ("throttle", f.throttle),
                ("server-error", f.server_error),
                ("reset-before", f.reset_before),
                ("reset-after", f.reset_after),
            ):
                if roll < p:
                    self.injected[kind] += 1
                    return kind, latency
                roll -= p
            if latency:
                self.injected["latency"] += 1
            return "", latency

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self.upstream, timeout=60)
            self._local.conn = conn
        return conn

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> http.client.HTTPResponse:
        for attempt in range(2):  # a pooled connection moto closed meanwhile: once more on a new one
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                return conn.getresponse()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _as_aws(
        self, handler: BaseHTTPRequestHandler, service: str, action: str, body: bytes
    ) -> tuple[int, str, bytes] | None:
        """AWS's own answer where moto's would differ (see the module docstring); None to forward."""
        if service != "elasticloadbalancing" or action not in GUARDED:
            return None
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        version = params.get("Version", "2015-12-01")

        def ask(query: dict[str, str]) -> tuple[ET.Element, bytes] | tuple[None, bytes]:
            data = urllib.parse.urlencode({**query, "Version": version}).encode()
            sized = {**headers, "Content-Length": str(len(data))}
            response = self._forward("POST", handler.path, sized, data)
            answer = response.read()
            return (ET.fromstring(answer), answer) if response.status == 200 else (None, answer)

        if action == "CreateLoadBalancer":
            found, raw = ask({"Action": "DescribeLoadBalancers", "Names.member.1": params.get("Name", "")})
            members = [] if found is None else [e for e in found.iter() if _local(e) == "member"]
            lb = next((m for m in members if any(_local(c) == "LoadBalancerArn" for c in m)), None)
            if found is None or lb is None:
                return None
            scheme = next((c.text for c in lb if _local(c) == "Scheme"), "internet-facing")
            have = sorted(e.text or "" for e in lb.iter() if _local(e) == "SubnetId")
            want = sorted(
                v
                for k, v in params.items()
                if (k.startswith("SubnetMappings.member.") and k.endswith(".SubnetId"))
                or k.startswith("Subnets.member.")
            )
            if scheme != params.get("Scheme", "internet-facing") or have != want:
                return _sender_error("DuplicateLoadBalancerName", "A load balancer with the same name exists")
            with self._lock:
                self.injected["aws-idempotent-create"] += 1
            text = raw.decode()  # the same LoadBalancers list, as a create's answer
            text = text.replace("DescribeLoadBalancersResponse", "CreateLoadBalancerResponse")
            text = text.replace("DescribeLoadBalancersResult", "CreateLoadBalancerResult")
            return 200, "text/xml", text.encode()
        found, _raw = ask(
            {"Action": "DescribeListeners", "LoadBalancerArn": params.get("LoadBalancerArn", "")}
        )
        ports = [] if found is None else [e.text for e in found.iter() if _local(e) == "Port"]
        if params.get("Port") in ports:
            return _sender_error(
                "DuplicateListener", "A listener already exists on this port for this load balancer"
            )
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        service = service_of(handler.headers.get("Authorization", ""))
        action = action_of(body, handler.headers.get("X-Amz-Target", ""))
        with self._lock:
            self.requests[(service, action)] += 1
        kind, latency = self._draw()
        if latency:
            time.sleep(latency)
        if kind == "reset-before":
            _reset(handler)
            return
        if kind in ("throttle", "server-error"):
            status, content_type, answer = error_answer(
                service, "throttle" if kind == "throttle" else "error"
            )
            _answer(handler, status, [("Content-Type", content_type)], answer)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        guarded = service == "elasticloadbalancing" and action in GUARDED
        try:
            with self._creating if guarded else contextlib.nullcontext():
                aws = self._as_aws(handler, service, action, body)
                if aws is None:
                    response = self._forward(handler.command, handler.path, headers, body)
                    data = response.read()
        except (OSError, http.client.HTTPException, ET.ParseError) as exc:
            logger.warning("moto did not answer %s %s: %s", service, action, exc)
            _reset(handler)
            return
        if kind == "reset-after":  # done (or found done), and the controller never hears so
            _reset(handler)
            return
        if aws is not None:
            _answer(handler, aws[0], [("Content-Type", aws[1])], aws[2])
            return
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        _answer(handler, response.status, kept, data)


def _local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _sender_error(code: str, message: str) -> tuple[int, str, bytes]:
    body = (
        '<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>soak</RequestId></ErrorResponse>"
    ).encode()
    return 400, "text/xml", body


def _answer(
    handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    handler.send_response(status)
    for key, value in headers:
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    with contextlib.suppress(OSError):
        handler.wfile.write(body)


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0): 'connection reset by peer'."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()

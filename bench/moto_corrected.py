"""moto's HTTP server for the side-by-side benchmark: moto gaps corrected, and every call counted.

Run as its own process by ``bench/side_by_side.py`` (one fresh server per side), so its CPU is not the
benchmark's and both controllers meet the same server:

    .venv/bin/python bench/moto_corrected.py --port 5000

**Corrections** (made on moto's models in this process; site-packages is not touched). They apply to
both sides alike. Two skew the upstream aws-cloud-controller-manager on every sync, and the third
changes what it leaves behind:

* everything :mod:`sandbox.moto_corrections` corrects for every moto of this project, with its sources:
  the DNS names of NLBs (moto gives them the Classic pattern ``<name>-1.<region>.elb.amazonaws.com``,
  which upstream's ``validateServiceAnnotations`` reads as a Classic ELB, refusing every re-sync of an
  NLB Service) and of Classic ELBs, the default health check AWS gives a new Classic ELB (without it
  upstream dereferences the missing ``HealthCheck`` in ``ensureLoadBalancerHealthCheck`` and panics),
  Classic ELBs in the tagging API, listener instance protocols, backend policies, several listeners
  deleted at once and the tag quota;
* ``SslPolicy`` of plain listeners. moto gives every listener created without one
  ``ELBSecurityPolicy-2016-08``; AWS gives a TCP, UDP or TCP_UDP listener none. Source: the ELBv2 API
  reference has ``SslPolicy`` for "[HTTPS and TLS listeners]" only (CreateListener, ModifyListener;
  the ``Listener`` it returns: "[HTTPS or TLS listener]"),
  https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateListener.html, the
  same text in boto/botocore ``botocore/data/elbv2/2015-12-01/service-2.json``; the AWS CLI example's
  output of a TCP (and of an HTTP) listener has no ``SslPolicy``, that of the HTTPS one has (aws/aws-cli
  ``awscli/examples/elbv2/create-listener.rst`` at 2d1a9166; later versions dropped the outputs).
  Upstream sees a TCP listener with an SSL policy as drifted (kubernetes/cloud-provider-aws v1.37.1
  ``pkg/providers/v1/aws_loadbalancer.go``: for ``ProtocolEnumTcp``, ``SslPolicy != ""`` means
  ``listenerNeedsModification``) and sends ``ModifyListener`` for it on every sync, which moto
  (``SslPolicy`` absent = unchanged) never clears. Listeners that are neither HTTPS nor TLS lose it
  after ``CreateListener`` and ``ModifyListener``.

* the scheme of a load balancer created without one. AWS makes it internet-facing and says so
  (ELBv2 API reference, CreateLoadBalancer ``Scheme``: "The default is an Internet-facing load
  balancer"); moto stores and describes none. Upstream creates its NLBs without a scheme.

Three more, which matter only when a create is sent twice (an SDK retry of a request moto had already
carried out; seen once in ~1,400 calls of upstream): AWS answers a repeated ``CreateLoadBalancer``,
``CreateTargetGroup`` or ``CreateListener`` with the same settings with the existing resource ("This
operation is idempotent ... If you attempt to create multiple ... with the same settings, each call
succeeds", ELBv2 API reference), where moto makes a second load balancer or listener, or answers
``DuplicateTargetGroupName``; and ``DescribeTargetGroups(LoadBalancerArn)`` of a load balancer without
target groups is an empty list, where moto answers ``TargetGroupNotFound``. That last one is unverified:
the API reference lists ``TargetGroupNotFound`` among the call's errors without saying when
(https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DescribeTargetGroups.html),
and no public test, fixture or issue found shows AWS's answer for this case. It is what upstream
assumes (kubernetes/cloud-provider-aws v1.37.1): both its sync
(``pkg/providers/v1/aws_loadbalancer.go``) and its delete (``pkg/providers/v1/aws.go``,
``EnsureLoadBalancerDeleted``) treat every error of this call as a failure, so on moto's answer
upstream never recovers from such a retry (its next syncs fail on ``TargetGroupNotFound`` forever).
Each time one of these three applies, it is counted under ``repeats`` and logged.

**Counting.** A WSGI middleware in front of moto records every request that is not the benchmark's own:
its operation (``elbv2:CreateTargetGroup``, ``ec2:DescribeInstances``, ``tagging:GetResources``), the
HTTP status of the errors (>= 400; each is also logged on stderr) and the time of the last request.
Requests signed with the access key ``SEED_ACCESS_KEY`` are the benchmark seeding or reading the
account and are not counted. ``GET /_bench/calls`` answers the counts as JSON (it is not passed to
moto). Each HTTP request counts once, so SDK retries count as calls, the same way for both controllers.
``--access-log FILE`` also writes one line per counted request (start, duration, client port,
operation, status).
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import logging
import re
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs

logger = logging.getLogger("moto_corrected")
SEED_ACCESS_KEY = "benchseed"  # the benchmark's own requests are signed with this key (not counted)
CALLS_PATH = "/_bench/calls"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/")
_OPERATION_PATH = re.compile(r"/operation/([A-Za-z0-9]+)")
_SERVICE_NAMES = {"elasticloadbalancing": "elb", "tagging": "tagging", "ec2": "ec2"}
ELBV2_VERSION = "2015-12-01"  # the API version of ELBv2; ELB (classic) is 2012-06-01, both signed alike
NOT_TLS = frozenset({"TCP", "UDP", "TCP_UDP", "HTTP"})

StartResponse = Callable[..., Any]
Wsgi = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


REPEATS: dict[str, int] = {}  # which of the idempotency corrections applied, how often


def _repeat(kind: str, name: str) -> None:
    REPEATS[kind] = REPEATS.get(kind, 0) + 1
    logger.info("%s %s repeated with the same settings: answered with the existing one", kind, name)


def _bound(function: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The arguments of a call by name, without ``self`` (moto calls its backend both ways)."""
    arguments = dict(inspect.signature(function).bind(self, *args, **kwargs).arguments)
    arguments.pop("self")
    return arguments


def correct_moto() -> None:
    """Patch moto's models in this process (see the module docstring): first what every moto of this
    project gets (:mod:`sandbox.moto_corrections`), then what only the benchmark needs."""
    from sandbox.moto_corrections import correct_moto as like_aws  # noqa: PLC0415 - imports moto

    like_aws()
    from moto.elbv2 import exceptions  # noqa: PLC0415 - moto takes a second to import
    from moto.elbv2.models import ELBv2Backend  # noqa: PLC0415

    create_load_balancer = ELBv2Backend.create_load_balancer
    create_target_group = ELBv2Backend.create_target_group
    create_listener = ELBv2Backend.create_listener
    modify_listener = ELBv2Backend.modify_listener
    describe_target_groups = ELBv2Backend.describe_target_groups

    def create_lb(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs = _bound(create_load_balancer, self, *args, **kwargs)
        name = kwargs["name"]
        existing = next((lb for lb in self.load_balancers.values() if lb.name == name), None)
        if existing is not None:
            subnets = list(kwargs.get("subnet_ids") or [])
            subnets += [m["SubnetId"] for m in kwargs.get("subnet_mappings") or []]
            same = (
                (existing.scheme or "internet-facing") == (kwargs.get("scheme") or "internet-facing")
                and existing.type == (kwargs.get("loadbalancer_type") or "application")
                and sorted(s.id for s in existing.subnets) == sorted(subnets)
            )
            if not same:
                raise exceptions.DuplicateLoadBalancerName()
            _repeat("CreateLoadBalancer", name)
            return existing
        balancer = create_load_balancer(self, **kwargs)
        if not balancer.scheme:
            balancer.scheme = "internet-facing"
        return balancer

    def create_tg(self: Any, name: str, **kwargs: Any) -> Any:
        existing = next((tg for tg in self.target_groups.values() if tg.name == name), None)
        if existing is not None and (
            str(existing.protocol),
            str(existing.port),
            existing.vpc_id,
            existing.target_type,
        ) == (
            str(kwargs.get("protocol")),
            str(kwargs.get("port")),
            kwargs.get("vpc_id"),
            kwargs.get("target_type") or "instance",
        ):
            _repeat("CreateTargetGroup", name)
            return existing
        return create_target_group(self, name, **kwargs)

    def no_ssl_policy(listener: Any) -> Any:
        if listener.protocol in NOT_TLS:
            listener.ssl_policy = None
        return listener

    def create_l(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs = _bound(create_listener, self, *args, **kwargs)
        balancer = self.load_balancers.get(kwargs["load_balancer_arn"])
        port = str(kwargs["port"])
        for listener in balancer.listeners.values() if balancer is not None else ():
            if str(listener.port) != port:
                continue
            if listener.protocol != str(kwargs.get("protocol") or "").upper() or [
                a.data for a in listener.default_actions
            ] != list(kwargs.get("actions") or []):
                raise exceptions.DuplicateListenerError()
            _repeat("CreateListener", f"{balancer.name}:{port}")
            return listener
        return no_ssl_policy(create_listener(self, **kwargs))

    def modify_l(self: Any, *args: Any, **kwargs: Any) -> Any:
        return no_ssl_policy(modify_listener(self, *args, **kwargs))

    def describe_tgs(self: Any, load_balancer_arn: str | None, *args: Any, **kwargs: Any) -> Any:
        tgs = self.target_groups.values()
        if load_balancer_arn in self.load_balancers and not any(
            load_balancer_arn in tg.load_balancer_arns for tg in tgs
        ):
            return []
        return describe_target_groups(self, load_balancer_arn, *args, **kwargs)

    setattr(ELBv2Backend, "create_load_balancer", create_lb)  # noqa: B010
    setattr(ELBv2Backend, "create_target_group", create_tg)  # noqa: B010
    setattr(ELBv2Backend, "create_listener", create_l)  # noqa: B010
    setattr(ELBv2Backend, "modify_listener", modify_l)  # noqa: B010
    setattr(ELBv2Backend, "describe_target_groups", describe_tgs)  # noqa: B010


class CallCounter:
    """WSGI middleware: count the controller's requests by operation, then hand them to moto."""

    def __init__(self, app: Wsgi, *, access_log: TextIO | None = None) -> None:
        self.app = app
        self.access_log = access_log  # one line per counted request, when given
        self.calls: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.total = 0
        self.last = 0.0  # time.time() of the last counted request's answer
        self.in_flight = 0  # counted requests not answered yet
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "errors": dict(self.errors),
                "total": self.total,
                # a request still being answered is activity now: moto took 5.8 s over one
                # DescribeSecurityGroups among 1,000 groups, and a restart was taken as converged
                # 5 s after the answer before it, with its 5,000 calls still to come
                "last": time.time() if self.in_flight else self.last,
                "now": time.time(),
                "repeats": dict(REPEATS),
            }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == CALLS_PATH:
            body = json.dumps(self.snapshot()).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if credential is None or credential.group(1) == SEED_ACCESS_KEY:
            return self.app(environ, start_response)  # unsigned (moto-api) or the benchmark's own
        operation = self._operation(environ, credential.group(2))
        status: list[int] = []
        started = time.time()
        with self._lock:
            self.in_flight += 1

        def record(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(int(status_line.split(maxsplit=1)[0]))
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, record)
        finally:
            code = status[0] if status else 500
            with self._lock:
                self.in_flight -= 1
                self.total += 1
                self.calls[operation] = self.calls.get(operation, 0) + 1
                if code >= 400:
                    key = f"{operation} {code}"
                    self.errors[key] = self.errors.get(key, 0) + 1
                self.last = time.time()
                if self.access_log is not None:
                    self.access_log.write(
                        f"{started:.3f} {1000 * (self.last - started):7.1f}ms "
                        f"{environ.get('REMOTE_PORT', '-')} {operation} {code}\n"
                    )
            if code >= 400:
                logger.info("%s answered %d", operation, code)

    @staticmethod
    def _operation(environ: dict[str, Any], signing_name: str) -> str:
        """``service:Operation`` of a query (Action=...), JSON (X-Amz-Target) or RPC-v2 request."""
        service = _SERVICE_NAMES.get(signing_name, signing_name)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            return f"{service}:{target.rsplit('.', 1)[-1]}"
        match = _OPERATION_PATH.search(environ.get("PATH_INFO", ""))
        if match:
            return f"{service}:{match.group(1)}"
        params = parse_qs(environ.get("QUERY_STRING", ""))
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            size = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(size) if size else b""
            environ["wsgi.input"] = io.BytesIO(raw)  # moto reads it again
            params.update(parse_qs(raw.decode("utf-8", errors="replace")))
        action = (params.get("Action") or ["?"])[0]
        if service == "elb" and (params.get("Version") or [""])[0] == ELBV2_VERSION:
            service = "elbv2"
        return f"{service}:{action}"


def serve(
    *, host: str, port: int, corrected: bool, access_log: TextIO | None, ready: Callable[[int], None]
) -> None:
    """moto's application behind :class:`CallCounter`, on werkzeug's threaded server, until SIGTERM."""
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - moto takes a second to import
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if corrected:
        correct_moto()
    app = CallCounter(DomainDispatcherApplication(create_backend_app), access_log=access_log)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(_signum: int, _frame: types.FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready(int(server.server_port))
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port, printed on stdout")
    parser.add_argument(
        "--no-corrections",
        dest="corrected",
        action="store_false",
        help="plain moto (to see what the corrections change); calls are still counted",
    )
    parser.add_argument(
        "--access-log",
        type=Path,
        default=None,
        help="write one line per counted request here: start time, duration, client port, operation, status",
    )
    args = parser.parse_args(argv)

    def ready(port: int) -> None:
        sys.stdout.write(f"listening on http://{args.host}:{port}\n")
        sys.stdout.flush()

    if args.access_log is None:
        serve(host=args.host, port=args.port, corrected=args.corrected, access_log=None, ready=ready)
    else:
        with open(args.access_log, "a", encoding="utf-8", buffering=1) as access_log:
            serve(
                host=args.host, port=args.port, corrected=args.corrected, access_log=access_log, ready=ready
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

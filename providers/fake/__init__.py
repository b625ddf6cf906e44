"""An in-memory provider: the controller's test double and ``--cloud-provider=fake`` for local work.

Like upstream ``cloud-provider/fake``, it records every call. It can also be told to fail, throttle
(``RetryAfter``) or be slow for a given Service, and it hands out deterministic addresses, so a test
can assert exactly what the controller asked the cloud to do.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from ccm.cloudprovider import (
    ImplementedElsewhere,
    IngressPoint,
    InvalidSpec,
    LoadBalancerRequest,
    LoadBalancerStatus,
    RetryAfter,
)
from providers.common.orphans import OrphanClock

logger = logging.getLogger(__name__)

SUPPORTED_PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class Call:
    """One recorded call: the method name, the Service key and the node names it was given."""

    method: str
    key: str
    nodes: tuple[str, ...] = ()


@dataclass
class FakeLoadBalancer:
    name: str
    request: LoadBalancerRequest
    status: LoadBalancerStatus


@dataclass
class _Fault:
    error: Exception | None = None
    times: int | None = None  # None: every call
    delay: float = 0.0


@dataclass
class FakeCloud:
    """The in-memory cloud. Thread-safe; the controller's workers call it concurrently."""

    cluster_name: str = "kubernetes"
    hostname_suffix: str = "lb.fake.invalid"  # DEFAULT_HOSTNAME_SUFFIX
    calls: deque[Call] = field(default_factory=lambda: deque(maxlen=100_000))  # bounded for long runs
    balancers: dict[str, FakeLoadBalancer] = field(default_factory=dict)
    load_balancer_class: str = ""  # the instance's scope; one FakeCloud is one scope's cloud
    orphan_grace_seconds: float = 0.0
    _orphans: OrphanClock = field(default_factory=lambda: OrphanClock(grace=0.0))
    _faults: dict[tuple[str, str], _Fault] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- test controls ----------------------------------------------------------------------------

    def fail(
        self, *, key: str, method: str = "*", error: Exception | None = None, times: int | None = None
    ) -> None:
        """Make ``method`` (or every method) raise ``error`` for Service ``key``, ``times`` times."""
        with self._lock:
            self._faults[(key, method)] = _Fault(
                error=error or RuntimeError(f"injected failure for {key}"), times=times
            )

    def throttle(self, *, key: str, seconds: float, method: str = "*", times: int | None = None) -> None:
        """Make calls for ``key`` raise :class:`RetryAfter` (the cloud is throttling or provisioning)."""
        self.fail(key=key, method=method, error=RetryAfter(f"throttled: {key}", seconds=seconds), times=times)

    def slow(self, *, key: str, seconds: float, method: str = "*") -> None:
        """Make calls for ``key`` take ``seconds`` longer."""
        with self._lock:
            self._faults[(key, method)] = _Fault(delay=seconds)

    def heal(self, *, key: str | None = None) -> None:
        """Remove injected faults for ``key`` (or all)."""
        with self._lock:
            for fault_key in [k for k in self._faults if key is None or k[0] == key]:
                del self._faults[fault_key]

    def forget(self, *, key: str) -> None:
        """Lose a load balancer out of band (someone deleted it in the console)."""
        with self._lock:
            self.balancers.pop(key, None)

    def calls_for(self, *, key: str | None = None, method: str | None = None) -> list[Call]:
        with self._lock:
            return [
                c
                for c in self.calls
                if (key is None or c.key == key) and (method is None or c.method == method)
            ]

    def clear_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- the contract -----------------------------------------------------------------------------

    def _enter(self, method: str, request: LoadBalancerRequest) -> None:
        key = request.key
        with self._lock:
            self.calls.append(Call(method=method, key=key, nodes=tuple(n.name for n in request.nodes)))
            fault = self._faults.get((key, method)) or self._faults.get((key, "*"))
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults = {k: v for k, v in self._faults.items() if v is not fault}
        if fault is None:
            return
        if fault.delay:
            time.sleep(fault.delay)
        if fault.error is not None:
            raise fault.error

    def get_load_balancer_name(self, *, request: LoadBalancerRequest) -> str:
        return ("a" + request.uid.replace("-", ""))[:32]

    def _status(self, request: LoadBalancerRequest) -> LoadBalancerStatus:
        digest = hashlib.sha256(f"{self.cluster_name}/{request.uid}".encode()).digest()
        ip = f"192.0.2.{1 + digest[0] % 254}"  # TEST-NET-1: never routable
        hostname = f"{self.get_load_balancer_name(request=request)}.{self.hostname_suffix}"
        if request.annotations.get("fake.ccm.io/address-type", "hostname") == "ip":
            return LoadBalancerStatus(ingress=(IngressPoint(ip=ip),))
        return LoadBalancerStatus(ingress=(IngressPoint(hostname=hostname),))

    def get_load_balancer(self, *, request: LoadBalancerRequest) -> tuple[LoadBalancerStatus | None, bool]:
        self._enter("get_load_balancer", request)
        with self._lock:
            lb = self.balancers.get(request.key)
        return (lb.status, True) if lb is not None else (None, False)

    def ensure_load_balancer(self, *, request: LoadBalancerRequest) -> LoadBalancerStatus:
        self._enter("ensure_load_balancer", request)
        if request.annotations.get("fake.ccm.io/implemented-elsewhere") == "true":
            raise ImplementedElsewhere("fake.ccm.io/implemented-elsewhere=true")
        for index, port in enumerate(request.ports):
            if port.protocol not in SUPPORTED_PROTOCOLS:
                raise InvalidSpec(
                    field=f"spec.ports[{index}].protocol",
                    value=port.protocol,
                    accepted=", ".join(SUPPORTED_PROTOCOLS),
                )
        status = self._status(request)
        with self._lock:
            self.balancers[request.key] = FakeLoadBalancer(
                name=self.get_load_balancer_name(request=request), request=request, status=status
            )
        return status

    def update_load_balancer(self, *, request: LoadBalancerRequest) -> None:
        self._enter("update_load_balancer", request)
        if request.annotations.get("fake.ccm.io/implemented-elsewhere") == "true":
            raise ImplementedElsewhere("fake.ccm.io/implemented-elsewhere=true")
        with self._lock:
            lb = self.balancers.get(request.key)
            if lb is None:
                raise RuntimeError(f"load balancer for {request.key} does not exist")
            lb.request = lb.request.with_nodes(request.nodes)

    def ensure_load_balancer_deleted(self, *, request: LoadBalancerRequest) -> None:
        self._enter("ensure_load_balancer_deleted", request)
        with self._lock:
            self.balancers.pop(request.key, None)

    def drifted_load_balancers(
        self, *, requests: Sequence[LoadBalancerRequest], live_uids: frozenset[str] | None = None
    ) -> frozenset[str]:
        """One 'listing' call for all Services: missing or changed LBs are drifted.

        The sweep follows the contract: a load balancer whose Service UID is not in ``live_uids`` is
        deleted once it has been an orphan for ``orphan_grace_seconds``; nothing is swept without
        ``live_uids``.
        """
        with self._lock:
            self.calls.append(Call(method="drifted_load_balancers", key="*"))
            wanted = {r.key: r for r in requests}
            if live_uids is not None:
                live = live_uids | {r.uid for r in requests}
                now = time.monotonic()
                orphans = [k for k, lb in self.balancers.items() if lb.request.uid not in live]
                self._orphans.grace = self.orphan_grace_seconds
                for key in self._orphans.observe(orphans, now=now):
                    logger.info("fake: deleting orphaned load balancer of %s", key)
                    del self.balancers[key]
                    self._orphans.forget(key)
            return frozenset(
                key
                for key, request in wanted.items()
                if key not in self.balancers or self.balancers[key].request != request
            )


def new(
    *,
    cluster_name: str,
    cloud_config: str | None = None,
    load_balancer_class: str = "",
    orphan_grace_seconds: float = 600.0,
) -> FakeCloud:
    """Entry point for ``--cloud-provider=fake``.

    ``cloud_config`` is optional: a gcfg/INI file as upstream providers read, of which only
    ``[Global] hostname-suffix`` (default ``lb.fake.invalid``) is used, so that two processes can be
    told apart by the hostnames they write. An unreadable or malformed file raises ``ValueError``
    naming the file and the problem, on one line.
    """
    suffix = DEFAULT_HOSTNAME_SUFFIX
    if cloud_config:
        suffix = _read_config(cloud_config).get("hostname-suffix", suffix)
    return FakeCloud(
        cluster_name=cluster_name,
        hostname_suffix=suffix,
        load_balancer_class=load_balancer_class,
        orphan_grace_seconds=orphan_grace_seconds,
    )


DEFAULT_HOSTNAME_SUFFIX = "lb.fake.invalid"
_KNOWN_KEYS = ("hostname-suffix",)
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _read_config(path: str) -> dict[str, str]:
    """``[Global]`` of a gcfg file (section and key names are case-insensitive there, as in gcfg)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ValueError(f"--cloud-config={path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--cloud-config={path}: not UTF-8 text") from None
    parser = configparser.ConfigParser(
        interpolation=None, comment_prefixes=("#", ";"), inline_comment_prefixes=("#", ";"), strict=True
    )
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as exc:
        raise ValueError(
            f"--cloud-config={path}: line {exc.lineno}: expected a section header such as [Global]"
        ) from None
    except configparser.ParsingError as exc:
        lineno = exc.errors[0][0]
        line = text.splitlines()[lineno - 1].strip()
        raise ValueError(
            f"--cloud-config={path}: line {lineno}: expected key = value, got {line!r}"
        ) from None
    except configparser.Error as exc:
        raise ValueError(f"--cloud-config={path}: {' '.join(str(exc).split())}") from None
    values: dict[str, str] = {}
    for section in parser.sections():
        if section.lower() != "global":
            logger.warning("fake: --cloud-config=%s: section [%s] is ignored", path, section)
            continue
        for key, raw in parser.items(section):
            if key not in _KNOWN_KEYS:
                logger.warning("fake: --cloud-config=%s: [%s] %s is ignored", path, section, key)
                continue
            value = raw.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            values[key] = value
    suffix = values.get("hostname-suffix")
    if suffix is not None and (len(suffix) > 200 or not _DNS_SUBDOMAIN.fullmatch(suffix)):
        raise ValueError(
            f"--cloud-config={path}: [Global] hostname-suffix={suffix!r}: "
            "accepted: a lowercase DNS name such as lb.example.invalid"
        )
    return values

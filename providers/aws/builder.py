"""Build the desired AWS resources of one Service: request + config + network facts → :class:`Stack`.

Why a pure function: every decision the provider makes about a Service (names, subnets, listeners,
health checks, security-group rules, tags) happens here, without one AWS call, so it is tested with
golden JSON and a malformed Service is rejected with :class:`InvalidSpec` before anything is
created. The deployer then only compares this model with what AWS has.

Naming follows the aws-load-balancer-controller: ``k8s-<ns:8>-<name:8>-<hash10>``, where the hash
covers the cluster, so two clusters in one account never share a name, and the Service UID, so a
re-created Service gets new resources. A target group's hash also covers everything AWS cannot
change on an existing target group (protocol, port, target type), so such a change yields a new
name and the deployer replaces the group instead of failing to modify it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ccm.cloudprovider import ImplementedElsewhere, InvalidSpec, LoadBalancerRequest, Node, source_ranges
from providers.aws import annotations as ann
from providers.aws.config import AWSConfig
from providers.aws.model import (
    OWNED,
    RESOURCE_FRONTEND_SG,
    RESOURCE_LOAD_BALANCER,
    RESOURCE_TAG,
    SCOPE_TAG,
    SERVICE_NAME_TAG,
    SERVICE_UID_TAG,
    SPEC_HASH_TAG,
    TARGET_GROUP_PREFIX,
    ClusterInfo,
    HealthCheck,
    Listener,
    LoadBalancer,
    Rule,
    SecurityGroup,
    Stack,
    Subnet,
    SubnetMapping,
    Tags,
    TargetGroup,
    cluster_tag,
)
from providers.common import names

LISTENER_PREFIX: Final = "listener:"  # + "<port>": the ccm-lb/resource tag of a listener
TARGET_TYPE_INSTANCE: Final = "instance"
MAX_LISTENERS: Final = 50  # NLB quota: listeners per load balancer
MAX_TAGS: Final = 50  # per AWS resource
MAX_NAME: Final = 32  # LB and target-group names
MAX_SG_NAME: Final = 255

ROLE_ELB_TAG: Final = "kubernetes.io/role/elb"
ROLE_INTERNAL_ELB_TAG: Final = "kubernetes.io/role/internal-elb"
CLUSTER_TAG_PREFIX: Final = "kubernetes.io/cluster/"
LEGACY_CLUSTER_TAG: Final = "KubernetesCluster"
NAME_TAG: Final = "Name"
RESERVED_TAG_PREFIXES: Final = ("aws:", CLUSTER_TAG_PREFIX, "ccm-lb/")
RESERVED_TAG_KEYS: Final = frozenset({SERVICE_NAME_TAG, SERVICE_UID_TAG, RESOURCE_TAG, SPEC_HASH_TAG})

SCHEME_INTERNET_FACING: Final = "internet-facing"
SCHEME_INTERNAL: Final = "internal"
TCP_IDLE_TIMEOUT: Final = "tcp.idle_timeout.seconds"  # the NLB TCP listener attribute
_SUCCESS_CODE_RANGE: Final = (200, 599)  # botocore elbv2 Matcher.HttpCode: NLB values 200 to 599

_CLASSIC_TYPES: Final = frozenset({"classic", "clb", "elb"})
_ELSEWHERE_TYPES: Final = frozenset({"external", "nlb-ip"})
_INSTANCE_ID: Final = re.compile(r"i-[0-9a-f]+")
_CERT_ARN: Final = re.compile(
    r"arn:aws(?:-[a-z]+)*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+"
    r"|arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:server-certificate/[\w+=,.@/-]+"
)
_SSL_POLICY: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SG_ID: Final = re.compile(r"sg-[0-9a-f]+")
_EIP_ID: Final = re.compile(r"eipalloc-[0-9a-f]+")
_BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TAG_CHARS: Final = re.compile(r"[\w\s.:/=+\-@]*")
_MAX_TAG_KEY: Final = 128
_MAX_TAG_VALUE: Final = 256

# Health-check defaults: (interval, healthy threshold, unhealthy threshold); the timeout follows the
# protocol (AWS's own defaults: 10 s for TCP, 6 s for HTTP(S)).
_HC_CLUSTER: Final = (10, 3, 3)
_HC_LOCAL: Final = (10, 2, 2)
_TIMEOUT_TCP: Final = 10
_TIMEOUT_HTTP: Final = 6
TRAFFIC_PORT: Final = "traffic-port"


# -- names --------------------------------------------------------------------------------------------


def _hash10(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:10]


def _sanitise(value: str, *, limit: int) -> str:
    return names.sanitise(value, limit=limit, order=names.Order.CUT_THEN_COLLAPSE)


def _name(*, namespace: str, name: str, digest: str, limit: int) -> str:
    parts = ["k8s", _sanitise(namespace, limit=limit), _sanitise(name, limit=limit), digest]
    return "-".join(p for p in parts if p)


def load_balancer_name(
    *, cluster_name: str, namespace: str, name: str, uid: str, internal: bool = False
) -> str:
    """``k8s-<ns:8>-<name:8>-<hash10>`` (≤ 32 characters), unique per cluster, Service UID and scheme.

    The scheme is in the hash (only for internal NLBs, so the names of existing internet-facing ones
    stay), because a scheme change replaces the NLB and the new one is made before the old one is
    deleted, as the AWS Load Balancer Controller does: the two must not share a name.
    """
    digest = _hash10(cluster_name, namespace, name, uid, *(["internal"] if internal else []))
    return _name(namespace=namespace, name=name, digest=digest, limit=8)


def is_internal(annotations: Mapping[str, str]) -> bool:
    """The scheme the annotations ask for; internet-facing when they cannot be read."""
    try:
        return _internal(annotations)
    except InvalidSpec:
        return False


def target_group_name(
    *,
    cluster_name: str,
    namespace: str,
    name: str,
    uid: str,
    port: int,
    protocol: str,
    node_port: int,
    target_type: str = TARGET_TYPE_INSTANCE,
) -> str:
    """``k8s-<ns:8>-<name:8>-<hash10>`` (≤ 32 characters); the hash covers what AWS cannot modify.

    ``port`` is the Service (listener) port, ``protocol`` the target group's protocol, ``node_port``
    its target port: changing any of them (or the target type) gives a new name.
    """
    digest = _hash10(cluster_name, namespace, name, uid, port, protocol, node_port, target_type)
    return _name(namespace=namespace, name=name, digest=digest, limit=8)


def frontend_security_group_name(*, cluster_name: str, namespace: str, name: str, uid: str) -> str:
    """``k8s-<ns>-<name>-<hash10>`` (≤ 255 characters), the managed frontend security group's name."""
    digest = _hash10(cluster_name, namespace, name, uid)
    return _name(namespace=namespace, name=name, digest=digest, limit=120)[:MAX_SG_NAME]


def instance_id(provider_id: str) -> str:
    """The EC2 instance ID of a node's ``spec.providerID``.

    Accepts ``aws:///<zone>/i-…``, ``aws:////i-…`` and a bare ``i-…`` (as upstream's
    ``MapToAWSInstanceID``). Raises :class:`ValueError` for anything else (an empty ID, another
    cloud, a Fargate pseudo-node).
    """
    value = provider_id.strip()
    if value.startswith("aws://"):
        tokens = value.removeprefix("aws://").strip("/").split("/")
        if len(tokens) not in (1, 2):
            raise ValueError(f"not an AWS instance providerID: {provider_id!r}")
        value = tokens[-1]
    elif "://" in value:
        raise ValueError(f"not an AWS providerID: {provider_id!r}")
    if not _INSTANCE_ID.fullmatch(value):
        raise ValueError(f"not an AWS instance providerID: {provider_id!r}")
    return value


# -- the builder --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Port:
    """Service ports that share one listener: one entry, or a TCP and a UDP entry (TCP_UDP)."""

    port: int
    protocol: str  # TCP | UDP | TCP_UDP
    node_port: int
    names: tuple[str, ...]


def build_stack(*, request: LoadBalancerRequest, config: AWSConfig, cluster: ClusterInfo) -> Stack:
    """The desired stack for ``request``; pure and deterministic.

    Raises :class:`ImplementedElsewhere` for ``aws-load-balancer-type: external`` or ``nlb-ip``
    (checked first, so the other controller's annotations are never judged here), and
    :class:`InvalidSpec` for anything that cannot be built, before the caller creates anything.
    """
    annotations = request.annotations
    _check_type(annotations)
    _check_spec(request)
    if ann.text(annotations=annotations, key=ann.EXTRA_SECURITY_GROUPS) is not None:
        raise ann.invalid(
            key=ann.EXTRA_SECURITY_GROUPS,
            value=annotations[ann.EXTRA_SECURITY_GROUPS],
            reason="extra security groups are a Classic ELB feature",
        )
    cluster_id = config.cluster_id or request.cluster_name

    ports = _group_ports(request)
    tls_ports, certificate, ssl_policy = _tls(annotations, ports)
    backend_ssl = _backend_ssl(annotations)
    health_check = _health_check(request, config)
    tg_attributes = _target_group_attributes(annotations)
    extra_tags = _additional_tags(annotations, scoped=bool(cluster.scope))
    internal = _internal(annotations)
    subnets = _subnets(annotations, cluster, cluster_id, internal)
    mappings = _subnet_mappings(annotations, subnets, internal)
    dualstack = "IPv6" in request.ip_families
    if dualstack:
        _check_dualstack(ports, subnets)
    lb_attributes = _load_balancer_attributes(annotations)
    idle_timeout = _tcp_idle_timeout(annotations)
    byo_groups = _byo_security_groups(annotations)
    ranges = source_ranges(request)
    targets = _targets(request)

    def tags(resource: str) -> Tags:
        base = {
            cluster_tag(cluster_id): OWNED,
            SERVICE_NAME_TAG: request.key,
            SERVICE_UID_TAG: request.uid,
            RESOURCE_TAG: resource,
        }
        if cluster.scope:
            base[SCOPE_TAG] = cluster.scope
        return tuple(sorted({**dict(extra_tags), **base}.items()))

    target_groups: list[TargetGroup] = []
    listeners: list[Listener] = []
    for group in ports:
        tls = group.port in tls_ports
        listener_protocol = "TLS" if tls else group.protocol
        tg_protocol = "TLS" if tls and backend_ssl else group.protocol
        resource = f"{TARGET_GROUP_PREFIX}{group.port}/{group.protocol}"
        target_groups.append(
            TargetGroup(
                resource_id=resource,
                name=target_group_name(
                    cluster_name=cluster_id,
                    namespace=request.namespace,
                    name=request.name,
                    uid=request.uid,
                    port=group.port,
                    protocol=tg_protocol,
                    node_port=group.node_port,
                ),
                protocol=tg_protocol,
                port=group.node_port,
                health_check=_udp_health_check(health_check, request, config)
                if tg_protocol == "UDP"
                else health_check,
                attributes=_attributes_for(annotations, tg_attributes, protocol=tg_protocol),
                tags=tags(resource),
            )
        )
        listeners.append(
            Listener(
                port=group.port,
                protocol=listener_protocol,
                target_group=resource,
                certificate_arn=certificate if tls else "",
                ssl_policy=ssl_policy if tls else "",
                attributes=(
                    ((TCP_IDLE_TIMEOUT, str(idle_timeout)),)
                    if idle_timeout and listener_protocol == "TCP"
                    else ()
                ),
                tags=tags(f"{LISTENER_PREFIX}{group.port}"),
            )
        )

    load_balancer = LoadBalancer(
        name=load_balancer_name(
            cluster_name=cluster_id,
            namespace=request.namespace,
            name=request.name,
            uid=request.uid,
            internal=internal,
        ),
        scheme=SCHEME_INTERNAL if internal else SCHEME_INTERNET_FACING,
        subnet_mappings=mappings,
        ip_address_type="dualstack" if dualstack else "ipv4",
        attributes=lb_attributes,
        tags=tags(RESOURCE_LOAD_BALANCER),
    )
    if idle_timeout and not any(listener.attributes for listener in listeners):
        raise ann.invalid(
            key=ann.CONNECTION_IDLE_TIMEOUT,
            value=annotations[ann.CONNECTION_IDLE_TIMEOUT],
            reason=(
                "the NLB has no TCP listener: AWS fixes the idle timeout of TLS (350 s) and UDP (120 s) "
                "listeners"
            ),
            accepted="no idle timeout, or a Service with a TCP port that is not TLS",
        )
    frontend: SecurityGroup | None = None
    if not byo_groups:
        frontend = SecurityGroup(
            resource_id=RESOURCE_FRONTEND_SG,
            name=frontend_security_group_name(
                cluster_name=cluster_id, namespace=request.namespace, name=request.name, uid=request.uid
            ),
            description=f"Frontend of the load balancer of Service {request.key} (cluster {cluster_id})"[
                :255
            ],
            rules=_frontend_rules(listeners, ranges),
            tags=tags(RESOURCE_FRONTEND_SG),
        )
    return Stack(
        load_balancer=load_balancer,
        target_groups=tuple(target_groups),
        listeners=tuple(listeners),
        frontend_security_group=frontend,
        byo_security_groups=byo_groups,
        targets=targets,
    )


# -- type and spec ------------------------------------------------------------------------------------


def implemented_elsewhere(annotations: Mapping[str, str]) -> bool:
    """Whether the Service is left to the AWS Load Balancer Controller (``external``, ``nlb-ip``)."""
    return ann.text(annotations=annotations, key=ann.TYPE) in _ELSEWHERE_TYPES


def _check_type(annotations: Mapping[str, str]) -> None:
    value = ann.text(annotations=annotations, key=ann.TYPE)
    if value is None or value == "nlb":
        return
    if value in _ELSEWHERE_TYPES:
        raise ImplementedElsewhere(f"{ann.TYPE}={value}: left to the AWS Load Balancer Controller")
    if value.lower() in _CLASSIC_TYPES:
        raise ann.invalid(
            key=ann.TYPE,
            value=annotations[ann.TYPE],
            reason="Classic ELBs are not supported; use nlb or remove the annotation",
        )
    raise ann.invalid(key=ann.TYPE, value=annotations[ann.TYPE], reason="unknown load balancer type")


def _check_spec(request: LoadBalancerRequest) -> None:
    if request.load_balancer_ip:
        raise InvalidSpec(
            field="spec.loadBalancerIP",
            value=request.load_balancer_ip,
            accepted=f"empty; pin addresses with {ann.EIP_ALLOCATIONS} or {ann.PRIVATE_IPV4_ADDRESSES}",
            reason="an NLB's addresses cannot be chosen through spec.loadBalancerIP",
        )
    if request.session_affinity not in ("", "None"):
        raise InvalidSpec(
            field="spec.sessionAffinity",
            value=request.session_affinity,
            accepted="None",
            reason=(
                "not supported on AWS load balancers (as upstream); for source-IP stickiness set "
                f"{ann.TARGET_GROUP_ATTRIBUTES}: stickiness.enabled=true,stickiness.type=source_ip"
            ),
        )


def _group_ports(request: LoadBalancerRequest) -> tuple[_Port, ...]:
    """Validate ``spec.ports`` and merge a TCP and a UDP entry of one port number into TCP_UDP."""
    if not request.ports:
        raise InvalidSpec(
            field="spec.ports", value=[], accepted="1 to 50 TCP or UDP ports", reason="no ports"
        )
    by_port: dict[int, list[tuple[int, str, int, str]]] = {}
    for index, port in enumerate(request.ports):
        if port.protocol not in ("TCP", "UDP"):
            raise InvalidSpec(
                field=f"spec.ports[{index}].protocol",
                value=port.protocol,
                accepted="TCP or UDP",
                reason="NLBs forward only TCP and UDP",
            )
        if port.node_port == 0:
            if not request.allocate_load_balancer_node_ports:
                raise InvalidSpec(
                    field="spec.allocateLoadBalancerNodePorts",
                    value=False,
                    accepted="true (or unset)",
                    reason=f"spec.ports[{index}] has no nodePort, and NLB instance targets need NodePorts",
                )
            raise InvalidSpec(
                field=f"spec.ports[{index}].nodePort",
                value=0,
                accepted="an allocated NodePort",
                reason="NLB instance targets need NodePorts",
            )
        entries = by_port.setdefault(port.port, [])
        if any(protocol == port.protocol for _, protocol, _, _ in entries):
            raise InvalidSpec(
                field=f"spec.ports[{index}].port",
                value=port.port,
                accepted="each port number at most once per protocol",
                reason="duplicate port",
            )
        entries.append((index, port.protocol, port.node_port, port.name))
    groups: list[_Port] = []
    for number in sorted(by_port):
        entries = by_port[number]
        node_ports = {node_port for _, _, node_port, _ in entries}
        if len(node_ports) > 1:
            index = entries[1][0]
            raise InvalidSpec(
                field=f"spec.ports[{index}].nodePort",
                value=entries[1][2],
                accepted=f"the nodePort of spec.ports[{entries[0][0]}] ({entries[0][2]})",
                reason=f"port {number} is served on TCP and UDP by one TCP_UDP target group, on one NodePort",
            )
        protocol = "TCP_UDP" if len(entries) == 2 else entries[0][1]
        names = tuple(name for _, _, _, name in entries if name)
        groups.append(_Port(port=number, protocol=protocol, node_port=entries[0][2], names=names))
    if len(groups) > MAX_LISTENERS:
        raise InvalidSpec(
            field="spec.ports",
            value=f"{len(groups)} listeners",
            accepted=f"at most {MAX_LISTENERS} listeners (distinct port numbers) per NLB",
            reason="too many ports",
        )
    return tuple(groups)


# -- TLS ----------------------------------------------------------------------------------------------


def _describe_ports(ports: Iterable[_Port]) -> str:
    shown = [f"{p.port} ({', '.join(p.names)})" if p.names else str(p.port) for p in ports]
    return ", ".join(shown) or "(none)"


def _tls(annotations: Mapping[str, str], ports: Sequence[_Port]) -> tuple[frozenset[int], str, str]:
    """``(ports that get TLS listeners, certificate ARN, SSL policy)``; nothing without ssl-cert."""
    certificate = ann.text(annotations=annotations, key=ann.SSL_CERT)
    if certificate is None:
        return frozenset(), "", ""
    if not _CERT_ARN.fullmatch(certificate):
        raise ann.invalid(
            key=ann.SSL_CERT, value=annotations[ann.SSL_CERT], reason="not an ACM or IAM certificate ARN"
        )
    tcp_ports = [p for p in ports if p.protocol == "TCP"]
    entries = ann.parse_list(annotations=annotations, key=ann.SSL_PORTS) or ("*",)
    selected: set[int] = set()
    for entry in entries:
        accepted = f"*, or numbers or names of the Service's TCP ports: {_describe_ports(tcp_ports)}"
        if entry == "*":
            selected.update(p.port for p in tcp_ports)
            continue
        if entry.isdigit():
            match = next((p for p in ports if p.port == int(entry)), None)
        else:
            match = next((p for p in ports if entry in p.names), None)
        if match is None:
            raise ann.invalid(
                key=ann.SSL_PORTS,
                value=annotations[ann.SSL_PORTS],
                reason=f"{entry!r} is not a port of the Service",
                accepted=accepted,
            )
        if match.protocol != "TCP":
            raise ann.invalid(
                key=ann.SSL_PORTS,
                value=annotations[ann.SSL_PORTS],
                reason=f"port {match.port} is {match.protocol}; TLS listeners need TCP",
                accepted=accepted,
            )
        selected.add(match.port)
    if not selected:
        raise ann.invalid(
            key=ann.SSL_CERT,
            value=annotations[ann.SSL_CERT],
            reason="the certificate would be used on no port: TLS listeners need TCP, this Service has "
            f"only {_describe_ports(ports)} ({', '.join(sorted({p.protocol for p in ports}))})",
            accepted="a certificate only on Services with TCP ports",
        )
    policy = ann.text(annotations=annotations, key=ann.SSL_NEGOTIATION_POLICY) or ""
    if policy and not _SSL_POLICY.fullmatch(policy):
        raise ann.invalid(
            key=ann.SSL_NEGOTIATION_POLICY,
            value=annotations[ann.SSL_NEGOTIATION_POLICY],
            reason="not a security policy name",
        )
    return frozenset(selected), certificate, policy


def _backend_ssl(annotations: Mapping[str, str]) -> bool:
    value = ann.text(annotations=annotations, key=ann.BACKEND_PROTOCOL)
    if value is None:
        return False
    if value.lower() not in ann.BACKEND_PROTOCOLS:
        raise ann.invalid(
            key=ann.BACKEND_PROTOCOL, value=annotations[ann.BACKEND_PROTOCOL], reason="unknown protocol"
        )
    return value.lower() == "ssl"


# -- health checks ------------------------------------------------------------------------------------


def _udp_health_check(check: HealthCheck, request: LoadBalancerRequest, config: AWSConfig) -> HealthCheck:
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


def _health_check(request: LoadBalancerRequest, config: AWSConfig) -> HealthCheck:
    """aws-provider.md §4 defaults; each health-check annotation overrides one field."""
    annotations = request.annotations
    local = request.external_traffic_policy == "Local"
    if local:
        if not 1 <= request.health_check_node_port <= 65535:
            raise InvalidSpec(
                field="spec.healthCheckNodePort",
                value=request.health_check_node_port,
                accepted="a port from 1 to 65535, allocated by the apiserver for externalTrafficPolicy Local",
                reason="externalTrafficPolicy Local needs a health-check NodePort",
            )
        protocol, port, path = "HTTP", str(request.health_check_node_port), "/healthz"
        interval, healthy, unhealthy = _HC_LOCAL
    elif config.health_probe_mode == "Shared":
        protocol, port, path = "HTTP", str(config.shared_probe_port), config.shared_probe_path
        interval, healthy, unhealthy = _HC_LOCAL
    else:
        protocol, port, path = "TCP", TRAFFIC_PORT, "/"
        interval, healthy, unhealthy = _HC_CLUSTER

    wanted = ann.text(annotations=annotations, key=ann.HEALTHCHECK_PROTOCOL)
    if wanted is not None:
        if wanted.upper() not in ann.HEALTHCHECK_PROTOCOLS:
            raise ann.invalid(
                key=ann.HEALTHCHECK_PROTOCOL,
                value=annotations[ann.HEALTHCHECK_PROTOCOL],
                reason="unknown health-check protocol",
            )
        protocol = wanted.upper()
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
    low, high = _SUCCESS_CODE_RANGE
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
        return min(_TIMEOUT_TCP if protocol == "TCP" else _TIMEOUT_HTTP, longest)
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


# -- attributes ---------------------------------------------------------------------------------------


def _target_group_attributes(annotations: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    pairs = ann.parse_key_values(annotations=annotations, key=ann.TARGET_GROUP_ATTRIBUTES) or ()
    attributes: dict[str, str] = {}
    for key, value in pairs:
        if key not in ann.TARGET_GROUP_ATTRIBUTE_VALUES:
            raise ann.invalid(
                key=ann.TARGET_GROUP_ATTRIBUTES,
                value=annotations[ann.TARGET_GROUP_ATTRIBUTES],
                reason=f"unknown target-group attribute {key!r}",
            )
        rule = ann.TARGET_GROUP_ATTRIBUTE_VALUES[key]
        if key.endswith(".enabled") and value.lower() in ("true", "false"):
            value = value.lower()  # noqa: PLW2901 - True/TRUE are spelled as AWS wants them
        if not rule.accepts(value):
            raise ann.invalid(
                key=ann.TARGET_GROUP_ATTRIBUTES,
                value=annotations[ann.TARGET_GROUP_ATTRIBUTES],
                reason=f"{key}={value!r}: accepted values are {rule}",
            )
        attributes[key] = value
    proxy = ann.text(annotations=annotations, key=ann.PROXY_PROTOCOL)
    if proxy is not None:
        if proxy != "*":
            raise ann.invalid(
                key=ann.PROXY_PROTOCOL,
                value=annotations[ann.PROXY_PROTOCOL],
                reason="only '*' (every port) is supported",
            )
        if attributes.get("proxy_protocol_v2.enabled", "true") != "true":
            raise ann.invalid(
                key=ann.PROXY_PROTOCOL,
                value=annotations[ann.PROXY_PROTOCOL],
                reason=f"conflicts with proxy_protocol_v2.enabled=false in {ann.TARGET_GROUP_ATTRIBUTES}",
                accepted="* without proxy_protocol_v2.enabled=false in target-group-attributes",
            )
        attributes["proxy_protocol_v2.enabled"] = "true"
    return tuple(sorted(attributes.items()))


_UNHEALTHY_TERMINATION: Final = "target_health_state.unhealthy.connection_termination.enabled"
_UNHEALTHY_DRAINING: Final = "target_health_state.unhealthy.draining_interval_seconds"


def _attributes_for(
    annotations: Mapping[str, str], attributes: tuple[tuple[str, str], ...], *, protocol: str
) -> tuple[tuple[str, str], ...]:
    """The target-group attributes, checked against what AWS accepts for ``protocol``.

    botocore's elbv2 service-2.json (``TargetGroupAttribute.Key``): client IP preservation "can't be
    disabled for UDP and TCP_UDP target groups"; unhealthy connection termination "can't be enabled
    for UDP and TCP_UDP target groups"; the unhealthy draining interval "can only be configured when
    target_health_state.unhealthy.connection_termination.enabled is false". The NLB guide ("Sticky
    sessions"): stickiness is not supported with TLS target groups.
    """
    want = dict(attributes)
    udp = protocol in ("UDP", "TCP_UDP")
    problem = ""
    if udp and want.get("preserve_client_ip.enabled") == "false":
        problem = (
            f"preserve_client_ip.enabled=false: AWS cannot turn client IP preservation off on {protocol}"
        )
    elif udp and want.get(_UNHEALTHY_TERMINATION) == "true":
        problem = f"{_UNHEALTHY_TERMINATION}=true: AWS cannot terminate unhealthy connections on {protocol}"
    elif protocol == "TLS" and want.get("stickiness.enabled") == "true":
        problem = "stickiness.enabled=true: AWS has no stickiness on TLS target groups (backend-protocol ssl)"
    elif (
        want.get(_UNHEALTHY_DRAINING, "0") != "0" and want.get(_UNHEALTHY_TERMINATION) != "false" and not udp
    ):
        problem = (
            f"{_UNHEALTHY_DRAINING} needs unhealthy connection termination off: add "
            f"{_UNHEALTHY_TERMINATION}=false"
        )
    if problem:
        raise ann.invalid(
            key=ann.TARGET_GROUP_ATTRIBUTES,
            value=annotations[ann.TARGET_GROUP_ATTRIBUTES],
            reason=f"{problem} (port protocol {protocol})",
        )
    return attributes


def _load_balancer_attributes(annotations: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Only the attributes the user set: the default Service needs no attribute call.

    From ALBC's aws-load-balancer-attributes and from upstream's single-purpose annotations
    (cross-zone-load-balancing-enabled, access-log-*); where both name one attribute they must agree.
    """
    attributes: dict[str, str] = {}
    origin: dict[str, str] = {}
    raw = annotations.get(ann.ATTRIBUTES, "")
    for key, value in ann.parse_key_values(annotations=annotations, key=ann.ATTRIBUTES) or ():
        rule = ann.LOAD_BALANCER_ATTRIBUTE_VALUES.get(key)
        if rule is None:
            raise ann.invalid(key=ann.ATTRIBUTES, value=raw, reason=f"unknown NLB attribute {key!r}")
        if key.endswith(".enabled") and value.lower() in ("true", "false"):
            value = value.lower()  # noqa: PLW2901 - True/TRUE are spelled as AWS wants them
        if key not in ann.FREE_TEXT_LB_ATTRIBUTES and not rule.accepts(value):
            raise ann.invalid(
                key=ann.ATTRIBUTES, value=raw, reason=f"{key}={value!r}: accepted values are {rule}"
            )
        attributes[key], origin[key] = value, ann.ATTRIBUTES

    def put(key: str, value: str, source: str) -> None:
        if key in attributes and attributes[key] != value:
            raise ann.invalid(
                key=source,
                value=annotations[source],
                reason=f"contradicts {key}={attributes[key]} in {origin[key]}",
                accepted=f"a value that agrees with {origin[key]}, or only one of the two annotations",
            )
        attributes[key], origin[key] = value, source

    cross_zone = ann.parse_bool(annotations=annotations, key=ann.CROSS_ZONE)
    if cross_zone is not None:
        put("load_balancing.cross_zone.enabled", str(cross_zone).lower(), ann.CROSS_ZONE)
    enabled = ann.parse_bool(annotations=annotations, key=ann.ACCESS_LOG_ENABLED)
    if enabled is not None:
        put("access_logs.s3.enabled", str(enabled).lower(), ann.ACCESS_LOG_ENABLED)
    bucket = ann.text(annotations=annotations, key=ann.ACCESS_LOG_BUCKET)
    if bucket is not None:
        put("access_logs.s3.bucket", bucket, ann.ACCESS_LOG_BUCKET)
    prefix = ann.text(annotations=annotations, key=ann.ACCESS_LOG_PREFIX)
    if prefix is not None:
        put("access_logs.s3.prefix", prefix, ann.ACCESS_LOG_PREFIX)
    bucket = attributes.get("access_logs.s3.bucket")
    if attributes.get("access_logs.s3.enabled") == "true" and not bucket:
        source = origin["access_logs.s3.enabled"]
        raise ann.invalid(
            key=source,
            value=annotations[source],
            reason=f"access logs need a bucket: set {ann.ACCESS_LOG_BUCKET} or access_logs.s3.bucket",
            accepted="false, or true together with a bucket",
        )
    if bucket is not None and (not _BUCKET.fullmatch(bucket) or ".." in bucket):
        source = origin["access_logs.s3.bucket"]
        raise ann.invalid(
            key=source,
            value=annotations[source],
            reason=f"{bucket!r} is not a valid S3 bucket name",
            accepted="3 to 63 lower-case letters, digits, dots and hyphens",
        )
    return tuple(sorted(attributes.items()))


def asks_deletion_protection(annotations: Mapping[str, str]) -> bool:
    """Whether the Service asks for deletion protection; an unreadable attributes annotation counts as yes
    (when in doubt, the load balancer is kept)."""
    try:
        return dict(_load_balancer_attributes(annotations)).get("deletion_protection.enabled") == "true"
    except InvalidSpec:
        return "deletion_protection" in annotations.get(ann.ATTRIBUTES, "")


def _tcp_idle_timeout(annotations: Mapping[str, str]) -> int | None:
    low, high = ann.TCP_IDLE_TIMEOUT_RANGE
    return ann.parse_int(annotations=annotations, key=ann.CONNECTION_IDLE_TIMEOUT, low=low, high=high)


def _check_dualstack(ports: Sequence[_Port], subnets: Sequence[Subnet]) -> None:
    """What AWS refuses for a dual-stack NLB, refused before anything is made.

    ELBv2 API reference (CreateLoadBalancer, ``EnablePrefixForIpv6SourceNat``; CreateListener): a
    dual-stack NLB takes UDP and TCP_UDP listeners only with IPv6 source NAT prefixes, which this
    provider does not manage; every subnet of a dual-stack NLB needs an IPv6 CIDR block.
    """
    udp = [p for p in ports if p.protocol in ("UDP", "TCP_UDP")]
    if udp:
        raise InvalidSpec(
            field="spec.ipFamilies",
            value="IPv4,IPv6",
            reason=(
                f"a dual-stack NLB cannot carry UDP ports ({_describe_ports(udp)}) without IPv6 source-NAT "
                "prefixes, which this provider does not manage"
            ),
            accepted="a single IP family, or only TCP ports",
        )
    without = [s.subnet_id for s in subnets if not s.ipv6_cidr_blocks]
    if without:
        raise InvalidSpec(
            field="spec.ipFamilies",
            value="IPv4,IPv6",
            reason=f"a dual-stack NLB needs an IPv6 CIDR in every subnet; {', '.join(without)} has none",
            accepted=f"IPv4 only, or subnets with IPv6 CIDRs (choose them with {ann.SUBNETS})",
        )


# -- tags ---------------------------------------------------------------------------------------------


def _additional_tags(annotations: Mapping[str, str], *, scoped: bool = False) -> Tags:
    pairs = ann.parse_key_values(annotations=annotations, key=ann.ADDITIONAL_RESOURCE_TAGS) or ()
    raw = annotations.get(ann.ADDITIONAL_RESOURCE_TAGS, "")
    for key, value in pairs:
        problem = ""
        if key.lower().startswith(RESERVED_TAG_PREFIXES) or key in RESERVED_TAG_KEYS:
            problem = f"the key {key!r} is reserved (aws:, kubernetes.io/cluster/, ccm-lb/, service-name)"
        elif len(key) > _MAX_TAG_KEY:
            problem = f"the key {key[:20]!r}... is longer than {_MAX_TAG_KEY} characters"
        elif len(value) > _MAX_TAG_VALUE:
            problem = f"the value of {key!r} is longer than {_MAX_TAG_VALUE} characters"
        elif not _TAG_CHARS.fullmatch(key) or not _TAG_CHARS.fullmatch(value):
            problem = f"{key}={value} has characters AWS does not allow in tags"
        if problem:
            raise ann.invalid(key=ann.ADDITIONAL_RESOURCE_TAGS, value=raw, reason=problem)
    # ours, the spec hash, the cluster tag, and a classed instance's scope tag
    limit = MAX_TAGS - len(RESERVED_TAG_KEYS) - 1 - (1 if scoped else 0)
    if len(pairs) > limit:
        raise ann.invalid(
            key=ann.ADDITIONAL_RESOURCE_TAGS, value=raw, reason=f"{len(pairs)} tags; at most {limit} fit"
        )
    return tuple(pairs)


# -- scheme, subnets, addresses -----------------------------------------------------------------------


def _internal(annotations: Mapping[str, str]) -> bool:
    """Whether the NLB is internal: upstream's aws-load-balancer-internal, or ALBC's scheme annotation."""
    value = ann.text(annotations=annotations, key=ann.INTERNAL)
    by_internal = None if value is None else value != "false"
    scheme = ann.text(annotations=annotations, key=ann.SCHEME)
    if scheme is None:
        return bool(by_internal)
    if scheme not in ann.SCHEMES:
        raise ann.invalid(key=ann.SCHEME, value=annotations[ann.SCHEME], reason="unknown scheme")
    internal = scheme == SCHEME_INTERNAL
    if by_internal is not None and by_internal != internal:
        raise ann.invalid(
            key=ann.SCHEME,
            value=annotations[ann.SCHEME],
            reason=f"contradicts {ann.INTERNAL}={annotations[ann.INTERNAL]!r}",
            accepted=f"a scheme that agrees with {ann.INTERNAL}, or only one of the two annotations",
        )
    return internal


def _tag_map(subnet: Subnet) -> dict[str, str]:
    return dict(subnet.tags)


def _ours(tags: Mapping[str, str], cluster_id: str) -> bool:
    return cluster_tag(cluster_id) in tags or tags.get(LEGACY_CLUSTER_TAG) == cluster_id


def _tagged_for_a_cluster(tags: Mapping[str, str]) -> bool:
    return any(k.startswith(CLUSTER_TAG_PREFIX) for k in tags) or LEGACY_CLUSTER_TAG in tags


def _subnets(
    annotations: Mapping[str, str], cluster: ClusterInfo, cluster_id: str, internal: bool
) -> tuple[Subnet, ...]:
    in_vpc = [s for s in cluster.subnets if s.vpc_id == cluster.vpc_id]
    wanted = ann.parse_list(annotations=annotations, key=ann.SUBNETS)
    if wanted:
        return _named_subnets(annotations[ann.SUBNETS], wanted, in_vpc, cluster.vpc_id)
    role = ROLE_INTERNAL_ELB_TAG if internal else ROLE_ELB_TAG
    best: dict[str, tuple[tuple[bool, bool, str], Subnet]] = {}
    for subnet in in_vpc:
        tags = _tag_map(subnet)
        if subnet.zone_type != "availability-zone":
            continue
        if not internal and not subnet.public:
            continue  # no route to an internet gateway: an internet-facing NLB there is unreachable
        ours = _ours(tags, cluster_id)
        if not ours and _tagged_for_a_cluster(tags):
            continue  # tagged for another cluster only
        rank = (role not in tags, not ours, subnet.subnet_id)
        current = best.get(subnet.availability_zone)
        if current is None or rank < current[0]:
            best[subnet.availability_zone] = (rank, subnet)
    if not best:
        raise ann.invalid(
            key=ann.SUBNETS,
            value="",
            reason=(
                f"no subnet of {cluster.vpc_id} can be used: tag one subnet per availability zone "
                f"with {role}=1 and {cluster_tag(cluster_id)}=shared (or owned)"
                + ("" if internal else ", in a route table with a route to an internet gateway")
                + ", or list subnets in this annotation"
            ),
        )
    return tuple(best[zone][1] for zone in sorted(best))


def _named_subnets(
    raw: str, wanted: Sequence[str], in_vpc: Sequence[Subnet], vpc_id: str
) -> tuple[Subnet, ...]:
    chosen: list[Subnet] = []
    for entry in wanted:
        if entry.startswith("subnet-"):
            matches = [s for s in in_vpc if s.subnet_id == entry]
        else:
            matches = [s for s in in_vpc if _tag_map(s).get(NAME_TAG) == entry]
        if not matches:
            raise ann.invalid(key=ann.SUBNETS, value=raw, reason=f"no subnet {entry!r} in {vpc_id}")
        if len(matches) > 1:
            raise ann.invalid(
                key=ann.SUBNETS,
                value=raw,
                reason=f"the Name {entry!r} matches {', '.join(s.subnet_id for s in matches)}; use an ID",
            )
        subnet = matches[0]
        if subnet in chosen:
            raise ann.invalid(key=ann.SUBNETS, value=raw, reason=f"{entry!r} is listed twice")
        twin = next((s for s in chosen if s.availability_zone == subnet.availability_zone), None)
        if twin is not None:
            raise ann.invalid(
                key=ann.SUBNETS,
                value=raw,
                reason=(
                    f"{twin.subnet_id} and {subnet.subnet_id} are both in {subnet.availability_zone}; "
                    "an NLB takes one subnet per availability zone"
                ),
            )
        chosen.append(subnet)
    return tuple(chosen)


def _contains(cidr: str, ip: ipaddress.IPv4Address) -> bool:
    """Whether ``ip`` is inside ``cidr``; False for a subnet without an IPv4 CIDR (IPv6-only)."""
    try:
        return ip in ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        return False


def _subnet_mappings(
    annotations: Mapping[str, str], subnets: Sequence[Subnet], internal: bool
) -> tuple[SubnetMapping, ...]:
    allocations = ann.parse_list(annotations=annotations, key=ann.EIP_ALLOCATIONS)
    addresses = ann.parse_list(annotations=annotations, key=ann.PRIVATE_IPV4_ADDRESSES)
    ids = ", ".join(s.subnet_id for s in subnets)
    if allocations:
        raw = annotations[ann.EIP_ALLOCATIONS]
        if internal:
            raise ann.invalid(
                key=ann.EIP_ALLOCATIONS,
                value=raw,
                reason="Elastic IPs need an internet-facing NLB, and this one is internal",
                accepted=f"no EIPs on internal NLBs; use {ann.PRIVATE_IPV4_ADDRESSES}",
            )
        accepted = f"exactly {len(subnets)} eipalloc-... IDs, one for each subnet ({ids}), in that order"
        bad = next((a for a in allocations if not _EIP_ID.fullmatch(a)), None)
        if bad is not None:
            raise ann.invalid(
                key=ann.EIP_ALLOCATIONS,
                value=raw,
                reason=f"{bad!r} is not an allocation ID",
                accepted=accepted,
            )
        if len(set(allocations)) != len(allocations):
            raise ann.invalid(
                key=ann.EIP_ALLOCATIONS, value=raw, reason="an allocation is listed twice", accepted=accepted
            )
        if len(allocations) != len(subnets):
            raise ann.invalid(
                key=ann.EIP_ALLOCATIONS,
                value=raw,
                reason=f"{len(allocations)} allocations for {len(subnets)} subnets",
                accepted=accepted,
            )
        return tuple(
            SubnetMapping(subnet_id=s.subnet_id, allocation_id=a)
            for s, a in zip(subnets, allocations, strict=True)
        )
    if addresses:
        raw = annotations[ann.PRIVATE_IPV4_ADDRESSES]
        cidrs = ", ".join(f"{s.subnet_id} {s.cidr_block}" for s in subnets)
        accepted = f"exactly {len(subnets)} IPv4 addresses, one inside each subnet: {cidrs}"
        if not internal:
            raise ann.invalid(
                key=ann.PRIVATE_IPV4_ADDRESSES,
                value=raw,
                reason=f"static private addresses need an internal NLB (set {ann.INTERNAL}: 'true')",
                accepted=accepted,
            )
        if len(addresses) != len(subnets):
            raise ann.invalid(
                key=ann.PRIVATE_IPV4_ADDRESSES,
                value=raw,
                reason=f"{len(addresses)} addresses for {len(subnets)} subnets",
                accepted=accepted,
            )
        by_subnet: dict[str, str] = {}
        for address in addresses:
            try:
                ip = ipaddress.IPv4Address(address)
            except ValueError:
                raise ann.invalid(
                    key=ann.PRIVATE_IPV4_ADDRESSES,
                    value=raw,
                    reason=f"{address!r} is not an IPv4 address",
                    accepted=accepted,
                ) from None
            home = next((s for s in subnets if _contains(s.cidr_block, ip)), None)
            if home is None:
                raise ann.invalid(
                    key=ann.PRIVATE_IPV4_ADDRESSES,
                    value=raw,
                    reason=f"{address} is in none of the load balancer's subnets",
                    accepted=accepted,
                )
            if home.subnet_id in by_subnet:
                raise ann.invalid(
                    key=ann.PRIVATE_IPV4_ADDRESSES,
                    value=raw,
                    reason=f"{by_subnet[home.subnet_id]} and {address} are both in {home.subnet_id}",
                    accepted=accepted,
                )
            by_subnet[home.subnet_id] = str(ip)
        return tuple(
            SubnetMapping(subnet_id=s.subnet_id, private_ipv4_address=by_subnet[s.subnet_id]) for s in subnets
        )
    return tuple(SubnetMapping(subnet_id=s.subnet_id) for s in subnets)


# -- security groups ----------------------------------------------------------------------------------


def _byo_security_groups(annotations: Mapping[str, str]) -> tuple[str, ...]:
    groups = ann.parse_list(annotations=annotations, key=ann.SECURITY_GROUPS) or ()
    bad = next((g for g in groups if not _SG_ID.fullmatch(g)), None)
    if bad is not None:
        raise ann.invalid(
            key=ann.SECURITY_GROUPS,
            value=annotations[ann.SECURITY_GROUPS],
            reason=f"{bad!r} is not a security group ID",
        )
    return tuple(dict.fromkeys(groups))


def _frontend_rules(listeners: Sequence[Listener], ranges: Sequence[str]) -> tuple[Rule, ...]:
    """Each listener port from each source range, plus path-MTU discovery ICMP from each range."""
    rules: list[Rule] = []
    for listener in listeners:
        protocols = {"TCP": ("tcp",), "TLS": ("tcp",), "UDP": ("udp",), "TCP_UDP": ("tcp", "udp")}
        for protocol in protocols[listener.protocol]:
            for cidr in ranges:
                rules.append(
                    Rule(
                        protocol=protocol,
                        from_port=listener.port,
                        to_port=listener.port,
                        cidr=cidr,
                        description=f"listener {listener.port}/{listener.protocol}",
                    )
                )
    for cidr in ranges:
        if ipaddress.ip_network(cidr, strict=False).version == 4:
            rules.append(
                Rule(protocol="icmp", from_port=3, to_port=4, cidr=cidr, description="path MTU discovery")
            )
        else:
            rules.append(
                Rule(protocol="icmpv6", from_port=2, to_port=0, cidr=cidr, description="path MTU discovery")
            )
    return tuple(dict.fromkeys(rules))


# -- targets ------------------------------------------------------------------------------------------


def _node_selector(annotations: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    pairs = ann.parse_key_values(annotations=annotations, key=ann.TARGET_NODE_LABELS) or ()
    for key, _value in pairs:
        if not re.fullmatch(r"([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?", key):
            raise ann.invalid(
                key=ann.TARGET_NODE_LABELS,
                value=annotations[ann.TARGET_NODE_LABELS],
                reason=f"{key!r} is not a label key",
            )
    return pairs


def _selected(node: Node, selector: Sequence[tuple[str, str]]) -> bool:
    return all(key in node.labels and (not value or node.labels[key] == value) for key, value in selector)


def _targets(request: LoadBalancerRequest) -> tuple[str, ...]:
    """Instance IDs of the selected nodes, sorted; nodes without an AWS instance providerID are skipped."""
    selector = _node_selector(request.annotations)
    ids: set[str] = set()
    for node in request.nodes:
        if not _selected(node, selector):
            continue
        try:
            ids.add(instance_id(node.provider_id))
        except ValueError:
            continue
    return tuple(sorted(ids))

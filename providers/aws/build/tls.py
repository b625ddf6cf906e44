"""TLS listeners: which ports terminate TLS, with which certificate and policy, and whether the backend
is TLS too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from providers.aws import annotations as ann
from providers.aws.build.common import (
    CERT_ARN,
    SSL_POLICY,
)
from providers.aws.build.ports import Port


def describe_ports(ports: Iterable[Port]) -> str:
    shown = [f"{p.port} ({', '.join(p.names)})" if p.names else str(p.port) for p in ports]
    return ", ".join(shown) or "(none)"


def certificate_arn(annotations: Mapping[str, str]) -> str | None:
    """``ssl-cert``, an ACM or IAM certificate ARN (None when unset); NLBs and Classic ELBs alike."""
    certificate = ann.text(annotations=annotations, key=ann.SSL_CERT)
    if certificate is not None and not CERT_ARN.fullmatch(certificate):
        raise ann.invalid(
            key=ann.SSL_CERT, value=annotations[ann.SSL_CERT], reason="not an ACM or IAM certificate ARN"
        )
    return certificate


def negotiation_policy(annotations: Mapping[str, str]) -> str:
    """``ssl-negotiation-policy``, a security policy name ('' for AWS's default)."""
    policy = ann.text(annotations=annotations, key=ann.SSL_NEGOTIATION_POLICY) or ""
    if policy and not SSL_POLICY.fullmatch(policy):
        raise ann.invalid(
            key=ann.SSL_NEGOTIATION_POLICY,
            value=annotations[ann.SSL_NEGOTIATION_POLICY],
            reason="not a security policy name",
        )
    return policy


def tls_settings(annotations: Mapping[str, str], ports: Sequence[Port]) -> tuple[frozenset[int], str, str]:
    """``(ports that get TLS listeners, certificate ARN, SSL policy)``; nothing without ssl-cert."""
    certificate = certificate_arn(annotations)
    if certificate is None:
        return frozenset(), "", ""
    tcp_ports = [p for p in ports if p.protocol == "TCP"]
    entries = ann.parse_list(annotations=annotations, key=ann.SSL_PORTS) or ("*",)
    selected: set[int] = set()
    for entry in entries:
        accepted = f"*, or numbers or names of the Service's TCP ports: {describe_ports(tcp_ports)}"
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
            f"only {describe_ports(ports)} ({', '.join(sorted({p.protocol for p in ports}))})",
            accepted="a certificate only on Services with TCP ports",
        )
    return frozenset(selected), certificate, negotiation_policy(annotations)


def backend_protocol(annotations: Mapping[str, str]) -> str | None:
    """``backend-protocol`` in lower case (upstream compares it lower-cased), or None when unset."""
    value = ann.text(annotations=annotations, key=ann.BACKEND_PROTOCOL)
    if value is None:
        return None
    if value.lower() not in ann.BACKEND_PROTOCOLS:
        raise ann.invalid(
            key=ann.BACKEND_PROTOCOL, value=annotations[ann.BACKEND_PROTOCOL], reason="unknown protocol"
        )
    return value.lower()


def backend_is_tls(annotations: Mapping[str, str]) -> bool:
    """Whether an NLB's targets get TLS (``backend-protocol: ssl``)."""
    return backend_protocol(annotations) == "ssl"

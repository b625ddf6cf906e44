"""The provider and the Kubernetes API client, built from the flags every cluster command shares
(``ccm run``, ``ccm migrate``), with the one-line errors a user gets for bad ones.

Each builder returns the object, or raises :class:`UsageError` whose message names the flag, the bad
value and what is accepted; the command prints it and exits 2, as upstream's flag errors do.
"""

from __future__ import annotations

import argparse
import os

from kubernetes import client
from kubernetes import config as kube_config

from ccm.cloudprovider import LoadBalancer, UnknownProvider, load_provider, provider_names
from ccm.k8s.clientconfig import new_api_client


class UsageError(Exception):
    """A flag or a file named by one is wrong; the message says which and what is accepted."""


def provider_from_flags(
    args: argparse.Namespace, *, orphan_grace_seconds: float | None = None
) -> LoadBalancer:
    """The provider ``--cloud-provider`` names, configured by ``--cloud-config``, for the instance's scope."""
    require_cloud_provider(args)
    if args.cloud_config and not os.path.exists(args.cloud_config):
        raise UsageError(f"--cloud-config={args.cloud_config}: no such file")
    if args.cloud_config and not os.path.isfile(args.cloud_config):
        raise UsageError(f"--cloud-config={args.cloud_config}: not a regular file")
    name = provider_name(args)
    extra = {} if orphan_grace_seconds is None else {"orphan_grace_seconds": orphan_grace_seconds}
    try:
        return load_provider(
            name=name,
            cluster_name=args.cluster_name,
            cloud_config=args.cloud_config or None,
            load_balancer_class=args.load_balancer_class,
            **extra,
        )
    except (UnknownProvider, ValueError) as exc:
        raise UsageError(str(exc)) from exc


def require_cloud_provider(args: argparse.Namespace) -> None:
    if not args.cloud_provider:
        accepted = ", ".join(provider_names()) or "(none installed)"
        raise UsageError(f"--cloud-provider is required; accepted: {accepted}")


def provider_name(args: argparse.Namespace) -> str:
    name: str = args.cloud_provider
    return {"gcp": "gce"}.get(name, name)


def api_client_from_flags(args: argparse.Namespace) -> client.ApiClient:
    """The API client of ``--kubeconfig`` / ``--master`` (in-cluster when both are empty)."""
    try:
        return new_api_client(
            kubeconfig=args.kubeconfig, master=args.master, qps=args.kube_api_qps, burst=args.kube_api_burst
        )
    except Exception as exc:  # ConfigException, OSError, YAML errors, and TypeError etc. on odd YAML
        where = f"--kubeconfig={args.kubeconfig}" if args.kubeconfig else "--kubeconfig"
        detail = " ".join(str(exc).split())
        if not isinstance(exc, kube_config.ConfigException | OSError):
            detail = f"not a usable kubeconfig ({type(exc).__name__}: {detail})"
        raise UsageError(f"{where}: {detail}") from exc

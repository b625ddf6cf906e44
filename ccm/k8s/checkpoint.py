"""The controller's checkpoint: what a new leader may trust without asking the cloud.

A restart or a fail-over would otherwise re-ensure every load balancer, one by one (five AWS calls per
Service), though nothing changed while no leader ran. The provider's bulk drift check proves in one
listing that each load balancer exists and matches its Service's spec (the spec hash is written only
once the stack is complete); what it cannot see is the node set the targets were last given. That is
what this checkpoint records: a digest of the target node set that every Service's load balancer was
last brought to, in a ConfigMap beside the leader-election Lease that only this controller writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ccm.k8s.core import CoreV1, decoded, discard

logger = logging.getLogger(__name__)

NODE_SET_KEY = "nodeSet"


def node_set_digest(fingerprint: Iterable[tuple[str, str]]) -> str:
    """A stable digest of a target node set (the controller's fingerprint of name and provider ID)."""
    return hashlib.sha256(json.dumps(sorted(fingerprint)).encode()).hexdigest()[:32]


class Checkpoint:
    """``read``/``write`` the node-set digest in ConfigMap ``namespace/name`` (created on first write)."""

    def __init__(self, *, api: client.ApiClient, namespace: str, name: str) -> None:
        self._core = CoreV1(api)
        self.namespace = namespace
        self.name = name

    def read(self) -> str | None:
        """The recorded digest; None when there is none (first start) or it cannot be read."""
        try:
            cm = decoded(
                self._core.read_namespaced_config_map(self.name, self.namespace, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status != 404:
                logger.warning(
                    "cannot read the checkpoint %s/%s (%s): every Service is ensured in full",
                    self.namespace,
                    self.name,
                    exc.reason,
                )
            return None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # the apiserver unreachable (restarting)
            logger.warning(
                "cannot reach the apiserver for the checkpoint %s/%s (%s): every Service is ensured in full",
                self.namespace,
                self.name,
                exc,
            )
            return None
        digest = (cm.get("data") or {}).get(NODE_SET_KEY)
        return str(digest) if digest is not None else None

    def write(self, digest: str) -> None:
        """Patch the ConfigMap, or create it; the service workers and the node sync write from their own
        threads, so a create that loses to another writer's (AlreadyExists) patches after all."""
        body = {"data": {NODE_SET_KEY: digest}}
        try:
            discard(
                self._core.patch_namespaced_config_map(
                    self.name, self.namespace, body, _preload_content=False
                )
            )
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            config_map = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": self.name, "labels": {"app.kubernetes.io/managed-by": "ccm-lb"}},
                "data": body["data"],
            }
            discard(
                self._core.create_namespaced_config_map(self.namespace, config_map, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            discard(
                self._core.patch_namespaced_config_map(
                    self.name, self.namespace, body, _preload_content=False
                )
            )

"""Writes to a Service: the cleanup finalizer and ``status`` (ingress and our condition).

All writes go through the ``services/status`` subresource with strategic-merge patches, as upstream
does: a status write can never change the user's spec, and list-merge directives
(``$deleteFromPrimitiveList``) keep other controllers' finalizers intact without a read-modify-write.
Conflicts (only possible under an admission webhook that rejects stale objects) are retried with
``kubernetes.utils.retry.retry_on_conflict``; NotFound on a status write means the Service is gone,
which is success.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.retry import retry_on_conflict

from ccm.k8s.core import CoreV1

logger = logging.getLogger(__name__)


class ServicePatcher:
    def __init__(self, *, api: client.ApiClient) -> None:
        self._core = CoreV1(api)
        self.patches = 0  # how many writes were sent (tests count them)

    def _patch_status(self, *, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        def attempt() -> dict[str, Any] | None:
            self.patches += 1
            try:
                resp: Any = self._core.patch_namespaced_service_status(
                    name, namespace, dict(body), _preload_content=False
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            result: dict[str, Any] = json.loads(resp.data)
            return result

        return retry_on_conflict(attempt)

    def add_finalizer(self, *, service: Mapping[str, Any], finalizer: str) -> dict[str, Any] | None:
        meta = service.get("metadata") or {}
        if finalizer in (meta.get("finalizers") or ()):
            return dict(service)
        return self._patch_status(
            namespace=meta["namespace"], name=meta["name"], body={"metadata": {"finalizers": [finalizer]}}
        )

    def remove_finalizer(self, *, service: Mapping[str, Any], finalizer: str) -> dict[str, Any] | None:
        return self.remove_finalizers(service=service, finalizers=(finalizer,))

    def remove_finalizers(
        self, *, service: Mapping[str, Any], finalizers: Sequence[str]
    ) -> dict[str, Any] | None:
        """Remove those of ``finalizers`` that are present, in one patch (none: no write)."""
        meta = service.get("metadata") or {}
        present = [f for f in finalizers if f in (meta.get("finalizers") or ())]
        if not present:
            return dict(service)
        return self._patch_status(
            namespace=meta["namespace"],
            name=meta["name"],
            body={"metadata": {"$deleteFromPrimitiveList/finalizers": present}},
        )

    def patch_status(
        self,
        *,
        service: Mapping[str, Any],
        ingress: list[dict[str, Any]] | None = None,
        condition: Mapping[str, Any] | None = None,
        clear_ingress: bool = False,
        remove_condition: str | None = None,
    ) -> dict[str, Any] | None:
        """Set the ingress (or clear it) and/or merge one condition (by type) into ``status``."""
        meta = service.get("metadata") or {}
        status: dict[str, Any] = {}
        if clear_ingress:
            status["loadBalancer"] = {"ingress": None}
        elif ingress is not None:
            status["loadBalancer"] = {"ingress": ingress}
        if condition is not None:
            status["conditions"] = [dict(condition)]
        elif remove_condition is not None:
            status["conditions"] = [{"type": remove_condition, "$patch": "delete"}]
        if not status:
            return dict(service)
        return self._patch_status(namespace=meta["namespace"], name=meta["name"], body={"status": status})

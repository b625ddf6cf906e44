"""How the GCP provider tells its resources from others', and reads GCE's refusals.

Ownership of resources without labels is a JSON marker in their ``description``
(:func:`providers.gcp.model.description`): the cluster id, and for a classed instance its scope. A
resource whose marker names another cluster or scope is never touched
(:class:`~providers.common.errors.NotOwned`).
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc

from providers.gcp import model
from providers.gcp.client import OperationFailed


def owned_description(resource: Any, cluster_id: str, *, scope: str | None = None) -> dict[str, str]:
    """The marker if it names this cluster (and ``scope``, unless the resource is shared: None)."""
    marker = model.parse_description(getattr(resource, "description", ""))
    if marker.get(model.CLUSTER_KEY) != cluster_id:
        return {}
    if scope is not None and marker.get(model.SCOPE_KEY, "") != scope:
        return {}
    return marker


def member_already_exists(exc: gexc.GoogleAPICallError) -> bool:
    """addInstances' 400 for an instance that is already a member (reason ``memberAlreadyExists``)."""
    reasons = {str(e.get("reason", "")) for e in exc.errors or () if isinstance(e, dict)}
    return "memberAlreadyExists" in reasons or "already a member" in str(exc)


def is_in_use(exc: Exception) -> bool:
    """GCE's "still in use" refusal of a delete: a 400 at once, or an operation that fails with it later."""
    if isinstance(exc, OperationFailed):
        return "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE" in exc.codes
    text = str(exc)
    return isinstance(exc, gexc.BadRequest) and (
        "being used by" in text or "resourceInUseByAnotherResource" in text
    )

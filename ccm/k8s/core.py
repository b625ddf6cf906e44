"""The few core/v1 requests ``ccm run`` sends, without the generated ``CoreV1Api``.

Importing ``kubernetes.client.CoreV1Api`` costs ~0.45 s of CPU (2-core bench machine, bytecode cached):
its ~400 methods are wrapped by pydantic's ``validate_call`` and it imports most of the models. That was
half of the controller's start-up CPU, paid again at every restart and fail-over (bench/README.md,
"Controller CPU profile"). The controller sends eight kinds of core/v1 request; :class:`CoreV1` sends
them through the same ``ApiClient`` (``param_serialize`` + ``call_api``: the same authentication, rate
limiter, TLS and connection pool), with the headers and query parameters the generated methods send,
and raises the same ``ApiException`` for an answer outside 2xx.

The methods keep the generated client's names and positional arguments (callers and test doubles are
interchangeable) but, like every caller here, take undecoded answers only: they return the urllib3
response (``_preload_content=False``), whose ``data`` the caller decodes with ``json`` if it needs it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

# The generated methods' keyword arguments and the query parameters they become.
QUERY_NAMES = {
    "_continue": "continue",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "field_selector": "fieldSelector",
    "label_selector": "labelSelector",
    "limit": "limit",
    "resource_version": "resourceVersion",
    "resource_version_match": "resourceVersionMatch",
    "timeout_seconds": "timeoutSeconds",
    "watch": "watch",
}
# What the generated PATCH methods send for a dict body (kubernetes/client/rest.py turns their
# ``application/json-patch+json`` into this when the body is not a list of operations).
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON = "application/json"
SERVICE_STATUS = "/api/v1/namespaces/{namespace}/services/{name}/status"
EVENTS = "/api/v1/namespaces/{namespace}/events"
CONFIG_MAPS = "/api/v1/namespaces/{namespace}/configmaps"
CONFIG_MAP = CONFIG_MAPS + "/{name}"


class CoreV1:
    """``CoreV1(api).patch_namespaced_service_status(name, namespace, body, _preload_content=False)``…"""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    # -- reads ---------------------------------------------------------------------------------------

    def list_service_for_all_namespaces(self, **options: Any) -> Any:
        """List (or, with ``watch=True``, watch) Services in every namespace."""
        return self._request("GET", "/api/v1/services", options=options)

    def list_node(self, **options: Any) -> Any:
        """List (or, with ``watch=True``, watch) Nodes."""
        return self._request("GET", "/api/v1/nodes", options=options)

    def read_namespaced_config_map(self, name: str, namespace: str, **options: Any) -> Any:
        return self._request("GET", CONFIG_MAP, names={"namespace": namespace, "name": name}, options=options)

    # -- writes (strategic-merge patches, as the generated methods send a dict) -------------------------

    def patch_namespaced_service_status(
        self, name: str, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> Any:
        names = {"namespace": namespace, "name": name}
        return self._request("PATCH", SERVICE_STATUS, names=names, options=options, body=body)

    def create_namespaced_event(self, namespace: str, body: Mapping[str, Any], **options: Any) -> Any:
        return self._request("POST", EVENTS, names={"namespace": namespace}, options=options, body=body)

    def patch_namespaced_event(
        self, name: str, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> Any:
        names = {"namespace": namespace, "name": name}
        return self._request("PATCH", EVENTS + "/{name}", names=names, options=options, body=body)

    def create_namespaced_config_map(self, namespace: str, body: Mapping[str, Any], **options: Any) -> Any:
        return self._request("POST", CONFIG_MAPS, names={"namespace": namespace}, options=options, body=body)

    def patch_namespaced_config_map(
        self, name: str, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> Any:
        names = {"namespace": namespace, "name": name}
        return self._request("PATCH", CONFIG_MAP, names=names, options=options, body=body)

    # -- the request ---------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        options: Mapping[str, Any],
        names: dict[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request; the undecoded urllib3 response, or ApiException for an answer outside 2xx
        (as ``ApiClient._call_with_legacy_options`` does with ``_preload_content=False``)."""
        query: list[tuple[str, Any]] = []
        timeout: Any = None
        for key, value in options.items():
            if key == "_preload_content":
                if value:
                    raise TypeError(f"{type(self).__name__} returns undecoded answers only")
            elif key == "_request_timeout":
                timeout = value
            elif key in QUERY_NAMES:
                if value is not None:
                    query.append((QUERY_NAMES[key], value))
            else:
                raise TypeError(f"{type(self).__name__}: unexpected argument {key!r}")
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = STRATEGIC_MERGE_PATCH if method == "PATCH" else JSON
        serialized = self.api.param_serialize(
            method=method,
            resource_path=path,
            path_params=names or {},
            query_params=query,
            header_params=headers,
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response


def decoded(response: Any) -> dict[str, Any]:
    """The JSON object of an undecoded answer."""
    result: dict[str, Any] = json.loads(response.data)
    return result


def discard(response: Any) -> None:
    """Read an undecoded answer to its end and give its connection back to the pool.

    An answer asked for with ``_preload_content=False`` holds its connection until it is read or
    released (urllib3); left alone, every Event opened a new TLS connection to the apiserver, which
    cost most of the controller's CPU in a burst of creates.
    """
    drain = getattr(response, "drain_conn", None)
    if drain is not None:
        drain()
        response.release_conn()

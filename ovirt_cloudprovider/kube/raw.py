"""The API requests we send, as raw JSON through the client's own ``ApiClient``.

:class:`CoreRequests` sends the few Node and Event requests of the informer, the writer and the event
recorder without the generated ``CoreV1Api`` (a 63,000-line module of validated methods that costs about
20 MB of memory to import, for a handful of endpoints); :class:`LeaseRequests` the Lease requests of the
leader elector without ``CoordinationV1Api``. Each request is built the way the generated method
builds it (same path, query parameter names, ``Accept: application/json``, ``BearerToken`` auth) by the
``ApiClient``'s public request path, ``param_serialize`` then ``call_api`` (kubernetes >= 37), so the
kubeconfig or in-cluster auth, TLS, token refresh (the configuration's api-key hooks) and proxies apply
unchanged. Answers are what ``_preload_content=False`` gave: the transport's raw response (its
``status``, ``data``, ``stream``, ``release_conn``); a non-2xx answer raises the client's
``ApiException`` subclass for its status (``ApiException.from_response``), as the generated methods do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

__all__ = ["CoreRequests", "LeaseRequests", "Timeout"]

Timeout = tuple[float, float]

_ACCEPT = "application/json"  # what the generated methods select from their Accept lists
_AUTH = ["BearerToken"]


class _Requests:
    def __init__(self, api_client: k8s.ApiClient) -> None:
        self._client = api_client

    def _send(self, method: str, path: str, path_params: dict[str, str] | None = None, *,
              query: Sequence[tuple[str, Any]] = (), body: dict[str, Any] | None = None,
              content_type: str | None = None, timeout: Timeout) -> Any:
        headers: dict[str, str] = {"Accept": _ACCEPT}
        if content_type:
            headers["Content-Type"] = content_type
        # The body goes to call_api as it is, not through param_serialize: our bodies are plain JSON values (str,
        # int, bool, None, lists, dicts), which its sanitize_for_serialization would copy unchanged, value by
        # value, before the client's json.dumps (the BearerToken auth does not read the body).
        method, url, header_params, _, post_params = self._client.param_serialize(
            method=method, resource_path=path, path_params=path_params or {}, query_params=list(query),
            header_params=headers, body=None, post_params=[], files={}, auth_settings=list(_AUTH),
            collection_formats={})
        resp: Any = self._client.call_api(method, url, header_params, body, post_params, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()  # the error body, for the exception (and the connection goes back to the pool)
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
        return resp.response


class LeaseRequests(_Requests):
    """The coordination.k8s.io/v1 Lease requests of the leader elector: read, create, replace."""

    _LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    def read_namespaced_lease(self, name: str, namespace: str, *, timeout: Timeout) -> Any:
        return self._send("GET", self._LEASES + "/{name}", {"name": name, "namespace": namespace},
                          timeout=timeout)

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], *, content_type: str,
                                timeout: Timeout) -> Any:
        return self._send("POST", self._LEASES, {"namespace": namespace}, body=body, content_type=content_type,
                          timeout=timeout)

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any], *, content_type: str,
                                 timeout: Timeout) -> Any:
        return self._send("PUT", self._LEASES + "/{name}", {"name": name, "namespace": namespace}, body=body,
                          content_type=content_type, timeout=timeout)


class CoreRequests(_Requests):
    """The core/v1 requests of this package: Nodes (list, watch, create, patch, patch status, delete)
    and namespaced Events (create, patch). Thread-safe (the ``ApiClient``'s pool is)."""

    # -- nodes --

    def list_node(self, *, timeout: Timeout, limit: int | None = None, cont: str | None = None,
                  watch: bool = False, resource_version: str | None = None,
                  allow_watch_bookmarks: bool | None = None, timeout_seconds: int | None = None) -> Any:
        query: list[tuple[str, Any]] = []
        if allow_watch_bookmarks is not None:
            query.append(("allowWatchBookmarks", allow_watch_bookmarks))
        if cont is not None:
            query.append(("continue", cont))
        if limit is not None:
            query.append(("limit", limit))
        if resource_version is not None:
            query.append(("resourceVersion", resource_version))
        if timeout_seconds is not None:
            query.append(("timeoutSeconds", timeout_seconds))
        if watch:
            query.append(("watch", True))
        return self._send("GET", "/api/v1/nodes", query=query, timeout=timeout)

    def create_node(self, body: dict[str, Any], *, content_type: str, timeout: Timeout) -> Any:
        return self._send("POST", "/api/v1/nodes", body=body, content_type=content_type, timeout=timeout)

    def patch_node(self, name: str, body: dict[str, Any], *, content_type: str, timeout: Timeout) -> Any:
        return self._send("PATCH", "/api/v1/nodes/{name}", {"name": name}, body=body,
                          content_type=content_type, timeout=timeout)

    def patch_node_status(self, name: str, body: dict[str, Any], *, content_type: str,
                          timeout: Timeout) -> Any:
        return self._send("PATCH", "/api/v1/nodes/{name}/status", {"name": name}, body=body,
                          content_type=content_type, timeout=timeout)

    def delete_node(self, name: str, body: dict[str, Any], *, content_type: str, timeout: Timeout) -> Any:
        return self._send("DELETE", "/api/v1/nodes/{name}", {"name": name}, body=body,
                          content_type=content_type, timeout=timeout)

    # -- events --

    def create_namespaced_event(self, namespace: str, body: dict[str, Any], *, content_type: str,
                                timeout: Timeout) -> Any:
        return self._send("POST", "/api/v1/namespaces/{namespace}/events", {"namespace": namespace},
                          body=body, content_type=content_type, timeout=timeout)

    def patch_namespaced_event(self, name: str, namespace: str, body: dict[str, Any], *, content_type: str,
                               timeout: Timeout) -> Any:
        return self._send("PATCH", "/api/v1/namespaces/{namespace}/events/{name}",
                          {"name": name, "namespace": namespace}, body=body, content_type=content_type,
                          timeout=timeout)

"""A narrow REST seam over the official kubernetes client: get, create, apply, patch, delete.

Every child is a plain dict, so one path-based layer serves built-in kinds and custom ones
alike, without a typed API class per kind and without the dynamic client's discovery pass.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes
from kubernetes.client import exceptions as client_exceptions

from celery_monitor_operator import naming, resources

APPLY_PATCH = "application/apply-patch+yaml"  # a JSON body is valid YAML
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = (5, 30)


class ApiError(Exception):
    """A refused request, with the API server's own reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


def _error(exc: client_exceptions.ApiException) -> ApiError:
    status = int(exc.status or 0)
    reason, message = str(exc.reason or ""), str(exc.body or "")
    try:
        payload = json.loads(exc.body or "")
        reason = payload.get("reason") or reason
        message = payload.get("message") or message
    except (ValueError, AttributeError):
        pass
    cls = NotFound if status == 404 else Conflict if status == 409 else ApiError
    return cls(status, reason, message)


class Api:
    """Synchronous calls, meant for kopf's sync handlers which run in a thread pool."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client

    @classmethod
    def from_environment(cls) -> Api:
        """In a pod, the service account; elsewhere, the kubeconfig (``$KUBECONFIG`` or ~/.kube/config)."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)
        return cls(kubernetes.client.ApiClient(configuration))

    def request(self, method: str, path: str, body: Any = None, *, content_type: str | None = None,
                query: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        serialized = self.client.param_serialize(
            method=method, resource_path=path, query_params=list((query or {}).items()),
            header_params=headers, body=body, auth_settings=["BearerToken"],
        )
        try:
            response = self.client.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT)
            response.read()
        except client_exceptions.ApiException as exc:
            raise _error(exc) from None
        if not 200 <= response.status <= 299:
            raise _error(client_exceptions.ApiException(http_resp=response))
        return json.loads(response.data) if response.data else {}

    def get(self, ref: resources.ResourceRef, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", ref.path(namespace, name))
        except NotFound:
            return None

    def create(self, ref: resources.ResourceRef, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", ref.path(namespace), body, query={"fieldManager": naming.FIELD_MANAGER})

    def server_side_apply(self, ref: resources.ResourceRef, namespace: str | None, name: str,
                          body: dict[str, Any]) -> dict[str, Any]:
        """Take ownership of exactly the fields in ``body``; fields we applied before and dropped go away."""
        return self.request("PATCH", ref.path(namespace, name), body, content_type=APPLY_PATCH,
                            query={"fieldManager": naming.FIELD_MANAGER, "force": "true"})

    def merge_patch(self, ref: resources.ResourceRef, namespace: str | None, name: str, body: dict[str, Any],
                    subresource: str | None = None) -> dict[str, Any]:
        return self.request("PATCH", ref.path(namespace, name, subresource), body, content_type=MERGE_PATCH)

    def delete(self, ref: resources.ResourceRef, namespace: str | None, name: str) -> None:
        try:
            self.request("DELETE", ref.path(namespace, name), query={"propagationPolicy": "Background"})
        except NotFound:
            pass

    def served_resources(self, group_version: str) -> set[str]:
        """Plural names the API server serves for a group/version; empty when it serves none."""
        path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        try:
            listing = self.request("GET", path)
        except NotFound:
            return set()
        return {item.get("name", "") for item in listing.get("resources", [])}

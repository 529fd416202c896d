"""What an identity scoped to some clusters (``--cluster_access``) may see and control, per request.

The gate lets a scoped identity reach only the routes that know clusters; these helpers are how
those routes narrow what they show (lists filtered to the readable clusters, a task or worker of
another cluster answered as unknown) and refuse what it may not control.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from celery_monitor.auth.cluster_scope import ALL, ClusterScope
from celery_monitor.http.errors import ApiError


def scope_of(request: HTTPConnection) -> ClusterScope | None:
    state = request.scope.get("state") or {}
    scope: ClusterScope | None = state.get("cluster_scope")
    return scope


def readable_filter(request: HTTPConnection, requested: list[str]) -> list[str]:
    """The clusters a list shows: those asked for (none: all), within the readable ones."""
    scope = scope_of(request)
    if scope is None or ALL in scope.readable:
        return requested
    refused = [name for name in requested if not scope.may_read(name)]
    if refused:
        raise ApiError(403, f"This identity may not see the cluster '{refused[0]}'")
    return requested or sorted(scope.readable)


def controllable_filter(request: HTTPConnection, requested: list[str]) -> list[str]:
    """The clusters a bulk action reaches: those asked for (none: all), within the controllable ones."""
    scope = scope_of(request)
    if scope is None or ALL in scope.controllable:
        return requested
    refused = [name for name in requested if not scope.may_control(name)]
    if refused or not scope.controllable:
        raise ApiError(403, f"This identity may not control the cluster '{(refused or requested or ['*'])[0]}'")
    return requested or sorted(scope.controllable)


def may_read(request: HTTPConnection, cluster: str) -> bool:
    scope = scope_of(request)
    return scope is None or scope.may_read(cluster)


def require_control(request: HTTPConnection, cluster: str | None) -> None:
    """403 unless the identity may control ``cluster`` (None: an action on every cluster)."""
    scope = scope_of(request)
    if scope is None:
        return
    if cluster is None:
        if ALL not in scope.controllable:
            raise ApiError(403, "This identity may control some clusters only: name a worker (workername) "
                                "of one of them")
        return
    if not scope.may_control(cluster):
        raise ApiError(403, f"This identity may not control the cluster '{cluster}'")

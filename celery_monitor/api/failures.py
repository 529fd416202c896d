"""Failure groups: the groups, a group's tasks, and a group's bulk re-run and revoke (audited).

A group belongs to one cluster: ``cluster=`` names it (without it, the group's tasks in every
cluster the identity may control). An identity scoped to some clusters acts on those it may
control alone (another cluster's group is unknown to it: 404; one it may only read: 403).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.api.control_common import arguments, control_action, require_writable
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.failures import group_clusters, group_of, group_tasks_answer, groups_answer
from celery_monitor.http.params import bool_arg, int_arg, text_arg
from celery_monitor.http.scope import controllable_filter, scope_of
from celery_monitor.http.tasks import cluster_filter


def _acted_on(request: Request) -> tuple[str, str, list[str]]:
    """The group an action names, and the clusters it reaches: those ``group_clusters`` gives,
    within the ones the identity may control (403 for a cluster it may only read)."""
    name, kind = group_of(request)
    clusters = group_clusters(request, name, kind)
    scope = scope_of(request)
    if scope is not None:
        if cluster_filter(request):  # named: each one must be controllable
            controllable_filter(request, clusters)
        else:
            clusters = [cluster for cluster in clusters if scope.may_control(cluster)]
            if not clusters:
                raise ApiError(403, "This identity may not control any cluster")
    return name, kind, clusters


async def list_groups(request: Request) -> Response:
    """GET /api/failures?window=&buckets=&cluster="""
    return json_response(await groups_answer(request))


async def group_tasks(request: Request) -> Response:
    """GET /api/failures/tasks?name=&exception=&cluster=&limit=&offset="""
    return json_response(await group_tasks_answer(request))


@control_action("failures.revoke", mutating=False)
async def revoke_group(request: Request) -> dict[str, Any]:
    """POST /api/failures/revoke?name=&exception=&cluster=&terminate=&signal=&dry_run="""
    args = await arguments(request)
    dry_run = bool_arg(args, "dry_run")
    if not dry_run:
        require_writable(request)
    name, kind, clusters = _acted_on(request)
    plane = monitor_of(request).control
    signal = text_arg(args, "signal", "SIGTERM") or "SIGTERM"
    return await plane.run(plane.failure_groups.revoke, name, kind, clusters, bool_arg(args, "terminate"), signal,
                           dry_run)


@control_action("failures.rerun", mutating=False)
async def rerun_group(request: Request) -> dict[str, Any]:
    """POST /api/failures/rerun?name=&exception=&cluster=&limit=&dry_run="""
    args = await arguments(request)
    dry_run = bool_arg(args, "dry_run")
    if not dry_run:
        require_writable(request)
    name, kind, clusters = _acted_on(request)
    plane = monitor_of(request).control
    return await plane.run(plane.failure_groups.rerun, name, kind, clusters, dry_run, int_arg(args, "limit"))

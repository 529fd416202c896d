"""Failure groups: the groups, a group's tasks, and a group's bulk re-run and revoke (audited)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.api.control_common import arguments, control_action, require_writable
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import json_response
from celery_monitor.http.failures import group_of, group_tasks_answer, groups_answer
from celery_monitor.http.params import bool_arg, int_arg, text_arg


async def list_groups(request: Request) -> Response:
    """GET /api/failures?window=&buckets="""
    return json_response(await groups_answer(request))


async def group_tasks(request: Request) -> Response:
    """GET /api/failures/tasks?name=&exception=&limit=&offset="""
    return json_response(await group_tasks_answer(request))


@control_action("failures.revoke", mutating=False)
async def revoke_group(request: Request) -> dict[str, Any]:
    """POST /api/failures/revoke?name=&exception=&terminate=&signal=&dry_run="""
    args = await arguments(request)
    dry_run = bool_arg(args, "dry_run")
    if not dry_run:
        require_writable(request)
    name, kind = group_of(request)
    plane = monitor_of(request).control
    signal = text_arg(args, "signal", "SIGTERM") or "SIGTERM"
    return await plane.run(plane.failure_groups.revoke, name, kind, bool_arg(args, "terminate"), signal, dry_run)


@control_action("failures.rerun", mutating=False)
async def rerun_group(request: Request) -> dict[str, Any]:
    """POST /api/failures/rerun?name=&exception=&limit=&dry_run="""
    args = await arguments(request)
    dry_run = bool_arg(args, "dry_run")
    if not dry_run:
        require_writable(request)
    name, kind = group_of(request)
    plane = monitor_of(request).control
    return await plane.run(plane.failure_groups.rerun, name, kind, dry_run, int_arg(args, "limit"))

"""Flower's task execution and control endpoints, plus re-run and bulk revoke."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from celery_monitor.api.control_common import (
    arguments,
    body_of,
    bool_arg,
    control_action,
    control_read,
    float_arg,
    require_writable,
    text_arg,
)
from celery_monitor.api.params import get_bool, get_float
from celery_monitor.api.tasks import monitor_of, task_query
from celery_monitor.control.calls import TaskCall, parse_call

# The longest a request may hold a thread waiting for a result.
MAX_WAIT = 3600.0


async def _call(request: Request) -> TaskCall:
    body, form = await body_of(request)
    return parse_call(body, form)


@control_action("task.apply", "name")
async def apply(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    wait = get_float(request, "timeout", None, maximum=MAX_WAIT)
    return await plane.run(plane.tasks.apply, request.path_params["name"], await _call(request), wait)


@control_action("task.async_apply", "name")
async def async_apply(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    return await plane.run(plane.tasks.async_apply, request.path_params["name"], await _call(request))


@control_action("task.send_task", "name")
async def send_task(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    return await plane.run(plane.tasks.send_task, request.path_params["name"], await _call(request))


@control_read
async def result(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    timeout = get_float(request, "timeout", None, maximum=MAX_WAIT)
    return await plane.run(plane.tasks.result, request.path_params["task_id"], timeout)


@control_action("task.abort", "task_id")
async def abort(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    return {"message": await plane.run(plane.tasks.abort, request.path_params["task_id"])}


@control_action("task.revoke", "task_id")
async def revoke(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    args = await arguments(request)
    task_id = request.path_params["task_id"]
    terminate = bool_arg(args, "terminate")
    signal = text_arg(args, "signal", "SIGTERM") or "SIGTERM"
    workers = await plane.run(plane.tasks.revoke, [task_id], terminate, signal)
    return {"message": f"Revoked '{task_id}'", "workers": workers}


@control_action("task.timeout", "name")
async def time_limit(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    args = await arguments(request)
    soft, hard = float_arg(args, "soft"), float_arg(args, "hard")
    workername = text_arg(args, "workername")
    return {"message": await plane.run(plane.limits.time_limit, request.path_params["name"], soft, hard,
                                       workername)}


@control_action("task.rate_limit", "name")
async def rate_limit(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    args = await arguments(request)
    ratelimit = args.get("ratelimit")
    ratelimit = "" if ratelimit is None else str(ratelimit)
    workername = text_arg(args, "workername")
    return {"message": await plane.run(plane.limits.rate_limit, request.path_params["name"], ratelimit,
                                       workername)}


@control_action("task.rerun", "task_id")
async def rerun(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    force = bool_arg(await arguments(request), "force")
    return await plane.run(plane.tasks.rerun, request.path_params["task_id"], force)


@control_action("tasks.revoke", mutating=False)
async def bulk_revoke(request: Request) -> dict[str, Any]:
    """POST /api/tasks/revoke?<the /api/tasks filters>&terminate=&signal=&dry_run="""
    dry_run = get_bool(request, "dry_run")
    if not dry_run:
        require_writable(request)
    plane = monitor_of(request).control
    query = task_query(request)
    args = await arguments(request)
    terminate = bool_arg(args, "terminate")
    signal = text_arg(args, "signal", "SIGTERM") or "SIGTERM"
    return await plane.run(plane.bulk.revoke, query, terminate, signal, dry_run)

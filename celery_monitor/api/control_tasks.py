"""Flower's task execution and control endpoints, plus re-run (and its check) and bulk revoke."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from celery_monitor.api.control_common import (
    arguments,
    call_body,
    call_cluster,
    control_action,
    control_read,
    require_writable,
)
from celery_monitor.control.calls import OPTIONS, TaskCall, parse_call
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError
from celery_monitor.http.params import bool_arg, float_arg, get_bool, get_float, text_arg
from celery_monitor.http.scope import controllable_filter, scope_of
from celery_monitor.http.tasks import cluster_filter, task_or_404, task_query

# The longest a request may hold a thread waiting for a result.
MAX_WAIT = 3600.0


# apply_async options a caller may not pass on: Python objects (a connection, a producer, a router),
# a serializer other than the one the workers were told to accept (pickle would let a caller reach
# any worker's unpickler), and callbacks or lineage that would run or impersonate other tasks without
# their own audit record.
REFUSED_OPTIONS = frozenset({
    "connection", "producer", "publisher", "router", "app", "serializer", "compression", "link",
    "link_error", "chain", "chord", "group_id", "group_index", "root_id", "parent_id", "reply_to",
    "add_to_parent", "declare", "retry_policy",
})  # fmt: skip


def _passed_on(body: dict[str, Any], form: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the body: what parse_call checks, and other apply_async options, passed on as given."""
    checked: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("timeout", "cluster"):  # apply's wait (Flower reads it from the body too); where to send
            continue
        if key in ("args", "kwargs", "options") or key in OPTIONS:
            checked[key] = value
        elif key in REFUSED_OPTIONS or key.startswith("_"):
            raise ApiError(400, f"Option '{key}' may not be passed on (see docs/migrating.md)")
        elif isinstance(value, dict | list | str | int | float | bool) or value is None:
            extra[key] = value
        else:  # pragma: no cover - JSON holds nothing else
            raise ApiError(400, f"Invalid '{key}'")
    nested = checked.get("options")
    if isinstance(nested, dict):
        inner, more = _passed_on(nested, form)
        checked["options"], extra = inner, {**more, **extra}
    return checked, extra


async def _call(request: Request) -> TaskCall:
    body, form = await call_body(request)
    checked, extra = _passed_on(body, form)
    call = parse_call(checked, form)
    call.options.update(extra)
    return call


@control_action("task.apply", "name")
async def apply(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    wait = get_float(request, "timeout", None, maximum=MAX_WAIT)
    body, _ = await call_body(request)
    if wait is None and body.get("timeout") is not None:
        wait = float_arg(body, "timeout")
        if wait is not None and wait > MAX_WAIT:
            raise ApiError(400, f"Invalid 'timeout': must be at most {MAX_WAIT:g}")
    return await plane.run(plane.tasks.apply, request.path_params["name"], await _call(request), wait,
                           await call_cluster(request))


@control_action("task.async_apply", "name")
async def async_apply(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    return await plane.run(plane.tasks.async_apply, request.path_params["name"], await _call(request),
                           await call_cluster(request))


@control_action("task.send_task", "name")
async def send_task(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    return await plane.run(plane.tasks.send_task, request.path_params["name"], await _call(request),
                           await call_cluster(request))


@control_read
async def result(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    timeout = get_float(request, "timeout", None, maximum=MAX_WAIT)
    if scope_of(request) is not None:  # a scoped identity reads the results of its clusters' tasks only
        await task_or_404(request, request.path_params["task_id"])
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


@control_read
async def rerun_check(request: Request) -> dict[str, Any]:
    """GET /api/task/rerun/<id>: whether a re-run would be sent, with which arguments, or why not."""
    plane = monitor_of(request).control
    force = get_bool(request, "force")
    return await plane.run(plane.tasks.rerun_check, request.path_params["task_id"], force)


@control_action("tasks.revoke", mutating=False)
async def bulk_revoke(request: Request) -> dict[str, Any]:
    """POST /api/tasks/revoke?<the /api/tasks filters>&queue=&terminate=&signal=&dry_run="""
    dry_run = get_bool(request, "dry_run")
    if not dry_run:
        require_writable(request)
    plane = monitor_of(request).control
    query = task_query(request)
    query.clusters = controllable_filter(request, cluster_filter(request))
    args = await arguments(request)
    terminate = bool_arg(args, "terminate")
    signal = text_arg(args, "signal", "SIGTERM") or "SIGTERM"
    queue = text_arg(args, "queue")
    return await plane.run(plane.bulk.revoke, query, terminate, signal, dry_run, queue)

"""Task read endpoints, drop-in for Flower 2.x: list with filters and search, info, types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from celery_monitor.api.errors import ApiError, json_response
from celery_monitor.api.params import get_int, get_list, get_time
from celery_monitor.auth.redact import Redactor
from celery_monitor.store.query import SORT_KEYS, TaskQuery
from celery_monitor.store.search import SearchError, parse_search

if TYPE_CHECKING:
    from celery_monitor.service import Monitor


def monitor_of(request: Request) -> Monitor:
    return request.app.state.monitor  # type: ignore[no-any-return]


def redactor_of(request: Request) -> Redactor | None:
    """The --redact and format_task rules, for task data that does not come from the history."""
    return monitor_of(request).applier.redactor


def task_query(request: Request) -> TaskQuery:
    """The query that /api/tasks and the tasks page share."""
    sort_by = request.query_params.get("sort_by") or None
    descending = True
    if sort_by is not None:
        descending = sort_by.startswith("-")
        sort_by = sort_by.lstrip("-")
        if sort_by not in SORT_KEYS:
            raise ApiError(400, f"Invalid 'sort_by': {sort_by!r} (one of {', '.join(SORT_KEYS)})")
    return TaskQuery(
        limit=get_int(request, "limit", None, minimum=0),
        offset=get_int(request, "offset", 0, minimum=0) or 0,
        sort_by=sort_by,
        descending=descending,
        workers=get_list(request, "workername"),
        names=get_list(request, "taskname"),
        states=[s.upper() for s in get_list(request, "state")],
        received_start=get_time(request, "received_start"),
        received_end=get_time(request, "received_end"),
        search=_search(request),
    )


def _search(request: Request) -> Any:
    try:
        return parse_search(request.query_params.get("search"))
    except SearchError as exc:
        raise ApiError(400, f"Invalid 'search': {exc}") from None


def flower_fields(task: dict[str, Any]) -> dict[str, Any]:
    """The task with Flower's names for its lineage too (``root`` and ``parent``: the ids)."""
    task["root"] = task.get("root_id")
    task["parent"] = task.get("parent_id")
    return task


async def list_tasks(request: Request) -> Response:
    """GET /api/tasks: a page with ``limit``; without one, every match, streamed a chunk at a time."""
    monitor = monitor_of(request)
    query = task_query(request)
    if query.limit is None:
        stream = await run_in_threadpool(monitor.stream_tasks, query)
        return StreamingResponse(_json_object(stream), media_type="application/json")
    tasks = await run_in_threadpool(monitor.query_tasks, query)
    return json_response({task["uuid"]: flower_fields(task) for task in tasks})


async def _json_object(stream: Any) -> Any:
    """``{"<uuid>": {...}, ...}`` written as the chunks are read: memory stays bounded."""
    yield b"{"
    first = True
    while (chunk := await run_in_threadpool(stream.next_chunk)) is not None:
        parts = [orjson.dumps(task["uuid"]) + b":" + orjson.dumps(flower_fields(task), option=orjson.OPT_NON_STR_KEYS)
                 for task in chunk]
        if parts:
            yield (b"" if first else b",") + b",".join(parts)
            first = False
    yield b"}"


async def task_info(request: Request) -> Response:
    monitor = monitor_of(request)
    task_id = request.path_params["task_id"]
    task = await run_in_threadpool(monitor.get_task, task_id)
    if task is None:
        raise ApiError(404, f"Unknown task '{task_id}'")
    info: dict[str, Any] = flower_fields(dict(task))
    info["task-id"] = task_id
    return json_response(info)


async def task_types(request: Request) -> Response:
    monitor = monitor_of(request)
    return json_response({"task-types": sorted(monitor.task_names())})

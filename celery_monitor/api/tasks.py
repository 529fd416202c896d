"""Task read endpoints, drop-in for Flower 2.x: list with filters and search, info, types."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import json_response
from celery_monitor.http.tasks import task_or_404, task_query


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
    task_id = request.path_params["task_id"]
    info: dict[str, Any] = flower_fields(dict(await task_or_404(request, task_id)))
    info["task-id"] = task_id
    return json_response(info)


async def task_types(request: Request) -> Response:
    monitor = monitor_of(request)
    return json_response({"task-types": sorted(monitor.task_names())})

"""Task read endpoints, drop-in for Flower 2.x: list with filters and search, info, types."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import json_response
from celery_monitor.http.scope import readable_filter
from celery_monitor.http.tasks import cluster_filter, task_or_404, task_query


def flower_fields(task: dict[str, Any]) -> dict[str, Any]:
    """The task with Flower's names for its lineage too (``root`` and ``parent``: the ids)."""
    task["root"] = task.get("root_id")
    task["parent"] = task.get("parent_id")
    return task


async def list_tasks(request: Request) -> Response:
    """GET /api/tasks: a page with ``limit``; without one, every match, streamed a chunk at a time.

    A full page says where the next one is (a ``Link`` header, ``rel="next"``: the same query with
    ``after=<cursor>``, one index seek however deep); ``offset`` works as in Flower."""
    monitor = monitor_of(request)
    query = task_query(request)
    if query.limit is None:
        stream = await run_in_threadpool(monitor.stream_tasks, query)
        return StreamingResponse(_json_object(stream), media_type="application/json")
    tasks = await run_in_threadpool(monitor.query_tasks, query)
    response = json_response({task["uuid"]: flower_fields(task) for task in tasks})
    if tasks and len(tasks) >= query.limit:
        # Keyset paging beside Flower's shape: the next page's address, by cursor (RFC 8288).
        (cursor,) = await run_in_threadpool(monitor.task_cursors, query, [tasks[-1]])
        following = request.url.remove_query_params("offset").include_query_params(after=cursor.token())
        response.headers["Link"] = f'<{following}>; rel="next"'
    return response


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
    """Flower's list of task names; ``cluster=`` (and a scoped identity's clusters) narrow it."""
    monitor = monitor_of(request)
    chosen = readable_filter(request, cluster_filter(request))
    return json_response({"task-types": sorted(monitor.task_names(chosen or None))})

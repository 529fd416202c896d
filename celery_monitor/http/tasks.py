"""The task reads the API and the pages share: the query from the parameters, a task or 404."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request

from celery_monitor import clusters
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError
from celery_monitor.http.params import get_int, get_list, get_time
from celery_monitor.http.scope import may_read, readable_filter
from celery_monitor.store.query import SORT_KEYS, Cursor, TaskQuery, cursor_fits
from celery_monitor.store.search import SearchError, parse_search


def task_query(request: Request) -> TaskQuery:
    """The query that /api/tasks, bulk revoke and the tasks page share (``after=<cursor>``: from just
    past that row on, keyset paging; ``offset`` then counts from there)."""
    sort_by = request.query_params.get("sort_by") or None
    descending = True
    if sort_by is not None:
        descending = sort_by.startswith("-")
        sort_by = sort_by.lstrip("-")
        if sort_by not in SORT_KEYS:
            raise ApiError(400, f"Invalid 'sort_by': {sort_by!r} (one of {', '.join(SORT_KEYS)})")
    query = TaskQuery(
        limit=get_int(request, "limit", None, minimum=0),
        offset=get_int(request, "offset", 0, minimum=0) or 0,
        sort_by=sort_by,
        descending=descending,
        workers=get_list(request, "workername"),
        names=get_list(request, "taskname"),
        states=[s.upper() for s in get_list(request, "state")],
        clusters=readable_filter(request, cluster_filter(request)),
        received_start=get_time(request, "received_start"),
        received_end=get_time(request, "received_end"),
        search=_search(request),
        after=_cursor(request, "after"),
    )
    _check_cursor(query, query.after, "after")
    return query


def page_query(request: Request) -> tuple[TaskQuery, bool]:
    """:func:`task_query` for a page, where ``before=<cursor>`` asks for the page just before a row
    (keyset paging backwards): the query then reads its order backwards from the cursor, and
    ``True`` says to reverse what it gives."""
    query = task_query(request)
    before = _cursor(request, "before")
    if before is None:
        return query, False
    if query.after is not None:
        raise ApiError(400, "Invalid 'before': give 'after' or 'before', not both")
    _check_cursor(query, before, "before")
    query.after, query.descending = before, not query.descending
    return query, True


def _cursor(request: Request, name: str) -> Cursor | None:
    token = request.query_params.get(name)
    if not token:
        return None
    try:
        return Cursor.parse(token)
    except ValueError as exc:
        raise ApiError(400, f"Invalid {name!r}: {exc}") from None


def _check_cursor(query: TaskQuery, cursor: Cursor | None, name: str) -> None:
    if cursor is not None and (why := cursor_fits(query, cursor)) is not None:
        raise ApiError(400, f"Invalid {name!r}: {why}")


def cluster_filter(request: HTTPConnection) -> list[str]:
    """``cluster=`` (repeated or comma-separated): the clusters a list is limited to (none: all)."""
    wanted = get_list(request, "cluster")
    for name in wanted:
        try:
            clusters.check_name(name)
        except clusters.BadClusters as exc:
            raise ApiError(400, f"Invalid 'cluster': {exc}") from None
    return wanted


def _search(request: Request) -> Any:
    try:
        return parse_search(request.query_params.get("search"))
    except SearchError as exc:
        raise ApiError(400, f"Invalid 'search': {exc}") from None


async def task_or_404(request: Request, task_id: str) -> dict[str, Any]:
    """The task as the monitor knows it (live, pending or stored), or a 404."""
    task = await run_in_threadpool(monitor_of(request).get_task, task_id)
    if task is None or not may_read(request, task.get("cluster") or clusters.DEFAULT):
        raise ApiError(404, f"Unknown task '{task_id}'")
    return task

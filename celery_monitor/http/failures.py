"""The failure groups' reads, as /api/failures and the failures page share them.

Groups come from the history's failures table (``store/failures.py``): what the writer has not
committed yet (at most about half a second) joins them at its next flush. A group belongs to one
cluster and says which; ``cluster=`` narrows the groups, and names the cluster of a group's tasks and
actions (without it: every cluster watched, as far as the identity may see them). An identity
scoped to some clusters (``--cluster_access``) sees its clusters' groups alone; another cluster's
group is unknown to it (404). Task data there was
redacted when its events arrived (``--redact``, ``format_task``), like everything the history holds.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request

from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError
from celery_monitor.http.params import get_float, get_int
from celery_monitor.http.scope import may_read, readable_filter
from celery_monitor.http.tasks import cluster_filter
from celery_monitor.store import failures
from celery_monitor.store.base import Store

DEFAULT_WINDOW = 3600.0
MAX_WINDOW = 30 * 86400.0
DEFAULT_BUCKETS = 12
PAGE_MAX = 500


def group_of(request: Request) -> tuple[str, str]:
    """The group a request names: ``name`` (the task name) and ``exception`` (the exception type)."""
    name = request.query_params.get("name")
    kind = request.query_params.get("exception")
    if name is None or kind is None:
        raise ApiError(400, "A failure group is named by 'name' (the task name) and 'exception' (the exception "
                            "type; empty for none)")
    if len(name) > 1024 or len(kind) > failures.MAX_TYPE:
        raise ApiError(400, "Invalid 'name' or 'exception': too long")
    return name, kind


def group_clusters(request: HTTPConnection, name: str, kind: str) -> list[str]:
    """The clusters a group's request reaches: ``cluster=`` (a bad name: 400), else every cluster
    watched; only those the identity may see (a group of another cluster is unknown to it)."""
    requested = cluster_filter(request)
    if any(not may_read(request, cluster) for cluster in requested):
        raise ApiError(404, f"No failure group '{name}' / '{kind}' in the cluster '{requested[0]}'")
    return requested or [cluster for cluster in monitor_of(request).cluster_names if may_read(request, cluster)]


def _groups(store: Store, window: float, buckets: int, now: float, clusters: list[str]) -> dict[str, Any]:
    since = now - window
    width = window / buckets
    found = store.failure_groups(since, width, clusters)
    groups = [failures.summary(group, since, buckets,
                               store.failure_sample(group.name, group.exception_type, group.cluster))
              for group in found]
    return {"window": window, "buckets": buckets, "bucket_seconds": width, "since": since, "now": now,
            "total": store.failure_total(clusters), "groups": groups}


async def groups_answer(request: Request) -> dict[str, Any]:
    """Every group (of the clusters ``cluster=`` names, and the identity may see), the largest
    first: counts, first and last seen, trend over ``window`` seconds in ``buckets`` buckets, and the
    latest failure as a sample."""
    clusters = readable_filter(request, cluster_filter(request))
    window = get_float(request, "window", DEFAULT_WINDOW, minimum=60.0, maximum=MAX_WINDOW) or DEFAULT_WINDOW
    buckets = get_int(request, "buckets", DEFAULT_BUCKETS, minimum=2, maximum=120) or DEFAULT_BUCKETS
    return await run_in_threadpool(_groups, monitor_of(request).store, window, buckets, time.time(), clusters)


async def group_tasks_answer(request: Request) -> dict[str, Any]:
    """One group's tasks (in the clusters of ``group_clusters``), the latest first, paged with
    ``limit`` and ``offset``."""
    name, kind = group_of(request)
    clusters = group_clusters(request, name, kind)
    limit = get_int(request, "limit", 50, minimum=1, maximum=PAGE_MAX) or 50
    offset = get_int(request, "offset", 0, minimum=0) or 0
    store = monitor_of(request).store
    tasks = await run_in_threadpool(store.failure_tasks, name, kind, limit, offset, clusters)
    total = await run_in_threadpool(store.failure_count, name, kind, clusters)
    return {"name": name, "exception_type": kind, "clusters": clusters, "total": total, "limit": limit,
            "offset": offset, "tasks": tasks}

"""JSON the pages fetch: the same reads as the API, shaped for tables and graphs.

These live under /ui (behind the same auth gate as everything else) so the pages can change
shape without touching the Flower-compatible API.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from celery_monitor import clusters
from celery_monitor.auth import redact_replies
from celery_monitor.celery_app import shown_broker
from celery_monitor.http.audit import audit_filter, audit_page
from celery_monitor.http.context import monitor_of, redactor_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.failures import group_tasks_answer, groups_answer
from celery_monitor.http.params import get_bool
from celery_monitor.http.schedules import schedules_listing
from celery_monitor.http.scope import may_read, readable_filter
from celery_monitor.http.tasks import cluster_filter, page_query, task_or_404
from celery_monitor.http.workers import refresh_inspector, worker_row
from celery_monitor.store.query import total_cap

if TYPE_CHECKING:
    from celery import Celery

    from celery_monitor.metrics.timeline import Timeline
    from celery_monitor.service import Monitor

PAGE_LIMIT = 500


async def workers(request: Request) -> Response:
    """The workers' rows; ``cluster=`` keeps those of the clusters named (the page's cluster switcher),
    and an identity scoped to some clusters sees theirs alone."""
    wanted = readable_filter(request, cluster_filter(request))
    live = monitor_of(request).live.worker_dicts()
    rows = [worker_row(live[name]) for name in sorted(live)]
    return json_response({"workers": [row for row in rows if not wanted or row["cluster"] in wanted]})


def _readable_worker(request: Request) -> str:
    """The worker the path names; 404 for one of a cluster this identity may not see."""
    name: str = request.path_params["name"]
    if not may_read(request, monitor_of(request).cluster_of(name)):
        raise ApiError(404, f"Unknown worker '{name}'")
    return name


async def worker(request: Request) -> Response:
    monitor = monitor_of(request)
    name = _readable_worker(request)
    if get_bool(request, "refresh"):
        await refresh_inspector(request, name)
    live = monitor.live.worker_dicts()
    details = redact_replies.inspect_details(redactor_of(request), monitor.inspector.details(name)).get(name, {})
    if name not in live and not details:
        raise ApiError(404, f"Unknown worker '{name}'")
    row = worker_row(live[name]) if name in live else None
    return json_response({"worker": row, "inspect": details})


LIMIT_ITEMS = ("rate_limit", "soft_time_limit", "time_limit")


def _registered_limits(monitor: Monitor, name: str) -> list[str]:
    for _cluster, app, bare in monitor.apps.routes([name]):  # asked on the worker's own cluster
        inspect = app.control.inspect(timeout=monitor.inspector.timeout, destination=bare)
        return list((inspect.registered(*LIMIT_ITEMS) or {}).get((bare or [name])[0]) or [])
    return []


async def worker_limits(request: Request) -> Response:
    """Rate and time limits per registered task: asked of the worker when its Limits tab opens."""
    monitor = monitor_of(request)
    name = _readable_worker(request)
    try:
        registered = await run_in_threadpool(_registered_limits, monitor, name)
    except Exception as exc:
        raise ApiError(503, f"Could not inspect '{name}': {type(exc).__name__}: {exc}") from None
    return json_response({"registered": registered})


async def tasks(request: Request) -> Response:
    """A page of the task table, its total, and the cursors of the pages after and before it.

    ``total`` is exact unless ``total_exact`` is false: a search or a received range is counted up
    to ``COUNT_CAP`` matches, and ``total`` is then that many (there are more). ``next`` and ``prev``
    are cursors for ``after=`` and ``before=`` (the pages beside this one, one index seek each
    however deep); null where no such page exists.
    """
    monitor = monitor_of(request)
    query, backwards = page_query(request)
    if query.limit is None or query.limit > PAGE_LIMIT:
        query.limit = min(query.limit or 50, PAGE_LIMIT)
    limit = query.limit
    rows = await run_in_threadpool(monitor.query_tasks, query)
    if backwards:
        rows.reverse()
        query.descending = not query.descending
    edge = len(rows) >= limit  # a full page: more may follow it (backwards: precede it)
    first, last = await run_in_threadpool(monitor.task_cursors, query, [rows[0], rows[-1]]) if rows else (None, None)
    cap = total_cap(query)
    counted = dataclasses.replace(query, limit=None, offset=0, after=None)
    total = await run_in_threadpool(monitor.count_tasks, counted, cap)
    exact = cap is None or total <= cap
    on_top = query.after is None and query.offset == 0
    if exact and query.after is None and query.offset + len(rows) >= total:
        edge = False  # the last page, by an exact total
    return json_response({
        "total": total if exact else cap, "total_exact": exact, "tasks": rows,
        "next": last.token() if last is not None and (edge or backwards) else None,
        "prev": first.token() if first is not None and not on_top and (edge or not backwards) else None,
    })


async def task(request: Request) -> Response:
    return json_response({"task": await task_or_404(request, request.path_params["task_id"])})


async def broker(request: Request) -> Response:
    """The queues of the clusters shown (``cluster=``, the page's switcher; a scoped identity's
    own), each cluster's broker (no password) and why its last poll failed, and the lengths over
    time (keyed ``<cluster>:<queue>`` when several clusters are watched)."""
    monitor = monitor_of(request)
    poller = monitor.queue_poller
    wanted = readable_filter(request, cluster_filter(request)) or list(monitor.cluster_names)
    several = len(monitor.cluster_names) > 1
    history = [[at, {clusters.qualified(cluster, name) if several else name: messages
                     for cluster, lengths in by_cluster.items() if cluster in wanted
                     for name, messages in lengths.items()}]
               for at, by_cluster in list(poller.history)]
    errors = {cluster: error for cluster, error in poller.errors.items() if cluster in wanted}
    brokers = {name: _safe_broker_url(app) for name, app in monitor.apps.apps.items() if name in wanted}
    error = (next(iter(errors.values())) if not several else
             "; ".join(f"{cluster}: {reason}" for cluster, reason in errors.items())) if errors else None
    return json_response({"queues": [q for q in poller.latest if q["cluster"] in wanted],
                          "polled_at": poller.latest_at, "error": error, "errors": errors,
                          "broker": next(iter(brokers.values())) if len(brokers) == 1 else "", "brokers": brokers,
                          "history": history})


def _safe_broker_url(app: Celery) -> str:
    """The broker URL with its password masked."""
    try:
        return shown_broker(app)
    except Exception:
        return ""


async def audit(request: Request) -> Response:
    """A page of the audit trail (the API's filters), and the users and actions to filter by."""
    monitor = monitor_of(request)
    page = await audit_page(request)
    page["facets"] = await monitor.control.run(monitor.audit.facets, audit_filter(request).clusters)
    return json_response(page)


async def schedules(request: Request) -> Response:
    """The beat entries, as GET /api/schedules lists them (arguments redacted there)."""
    return json_response(schedules_listing(request))


async def failure_groups(request: Request) -> Response:
    return json_response(await groups_answer(request))


async def failure_tasks(request: Request) -> Response:
    return json_response(await group_tasks_answer(request))


async def notifications(request: Request) -> Response:
    """Rules, channels (secrets masked) and the newest deliveries, for the notifications page."""
    notifier = monitor_of(request).notifier
    overview = notifier.as_dict()
    overview["deliveries"] = await monitor_of(request).control.run(notifier.ledger.recent, 100, 0)
    return json_response(overview)


async def timeline(request: Request) -> Response:
    """The graphs' points; ``cluster=`` (and a scoped identity's clusters) narrow them."""
    line: Timeline = request.app.state.timeline
    monitor = monitor_of(request)
    chosen = readable_filter(request, cluster_filter(request))
    return json_response({"points": [monitor.graph_point(point, chosen) for point in line.history()],
                          "interval": line.interval})


async def live(request: Request) -> Response:
    """What the page's live socket may expect. Sits at the site's root on purpose: a browser
    reuses Basic credentials only below the folder they were asked for, and fetching this first
    extends them to /api/ws, which a WebSocket handshake cannot ask for itself."""
    settings = monitor_of(request).settings
    return json_response({"auto_refresh": settings.auto_refresh})

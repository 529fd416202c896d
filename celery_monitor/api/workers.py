"""GET /api/workers: inspect details per worker (Flower's shape), with status and freshness."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.auth import redact_replies
from celery_monitor.http.context import monitor_of, redactor_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.params import get_bool
from celery_monitor.http.scope import readable_filter
from celery_monitor.http.tasks import cluster_filter
from celery_monitor.http.workers import refresh_inspector


async def list_workers(request: Request) -> Response:
    monitor = monitor_of(request)
    refresh = get_bool(request, "refresh")
    status_only = get_bool(request, "status")
    workername = request.query_params.get("workername") or None

    wanted = readable_filter(request, cluster_filter(request))
    live = monitor.live.worker_dicts()
    if workername and wanted and monitor.cluster_of(workername) not in wanted:
        raise ApiError(404, f"Unknown worker '{workername}'")
    if workername and workername not in live and not monitor.inspector.details(workername) and not refresh:
        raise ApiError(404, f"Unknown worker '{workername}'")
    if status_only:
        names = [workername] if workername else list(live)
        names = [name for name in names if not wanted or monitor.cluster_of(name) in wanted]
        return json_response({name: bool(live.get(name, {}).get("status")) for name in names})
    if refresh:
        await refresh_inspector(request, workername)
    details = redact_replies.inspect_details(redactor_of(request), monitor.inspector.details(workername))
    if workername and workername not in live and not details:
        raise ApiError(404, f"Unknown worker '{workername}'")
    names = [workername] if workername else sorted(set(live) | set(details))
    names = [name for name in names if not wanted or monitor.cluster_of(name) in wanted]
    freshness = monitor.inspector.freshness(workername)
    result: dict[str, Any] = {}
    for name in names:
        entry: dict[str, Any] = dict(details.get(name, {}))
        worker = live.get(name)
        entry["status"] = bool(worker and worker["status"])
        entry["inspected_at"] = entry.get("timestamp")
        entry["freshness"] = freshness.get(name)
        entry["cluster"] = monitor.cluster_of(name)
        if worker is not None:
            entry["events"] = {k: worker[k] for k in ("active", "processed", "loadavg", "freq", "pid",
                                                      "sw_ident", "sw_ver", "sw_sys", "last_heartbeat",
                                                      "clock_skew", "counters")}
        result[name] = entry
    return json_response(result)

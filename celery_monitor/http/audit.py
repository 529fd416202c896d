"""The audit trail's filters and pages, as /api/audit and the audit page read them.

Filters: ``user``, ``action`` and ``target`` (each the whole value), ``since`` and ``until`` (the
time range, as the task filters take times), ``cluster`` (the actions that reached those clusters;
an identity scoped to some clusters sees only theirs, never an action on every cluster); paged
with ``limit`` and ``offset``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from celery_monitor.control.audit import AuditFilter
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError
from celery_monitor.http.params import get_int, get_time
from celery_monitor.http.scope import readable_filter
from celery_monitor.http.tasks import cluster_filter

MAX_TEXT = 8192  # a bulk action's target is its query string


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and len(value) > MAX_TEXT:
        raise ApiError(400, f"Invalid '{name}': longer than {MAX_TEXT} characters")
    return value


def audit_filter(request: Request) -> AuditFilter:
    return AuditFilter(user=_text(request, "user"), action=_text(request, "action"), target=_text(request, "target"),
                       since=get_time(request, "since"), until=get_time(request, "until"),
                       clusters=tuple(readable_filter(request, cluster_filter(request))))


async def audit_page(request: Request) -> dict[str, Any]:
    """One page of the trail, with the total the filter selects."""
    monitor = monitor_of(request)
    limit = get_int(request, "limit", 50, minimum=1, maximum=1000) or 50
    offset = get_int(request, "offset", 0, minimum=0) or 0
    where = audit_filter(request)
    entries = await monitor.control.run(monitor.audit.entries, limit, offset, where=where)
    total = await monitor.control.run(monitor.audit.count, where=where)
    return {"total": total, "limit": limit, "offset": offset, "entries": entries}

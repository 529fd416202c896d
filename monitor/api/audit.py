"""GET /api/audit: the control actions taken through the monitor, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.api.errors import json_response
from celery_monitor.api.params import get_int
from celery_monitor.api.tasks import monitor_of


async def list_audit(request: Request) -> Response:
    monitor = monitor_of(request)
    limit = get_int(request, "limit", 50, minimum=1, maximum=1000) or 50
    offset = get_int(request, "offset", 0, minimum=0) or 0
    user = request.query_params.get("user") or None
    action = request.query_params.get("action") or None
    entries = await monitor.control.run(monitor.audit.entries, limit, offset, user, action)
    total = await monitor.control.run(monitor.audit.count, user, action)
    return json_response({"total": total, "limit": limit, "offset": offset, "entries": entries})

"""GET /api/audit: the control actions taken through the monitor, newest first.

Filters and paging as :mod:`celery_monitor.http.audit` reads them. Read-only identities may read
it too: it is the record of who changed what, and the task data in it was redacted before it was
recorded, by the same rules for everyone.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.http.audit import audit_page
from celery_monitor.http.errors import json_response


async def list_audit(request: Request) -> Response:
    return json_response(await audit_page(request))

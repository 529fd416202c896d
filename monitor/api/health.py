"""Liveness and the monitor's own status."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from celery_monitor.api.errors import json_response
from celery_monitor.api.tasks import monitor_of


async def healthcheck(request: Request) -> Response:
    return PlainTextResponse("OK")


async def monitor_status(request: Request) -> Response:
    return json_response(monitor_of(request).status())

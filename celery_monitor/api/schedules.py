"""Periodic tasks: GET /api/schedules lists every beat entry; enable, disable and run-now act on one.

An entry is named ``<source>:<name>`` (``app``, ``django`` or ``redbeat``), URL-encoded in the path;
with several clusters, qualified by its cluster as a worker's name is (``prod:django:nightly``), and
``cluster=`` narrows the list.
Enabling and disabling write to the scheduler's own storage (django-celery-beat, RedBeat); run-now
sends the entry's task with its arguments and options, for any source. All three are audited.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.api.control_common import control_action
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.schedules import schedules_listing
from celery_monitor.schedules.catalog import ScheduleError


async def list_schedules(request: Request) -> Response:
    return json_response(schedules_listing(request))


async def _act(request: Request, action: str) -> dict[str, Any]:
    monitor = monitor_of(request)
    schedules = monitor.schedules
    key = request.path_params["entry"]
    try:
        if action == "run":
            return await monitor.control.run(schedules.run_now, key)
        return await monitor.control.run(schedules.set_enabled, key, action == "enable")
    except ScheduleError as exc:
        raise ApiError(exc.status, exc.reason) from None


@control_action("schedule.enable", "entry")
async def enable(request: Request) -> dict[str, Any]:
    return await _act(request, "enable")


@control_action("schedule.disable", "entry")
async def disable(request: Request) -> dict[str, Any]:
    return await _act(request, "disable")


@control_action("schedule.run", "entry")
async def run_now(request: Request) -> dict[str, Any]:
    return await _act(request, "run")

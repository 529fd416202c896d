"""Flower's worker control endpoints: POST /api/worker/..."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from celery_monitor.api.control_common import arguments, control_action
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError
from celery_monitor.http.params import int_arg, text_arg


def _worker(request: Request) -> str:
    return str(request.path_params["name"])


@control_action("worker.shutdown", "name")
async def shutdown(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    return {"message": await plane.run(plane.workers.shutdown, _worker(request))}


@control_action("worker.pool_restart", "name")
async def pool_restart(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    return {"message": await plane.run(plane.workers.pool_restart, _worker(request))}


@control_action("worker.pool_grow", "name")
async def pool_grow(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    n = int_arg(await arguments(request), "n", 1) or 0
    return {"message": await plane.run(plane.workers.pool_grow, _worker(request), n)}


@control_action("worker.pool_shrink", "name")
async def pool_shrink(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    n = int_arg(await arguments(request), "n", 1) or 0
    return {"message": await plane.run(plane.workers.pool_shrink, _worker(request), n)}


@control_action("worker.pool_autoscale", "name")
async def pool_autoscale(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    args = await arguments(request)
    minimum, maximum = int_arg(args, "min"), int_arg(args, "max")
    if minimum is None or maximum is None:
        raise ApiError(400, "Missing 'min' or 'max'")
    return {"message": await plane.run(plane.workers.autoscale, _worker(request), minimum, maximum)}


@control_action("worker.add_consumer", "name")
async def add_consumer(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    queue = text_arg(await arguments(request), "queue", "") or ""
    return {"message": await plane.run(plane.workers.add_consumer, _worker(request), queue)}


@control_action("worker.cancel_consumer", "name")
async def cancel_consumer(request: Request) -> dict[str, Any]:
    plane = monitor_of(request).control
    queue = text_arg(await arguments(request), "queue", "") or ""
    return {"message": await plane.run(plane.workers.cancel_consumer, _worker(request), queue)}

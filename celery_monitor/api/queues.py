"""GET /api/queues/length: messages waiting per queue, straight from the broker."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.broker.queues import BrokerUnavailable
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError, json_response


async def queue_lengths(request: Request) -> Response:
    monitor = monitor_of(request)
    try:
        queues = await run_in_threadpool(monitor.queue_lengths)
    except BrokerUnavailable as exc:
        raise ApiError(503, f"Broker unavailable: {exc}") from None
    return json_response({"active_queues": queues})

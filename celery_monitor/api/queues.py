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


async def queue_backlog(request: Request) -> Response:
    """GET /api/queues/backlog: per queue, the messages waiting in the broker (Redis priority
    sub-queues included) and the tasks workers reserved from it, from the latest background poll.

    ``queue`` (repeatable) selects queues; ``backlog``, ``waiting`` and ``reserved`` at the top are
    their sums, the one number a KEDA metrics-api trigger reads (``valueLocation: backlog``).
    """
    monitor = monitor_of(request)
    measured = monitor.queue_backlogs()
    if measured is None:
        reason = monitor.queue_poller.last_error or "no recent poll of the queue lengths"
        raise ApiError(503, f"Broker unavailable: {reason}")
    wanted = list(dict.fromkeys(request.query_params.getlist("queue"))) or sorted(measured)
    unknown = [name for name in wanted if name not in measured]
    if unknown:
        raise ApiError(404, f"Queue {unknown[0]!r} is not measured: no worker consumes it and the configuration "
                            "does not name it (name it in --queues)")
    selected = {name: measured[name] for name in wanted}
    totals = {key: sum(queue[key] for queue in selected.values()) for key in ("backlog", "waiting", "reserved")}
    return json_response({**totals, "queues": selected, "polled_at": monitor.queue_poller.latest_at})

"""GET /api/queues/<queue>/tasks: the tasks waiting in a queue, read from the broker.

The tasks come in the order workers will take them (``position`` 0 first), a page at a time
(``limit`` up to :data:`~celery_monitor.broker.messages.PAGE_MAX`, ``offset``), with ``total`` the
queue's length. Their args and kwargs are the previews Celery's headers carry (``argsrepr``,
cut at 1,024 characters), redacted by the same rules as everything else. On RabbitMQ reading has
side effects (see :mod:`celery_monitor.broker.messages`): the answer's ``note`` says them.

With several clusters ``cluster=`` names the queue's cluster (its broker is read); a cluster this
identity may not see, or one the monitor does not watch, is answered 404 like a task of it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from celery_monitor.auth.redact import redact_request
from celery_monitor.broker.messages import PAGE_MAX, BrokerUnreachable, QueueUnreadable
from celery_monitor.http.context import monitor_of, redactor_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.params import get_int
from celery_monitor.http.scope import may_read
from celery_monitor.http.tasks import cluster_filter

MAX_QUEUE_NAME = 255  # AMQP's limit for a queue name


def _redacted(task: dict[str, Any], request: Request) -> dict[str, Any]:
    fields = redact_request(redactor_of(request), {"id": task["uuid"], "name": task["name"], "args": task["args"],
                                                   "kwargs": task["kwargs"]})
    return {**task, "args": fields["args"], "kwargs": fields["kwargs"]}


async def queued_tasks(request: Request) -> Response:
    monitor = monitor_of(request)
    queue = request.path_params["queue"]
    if not queue or len(queue) > MAX_QUEUE_NAME:
        raise ApiError(400, f"Invalid queue name (1 to {MAX_QUEUE_NAME} characters)")
    limit = get_int(request, "limit", 50, minimum=1, maximum=PAGE_MAX) or 50
    offset = get_int(request, "offset", 0, minimum=0) or 0
    asked = cluster_filter(request)
    if len(asked) > 1:
        raise ApiError(400, "Invalid 'cluster': one cluster, the queue's")
    if not asked and len(monitor.cluster_names) > 1:
        raise ApiError(400, f"Name the queue's cluster (cluster=): this monitor watches "
                            f"{', '.join(monitor.cluster_names)}")
    cluster = asked[0] if asked else monitor.cluster
    messages = monitor.control.messages_of(cluster)
    if messages is None or not may_read(request, cluster):
        raise ApiError(404, f"Unknown cluster '{cluster}'")
    try:
        page = await monitor.control.run(messages.page, queue, offset, limit)
    except QueueUnreadable as exc:
        raise ApiError(409, str(exc)) from None
    except BrokerUnreachable as exc:
        raise ApiError(503, str(exc)) from None
    answer = {"cluster": cluster, **page.as_dict()}
    answer["tasks"] = [_redacted(task, request) for task in answer["tasks"]]
    return json_response(answer)

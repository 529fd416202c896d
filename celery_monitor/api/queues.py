"""GET /api/queues/length and /api/queues/backlog: messages waiting per queue, from each cluster's broker.

Every queue object says its ``cluster``; ``cluster=`` (repeated or comma-separated) keeps those
clusters' queues, and an identity scoped to some clusters sees theirs alone. A cluster whose broker
does not answer costs its own queues only: they are left out and the answer's ``unavailable`` says
why (a 503 only when no cluster asked for answered).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from celery_monitor import clusters
from celery_monitor.broker.queues import BrokerUnavailable
from celery_monitor.http.context import monitor_of
from celery_monitor.http.errors import ApiError, json_response
from celery_monitor.http.scope import readable_filter
from celery_monitor.http.tasks import cluster_filter


def wanted_clusters(request: Request) -> list[str]:
    """The clusters whose queues an answer shows: those asked for (none: every one), within the readable ones."""
    monitor = monitor_of(request)
    return readable_filter(request, cluster_filter(request)) or list(monitor.cluster_names)


def _unavailable(request: Request, wanted: list[str]) -> dict[str, str]:
    errors = monitor_of(request).queue_poller.errors
    return {cluster: errors[cluster] for cluster in wanted if cluster in errors}


async def queue_lengths(request: Request) -> Response:
    """Flower's shape, ``{"active_queues": [...]}``, with every cluster's queues (a name may repeat
    across clusters; ``cluster`` tells them apart)."""
    monitor = monitor_of(request)
    wanted = wanted_clusters(request)
    try:
        queues = await run_in_threadpool(monitor.queue_lengths)
    except BrokerUnavailable:
        queues = []
    shown = [queue for queue in queues if queue["cluster"] in wanted]
    unavailable = _unavailable(request, wanted)
    answered = [cluster for cluster in wanted if cluster in monitor.cluster_names and cluster not in unavailable]
    if unavailable and not answered:
        raise ApiError(503, f"Broker unavailable: {_reasons(unavailable, monitor.cluster_names)}")
    answer: dict[str, Any] = {"active_queues": shown}
    if unavailable:
        answer["unavailable"] = unavailable
    return json_response(answer)


def _reasons(unavailable: dict[str, str], watched: list[str]) -> str:
    if len(watched) == 1:
        return next(iter(unavailable.values()))
    return "; ".join(f"{cluster}: {reason}" for cluster, reason in unavailable.items())


def _select(wanted: str, known: list[str]) -> tuple[str | None, str]:
    """A ``queue=`` value: ``<cluster>:<queue>`` for one cluster's queue, a bare name for that queue
    in every cluster shown."""
    cluster, sep, name = wanted.partition(clusters.SEPARATOR)
    if sep and cluster in known:
        return cluster, name
    return None, wanted


async def queue_backlog(request: Request) -> Response:
    """GET /api/queues/backlog: per queue, the messages waiting in the broker (Redis priority
    sub-queues included) and the tasks workers reserved from it, from the latest background poll.

    ``queue`` (repeatable) selects queues, by name (in every cluster shown) or as
    ``<cluster>:<queue>``; ``backlog``, ``waiting`` and ``reserved`` at the top are their sums, the
    one number a KEDA metrics-api trigger reads (``valueLocation: backlog``). ``queues`` is keyed
    by the queue's name in the monitor: its name, qualified by its cluster unless ``default``.
    """
    monitor = monitor_of(request)
    wanted = wanted_clusters(request)
    unavailable = _unavailable(request, wanted)
    current = monitor.queue_backlogs()
    measured = [queue for queue in current or [] if queue["cluster"] in wanted]
    if current is None or (not measured and unavailable):
        reason = _reasons(unavailable, monitor.cluster_names) if unavailable else "no recent poll of the queue lengths"
        raise ApiError(503, f"Broker unavailable: {reason}")
    asked = list(dict.fromkeys(request.query_params.getlist("queue")))
    selected: list[dict[str, Any]] = []
    for value in asked:
        cluster, name = _select(value, monitor.cluster_names)
        found = [q for q in measured if q["name"] == name and (cluster is None or q["cluster"] == cluster)]
        if not found:
            if unavailable:  # it may be a queue of a cluster whose broker does not answer now
                raise ApiError(503, f"Queue {value!r} is not measured now: broker unavailable: "
                                    f"{_reasons(unavailable, monitor.cluster_names)}")
            raise ApiError(404, f"Queue {value!r} is not measured: no worker consumes it and the configuration "
                                "does not name it (name it in --queues)")
        selected += [q for q in found if q not in selected]
    if not asked:
        selected = measured
    chosen = {clusters.qualified(q["cluster"], q["name"]): q for q in sorted(
        selected, key=lambda q: (q["cluster"], q["name"]))}
    totals = {key: sum(queue[key] for queue in chosen.values()) for key in ("backlog", "waiting", "reserved")}
    answer: dict[str, Any] = {**totals, "queues": chosen, "polled_at": monitor.queue_poller.latest_at}
    if unavailable:
        answer["unavailable"] = unavailable
    return json_response(answer)

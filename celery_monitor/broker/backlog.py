"""A queue's backlog: what a worker autoscaler should scale on.

``waiting`` is what the broker still holds for delivery (on Redis the queue's list and its
priority sub-lists, summed by :class:`~celery_monitor.broker.queues.QueueLengths`; on RabbitMQ the
ready messages). ``reserved`` is what workers took from the queue and have not started: the
prefetched messages Celery keeps in each worker (``inspect reserved``). Those have left the list
on Redis and count as unacknowledged on RabbitMQ (with running ``acks_late`` tasks, which are not
backlog), so a scaler that reads the queue alone sees a backlog shrink as soon as workers prefetch
it, and scales down while they still hold work. ``backlog`` is the sum of the two.

A reserved request names the exchange and routing key it came with, not its queue: it is
counted on the queue of the worker's own ``active_queues`` bound to that exchange and key (on the
default exchange, the queue named by the key; on an exchange only one of them is bound to, that one).

With several clusters each cluster's queues are its own: a worker's reserved tasks count on the
queues of its cluster only (:func:`reserved_by_cluster`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _exchange_name(queue: Mapping[str, Any]) -> str:
    exchange = queue.get("exchange")
    if isinstance(exchange, Mapping):
        return str(exchange.get("name") or "")
    return str(exchange or "")


def _queue_of(request: Mapping[str, Any], consumed: list[Mapping[str, Any]]) -> str | None:
    """The queue, among those the worker consumes, a reserved request was delivered from."""
    info = request.get("delivery_info")
    if not isinstance(info, Mapping):
        return None
    exchange, routing_key = str(info.get("exchange") or ""), str(info.get("routing_key") or "")
    names = [str(q.get("name") or "") for q in consumed]
    if not exchange:  # the default exchange routes by queue name
        return routing_key if routing_key in names else None
    bound = [(queue, name) for queue, name in zip(consumed, names, strict=True) if _exchange_name(queue) == exchange]
    for queue, name in bound:
        if routing_key == str(queue.get("routing_key") or name):
            return name
    # A topic or fanout binding matches by pattern: unambiguous only when one queue is bound to the exchange.
    return bound[0][1] if len(bound) == 1 else None


def reserved_per_queue(details: Mapping[str, Mapping[str, Any]], online: Iterable[str]) -> dict[str, int]:
    """Reserved (prefetched, not started) requests per queue, from each online worker's last inspect replies.

    ``details`` is the inspector's cache (worker -> method -> reply): a worker that went offline
    keeps its cache entry, and must not count.
    """
    counts: dict[str, int] = {}
    for worker in online:
        info = details.get(worker) or {}
        consumed = [q for q in info.get("active_queues") or [] if isinstance(q, Mapping)]
        for request in info.get("reserved") or []:
            if not isinstance(request, Mapping):
                continue
            queue = _queue_of(request, consumed)
            if queue is not None:
                counts[queue] = counts.get(queue, 0) + 1
    return counts


def reserved_by_cluster(details: Mapping[str, Mapping[str, Any]],
                        online: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """:func:`reserved_per_queue` per cluster; ``online`` maps each online worker to its cluster."""
    workers: dict[str, list[str]] = {}
    for worker, cluster in online.items():
        workers.setdefault(cluster, []).append(worker)
    return {cluster: reserved_per_queue(details, names) for cluster, names in workers.items()}


def waiting(queue: Mapping[str, Any]) -> int:
    """Messages a queue holds for delivery: the ready ones where the broker tells them apart."""
    return int(queue.get("ready", queue.get("messages")) or 0)


def backlogs(queues: Iterable[Mapping[str, Any]], reserved: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Per queue of the poller's answer: waiting, reserved and their sum, the backlog."""
    out: dict[str, dict[str, int]] = {}
    for queue in queues:
        name = str(queue["name"])
        held = int(reserved.get(name, 0))
        out[name] = {"waiting": waiting(queue), "reserved": held, "backlog": waiting(queue) + held}
    return out

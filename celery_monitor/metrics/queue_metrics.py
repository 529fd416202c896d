"""Queue gauges from the background queue poller's latest answer.

Every family has a ``cluster`` label (``default`` for a monitor of one broker) beside ``queue``.
Nothing is exported for a cluster's queues when its broker could not be read: an old length
presented as the current one is worse than none (the other clusters' queues are exported). The
oldest message's age is counted to the moment of the scrape, and only for queues whose broker
reported when their head message was published.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from celery_monitor.broker import backlog
from celery_monitor.broker.poller import QueuePoller
from celery_monitor.metrics.exposition import Gauge, Key

P = "celery_monitor_"
STALE_AFTER_POLLS = 3  # answers older than this many poll intervals are not exported
LABELS = ("cluster", "queue")


def current_queues(poller: QueuePoller, now: float) -> list[dict[str, Any]]:
    """The poller's latest answer of each cluster (each queue with its ``cluster``), without the
    clusters whose last poll failed or is too old."""
    stale_after = max(STALE_AFTER_POLLS * poller.interval, 30.0)
    return [queue for poll in list(poller.polls.values())
            if poll.error is None and poll.at is not None and now - poll.at <= stale_after
            for queue in poll.queues]


def by_cluster(queues: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for queue in queues:
        grouped.setdefault(str(queue["cluster"]), []).append(queue)
    return grouped


class QueueFamilies:
    """The queue gauges, written from the poller's latest answer (and, for the backlog, the tasks
    workers reserved from each queue)."""

    def __init__(self) -> None:
        self.length = Gauge(P + "queue_length", "Messages ready for delivery in a queue", LABELS)
        self.unacked = Gauge(P + "queue_unacked", "Messages delivered to consumers, not yet acknowledged", LABELS)
        self.consumers = Gauge(P + "queue_consumers", "Consumers attached to a queue", LABELS)
        self.oldest = Gauge(P + "queue_oldest_message_age_seconds",
                            "Age of the message at the head of a queue (brokers that tell only)", LABELS)
        self.reserved = Gauge(P + "queue_reserved", "Tasks online workers prefetched from a queue and have not "
                              "started (their last inspect replies)", LABELS)
        self.backlog = Gauge(P + "queue_backlog", "Messages waiting in a queue (Redis priority sub-queues "
                             "included) plus tasks workers reserved from it and have not started: what to "
                             "scale workers on", LABELS)

    def write(self, out: list[str], poller: QueuePoller, now: float | None = None,
              reserved: Mapping[str, Mapping[str, int]] | None = None) -> None:
        """``reserved``: per cluster, the tasks its online workers reserved per queue."""
        now = time.time() if now is None else now
        reserved = reserved or {}
        length: list[tuple[Key, float]] = []
        unacked: list[tuple[Key, float]] = []
        consumers: list[tuple[Key, float]] = []
        oldest: list[tuple[Key, float]] = []
        current = current_queues(poller, now)
        for queue in current:
            key = (queue["cluster"], queue["name"])
            length.append((key, queue.get("ready", queue["messages"])))
            if "unacked" in queue:
                unacked.append((key, queue["unacked"]))
            if "consumers" in queue:
                consumers.append((key, queue["consumers"]))
            if "oldest_message_timestamp" in queue:
                oldest.append((key, max(0.0, now - queue["oldest_message_timestamp"])))
        self.length.write(out, length)
        self.unacked.write(out, unacked)
        self.consumers.write(out, consumers)
        self.oldest.write(out, oldest)
        measured = {(cluster, name): value for cluster, queues in by_cluster(current).items()
                    for name, value in backlog.backlogs(queues, reserved.get(cluster, {})).items()}
        self.reserved.write(out, [(key, value["reserved"]) for key, value in measured.items()])
        self.backlog.write(out, [(key, value["backlog"]) for key, value in measured.items()])

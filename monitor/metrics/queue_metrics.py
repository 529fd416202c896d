"""Queue gauges from the background queue poller's latest answer.

Nothing is exported for a queue when the broker could not be read: an old length presented as
the current one is worse than none. The oldest message's age is counted to the moment of the
scrape, and only for queues whose broker reported when their head message was published.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from celery_monitor.broker.poller import QueuePoller

P = "celery_monitor_"
STALE_AFTER_POLLS = 3  # answers older than this many poll intervals are not exported


def current_queues(poller: QueuePoller, now: float) -> list[dict[str, Any]]:
    """The poller's latest answer, or nothing when the last poll failed or is too old."""
    if poller.last_error is not None or poller.latest_at is None:
        return []
    if now - poller.latest_at > max(STALE_AFTER_POLLS * poller.interval, 30.0):
        return []
    return list(poller.latest)


def queue_families(poller: QueuePoller, now: float | None = None) -> Iterator[GaugeMetricFamily]:
    now = time.time() if now is None else now
    length = GaugeMetricFamily(P + "queue_length", "Messages ready for delivery in a queue", labels=["queue"])
    unacked = GaugeMetricFamily(P + "queue_unacked", "Messages delivered to consumers, not yet acknowledged",
                                labels=["queue"])
    consumers = GaugeMetricFamily(P + "queue_consumers", "Consumers attached to a queue", labels=["queue"])
    oldest = GaugeMetricFamily(P + "queue_oldest_message_age_seconds",
                               "Age of the message at the head of a queue (brokers that tell only)",
                               labels=["queue"])
    for queue in current_queues(poller, now):
        labels = [queue["name"]]
        length.add_metric(labels, queue.get("ready", queue["messages"]))
        if "unacked" in queue:
            unacked.add_metric(labels, queue["unacked"])
        if "consumers" in queue:
            consumers.add_metric(labels, queue["consumers"])
        if "oldest_message_timestamp" in queue:
            oldest.add_metric(labels, max(0.0, now - queue["oldest_message_timestamp"]))
    yield from (length, unacked, consumers, oldest)

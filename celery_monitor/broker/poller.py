"""Polls queue lengths in the background so pages, graphs and metrics never wait on the broker.

Each cluster's broker is polled apart (at once, on threads of their own, when there are several):
a broker that does not answer costs its own cluster's queues only. That is expected now and then:
the cluster's ``error`` says why, the log says so once (and again every few minutes while it
lasts), and the next poll tries again. Any other exception is a bug of ours, left to the loop's
supervision.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from celery_monitor.broker import faults
from celery_monitor.broker.queues import BrokerUnavailable, QueueLengths
from celery_monitor.supervision import Loop, ThrottledLog

log = logging.getLogger(__name__)
HISTORY_POINTS = 720  # an hour at the default 5 s
STALL_AFTER = 300.0
PARALLEL_POLLS = 8


@dataclass
class ClusterPoll:
    """One cluster's last poll: its queues (each with ``cluster``), when they were read, and the
    error of the last poll when it failed (its queues are then not current)."""

    queues: list[dict[str, Any]] = field(default_factory=list)
    at: float | None = None
    error: str | None = None


class QueuePoller(threading.Thread):
    """``sources``: each cluster's queue reader; ``names(cluster)``: the queues to measure there."""

    def __init__(self, sources: Mapping[str, QueueLengths], names: Callable[[str], list[str]],
                 interval: float = 5.0) -> None:
        super().__init__(name="queue-poller", daemon=True)
        self.sources = dict(sources)
        self.names = names
        self.interval = interval
        self.polls = {cluster: ClusterPoll() for cluster in self.sources}
        # Each poll's lengths: (when, {cluster: {queue: messages}}) of the clusters that answered.
        self.history: deque[tuple[float, dict[str, dict[str, int]]]] = deque(maxlen=HISTORY_POINTS)
        self.loop = Loop("queue_poller", stall_after=STALL_AFTER)
        self._outages = {cluster: ThrottledLog(log) for cluster in self.sources}
        self._stop_event = threading.Event()

    # -- what readers ask ------------------------------------------------------------------------

    @property
    def clusters(self) -> list[str]:
        return list(self.sources)

    @property
    def latest(self) -> list[dict[str, Any]]:
        """The queues of every cluster whose last poll answered (each with its ``cluster``)."""
        return [queue for poll in list(self.polls.values()) if poll.error is None for queue in poll.queues]

    @property
    def latest_at(self) -> float | None:
        """When a cluster's broker last answered (the most recent of them)."""
        times = [poll.at for poll in self.polls.values() if poll.at is not None]
        return max(times) if times else None

    @property
    def errors(self) -> dict[str, str]:
        """The clusters whose last poll failed, and why."""
        return {cluster: poll.error for cluster, poll in self.polls.items() if poll.error is not None}

    @property
    def last_error(self) -> str | None:
        """None when every cluster's last poll answered; else why not (each cluster named, with several)."""
        errors = self.errors
        if not errors:
            return None
        if len(self.sources) == 1:
            return next(iter(errors.values()))
        return "; ".join(f"{cluster}: {error}" for cluster, error in errors.items())

    # -- polling ---------------------------------------------------------------------------------

    def poll(self) -> list[dict[str, Any]]:
        """Every cluster's queues now: those of the clusters that answered, each queue with its
        ``cluster``. BrokerUnavailable when none answered."""
        clusters = self.clusters
        if len(clusters) == 1:
            self._poll_cluster(clusters[0])
        else:
            with ThreadPoolExecutor(min(PARALLEL_POLLS, len(clusters)), thread_name_prefix="queue-poll") as pool:
                for future in [pool.submit(self._poll_cluster, cluster) for cluster in clusters]:
                    future.result()  # a bug of ours in one cluster's poll is raised once all are done
        answered = {cluster: poll for cluster, poll in self.polls.items() if poll.error is None}
        if not answered:
            raise BrokerUnavailable(self.last_error or "no broker answered")
        self.history.append((time.time(), {cluster: {q["name"]: q["messages"] for q in poll.queues}
                                           for cluster, poll in answered.items()}))
        return self.latest

    def _poll_cluster(self, cluster: str) -> None:
        source = self.sources[cluster]
        try:
            queues = source.lengths(self.names(cluster))
        except (BrokerUnavailable, httpx.HTTPError) as exc:
            self._unavailable(cluster, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            if not faults.is_broker_fault(exc):
                raise
            self._unavailable(cluster, faults.classify(exc, faults.broker_address(source.url)).message)
        else:
            self.polls[cluster] = ClusterPoll([{**queue, "cluster": cluster} for queue in queues], time.time())
            self._outages[cluster].recovered(self._named(cluster, "queue lengths polled again"))

    def _unavailable(self, cluster: str, reason: str) -> None:
        previous = self.polls[cluster]
        self.polls[cluster] = ClusterPoll(previous.queues, previous.at, reason)
        self._outages[cluster].failure(reason.split(":", 1)[0],
                                       self._named(cluster, f"queue lengths unavailable: {reason}"))

    def _named(self, cluster: str, message: str) -> str:
        return message if len(self.sources) == 1 else f"cluster {cluster}: {message}"

    def poll_in_background(self) -> None:
        """One background poll: a broker that does not answer is reported (per cluster), not raised."""
        try:
            self.poll()
        except BrokerUnavailable:
            pass

    def run(self) -> None:
        self.loop.run(self.poll_in_background, self._stop_event, self.interval)

    def stop(self) -> None:
        self._stop_event.set()

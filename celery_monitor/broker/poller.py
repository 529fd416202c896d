"""Polls queue lengths in the background so pages, graphs and metrics never wait on the broker.

A broker (or management API) that does not answer is expected now and then: the poll's
``last_error`` says why, the log says so once (and again every few minutes while it lasts), and the
next poll tries again. Any other exception is a bug of ours, left to the loop's supervision.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from celery_monitor.broker import faults
from celery_monitor.broker.queues import BrokerUnavailable, QueueLengths
from celery_monitor.supervision import Loop, ThrottledLog

log = logging.getLogger(__name__)
HISTORY_POINTS = 720  # an hour at the default 5 s
STALL_AFTER = 300.0


class QueuePoller(threading.Thread):
    def __init__(self, lengths: QueueLengths, names: Callable[[], list[str]], interval: float = 5.0) -> None:
        super().__init__(name="queue-poller", daemon=True)
        self.lengths = lengths
        self.names = names
        self.interval = interval
        self.latest: list[dict[str, Any]] = []
        self.latest_at: float | None = None
        self.history: deque[tuple[float, dict[str, int]]] = deque(maxlen=HISTORY_POINTS)
        self.last_error: str | None = None
        self.loop = Loop("queue_poller", stall_after=STALL_AFTER)
        self._outage = ThrottledLog(log)
        self._stop_event = threading.Event()

    def poll(self) -> list[dict[str, Any]]:
        queues = self.lengths.lengths(self.names())
        now = time.time()
        self.latest, self.latest_at, self.last_error = queues, now, None
        self.history.append((now, {q["name"]: q["messages"] for q in queues}))
        return queues

    def poll_in_background(self) -> None:
        """One background poll: a broker that does not answer is reported, not raised."""
        try:
            self.poll()
        except (BrokerUnavailable, httpx.HTTPError) as exc:
            self._unavailable(f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            if not faults.is_broker_fault(exc):
                raise
            self._unavailable(faults.classify(exc, faults.broker_address(self.lengths.url)).message)
        else:
            self._outage.recovered("queue lengths polled again")

    def _unavailable(self, reason: str) -> None:
        self.last_error = reason
        self._outage.failure(reason.split(":", 1)[0], f"queue lengths unavailable: {reason}")

    def run(self) -> None:
        self.loop.run(self.poll_in_background, self._stop_event, self.interval)

    def stop(self) -> None:
        self._stop_event.set()

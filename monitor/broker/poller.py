"""Polls queue lengths in the background so pages, graphs and metrics never wait on the broker."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from celery_monitor.broker.queues import QueueLengths

log = logging.getLogger(__name__)
HISTORY_POINTS = 720  # an hour at the default 5 s


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
        self._stop_event = threading.Event()

    def poll(self) -> list[dict[str, Any]]:
        queues = self.lengths.lengths(self.names())
        now = time.time()
        self.latest, self.latest_at, self.last_error = queues, now, None
        self.history.append((now, {q["name"]: q["messages"] for q in queues}))
        return queues

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.poll()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("queue poll failed: %s", self.last_error)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()

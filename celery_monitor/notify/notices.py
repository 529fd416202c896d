"""What the applier hands to notifications: compact notices in a bounded queue that never blocks.

The applier's thread must never wait for a notification: it puts a few fields per finished task
into this queue and goes on. When the queue is full (a storm, or a channel that hangs) the notice
is dropped and counted (``celery_monitor_notification_notices_dropped_total``): ingestion first.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from celery_monitor.states import FAILURE, LOST, SUCCESS

MAX_NOTICES = 10_000
# The task states each kind of task rule is about: the applier queues only those some rule wants.
STATES_OF_KIND = {"task_failed": frozenset({FAILURE}), "retries_exhausted": frozenset({FAILURE}),
                  "task_lost": frozenset({LOST}), "task_runtime": frozenset({SUCCESS, FAILURE})}


@dataclass(frozen=True, slots=True)
class TaskNotice:
    """A task that reached a state some rule is about, with what the rules look at."""

    uuid: str
    name: str | None
    state: str
    exception: str | None
    runtime: float | None
    retries: int | None
    worker: str | None
    at: float
    root_id: str | None = None  # the workflow it belongs to, when it is a step of one
    cluster: str | None = None  # its cluster (None: default), whose failure group it joins


class NoticeQueue:
    def __init__(self, limit: int = MAX_NOTICES) -> None:
        self.limit = limit
        self.dropped = 0
        self._items: deque[TaskNotice] = deque()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        # The task states some rule is about (set by the notifier from its rules): none, nothing is queued.
        self.states: frozenset[str] = frozenset()

    def offer(self, notices: list[TaskNotice]) -> None:
        """Queue what fits, count the rest; never blocks beyond a short lock."""
        if not notices:
            return
        with self._lock:
            room = self.limit - len(self._items)
            if room < len(notices):
                self.dropped += len(notices) - max(room, 0)
                notices = notices[: max(room, 0)]
            self._items.extend(notices)
        self._ready.set()

    def take(self, timeout: float) -> list[TaskNotice]:
        self._ready.wait(timeout)
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._ready.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)

"""The live view: workers, counters and the recently active tasks, in memory and small.

The applier thread is the only writer; readers take ``lock`` briefly to copy what they need.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from celery_monitor.metrics.stats import EventStats
from celery_monitor.state.models import TaskRecord, WorkerRecord

RECENT_TASKS = 20_000


class LiveView:
    def __init__(self, stats: EventStats, recent_tasks: int = RECENT_TASKS) -> None:
        self.lock = threading.RLock()
        self.workers: dict[str, WorkerRecord] = {}
        self.recent: OrderedDict[str, TaskRecord] = OrderedDict()
        self.recent_limit = recent_tasks
        self.task_names: set[str] = set()
        self.state_counts: dict[str, int] = {}
        self.stats = stats
        self.started_at = time.time()

    def remember(self, task: TaskRecord) -> None:
        recent = self.recent
        recent[task.uuid] = task
        recent.move_to_end(task.uuid)
        while len(recent) > self.recent_limit:
            recent.popitem(last=False)

    def count_state(self, old: str | None, new: str | None) -> None:
        if old == new:
            return
        counts = self.state_counts
        if old is not None:
            counts[old] = max(0, counts.get(old, 0) - 1)
        if new is not None:
            counts[new] = counts.get(new, 0) + 1

    def recent_task(self, uuid: str) -> dict[str, object] | None:
        with self.lock:
            task = self.recent.get(uuid)
            return task.as_dict() if task is not None else None

    def worker_names(self) -> list[str]:
        with self.lock:
            return list(self.workers)

    def worker_dicts(self, now: float | None = None) -> dict[str, dict[str, object]]:
        now = time.time() if now is None else now
        with self.lock:
            return {name: worker.as_dict(now) for name, worker in self.workers.items()}

"""The control plane: every control object, built from the monitor, and the threads they run in."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from celery_monitor.broker.messages import QueueMessages
from celery_monitor.control.broadcast import Broadcaster
from celery_monitor.control.bulk import BulkActions
from celery_monitor.control.limits import LimitControl
from celery_monitor.control.rerun import RerunSources
from celery_monitor.control.task_control import TaskControl
from celery_monitor.control.worker_control import WorkerControl

if TYPE_CHECKING:
    from celery_monitor.service import Monitor

T = TypeVar("T")
THREADS = 16
SETTLE_SECONDS = 2.0


class ControlPlane:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.broadcaster = Broadcaster(monitor.app, monitor.settings.inspect_timeout / 1000)
        self.workers = WorkerControl(self.broadcaster, self.knows_worker, self.changed)
        self.limits = LimitControl(self.broadcaster, self.workers, self.online_count, self.changed)
        self.messages = QueueMessages(monitor.app, monitor.settings.broker_api)
        self.tasks = TaskControl(monitor.app, self.broadcaster, self.knows_task, monitor.get_task, self.online_count,
                                 redactor=lambda: monitor.applier.redactor,
                                 rerun_sources=RerunSources(monitor.app, self.messages, monitor.queue_names))
        self.bulk = BulkActions(self.tasks, monitor.query_tasks, monitor.count_tasks, self.messages,
                                monitor.queue_names)
        # Pages show the audit trail live: each entry goes out on the hub as it is recorded.
        monitor.audit.listeners.append(lambda entry: monitor.hub.publish([{"kind": "audit", "audit": entry}]))
        self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="control")

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking control call on the plane's threads, never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(function, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- what the monitor knows ------------------------------------------------------------------

    def knows_worker(self, name: str) -> bool:
        with self.monitor.live.lock:
            if name in self.monitor.live.workers:
                return True
        return bool(self.monitor.inspector.details(name))

    def online_count(self) -> int:
        return sum(1 for worker in self.monitor.live.worker_dicts().values() if worker.get("status"))

    def knows_task(self, name: str) -> bool:
        """A task name the monitor's app defines, a worker registers, or the history has seen."""
        if name in self.monitor.app.tasks or name in self.monitor.task_names():
            return True
        for details in self.monitor.inspector.details().values():
            for entry in details.get("registered") or []:
                if isinstance(entry, str) and entry.split(" ", 1)[0] == name:
                    return True
        return False

    def changed(self, worker: str) -> None:
        """A worker's state changed on our command: inspect it again rather than serve stale details.

        Pools and consumers change a moment after the worker answers, so ask once now and once later.
        """
        inspector = self.monitor.inspector
        if inspector.started:
            inspector.refresh(worker)
            timer = threading.Timer(SETTLE_SECONDS, inspector.refresh, [worker])
            timer.daemon = True
            timer.start()

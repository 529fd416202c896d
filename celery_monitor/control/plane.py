"""The control plane: every control object, and the threads they run in.

The service hands it the parts it acts through and reads from (the Celery app, the inspector,
the live view, the task lookup, the redactor), never the service itself.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from celery import Celery

from celery_monitor import clusters
from celery_monitor.auth.redact import Redactor
from celery_monitor.broker.messages import QueueMessages
from celery_monitor.celery_app import ClusterApps
from celery_monitor.control.broadcast import Broadcaster
from celery_monitor.control.bulk import BulkActions
from celery_monitor.control.failure_groups import FailureGroupActions
from celery_monitor.control.limits import LimitControl
from celery_monitor.control.rerun import RerunSources
from celery_monitor.control.task_control import TaskControl
from celery_monitor.control.worker_control import WorkerControl
from celery_monitor.inspector.inspector import Inspector
from celery_monitor.state.live import LiveView
from celery_monitor.store.lookup import TaskLookup

T = TypeVar("T")
THREADS = 16
SETTLE_SECONDS = 2.0


class ControlPlane:
    def __init__(self, app: Celery, *, inspector: Inspector, live: LiveView, tasks: TaskLookup,
                 queue_names: Callable[..., list[str]], redactor: Redactor | None, reply_timeout: float,
                 broker_api: str = "", apps: ClusterApps | None = None,
                 broker_apis: dict[str, str] | None = None) -> None:
        """``apps``: with several clusters, each one's app (``app`` is the first's); ``broker_apis``
        each other cluster's management API."""
        self.app = app
        self.inspector = inspector
        self.live = live
        self.task_lookup = tasks
        self.broadcaster = Broadcaster(apps or app, reply_timeout)
        self.workers = WorkerControl(self.broadcaster, self.knows_worker, self.changed)
        self.limits = LimitControl(self.broadcaster, self.workers, self.online_count, self.changed)
        self.messages = QueueMessages(app, broker_api)
        # What waits in a queue is read from the queue's own cluster's broker.
        self.cluster_messages: dict[str, QueueMessages] = {}
        if apps is not None:
            first = next(iter(apps.apps))
            self.cluster_messages = {name: self.messages if name == first else
                                     QueueMessages(cluster_app, (broker_apis or {}).get(name, ""))
                                     for name, cluster_app in apps.apps.items()}
        self.tasks = TaskControl(app, self.broadcaster, self.knows_task, tasks.get, self.online_count,
                                 redactor=lambda: redactor,
                                 rerun_sources=RerunSources(app, self.messages, queue_names, self.cluster_messages))
        self.bulk = BulkActions(self.tasks, tasks.page, tasks.count, self.messages, queue_names,
                                cluster_messages=self.cluster_messages)
        self.failure_groups = FailureGroupActions(self.tasks, tasks.store)
        self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="control")

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking control call on the plane's threads, never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(function, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def messages_of(self, cluster: str) -> QueueMessages | None:
        """The reader of a cluster's queued messages (None: a cluster not watched)."""
        if not self.cluster_messages:
            return self.messages
        return self.cluster_messages.get(cluster)

    # -- what the monitor knows ------------------------------------------------------------------

    def knows_worker(self, name: str) -> bool:
        return self.live.knows_worker(name) or bool(self.inspector.details(name))

    def online_count(self) -> int:
        return self.live.online_count()

    def knows_task(self, name: str, cluster: str | None = None) -> bool:
        """A task name the monitor's app defines, a worker registers, or the history has seen; on
        ``cluster`` only, when given and the monitor watches several."""
        apps = self.broadcaster.apps.apps
        if cluster is None or len(apps) == 1:
            app, seen, on_cluster = self.app, self.task_lookup.names(), None
        else:
            app, seen, on_cluster = apps.get(cluster, self.app), self.task_lookup.names([cluster]), cluster
        if name in app.tasks or name in seen:
            return True
        for worker, details in self.inspector.details().items():
            if on_cluster is not None and clusters.split_qualified(worker, apps)[0] != on_cluster:
                continue
            for entry in details.get("registered") or []:
                if isinstance(entry, str) and entry.split(" ", 1)[0] == name:
                    return True
        return False

    def changed(self, worker: str) -> None:
        """A worker's state changed on our command: inspect it again rather than serve stale details.

        Pools and consumers change a moment after the worker answers, so ask once now and once later.
        """
        inspector = self.inspector
        if inspector.started:
            inspector.refresh(worker)
            timer = threading.Timer(SETTLE_SECONDS, inspector.refresh, [worker])
            timer.daemon = True
            timer.start()

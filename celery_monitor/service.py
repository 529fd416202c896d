"""The monitor: wires receiver -> applier -> live view / store / hub, and the readers beside them."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
from celery import Celery

from celery_monitor import __version__, liveness
from celery_monitor.applier.applier import Applier
from celery_monitor.applier.boundary import EventBoundary, Rejections
from celery_monitor.broker import faults
from celery_monitor.broker.poller import QueuePoller
from celery_monitor.broker.queues import QueueLengths, queue_names
from celery_monitor.control.audit import AuditTrail
from celery_monitor.control.plane import ControlPlane
from celery_monitor.hub import Hub
from celery_monitor.inspector.inspector import Inspector
from celery_monitor.metrics.histogram import DEFAULT_BUCKETS
from celery_monitor.metrics.stats import EventStats
from celery_monitor.receiver.factory import build_reader
from celery_monitor.receiver.handoff import Handoff
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.settings import Settings
from celery_monitor.state.live import LiveView
from celery_monitor.state.models import WorkerRecord
from celery_monitor.store import overlay
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.sqlite import SQLiteStore
from celery_monitor.store.writer import StoreWriter
from celery_monitor.supervision import Loop, Supervisor

log = logging.getLogger(__name__)
ENABLE_EVENTS_EVERY = 10.0


class Monitor:
    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings = settings
        self.app = app
        self.health = ReceiverHealth()
        self.rejections = Rejections()
        self.handoff = Handoff()
        self.store = SQLiteStore(settings.db if settings.persistent else None)
        buckets = tuple(settings.task_runtime_metric_buckets) or DEFAULT_BUCKETS
        self.live = LiveView(EventStats(buckets))
        self.hub = Hub()
        self.inspector = Inspector(app, settings.inspect_timeout / 1000)
        self.writer = StoreWriter(self.store, settings.flush_interval, settings.max_tasks,
                                  snapshot_meta=self._meta_snapshot, on_trim=self._on_trim,
                                  path=settings.db if settings.persistent else None)
        self.applier = Applier(self.handoff, self.live, self.store, self.writer, self.health, self.hub,
                               boundary=EventBoundary(settings.event_text_limit, self.rejections),
                               max_workers=settings.max_workers,
                               purge_offline_workers=settings.purge_offline_workers,
                               on_worker_online=self._worker_came_online)
        self.reader = build_reader(app, self.handoff, self.health)
        self.queues = QueueLengths(app, settings.broker_api)
        self.queue_poller = QueuePoller(self.queues, self.queue_names)
        self.audit = AuditTrail(self.store)
        self.control = ControlPlane(self)
        self._meta_saved_at_batch = 0
        self._stop_event = threading.Event()
        self._events_enabler = threading.Thread(target=self._enable_events, name="enable-events", daemon=True)
        self.enable_events_loop = Loop("enable_events", stall_after=ENABLE_EVENTS_EVERY + 120)
        # Every background loop, for the status, the metrics and the liveness probe (the app adds
        # its timeline).
        self.supervisor = Supervisor()
        self.supervisor.add(self.reader.loop, self.applier.loop, self.applier.housekeeping_loop, self.writer.loop,
                            self.writer.index_loop, self.inspector.loop, self.queue_poller.loop,
                            self.enable_events_loop)
        self.running = False  # between a completed start() and the beginning of stop(): readiness
        self.started_at = time.time()

    # -- lifecycle -----------------------------------------------------------------------------

    def restore(self) -> None:
        """Reload workers, counters and task counts saved by the previous run."""
        with self.live.lock:
            for data in self.store.load_workers():
                worker = WorkerRecord.from_store(data)
                self.live.workers[worker.hostname] = worker
            saved = self.store.load_meta("stats")
            try:
                self.live.stats.load(saved)
            except ValueError as exc:
                # Counters saved by an older version or damaged: start them afresh, like a new exporter.
                self.store.set_aside("meta", "stats", f"{exc}; the counters start from zero",
                                     orjson.dumps(saved, default=repr))
                self.live.stats = EventStats(self.live.stats.runtime_buckets)
            self.live.state_counts = self.store.state_counts()
            self.live.task_names = set(self.store.task_names())

    def start(self) -> None:
        self.restore()
        self.writer.start()
        self.applier.start()
        self.reader.start()
        self.inspector.start()
        self.queue_poller.start()
        if self.settings.enable_events:
            self._events_enabler.start()
        self.started_at = time.time()
        self.running = True

    def stop(self) -> None:
        self.running = False
        self._stop_event.set()
        self.reader.stop()
        self.inspector.stop()
        self.queue_poller.stop()
        self.control.close()
        self.applier.stop()
        self.applier.join(timeout=10)
        self.writer.stop()
        self.writer.join(timeout=10)
        self.store.close()

    def _enable_events(self) -> None:
        self.enable_events_loop.run(self._enable_events_once, self._stop_event, ENABLE_EVENTS_EVERY)

    def _enable_events_once(self) -> None:
        try:
            self.app.control.enable_events()
        except Exception as exc:
            if not faults.is_broker_fault(exc):
                raise
            # The event reader reports the broker's absence; this broadcast just tries again.
            log.debug("enable_events broadcast failed: %s", exc)

    def _worker_came_online(self, hostname: str) -> None:
        """Inspect a worker as soon as it appears, instead of waiting for the next period."""
        if self.inspector.started:
            self.inspector.refresh(hostname)

    def _meta_snapshot(self) -> dict[str, Any]:
        """The counters, saved with each flush that follows new events (so a restart keeps them)."""
        applied = self.applier.batches_applied
        if applied == self._meta_saved_at_batch:
            return {}
        self._meta_saved_at_batch = applied
        with self.live.lock:
            return {"stats": self.live.stats.to_store()}

    def _on_trim(self, removed: dict[str, int]) -> None:
        with self.live.lock:
            for state, count in removed.items():
                self.live.state_counts[state] = max(0, self.live.state_counts.get(state, 0) - count)

    # -- reads ---------------------------------------------------------------------------------

    def get_task(self, uuid: str) -> dict[str, Any] | None:
        return self.live.recent_task(uuid) or self.writer.pending_task(uuid) or self.store.get_task(uuid)

    # Lists lay the writer's pending tasks over the history, so that they agree with get_task: a
    # task the live view has is either pending or committed (the applier hands it to the writer
    # before it lets readers see it), and the pending set is read before the history.

    def query_tasks(self, query: TaskQuery) -> list[dict[str, Any]]:
        return overlay.page(self.store, query, self.writer.pending_snapshot())

    def count_tasks(self, query: TaskQuery) -> int:
        return overlay.count(self.store, query, self.writer.pending_snapshot())

    def stream_tasks(self, query: TaskQuery) -> overlay.TaskStream:
        """Every task the query selects, a chunk at a time (for lists without a limit)."""
        return overlay.TaskStream(self.store, query, self.writer.pending_snapshot())

    def task_names(self) -> list[str]:
        with self.live.lock:
            return sorted(self.live.task_names)

    def task_count(self) -> int:
        return self.store.task_count()

    def queue_names(self) -> list[str]:
        active: list[str] = []
        for details in self.inspector.details().values():
            for queue in details.get("active_queues") or []:
                if isinstance(queue, dict) and queue.get("name"):
                    active.append(queue["name"])
        return queue_names(self.app, active)

    def queue_lengths(self) -> list[dict[str, Any]]:
        return self.queue_poller.poll()

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "started_at": self.started_at,
            "receiver": self.health.as_dict(),
            "events_rejected": {"total": self.rejections.total(), "by_reason": self.rejections.counts(),
                                "latest": self.rejections.latest()},
            "handoff_pending_bytes": self.handoff.pending_bytes,
            "ingest_lag_seconds": self.applier.last_lag,
            "store": self._store_status(),
            "workers": len(self.live.workers),
            "inspector": {"last_error": self.inspector.last_error},
            "queues": {"polled_at": self.queue_poller.latest_at, "last_error": self.queue_poller.last_error},
            "background": self.supervisor.as_dict(),
            "health": self.health_report(),
        }

    def _store_status(self) -> dict[str, Any]:
        writer = self.writer
        return {
            "persistent": self.settings.persistent,
            "quarantined": self.store.quarantined(),
            "path": self.settings.db if self.settings.persistent else None,
            "tasks": self.task_count(),
            "size_bytes": self.store.size_bytes(),
            "last_flush": writer.last_flush,
            "persisting": writer.persisting,
            "last_error": writer.last_error,
            "last_error_at": writer.last_error_at,
            "failing_since": writer.failing_since,
            "pending_tasks": writer.pending_count,
            "pending_limit": writer.pending_limit,
            "write_errors": writer.errors,
            "writes_dropped": writer.dropped,
        }

    def health_report(self) -> dict[str, Any]:
        """What /livez and /readyz answer: alive, ready, why not, and what is degraded."""
        problems = liveness.problems(self)
        return {"live": not problems, "ready": liveness.ready(self), "problems": problems,
                "warnings": liveness.warnings(self)}

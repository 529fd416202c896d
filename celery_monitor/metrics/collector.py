"""Prometheus exposition computed at scrape time from the live view: no stale series.

Flower's six families keep their names, types and labels; ours share
the ``celery_monitor_`` prefix. Worker gauges come from the workers the live view still knows,
and the applier drops a forgotten worker's counters, so a worker purged by
``--purge_offline_workers`` (or ``--max_workers``) leaves no series behind. The label policy
(``--metrics_worker_label``, ``--metrics_max_task_names``) is applied here, to every family with
a task or worker label.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery_monitor.applier.applier import Applier
from celery_monitor.applier.boundary import Rejections
from celery_monitor.broker import backlog
from celery_monitor.broker.poller import QueuePoller
from celery_monitor.inspector.inspector import Inspector
from celery_monitor.liveness import Liveness
from celery_monitor.metrics.cardinality import LabelPolicy, fold, fold_histograms
from celery_monitor.metrics.exposition import Counter, Gauge, HistogramFamily
from celery_monitor.metrics.queue_metrics import QueueFamilies
from celery_monitor.notify.notifier import Notifier
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.schedules.catalog import Schedules
from celery_monitor.state.live import LiveView
from celery_monitor.state.snapshots import EventKey, LiveSnapshot, OutcomeKey, QueueTask, TaskWorker, WorkerStatus
from celery_monitor.store.base import Store
from celery_monitor.store.writer import StoreWriter
from celery_monitor.supervision import Supervisor

P = "celery_monitor_"


def _add(a: float, b: float) -> float:
    return a + b


@dataclass(frozen=True)
class Sources:
    """The parts of the monitor a scrape reads, handed over by the service that built them."""

    live: LiveView
    inspector: Inspector
    queues: QueuePoller
    receiver: ReceiverHealth
    rejections: Rejections
    applier: Applier
    store: Store
    writer: StoreWriter
    supervisor: Supervisor
    liveness: Liveness
    notifier: Notifier
    schedules: Schedules | None = None
    # False on a standby replica of a PostgreSQL history: the leader alone serves what describes the
    # cluster and the event stream, so N replicas never count an event N times.
    leading: Callable[[], bool] = lambda: True


@dataclass
class Snapshot:
    """What one scrape reads: the live view's copy, and the pool sizes the inspector last saw."""

    live: LiveSnapshot
    pool_processes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def take(cls, live_view: LiveView, inspector: Inspector, now: float) -> Snapshot:
        live = live_view.snapshot(now)
        return cls(live, pool_processes(inspector.details(), live.workers))

    @property
    def workers(self) -> dict[str, WorkerStatus]:
        return self.live.workers

    def task_weights(self) -> dict[str, float]:
        """Events per task name: the busiest names are kept first when task names are capped."""
        stats = self.live.stats
        weights: dict[str, float] = {}
        for key, count in stats.events:
            weights[key.task] = weights.get(key.task, 0) + count
        for outcome, count in stats.outcomes:
            weights.setdefault(outcome.task, count)
        for task, _ in stats.queue_wait:
            weights.setdefault(task, 0)
        for pair, _ in stats.queue_latency:
            weights.setdefault(pair.task, 0)
        return weights


def pool_processes(details: dict[str, dict[str, Any]], workers: dict[str, WorkerStatus]) -> dict[str, int]:
    """Pool size from each online worker's last stats reply (the inspect cache outlives workers)."""
    out: dict[str, int] = {}
    for name, info in details.items():
        worker = workers.get(name)
        if worker is None or not worker.online:
            continue
        processes = ((info.get("stats") or {}).get("pool") or {}).get("processes")
        if isinstance(processes, list):
            out[name] = len(processes)
    return out


def _single(items: dict[str, float]) -> list[tuple[tuple[str], float]]:
    """Values keyed by one label value, keyed as a family's one-label key."""
    return [((label,), value) for label, value in items.items()]


class MonitorCollector:
    """Writes the exposition of one scrape: GET /metrics runs :meth:`render` in a worker thread.

    Label names are declared in the order of the stats tables' keys, so a key is a family's label
    values as it is; the text lists label names sorted (as prometheus-client does), whatever the order.
    """

    def __init__(self, sources: Sources, policy: LabelPolicy) -> None:
        self.sources = sources
        self.policy = policy
        pair = ("task", "worker")
        self.events = Counter("flower_events", "Number of events", ("task", "type", "worker"))
        self.runtime = HistogramFamily("flower_task_runtime_seconds", "Task runtime", pair)
        self.prefetch_time = Gauge("flower_task_prefetch_time_seconds",
                                   "The time the task spent waiting at the worker to be executed.", pair)
        self.prefetched = Gauge("flower_worker_prefetched_tasks",
                                "Number of tasks of given type prefetched at a worker", pair)
        self.online = Gauge("flower_worker_online", "Worker online status", ("worker",))
        self.executing = Gauge("flower_worker_number_of_currently_executing_tasks",
                               "Number of tasks currently executing at a worker", ("worker",))
        self.outcomes = Counter(P + "task_outcomes", "Finished task events by state and exception class",
                                ("task", "state", "exception"))
        self.queue_wait = HistogramFamily(P + "task_queue_wait_seconds", "Time from sent (or received) to started",
                                          ("task",))
        self.queue_latency = HistogramFamily(
            P + "task_queue_latency_seconds", "Time from sent (or from the ETA, when later) to started, per queue",
            ("queue", "task"))
        self.tasks = Gauge(P + "tasks", "Retained tasks by current state", ("state",))
        self.lost = Counter(P + "tasks_lost", "Tasks turned LOST: their worker went offline or restarted while "
                            "it held them", ("name",))
        self.reconciled = Counter(P + "tasks_reconciled", "Tasks whose final state, missed as an event, was read "
                                  "from the result backend", ("state",))
        self.workers = Gauge(P + "workers", "Workers by status", ("status",))
        self.pool_processes = Gauge(P + "worker_pool_processes", "Pool processes per online worker", ("worker",))
        self.queues = QueueFamilies()
        self.events_received = Counter(P + "events_received", "Events received")
        self.event_messages_dropped = Counter(P + "event_messages_dropped",
                                              "Event messages dropped: the applier's hand-off was full")
        self.events_malformed = Counter(P + "events_malformed", "Events refused at the event boundary, all reasons")
        self.events_rejected = Counter(P + "events_rejected", "Events refused at the event boundary, by reason",
                                       ("reason",))
        self.receiver_connected = Gauge(P + "receiver_connected", "Event receiver connected to the broker")
        self.receiver_reconnects = Counter(P + "receiver_reconnects", "Event receiver reconnections")
        self.receiver_disconnects = Counter(
            P + "receiver_disconnects", "Event streams lost while connected (a broker drops a subscriber that lags)")
        self.reader_restarts = Counter(P + "reader_restarts", "Restarts of the Redis reader process (--event_spool)")
        self.spool_backlog = Gauge(P + "spool_backlog_bytes",
                                   "Event bytes read into the spool (--event_spool) that the applier has not taken yet")
        self.last_event = Gauge(P + "last_event_timestamp_seconds", "When the last event arrived")
        self.ingest_lag = Gauge(P + "ingest_lag_seconds", "Delay between receiving and applying events")
        self.store_tasks = Gauge(P + "store_tasks", "Tasks in the history")
        self.store_size = Gauge(P + "store_size_bytes", "Size of the history on disk")
        self.store_quarantined = Gauge(P + "store_quarantined_rows",
                                       "History rows found damaged or from an older version, set aside")
        # Resilience: broker faults by reason, the history's writes, the background loops, liveness.
        self.receiver_errors = Counter(P + "receiver_errors", "Failed connections and lost event streams, by reason",
                                       ("reason",))
        self.store_persisting = Gauge(P + "store_persisting", "1 while the history is written, 0 while writes fail")
        self.store_write_errors = Counter(P + "store_write_errors", "Failed writes of the history (disk full, ...)")
        self.store_pending = Gauge(P + "store_pending_tasks", "Changed tasks waiting to be written to the history")
        self.store_dropped = Counter(P + "store_writes_dropped",
                                     "Pending task writes dropped: over the bound while writes failed, or refused")
        self.background_errors = Counter(P + "background_errors", "Unexpected exceptions in background loops",
                                         ("loop",))
        self.live = Gauge(P + "live", "1 while ingestion works (/livez answers 200), 0 when it has stopped")
        self.schedule_missed = Counter(P + "schedule_missed", "Periodic task runs that did not arrive within their "
                                       "interval plus --schedule_tolerance, by beat entry", ("entry",))
        self.notifications = Counter(P + "notifications", "Notification delivery attempts by channel kind and outcome "
                                     "(delivered, failed; dropped: never attempted, too many waiting)",
                                     ("kind", "outcome"))
        self.notices_dropped = Counter(P + "notification_notices_dropped",
                                       "Task notices dropped: the notifier's queue was full")
        self.leader = Gauge(P + "leader", "1 on the replica that ingests the history (always, with SQLite), "
                            "0 on a standby, which serves no other family of the cluster or the event stream")

    def render(self) -> bytes:
        """The whole exposition, UTF-8 encoded, in the order the families are declared."""
        now = time.time()
        sources = self.sources
        if not sources.leading():
            return self._standby()
        snap = Snapshot.take(sources.live, sources.inspector, now)
        self.policy.tasks.admit(snap.task_weights())
        out: list[str] = []
        self._flower(out, snap)
        self._tasks(out, snap)
        self._workers(out, snap)
        online = [name for name, worker in snap.workers.items() if worker.online]
        self.queues.write(out, sources.queues, now, backlog.reserved_per_queue(sources.inspector.details(), online))
        self._health(out)
        self.leader.write_value(out, 1)
        return "".join(out).encode()

    def _standby(self) -> bytes:
        """A standby's own health only: whether it works, and that it does not lead."""
        out: list[str] = []
        sources = self.sources
        self.background_errors.write(out, [((loop,), count) for loop, count in sources.supervisor.errors().items()])
        self.live.write_value(out, 0 if sources.liveness.problems() else 1)
        self.leader.write_value(out, 0)
        return "".join(out).encode()

    def _relabel(self, function: Callable[[Any], Any]) -> Callable[[Any], Any] | None:
        """``function``, or None (keys kept as they are) when every name is exported unchanged."""
        return None if self.policy.is_identity else function

    def _flower(self, out: list[str], snap: Snapshot) -> None:
        """Flower's six families."""
        task, worker = self.policy.task, self.policy.worker
        known = snap.workers
        stats = snap.live.stats
        pair = self._relabel(lambda key: TaskWorker(task(key.task), worker(key.worker)))

        self.events.write(out, fold(stats.events,
                                    self._relabel(lambda k: EventKey(task(k.task), k.type, worker(k.worker))),
                                    _add).items())
        self.runtime.write(out, fold_histograms(stats.runtime, pair).items())
        self.prefetch_time.write(out, fold(stats.prefetch_time, pair, max).items())
        # A worker that is gone holds no tasks, whatever it had reserved when it went.
        prefetched = [(key, 0 if key.worker in known and not known[key.worker].online else value)
                      for key, value in stats.prefetched]
        self.prefetched.write(out, fold(prefetched, pair, _add).items())

        by_worker = self._relabel(worker)
        self.online.write(out, _single(fold(((h, int(w.online)) for h, w in known.items()), by_worker, max)))
        active = ((h, w.active if w.online else 0) for h, w in known.items())
        self.executing.write(out, _single(fold(active, by_worker, _add)))

    def _tasks(self, out: list[str], snap: Snapshot) -> None:
        task = self.policy.task
        stats = snap.live.stats
        self.outcomes.write(out, fold(stats.outcomes,
                                      self._relabel(lambda k: OutcomeKey(task(k.task), k.state, k.exception)),
                                      _add).items())
        waits = fold_histograms(stats.queue_wait, self._relabel(task))
        self.queue_wait.write(out, [((name,), hist) for name, hist in waits.items()])
        latency = fold_histograms(stats.queue_latency, self._relabel(lambda k: QueueTask(k.queue, task(k.task))))
        self.queue_latency.write(out, latency.items())
        self.tasks.write(out, [((state,), count) for state, count in sorted(snap.live.state_counts.items())])
        lost = fold(stats.lost, self._relabel(task), _add)
        self.lost.write(out, [((name,), count) for name, count in lost.items()])
        self.reconciled.write(out, [((state,), count) for state, count in sorted(stats.reconciled)])

    def _workers(self, out: list[str], snap: Snapshot) -> None:
        up = sum(1 for w in snap.workers.values() if w.online)
        self.workers.write(out, ((("online",), up), (("offline",), len(snap.workers) - up)))
        self.pool_processes.write(out, _single(fold(snap.pool_processes.items(),
                                                    self._relabel(self.policy.worker), _add)))

    def _health(self, out: list[str]) -> None:
        sources = self.sources
        health = sources.receiver
        self.events_received.write_value(out, health.events_received)
        self.event_messages_dropped.write_value(out, health.messages_dropped)
        rejected = sources.rejections.counts()
        self.events_malformed.write_value(out, sum(rejected.values()))
        self.events_rejected.write(out, [((reason,), count) for reason, count in rejected.items()])
        self.receiver_connected.write_value(out, 1 if health.connected else 0)
        self.receiver_reconnects.write_value(out, health.reconnects)
        self.receiver_disconnects.write_value(out, health.broker_disconnects)
        self.reader_restarts.write_value(out, health.reader_restarts)
        self.spool_backlog.write_value(out, health.spool_backlog_bytes)
        self.last_event.write_value(out, health.last_event_time or 0)
        self.ingest_lag.write_value(out, sources.applier.last_lag)
        self.store_tasks.write_value(out, sources.store.task_count())
        self.store_size.write_value(out, sources.store.size_bytes())
        self.store_quarantined.write_value(out, sources.store.quarantined()["rows"])
        self._resilience(out)

    def _resilience(self, out: list[str]) -> None:
        sources = self.sources
        writer = sources.writer
        by_reason = sources.receiver.errors_by_reason
        self.receiver_errors.write(out, [((reason,), count) for reason, count in by_reason.items()])
        self.store_persisting.write_value(out, 1 if writer.persisting else 0)
        self.store_write_errors.write_value(out, writer.errors)
        self.store_pending.write_value(out, writer.pending_count)
        self.store_dropped.write_value(out, writer.dropped)
        self.background_errors.write(out, [((loop,), count) for loop, count in sources.supervisor.errors().items()])
        self.live.write_value(out, 0 if sources.liveness.problems() else 1)
        missed = sources.schedules.missed_totals() if sources.schedules is not None else {}
        self.schedule_missed.write(out, [((entry,), count) for entry, count in sorted(missed.items())])
        notifier = sources.notifier
        self.notifications.write(out, notifier.counts())
        self.notices_dropped.write_value(out, notifier.notices.dropped)

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
from celery_monitor.clusters import DEFAULT, SEPARATOR
from celery_monitor.inspector.inspector import Inspector
from celery_monitor.liveness import Liveness
from celery_monitor.metrics.cardinality import LabelPolicy, fold, fold_histograms
from celery_monitor.metrics.exposition import Counter, Gauge, HistogramFamily
from celery_monitor.metrics.queue_metrics import QueueFamilies
from celery_monitor.notify.notifier import Notifier
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.schedules.catalog import Schedules
from celery_monitor.state.live import LiveView
from celery_monitor.state.snapshots import (
    ClusterTask,
    EventKey,
    LiveSnapshot,
    OutcomeKey,
    QueueTask,
    TaskWorker,
    WorkerStatus,
)
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
    # Each cluster's receiver, by name (the first is ``receiver``); None: ``receiver`` alone, as ``default``.
    clusters: Callable[[], dict[str, ReceiverHealth]] | None = None

    def receivers(self) -> dict[str, ReceiverHealth]:
        return {DEFAULT: self.receiver} if self.clusters is None else self.clusters()


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
        for waited, _ in stats.queue_wait:
            weights.setdefault(waited.task, 0)
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


def task_counts(totals: dict[str, int], of_clusters: dict[str, dict[str, int]],
                watched: list[str]) -> list[tuple[tuple[str, str], int]]:
    """``celery_monitor_tasks`` by (cluster, state): each cluster's counts, ``default``'s the rest of the
    totals (shown when it is watched, or holds tasks of a history written before there were clusters)."""
    rows: list[tuple[tuple[str, str], int]] = []
    rest = dict(totals)
    for cluster in sorted(of_clusters):
        for state, count in sorted(of_clusters[cluster].items()):
            rows.append(((cluster, state), count))
            rest[state] = rest.get(state, 0) - count
    if DEFAULT in watched or any(count > 0 for count in rest.values()):
        rows.extend(((DEFAULT, state), max(0, count)) for state, count in sorted(rest.items()))
    return sorted(rows)


def hostname(cluster: str, worker: str) -> str:
    """The ``worker`` label: a worker's hostname, without the cluster its name in the monitor is
    qualified by (clusters.qualified), since the ``cluster`` label says it."""
    if cluster != DEFAULT and worker.startswith(cluster + SEPARATOR):
        return worker[len(cluster) + len(SEPARATOR):]
    return worker


class MonitorCollector:
    """Writes the exposition of one scrape: GET /metrics runs :meth:`render` in a worker thread.

    Label names are declared in the order of the stats tables' keys, so a key is a family's label
    values as it is; the text lists label names sorted (as prometheus-client does), whatever the order.
    Every family of tasks or workers, and of a cluster's event stream, has a ``cluster`` label
    (``default`` for a monitor of one broker); its ``worker`` label is the bare hostname.
    """

    def __init__(self, sources: Sources, policy: LabelPolicy) -> None:
        self.sources = sources
        self.policy = policy
        self._identity = policy.is_identity
        pair = ("cluster", "task", "worker")
        by_worker = ("cluster", "worker")
        self.events = Counter("flower_events", "Number of events", ("cluster", "task", "type", "worker"))
        self.runtime = HistogramFamily("flower_task_runtime_seconds", "Task runtime", pair)
        self.prefetch_time = Gauge("flower_task_prefetch_time_seconds",
                                   "The time the task spent waiting at the worker to be executed.", pair)
        self.prefetched = Gauge("flower_worker_prefetched_tasks",
                                "Number of tasks of given type prefetched at a worker", pair)
        self.online = Gauge("flower_worker_online", "Worker online status", by_worker)
        self.executing = Gauge("flower_worker_number_of_currently_executing_tasks",
                               "Number of tasks currently executing at a worker", by_worker)
        self.outcomes = Counter(P + "task_outcomes", "Finished task events by state and exception class",
                                ("cluster", "task", "state", "exception"))
        self.queue_wait = HistogramFamily(P + "task_queue_wait_seconds", "Time from sent (or received) to started",
                                          ("cluster", "task"))
        self.queue_latency = HistogramFamily(
            P + "task_queue_latency_seconds", "Time from sent (or from the ETA, when later) to started, per queue",
            ("cluster", "queue", "task"))
        self.tasks = Gauge(P + "tasks", "Retained tasks by current state", ("cluster", "state"))
        self.lost = Counter(P + "tasks_lost", "Tasks turned LOST: their worker went offline or restarted while "
                            "it held them", ("cluster", "name"))
        self.reconciled = Counter(P + "tasks_reconciled", "Tasks whose final state, missed as an event, was read "
                                  "from the result backend", ("cluster", "state"))
        self.workers = Gauge(P + "workers", "Workers by status", ("cluster", "status"))
        self.pool_processes = Gauge(P + "worker_pool_processes", "Pool processes per online worker", by_worker)
        self.queues = QueueFamilies()
        one = ("cluster",)
        self.events_received = Counter(P + "events_received", "Events received", one)
        self.event_messages_dropped = Counter(P + "event_messages_dropped",
                                              "Event messages dropped: the applier's hand-off was full", one)
        self.events_malformed = Counter(P + "events_malformed", "Events refused at the event boundary, all reasons")
        self.events_rejected = Counter(P + "events_rejected", "Events refused at the event boundary, by reason",
                                       ("reason",))
        self.receiver_connected = Gauge(P + "receiver_connected", "Event receiver connected to the broker", one)
        self.receiver_reconnects = Counter(P + "receiver_reconnects", "Event receiver reconnections", one)
        self.receiver_disconnects = Counter(
            P + "receiver_disconnects", "Event streams lost while connected (a broker drops a subscriber that lags)",
            one)
        self.reader_restarts = Counter(P + "reader_restarts", "Restarts of the Redis reader process (--event_spool)",
                                       one)
        self.spool_backlog = Gauge(P + "spool_backlog_bytes",
                                   "Event bytes read into the spool (--event_spool) that the applier has not taken yet",
                                   one)
        self.last_event = Gauge(P + "last_event_timestamp_seconds", "When the last event arrived", one)
        self.ingest_lag = Gauge(P + "ingest_lag_seconds", "Delay between receiving and applying events")
        self.store_tasks = Gauge(P + "store_tasks", "Tasks in the history")
        self.store_size = Gauge(P + "store_size_bytes", "Size of the history on disk")
        self.store_quarantined = Gauge(P + "store_quarantined_rows",
                                       "History rows found damaged or from an older version, set aside")
        # Resilience: broker faults by reason, the history's writes, the background loops, liveness.
        self.receiver_errors = Counter(P + "receiver_errors", "Failed connections and lost event streams, by reason",
                                       ("cluster", "reason"))
        self.store_persisting = Gauge(P + "store_persisting", "1 while the history is written, 0 while writes fail")
        self.store_write_errors = Counter(P + "store_write_errors", "Failed writes of the history (disk full, ...)")
        self.store_pending = Gauge(P + "store_pending_tasks", "Changed tasks waiting to be written to the history")
        self.store_dropped = Counter(P + "store_writes_dropped",
                                     "Pending task writes dropped: over the bound while writes failed, or refused")
        self.background_errors = Counter(P + "background_errors", "Unexpected exceptions in background loops",
                                         ("loop",))
        self.live = Gauge(P + "live", "1 while ingestion works (/livez answers 200), 0 when it has stopped")
        self.schedule_missed = Counter(P + "schedule_missed", "Periodic task runs that did not arrive within their "
                                       "interval plus --schedule_tolerance, by beat entry", ("cluster", "entry"))
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
        receivers = sources.receivers()
        # Keys are written as they are (no relabelling) while every name is exported unchanged:
        # Flower's label policy and one cluster named ``default``, whose workers' names are bare.
        self._identity = self.policy.is_identity and list(receivers) == [DEFAULT]
        out: list[str] = []
        self._flower(out, snap)
        self._tasks(out, snap, list(receivers))
        self._workers(out, snap, list(receivers))
        online = {name: worker.cluster for name, worker in snap.workers.items() if worker.online}
        self.queues.write(out, sources.queues, now, backlog.reserved_by_cluster(sources.inspector.details(), online))
        self._health(out, receivers)
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
        return None if self._identity else function

    def _worker(self, cluster: str, worker: str) -> str:
        return self.policy.worker(hostname(cluster, worker))

    def _flower(self, out: list[str], snap: Snapshot) -> None:
        """Flower's six families."""
        task, worker = self.policy.task, self._worker
        known = snap.workers
        stats = snap.live.stats
        pair = self._relabel(lambda k: TaskWorker(k.cluster, task(k.task), worker(k.cluster, k.worker)))

        self.events.write(out, fold(stats.events, self._relabel(
            lambda k: EventKey(k.cluster, task(k.task), k.type, worker(k.cluster, k.worker))), _add).items())
        self.runtime.write(out, fold_histograms(stats.runtime, pair).items())
        self.prefetch_time.write(out, fold(stats.prefetch_time, pair, max).items())
        # A worker that is gone holds no tasks, whatever it had reserved when it went.
        prefetched = [(key, 0 if key.worker in known and not known[key.worker].online else value)
                      for key, value in stats.prefetched]
        self.prefetched.write(out, fold(prefetched, pair, _add).items())

        by_worker = self._relabel(lambda k: (k[0], worker(*k)))
        online = (((w.cluster, h), int(w.online)) for h, w in known.items())
        self.online.write(out, fold(online, by_worker, max).items())
        active = (((w.cluster, h), w.active if w.online else 0) for h, w in known.items())
        self.executing.write(out, fold(active, by_worker, _add).items())

    def _tasks(self, out: list[str], snap: Snapshot, clusters: list[str]) -> None:
        task = self.policy.task
        stats = snap.live.stats
        self.outcomes.write(out, fold(stats.outcomes,
                                      self._relabel(lambda k: OutcomeKey(k.cluster, task(k.task), k.state,
                                                                         k.exception)),
                                      _add).items())
        by_task = self._relabel(lambda k: ClusterTask(k.cluster, task(k.task)))
        self.queue_wait.write(out, fold_histograms(stats.queue_wait, by_task).items())
        latency = fold_histograms(stats.queue_latency,
                                  self._relabel(lambda k: QueueTask(k.cluster, k.queue, task(k.task))))
        self.queue_latency.write(out, latency.items())
        self.tasks.write(out, task_counts(snap.live.state_counts, snap.live.cluster_state_counts, clusters))
        self.lost.write(out, fold(stats.lost, by_task, _add).items())
        self.reconciled.write(out, sorted(stats.reconciled))

    def _workers(self, out: list[str], snap: Snapshot, clusters: list[str]) -> None:
        up = dict.fromkeys(clusters, 0)
        known = dict.fromkeys(clusters, 0)
        for w in snap.workers.values():
            known[w.cluster] = known.get(w.cluster, 0) + 1
            up[w.cluster] = up.get(w.cluster, 0) + int(w.online)
        self.workers.write(out, [((cluster, status), count) for cluster, total in known.items()
                                 for status, count in (("online", up[cluster]), ("offline", total - up[cluster]))])
        workers = snap.workers
        pools = (((workers[name].cluster, name), n) for name, n in snap.pool_processes.items())
        self.pool_processes.write(out, fold(pools, self._relabel(lambda k: (k[0], self._worker(*k))), _add).items())

    def _health(self, out: list[str], receivers: dict[str, ReceiverHealth]) -> None:
        sources = self.sources
        each = receivers.items()
        self.events_received.write(out, [((name,), h.events_received) for name, h in each])
        self.event_messages_dropped.write(out, [((name,), h.messages_dropped) for name, h in each])
        rejected = sources.rejections.counts()
        self.events_malformed.write_value(out, sum(rejected.values()))
        self.events_rejected.write(out, [((reason,), count) for reason, count in rejected.items()])
        self.receiver_connected.write(out, [((name,), 1 if h.connected else 0) for name, h in each])
        self.receiver_reconnects.write(out, [((name,), h.reconnects) for name, h in each])
        self.receiver_disconnects.write(out, [((name,), h.broker_disconnects) for name, h in each])
        self.reader_restarts.write(out, [((name,), h.reader_restarts) for name, h in each])
        self.spool_backlog.write(out, [((name,), h.spool_backlog_bytes) for name, h in each])
        self.last_event.write(out, [((name,), h.last_event_time or 0) for name, h in each])
        self.ingest_lag.write_value(out, sources.applier.last_lag)
        self.store_tasks.write_value(out, sources.store.task_count())
        self.store_size.write_value(out, sources.store.size_bytes())
        self.store_quarantined.write_value(out, sources.store.quarantined()["rows"])
        self.receiver_errors.write(out, [((name, reason), count) for name, h in each
                                         for reason, count in h.errors_by_reason.items()])
        self._resilience(out)

    def _resilience(self, out: list[str]) -> None:
        sources = self.sources
        writer = sources.writer
        self.store_persisting.write_value(out, 1 if writer.persisting else 0)
        self.store_write_errors.write_value(out, writer.errors)
        self.store_pending.write_value(out, writer.pending_count)
        self.store_dropped.write_value(out, writer.dropped)
        self.background_errors.write(out, [((loop,), count) for loop, count in sources.supervisor.errors().items()])
        self.live.write_value(out, 0 if sources.liveness.problems() else 1)
        missed = sources.schedules.missed_totals() if sources.schedules is not None else {}
        self.schedule_missed.write(out, sorted(missed.items()))
        notifier = sources.notifier
        self.notifications.write(out, notifier.counts())
        self.notices_dropped.write_value(out, notifier.notices.dropped)

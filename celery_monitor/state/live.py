"""The live view: workers, counters and the recently active tasks, in memory and small.

It owns its lock and its data. The applier is its only writer: it applies a batch inside
:meth:`LiveView.applying` (the lock held) through the writer's operations below, and only from its
own thread, which is why those operations hand out the live records themselves. Everyone else gets
copies taken briefly under the lock (plain dicts, or a typed :class:`LiveSnapshot`), and changes it
only through the explicit operations :meth:`LiveView.restore` and :meth:`LiveView.forget_trimmed`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from celery_monitor.clusters import DEFAULT
from celery_monitor.state.models import TaskRecord, WorkerRecord
from celery_monitor.state.snapshots import (
    ClusterTask,
    EventKey,
    LiveSnapshot,
    OutcomeKey,
    QueueTask,
    StatsSnapshot,
    TaskWorker,
    WorkerStatus,
)
from celery_monitor.state.stats import EventStats, GraphTotals
from celery_monitor.states import HELD_STATES

# The share of the writer's time saving the per-event counters may take: a fleet whose counters
# take 40 ms to serialise has them saved every 2 s rather than with every flush.
STATS_SAVE_SHARE = 0.02

# Enough for every task in flight at tens of thousands of events a second (a task's events come
# within seconds of each other); the others are looked up in the pending writes and the history.
# Each record holds its task's text: more of them is memory kept for good after a burst.
RECENT_TASKS = 5_000


class LiveView:
    def __init__(self, stats: EventStats, recent_tasks: int = RECENT_TASKS) -> None:
        self._lock = threading.RLock()
        self._workers: dict[str, WorkerRecord] = {}
        self._recent: OrderedDict[str, TaskRecord] = OrderedDict()
        self._recent_limit = recent_tasks
        self._task_names: set[str] = set()
        # The names per cluster, for lists narrowed to some clusters; saved beside the counters
        # (``cluster_task_names``) once a cluster other than ``default`` has some.
        self._cluster_task_names: dict[str, set[str]] = {}
        self._names_changed = False
        self._state_counts: dict[str, int] = {}
        # The same of each cluster but ``default`` (whose counts are the rest): nothing more to keep
        # for a monitor of one broker, one comparison per event for the others.
        self._cluster_state_counts: dict[str, dict[str, int]] = {}
        # The recent tasks a worker holds (RECEIVED or STARTED there), per worker, and the reverse:
        # what turns LOST when a worker is lost, found without a scan (bounded by the recent tasks).
        self._held: dict[str, dict[str, None]] = {}
        self._held_by: dict[str, str] = {}
        self._stats = stats
        # Bumped by every change to the counters: they are saved with a flush only when they moved.
        self._version = 0
        self._saved_version = 0
        self._stats_saved_version = 0
        self._stats_next_save = 0.0  # monotonic; see counters_to_save

    # -- the applier's side: inside applying(), on the applier's thread only ---------------------

    @contextlib.contextmanager
    def applying(self) -> Iterator[None]:
        """Hold the lock while a batch is applied: readers see all of it or none of it."""
        with self._lock:
            try:
                yield
            finally:
                self._version += 1

    def task(self, uuid: str) -> TaskRecord | None:
        """The live record of a recent task (the applier changes it in place)."""
        return self._recent.get(uuid)

    def missing(self, uuids: Iterable[str]) -> set[str]:
        """Those of ``uuids`` the view does not hold (the applier looks them up before applying)."""
        recent = self._recent
        return {uuid for uuid in uuids if uuid not in recent}

    def remember(self, task: TaskRecord) -> None:
        """Make ``task`` the most recent one, forgetting the least recent beyond the limit."""
        recent = self._recent
        recent[task.uuid] = task
        recent.move_to_end(task.uuid)
        while len(recent) > self._recent_limit:
            uuid, _ = recent.popitem(last=False)
            self._unhold(uuid)

    def track_held(self, task: TaskRecord) -> None:
        """Keep the index of held tasks right after ``task`` changed (its state or its worker)."""
        worker = task.worker if task.state in HELD_STATES else None
        uuid = task.uuid
        if self._held_by.get(uuid) == worker:
            return
        self._unhold(uuid)
        if worker is not None:
            self._held_by[uuid] = worker
            self._held.setdefault(worker, {})[uuid] = None

    def held_tasks(self, hostname: str) -> list[TaskRecord]:
        """The recent tasks the index says ``hostname`` holds (the applier checks each one's state)."""
        recent = self._recent
        return [recent[uuid] for uuid in self._held.get(hostname, ()) if uuid in recent]

    def _unhold(self, uuid: str) -> None:
        worker = self._held_by.pop(uuid, None)
        if worker is not None:
            held = self._held[worker]
            del held[uuid]
            if not held:
                del self._held[worker]

    def count_lost(self, task: TaskRecord) -> None:
        self._stats.count_lost(task.cluster, task.name or "")

    def count_reconciled(self, cluster: str, state: str) -> None:
        self._stats.count_reconciled(cluster, state)

    def count_state(self, old: str | None, new: str | None, cluster: str = DEFAULT) -> None:
        if old == new:
            return
        counts = self._state_counts
        if old is not None:
            counts[old] = max(0, counts.get(old, 0) - 1)
        if new is not None:
            counts[new] = counts.get(new, 0) + 1
        if cluster != DEFAULT:
            of_cluster = self._cluster_state_counts.get(cluster)
            if of_cluster is None:
                of_cluster = self._cluster_state_counts[cluster] = {}
            if old is not None:
                of_cluster[old] = max(0, of_cluster.get(old, 0) - 1)
            if new is not None:
                of_cluster[new] = of_cluster.get(new, 0) + 1

    def add_task_name(self, name: str, cluster: str = DEFAULT) -> None:
        names = self._cluster_task_names.get(cluster)
        if names is None:
            names = self._cluster_task_names[cluster] = set()
        if name not in names:
            names.add(name)
            self._task_names.add(name)
            self._names_changed = True

    def record(self, event_type: str, task: TaskRecord, event: dict[str, Any]) -> None:
        """Count one applied task event in the per-event counters and histograms."""
        self._stats.record(event_type, task, event)

    def worker(self, hostname: str) -> WorkerRecord | None:
        """The live record of a worker (the applier changes it in place)."""
        return self._workers.get(hostname)

    def add_worker(self, worker: WorkerRecord) -> None:
        self._workers[worker.hostname] = worker

    def worker_records(self) -> list[WorkerRecord]:
        """The live worker records, for the applier's limits and purges."""
        return list(self._workers.values())

    def forget_workers(self, names: Iterable[str]) -> None:
        """Drop workers and their counters (purged, or beyond --max_workers)."""
        for name in names:
            self._workers.pop(name, None)
            self._stats.forget_worker(name)
            for uuid in list(self._held.get(name, ())):
                self._unhold(uuid)

    # -- explicit operations for the monitor's other parts ---------------------------------------

    def restore(self, workers: Iterable[WorkerRecord], stats: EventStats, state_counts: dict[str, int],
                task_names: Iterable[str], cluster_task_names: dict[str, list[str]] | None = None,
                cluster_state_counts: dict[str, dict[str, int]] | None = None) -> None:
        """Take over what the previous run saved (before the applier starts).

        The names per cluster are those saved (``cluster_task_names``) and those the counters hold;
        with no cluster but ``default`` in either, every name is ``default``'s."""
        by_cluster: dict[str, set[str]] = {c: set(names) for c, names in (cluster_task_names or {}).items()}
        for cluster, name, _, _ in stats.events:
            if name:
                by_cluster.setdefault(cluster, set()).add(name)
        names = set(task_names)
        if set(by_cluster) <= {DEFAULT}:
            by_cluster[DEFAULT] = names | by_cluster.get(DEFAULT, set())
        with self._lock:
            self._cluster_task_names = by_cluster
            # Replaced whole: a standby reloads the view every second, and drops the workers the
            # leader has forgotten.
            self._workers = {worker.hostname: worker for worker in workers}
            self._stats = stats
            self._state_counts = dict(state_counts)
            self._cluster_state_counts = {c: dict(counts) for c, counts in (cluster_state_counts or {}).items()
                                          if c != DEFAULT}
            self._task_names = names.union(*by_cluster.values())

    def forget_trimmed(self, removed: dict[str, int], of_clusters: dict[str, dict[str, int]] | None = None) -> None:
        """The history deleted its oldest tasks (``removed``: how many per state; ``of_clusters``: those
        of clusters other than ``default``, per cluster and state): count them out."""
        with self._lock:
            for counts, gone in ((self._state_counts, removed),
                                 *((self._cluster_state_counts.setdefault(c, {}), g)
                                   for c, g in (of_clusters or {}).items())):
                for state, count in gone.items():
                    counts[state] = max(0, counts.get(state, 0) - count)
            self._version += 1

    def counters_to_save(self, now: float | None = None) -> dict[str, Any]:
        """The counters as the history saves them, when they changed since the last call (else {}).

        The state counts go with every flush that changed them: a replica that takes over goes on
        counting from them, so they must match the tasks written. The per-event counters of a large
        fleet (thousands of workers times task names) are megabytes: they are saved no more often
        than ``STATS_SAVE_SHARE`` of the time allows, so a big fleet's are a few seconds behind the
        tasks at a ``kill -9``. Both are copied under the lock and serialised outside it.
        """
        now = time.monotonic() if now is None else now
        saved: dict[str, Any] = {}
        stats = None
        with self._lock:
            if self._version != self._saved_version:
                self._saved_version = self._version
                # A standby replica shows them without counting the whole history.
                saved["state_counts"] = dict(self._state_counts)
                if self._cluster_state_counts:
                    saved["cluster_state_counts"] = {c: dict(n) for c, n in self._cluster_state_counts.items()}
            if self._version != self._stats_saved_version and now >= self._stats_next_save:
                self._stats_saved_version = self._version
                stats = self._stats.copy()
            if self._names_changed:
                self._names_changed = False
                if set(self._cluster_task_names) - {DEFAULT}:
                    saved["cluster_task_names"] = {c: sorted(n) for c, n in self._cluster_task_names.items()}
        if stats is not None:
            started = time.perf_counter()
            saved["stats"] = stats.to_store()
            self._stats_next_save = now + (time.perf_counter() - started) / STATS_SAVE_SHARE
        return saved

    def save_all_counters_next(self) -> None:
        """The next flush saves the per-event counters whatever they cost (the last flush at a stop)."""
        self._stats_next_save = 0.0

    # -- readers: copies ------------------------------------------------------------------------

    @property
    def runtime_buckets(self) -> tuple[float, ...]:
        return self._stats.runtime_buckets

    def task_dict(self, uuid: str) -> dict[str, Any] | None:
        """A recent task as the API shows it (a copy), or None when the view does not hold it."""
        with self._lock:
            task = self._recent.get(uuid)
            return task.as_dict() if task is not None else None

    def task_names(self, clusters: Iterable[str] | None = None) -> list[str]:
        """Every task name seen, or those seen on ``clusters`` (None: every cluster)."""
        with self._lock:
            if clusters is None:
                return sorted(self._task_names)
            return sorted(set().union(*(self._cluster_task_names.get(c, ()) for c in clusters)))

    def worker_names(self) -> list[str]:
        with self._lock:
            return list(self._workers)

    def worker_count(self) -> int:
        return len(self._workers)

    def knows_worker(self, name: str) -> bool:
        return name in self._workers

    def worker_dicts(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        now = time.time() if now is None else now
        with self._lock:
            return {name: worker.as_dict(now) for name, worker in self._workers.items()}

    def online_count(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            return sum(1 for worker in self._workers.values() if worker.is_online(now))

    def graph_totals(self, now: float | None = None) -> tuple[dict[str, GraphTotals], dict[str, int]]:
        """What the graphs need, and how many workers are online, per cluster: small tables, copied in
        one hold."""
        now = time.time() if now is None else now
        with self._lock:
            online: dict[str, int] = {}
            for worker in self._workers.values():
                if worker.is_online(now):
                    online[worker.cluster] = online.get(worker.cluster, 0) + 1
            return {cluster: graph.copy() for cluster, graph in self._stats.graphs.items()}, online

    def snapshot(self, now: float | None = None) -> LiveSnapshot:
        """The counters, the workers' status and the task state counts, copied in one hold of the lock."""
        now = time.time() if now is None else now
        with self._lock:
            stats = self._stats.copy()
            workers = {w.hostname: WorkerStatus(w.is_online(now), w.active or 0, w.cluster)
                       for w in self._workers.values()}
            state_counts = dict(self._state_counts)
            cluster_state_counts = {c: dict(n) for c, n in self._cluster_state_counts.items()}
        # Named outside the lock: a large fleet's counters are tens of thousands of keys.
        copied = StatsSnapshot(
            runtime_buckets=stats.runtime_buckets,
            events=[(EventKey._make(k), v) for k, v in stats.events.items()],
            runtime=[(TaskWorker._make(k), h) for k, h in stats.runtime.items()],
            prefetch_time=[(TaskWorker._make(k), v) for k, v in stats.prefetch_time.items()],
            prefetched=[(TaskWorker._make(k), v) for k, v in stats.prefetched.items()],
            outcomes=[(OutcomeKey._make(k), v) for k, v in stats.outcomes.items()],
            queue_wait=[(ClusterTask._make(k), h) for k, h in stats.queue_wait.items()],
            queue_latency=[(QueueTask._make(k), h) for k, h in stats.queue_latency.items()],
            lost=[(ClusterTask._make(k), v) for k, v in stats.lost.items()],
            reconciled=list(stats.reconciled.items()),
        )
        return LiveSnapshot(now, copied, workers, state_counts, cluster_state_counts)

"""Counters and histograms the applier keeps per event in the live view; metrics/ exports them.

Plain dicts keyed by label tuples: one dict increment per event instead of a prometheus-client
child lookup, and the whole set is saved with the history so a restart keeps the counts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from celery_monitor import states
from celery_monitor.clusters import DEFAULT
from celery_monitor.state.histogram import DEFAULT_BUCKETS, Histogram
from celery_monitor.state.models import TaskRecord
from celery_monitor.states import EVENT_STATES

WAIT_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Queue latency: from a millisecond to a day (a backlog that waited out an outage).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0,
)  # fmt: skip
OUTCOME_STATES = {event: state for event, state in EVENT_STATES.items() if state in states.OUTCOME_STATES}


def eta_time(eta: str | None) -> float | None:
    """Seconds since the epoch of Celery's ISO 8601 ``eta`` (a time without a zone is UTC, as Celery sends it)."""
    if not eta:
        return None
    try:
        at = datetime.fromisoformat(eta)
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def queued_since(task: TaskRecord) -> float | None:
    """When a task could first have started: sent, or its ETA when that is later; None when the
    monitor did not see it sent (no ``task-sent`` event: the client runs without task_send_sent_event)."""
    eta = eta_time(task.eta)
    if task.sent is None:
        return eta
    return task.sent if eta is None else max(task.sent, eta)


def exception_class(exception: str | None) -> str:
    """``ValueError('bad')`` -> ``ValueError``."""
    if not exception:
        return ""
    return exception.split("(", 1)[0].strip()[:200]


class EventStats:
    """Every key starts with the task's cluster (``default`` for a monitor of one broker)."""

    def __init__(self, runtime_buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.runtime_buckets = runtime_buckets
        self.events: dict[tuple[str, str, str, str], int] = {}  # by (cluster, task name, type, worker)
        self.runtime: dict[tuple[str, str, str], Histogram] = {}  # by (cluster, task name, worker)
        self.prefetch_time: dict[tuple[str, str, str], float] = {}
        self.prefetched: dict[tuple[str, str, str], int] = {}
        self.outcomes: dict[tuple[str, str, str, str], int] = {}  # by (cluster, task name, state, exception)
        self.queue_wait: dict[tuple[str, str], Histogram] = {}  # by (cluster, task name)
        self.queue_latency: dict[tuple[str, str, str], Histogram] = {}  # by (cluster, queue, task name)
        self.lost: dict[tuple[str, str], int] = {}  # tasks the monitor judged LOST, by (cluster, task name)
        self.reconciled: dict[tuple[str, str], int] = {}  # tasks settled from the result backend: (cluster, state)
        # What the graphs draw, kept per cluster as events come (all workers together): a second's
        # point then copies a few small tables per cluster, not every (cluster, task, worker) row.
        self.graphs: dict[str, GraphTotals] = {}

    def record(self, event_type: str, task: TaskRecord, event: dict[str, Any]) -> None:
        name = task.name or ""
        cluster = task.cluster
        # A task-sent event has no worker: its hostname is the client's, and the task says the cluster.
        key = (cluster, name, event_type, event.get("hostname") or "")
        worker = task.worker or ""
        self.events[key] = self.events.get(key, 0) + 1
        pair = (cluster, name, worker)
        graph = self.graphs.get(cluster)
        if graph is None:
            graph = self.graphs[cluster] = GraphTotals(self.runtime_buckets)
        if event_type == "task-received":
            graph.received += 1
            self.prefetched[pair] = self.prefetched.get(pair, 0) + 1
        elif event_type == "task-started":
            if self.prefetched.get(pair, 0) > 0:
                self.prefetched[pair] -= 1
            if task.received is not None and task.started is not None:
                self.prefetch_time[pair] = max(0.0, task.started - task.received)
            self._record_wait(cluster, name, task)
            self._record_latency(cluster, name, task, graph)
        elif event_type == "task-succeeded":
            runtime = event.get("runtime")
            if isinstance(runtime, int | float):
                hist = self.runtime.get(pair)
                if hist is None:
                    hist = self.runtime[pair] = Histogram(self.runtime_buckets)
                hist.observe(float(runtime))
                graph.observe_runtime(name, float(runtime))
        outcome = OUTCOME_STATES.get(event_type)
        if outcome is not None:
            graph.outcomes[outcome] = graph.outcomes.get(outcome, 0) + 1
            exception = exception_class(event.get("exception")) if outcome != states.SUCCESS else ""
            okey = (cluster, name, outcome, exception)
            self.outcomes[okey] = self.outcomes.get(okey, 0) + 1

    def count_lost(self, cluster: str, name: str) -> None:
        key = (cluster, name)
        self.lost[key] = self.lost.get(key, 0) + 1

    def count_reconciled(self, cluster: str, state: str) -> None:
        key = (cluster, state)
        self.reconciled[key] = self.reconciled.get(key, 0) + 1

    def _record_wait(self, cluster: str, name: str, task: TaskRecord) -> None:
        queued_at = task.sent if task.sent is not None else task.received
        if queued_at is None or task.started is None:
            return
        wait = max(0.0, task.started - queued_at)
        key = (cluster, name)
        hist = self.queue_wait.get(key)
        if hist is None:
            hist = self.queue_wait[key] = Histogram(WAIT_BUCKETS)
        hist.observe(wait)

    def _record_latency(self, cluster: str, name: str, task: TaskRecord, graph: GraphTotals) -> None:
        since = queued_since(task)
        if since is None or task.started is None:
            return
        key = (cluster, task.queue or task.routing_key or "", name)
        hist = self.queue_latency.get(key)
        if hist is None:
            hist = self.queue_latency[key] = Histogram(LATENCY_BUCKETS)
        latency = max(0.0, task.started - since)
        hist.observe(latency)
        graph.observe_latency(key[1], latency)

    def forget_worker(self, worker: str) -> None:
        tables: tuple[dict[Any, Any], ...] = (self.events, self.runtime, self.prefetch_time, self.prefetched)
        for table in tables:
            for key in [k for k in table if k[-1] == worker]:
                del table[key]

    def copy(self) -> EventStats:
        """A copy to read outside the live view's lock: tables are copied whole, histograms one by one."""
        copy = EventStats(self.runtime_buckets)
        copy.events = dict(self.events)
        copy.runtime = {key: hist.copy() for key, hist in self.runtime.items()}
        copy.prefetch_time = dict(self.prefetch_time)
        copy.prefetched = dict(self.prefetched)
        copy.outcomes = dict(self.outcomes)
        copy.queue_wait = {key: hist.copy() for key, hist in self.queue_wait.items()}
        copy.queue_latency = {key: hist.copy() for key, hist in self.queue_latency.items()}
        copy.lost = dict(self.lost)
        copy.reconciled = dict(self.reconciled)
        copy.graphs = {cluster: graph.copy() for cluster, graph in self.graphs.items()}
        return copy

    def to_store(self) -> dict[str, Any]:
        """The ``default`` cluster's rows as a monitor of one broker has always saved them (so a
        history stays readable by an older version); every other cluster's rows under ``clusters``."""
        saved = self._rows_of(DEFAULT)
        others = sorted({key[0] for table in self._cluster_tables() for key in table} - {DEFAULT})
        if others:
            saved["clusters"] = {cluster: self._rows_of(cluster) for cluster in others}
        return saved

    def _cluster_tables(self) -> tuple[dict[Any, Any], ...]:
        return (self.events, self.runtime, self.prefetch_time, self.prefetched, self.outcomes, self.queue_wait,
                self.queue_latency, self.lost, self.reconciled)

    def _rows_of(self, cluster: str) -> dict[str, Any]:
        def rows(table: dict[Any, Any], histograms: bool = False) -> list[list[Any]]:
            return [[*k[1:], v.to_store() if histograms else v] for k, v in table.items() if k[0] == cluster]

        return {
            "events": rows(self.events),
            "runtime": rows(self.runtime, True),
            "prefetch_time": rows(self.prefetch_time),
            "prefetched": rows(self.prefetched),
            "outcomes": rows(self.outcomes),
            "queue_wait": rows(self.queue_wait, True),
            "queue_latency": rows(self.queue_latency, True),
            "lost": rows(self.lost),
            "reconciled": rows(self.reconciled),
        }

    def load(self, data: dict[str, Any] | None) -> None:
        """Restore counters saved by :meth:`to_store`; ValueError when they are not what it saves."""
        if not data:
            return
        try:
            data = msgspec.to_builtins(msgspec.convert(data, _SavedStats))
        except msgspec.ValidationError as exc:
            raise ValueError(f"saved counters unreadable: {exc}") from None
        for table in self._cluster_tables():
            table.clear()
        for cluster, rows in [(DEFAULT, data), *data.get("clusters", {}).items()]:
            self._load_rows(cluster, rows)
        self.graphs = GraphTotals.of(self)

    def _load_rows(self, cluster: str, data: dict[str, Any]) -> None:
        c = cluster
        self.events.update({(c, a, b, w): v for a, b, w, v in data.get("events", [])})
        self.runtime.update({(c, a, b): Histogram.from_store(h, self.runtime_buckets)
                             for a, b, h in data.get("runtime", [])})
        self.prefetch_time.update({(c, a, b): v for a, b, v in data.get("prefetch_time", [])})
        self.prefetched.update({(c, a, b): v for a, b, v in data.get("prefetched", [])})
        self.outcomes.update({(c, a, b, e): v for a, b, e, v in data.get("outcomes", [])})
        self.queue_wait.update({(c, k): Histogram.from_store(h, WAIT_BUCKETS) for k, h in data.get("queue_wait", [])})
        self.queue_latency.update({(c, q, t): Histogram.from_store(h, LATENCY_BUCKETS)
                                   for q, t, h in data.get("queue_latency", [])})
        self.lost.update({(c, k): v for k, v in data.get("lost", [])})
        self.reconciled.update({(c, state): v for state, v in data.get("reconciled", [])})


class GraphTotals:
    """The totals the graphs take their points from: outcomes by state, tasks received, runtimes by
    task name and queue latencies by queue, of one cluster, summed over its workers. Kept as events
    come; a worker forgotten does not take its share back (a point is the difference of two totals)."""

    __slots__ = ("latency", "outcomes", "received", "runtime", "runtime_buckets")

    def __init__(self, runtime_buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.runtime_buckets = runtime_buckets
        self.outcomes: dict[str, int] = {}
        self.received = 0
        self.runtime: dict[str, Histogram] = {}
        self.latency: dict[str, Histogram] = {}

    def observe_runtime(self, name: str, runtime: float) -> None:
        hist = self.runtime.get(name)
        if hist is None:
            hist = self.runtime[name] = Histogram(self.runtime_buckets)
        hist.observe(runtime)

    def observe_latency(self, queue: str, latency: float) -> None:
        hist = self.latency.get(queue)
        if hist is None:
            hist = self.latency[queue] = Histogram(LATENCY_BUCKETS)
        hist.observe(latency)

    def copy(self) -> GraphTotals:
        copy = GraphTotals(self.runtime_buckets)
        copy.outcomes = dict(self.outcomes)
        copy.received = self.received
        copy.runtime = {name: hist.copy() for name, hist in self.runtime.items()}
        copy.latency = {queue: hist.copy() for queue, hist in self.latency.items()}
        return copy

    def add(self, other: GraphTotals) -> None:
        """Add another cluster's totals to these (the graphs of several clusters together)."""
        for state, count in other.outcomes.items():
            self.outcomes[state] = self.outcomes.get(state, 0) + count
        self.received += other.received
        for name, hist in other.runtime.items():
            self.runtime.setdefault(name, Histogram(self.runtime_buckets)).add(hist)
        for queue, hist in other.latency.items():
            self.latency.setdefault(queue, Histogram(LATENCY_BUCKETS)).add(hist)

    @classmethod
    def of(cls, stats: EventStats) -> dict[str, GraphTotals]:
        """Each cluster's totals of counters restored from the history (summed once, at a start or a
        reload)."""
        graphs: dict[str, GraphTotals] = {}

        def totals(cluster: str) -> GraphTotals:
            graph = graphs.get(cluster)
            if graph is None:
                graph = graphs[cluster] = cls(stats.runtime_buckets)
            return graph

        for (cluster, _name, state, _exception), count in stats.outcomes.items():
            graph = totals(cluster)
            graph.outcomes[state] = graph.outcomes.get(state, 0) + count
        for (cluster, _name, event_type, _worker), count in stats.events.items():
            if event_type == "task-received":
                totals(cluster).received += count
        for (cluster, name, _worker), hist in stats.runtime.items():
            totals(cluster).runtime.setdefault(name, Histogram(stats.runtime_buckets)).add(hist)
        for (cluster, queue, _name), hist in stats.queue_latency.items():
            totals(cluster).latency.setdefault(queue, Histogram(LATENCY_BUCKETS)).add(hist)
        return graphs


class _SavedHistogram(msgspec.Struct):
    bounds: list[float]
    counts: list[Annotated[int, msgspec.Meta(ge=0)]]
    sum: float


_Count = Annotated[int, msgspec.Meta(ge=0)]


class _SavedRows(msgspec.Struct, forbid_unknown_fields=False):
    """One cluster's rows, as :meth:`EventStats.to_store` writes them (keys without the cluster)."""

    events: list[tuple[str, str, str, _Count]] = []
    runtime: list[tuple[str, str, _SavedHistogram]] = []
    prefetch_time: list[tuple[str, str, float]] = []
    prefetched: list[tuple[str, str, _Count]] = []
    outcomes: list[tuple[str, str, str, _Count]] = []
    queue_wait: list[tuple[str, _SavedHistogram]] = []
    queue_latency: list[tuple[str, str, _SavedHistogram]] = []
    lost: list[tuple[str, _Count]] = []
    reconciled: list[tuple[str, _Count]] = []


class _SavedStats(_SavedRows, forbid_unknown_fields=False):
    """What :meth:`EventStats.to_store` writes, checked before a restart trusts it."""

    clusters: dict[str, _SavedRows] = {}

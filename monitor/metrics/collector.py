"""Prometheus exposition computed at scrape time from the live view: no stale series.

Flower's six families keep their names, types and labels; ours share
the ``celery_monitor_`` prefix. Worker gauges come from the workers the live view still knows,
and the applier drops a forgotten worker's counters, so a worker purged by
``--purge_offline_workers`` (or ``--max_workers``) leaves no series behind. The label policy
(``--metrics_worker_label``, ``--metrics_max_task_names``) is applied here, to every family with
a task or worker label.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from celery_monitor.metrics import cardinality
from celery_monitor.metrics.cardinality import LabelPolicy, fold, fold_histograms
from celery_monitor.metrics.histogram import Histogram
from celery_monitor.metrics.queue_metrics import queue_families

if TYPE_CHECKING:
    from celery_monitor.service import Monitor

P = "celery_monitor_"


def _add(a: float, b: float) -> float:
    return a + b


@dataclass
class WorkerState:
    online: bool
    active: int


@dataclass
class Snapshot:
    """What one scrape reads, copied under the live view's lock and exported outside it."""

    events: list[tuple[tuple[str, str, str], float]]  # (task, type, worker)
    runtime: list[tuple[tuple[str, str], Histogram]]  # (task, worker)
    prefetch_time: list[tuple[tuple[str, str], float]]
    prefetched: list[tuple[tuple[str, str], float]]
    outcomes: list[tuple[tuple[str, str, str], float]]  # (task, state, exception)
    queue_wait: list[tuple[str, Histogram]]
    workers: dict[str, WorkerState]
    state_counts: dict[str, int]
    pool_processes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def take(cls, monitor: Monitor, now: float) -> Snapshot:
        live = monitor.live
        stats = live.stats
        with live.lock:
            snap = cls(
                events=list(stats.events.items()),
                runtime=[(k, cardinality.snapshot(h)) for k, h in stats.runtime.items()],
                prefetch_time=list(stats.prefetch_time.items()),
                prefetched=list(stats.prefetched.items()),
                outcomes=list(stats.outcomes.items()),
                queue_wait=[(k, cardinality.snapshot(h)) for k, h in stats.queue_wait.items()],
                workers={w.hostname: WorkerState(w.is_online(now), w.active or 0) for w in live.workers.values()},
                state_counts=dict(live.state_counts),
            )
        snap.pool_processes = pool_processes(monitor.inspector.details(), snap.workers)
        return snap

    def task_weights(self) -> dict[str, float]:
        """Events per task name: the busiest names are kept first when task names are capped."""
        weights: dict[str, float] = {}
        for (task, _, _), count in self.events:
            weights[task] = weights.get(task, 0) + count
        for (task, _, _), count in self.outcomes:
            weights.setdefault(task, count)
        for task, _ in self.queue_wait:
            weights.setdefault(task, 0)
        return weights


def pool_processes(details: dict[str, dict[str, Any]], workers: dict[str, WorkerState]) -> dict[str, int]:
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


@functools.lru_cache(maxsize=64)
def _bucket_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    return (*(floatToGoString(bound) for bound in bounds), "+Inf")


def _histogram(family: HistogramMetricFamily, labels: list[str], hist: Histogram) -> None:
    cumulative = list(zip(_bucket_labels(hist.bounds), itertools.accumulate(hist.counts), strict=True))
    family.add_metric(labels, cumulative, hist.sum)


class MonitorCollector(Collector):
    def __init__(self, monitor: Monitor, policy: LabelPolicy | None = None) -> None:
        self.monitor = monitor
        if policy is None:
            settings = monitor.settings
            policy = LabelPolicy(settings.metrics_worker_label, settings.metrics_max_task_names)
        self.policy = policy

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        snap = Snapshot.take(self.monitor, now)
        self.policy.tasks.admit(snap.task_weights())
        yield from self._flower(snap)
        yield from self._tasks(snap)
        yield from self._workers(snap)
        yield from queue_families(self.monitor.queue_poller, now)
        yield from self._health()

    def _relabel(self, function: Callable[[Any], Any]) -> Callable[[Any], Any] | None:
        """``function``, or None (keys kept as they are) when every name is exported unchanged."""
        return None if self.policy.is_identity else function

    def _flower(self, snap: Snapshot) -> Iterator[Metric]:
        """Flower's six families, labels declared in Flower's order (worker, type, task)."""
        task, worker = self.policy.task, self.policy.worker
        known = snap.workers
        pair = self._relabel(lambda key: (task(key[0]), worker(key[1])))

        family = CounterMetricFamily("flower_events", "Number of events", labels=["worker", "type", "task"])
        events = fold(snap.events, self._relabel(lambda k: (task(k[0]), k[1], worker(k[2]))), _add)
        for (name, kind, host), count in events.items():
            family.add_metric([host, kind, name], count)
        yield family

        hist = HistogramMetricFamily("flower_task_runtime_seconds", "Task runtime", labels=["worker", "task"])
        for (name, host), h in fold_histograms(snap.runtime, pair).items():
            _histogram(hist, [host, name], h)
        yield hist

        gauge = GaugeMetricFamily("flower_task_prefetch_time_seconds",
                                  "The time the task spent waiting at the worker to be executed.",
                                  labels=["worker", "task"])
        for (name, host), value in fold(snap.prefetch_time, pair, max).items():
            gauge.add_metric([host, name], value)
        yield gauge

        # A worker that is gone holds no tasks, whatever it had reserved when it went.
        prefetched = [((name, host), 0 if host in known and not known[host].online else value)
                      for (name, host), value in snap.prefetched]
        gauge = GaugeMetricFamily("flower_worker_prefetched_tasks",
                                  "Number of tasks of given type prefetched at a worker",
                                  labels=["worker", "task"])
        for (name, host), value in fold(prefetched, pair, _add).items():
            gauge.add_metric([host, name], value)
        yield gauge

        online = GaugeMetricFamily("flower_worker_online", "Worker online status", labels=["worker"])
        for host, value in fold(((h, int(w.online)) for h, w in known.items()), self._relabel(worker), max).items():
            online.add_metric([host], value)
        yield online

        executing = GaugeMetricFamily("flower_worker_number_of_currently_executing_tasks",
                                      "Number of tasks currently executing at a worker", labels=["worker"])
        active = ((h, w.active if w.online else 0) for h, w in known.items())
        for host, value in fold(active, self._relabel(worker), _add).items():
            executing.add_metric([host], value)
        yield executing

    def _tasks(self, snap: Snapshot) -> Iterator[Metric]:
        task = self.policy.task
        family = CounterMetricFamily(P + "task_outcomes", "Finished task events by state and exception class",
                                     labels=["task", "state", "exception"])
        outcomes = fold(snap.outcomes, self._relabel(lambda k: (task(k[0]), k[1], k[2])), _add)
        for (name, state, exception), count in outcomes.items():
            family.add_metric([name, state, exception], count)
        yield family

        hist = HistogramMetricFamily(P + "task_queue_wait_seconds",
                                     "Time from sent (or received) to started", labels=["task"])
        for name, h in fold_histograms(snap.queue_wait, self._relabel(task)).items():
            _histogram(hist, [name], h)
        yield hist

        gauge = GaugeMetricFamily(P + "tasks", "Retained tasks by current state", labels=["state"])
        for state, count in sorted(snap.state_counts.items()):
            gauge.add_metric([state], count)
        yield gauge

    def _workers(self, snap: Snapshot) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(P + "workers", "Workers by status", labels=["status"])
        up = sum(1 for w in snap.workers.values() if w.online)
        gauge.add_metric(["online"], up)
        gauge.add_metric(["offline"], len(snap.workers) - up)
        yield gauge

        gauge = GaugeMetricFamily(P + "worker_pool_processes", "Pool processes per online worker",
                                  labels=["worker"])
        for host, count in fold(snap.pool_processes.items(), self._relabel(self.policy.worker), _add).items():
            gauge.add_metric([host], count)
        yield gauge

    def _health(self) -> Iterator[Metric]:
        monitor = self.monitor
        health = monitor.health
        yield CounterMetricFamily(P + "events_received", "Events received", value=health.events_received)
        yield CounterMetricFamily(P + "events_dropped", "Event messages dropped (hand-off full or broker)",
                                  value=health.messages_dropped)
        yield CounterMetricFamily(P + "events_malformed", "Malformed event messages skipped",
                                  value=health.events_malformed)
        yield GaugeMetricFamily(P + "receiver_connected", "Event receiver connected to the broker",
                                value=1 if health.connected else 0)
        yield CounterMetricFamily(P + "receiver_reconnects", "Event receiver reconnections",
                                  value=health.reconnects)
        yield GaugeMetricFamily(P + "last_event_timestamp_seconds", "When the last event arrived",
                                value=health.last_event_time or 0)
        yield GaugeMetricFamily(P + "ingest_lag_seconds", "Delay between receiving and applying events",
                                value=monitor.applier.last_lag)
        yield GaugeMetricFamily(P + "store_tasks", "Tasks in the history", value=monitor.task_count())
        yield GaugeMetricFamily(P + "store_size_bytes", "Size of the history on disk",
                                value=monitor.store.size_bytes())

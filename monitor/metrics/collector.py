"""Prometheus exposition computed at scrape time from the live view: no stale series.

Flower's six families keep their names, labels and types; ours share the ``celery_monitor_``
prefix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from celery_monitor.metrics.histogram import Histogram

if TYPE_CHECKING:
    from celery_monitor.service import Monitor

P = "celery_monitor_"


def _histogram(family: HistogramMetricFamily, labels: list[str], hist: Histogram) -> None:
    family.add_metric(labels, hist.cumulative(), hist.sum)


class MonitorCollector(Collector):
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self.monitor
        live = monitor.live
        stats = live.stats
        now = time.time()
        with live.lock:
            events = list(stats.events.items())
            runtime = [(k, h) for k, h in stats.runtime.items()]
            prefetch_time = list(stats.prefetch_time.items())
            prefetched = list(stats.prefetched.items())
            outcomes = list(stats.outcomes.items())
            queue_wait = list(stats.queue_wait.items())
            workers = [(w.hostname, w.is_online(now), w.active) for w in live.workers.values()]
            state_counts = dict(live.state_counts)

        family = CounterMetricFamily("flower_events", "Number of events", labels=["task", "type", "worker"])
        for (task, kind, worker), count in events:
            family.add_metric([task, kind, worker], count)
        yield family

        hist = HistogramMetricFamily("flower_task_runtime_seconds", "Task runtime", labels=["task", "worker"])
        for (task, worker), h in runtime:
            _histogram(hist, [task, worker], h)
        yield hist

        gauge = GaugeMetricFamily("flower_task_prefetch_time_seconds",
                                  "The time the task spent waiting at the worker to be executed.",
                                  labels=["task", "worker"])
        for (task, worker), value in prefetch_time:
            gauge.add_metric([task, worker], value)
        yield gauge

        gauge = GaugeMetricFamily("flower_worker_prefetched_tasks",
                                  "Number of tasks of given type prefetched at a worker",
                                  labels=["task", "worker"])
        for (task, worker), value in prefetched:
            gauge.add_metric([task, worker], value)
        yield gauge

        online = GaugeMetricFamily("flower_worker_online", "Worker online status", labels=["worker"])
        executing = GaugeMetricFamily("flower_worker_number_of_currently_executing_tasks",
                                      "Number of tasks currently executing at a worker", labels=["worker"])
        for hostname, is_online, active in workers:
            online.add_metric([hostname], 1 if is_online else 0)
            executing.add_metric([hostname], active or 0 if is_online else 0)
        yield online
        yield executing

        yield from self._ours(outcomes, queue_wait, workers, state_counts)

    def _ours(self, outcomes: list, queue_wait: list, workers: list, state_counts: dict[str, int]
              ) -> Iterator[Metric]:
        monitor = self.monitor
        family = CounterMetricFamily(P + "task_outcomes", "Finished task events by state and exception class",
                                     labels=["task", "state", "exception"])
        for (task, state, exception), count in outcomes:
            family.add_metric([task, state, exception], count)
        yield family

        hist = HistogramMetricFamily(P + "task_queue_wait_seconds",
                                     "Time from sent (or received) to started", labels=["task"])
        for task, h in queue_wait:
            _histogram(hist, [task], h)
        yield hist

        gauge = GaugeMetricFamily(P + "tasks", "Retained tasks by current state", labels=["state"])
        for state, count in sorted(state_counts.items()):
            gauge.add_metric([state], count)
        yield gauge

        gauge = GaugeMetricFamily(P + "workers", "Workers by status", labels=["status"])
        up = sum(1 for _, is_online, _ in workers if is_online)
        gauge.add_metric(["online"], up)
        gauge.add_metric(["offline"], len(workers) - up)
        yield gauge

        gauge = GaugeMetricFamily(P + "worker_pool_processes", "Pool processes per worker", labels=["worker"])
        for name, details in monitor.inspector.details().items():
            pool = (details.get("stats") or {}).get("pool") or {}
            processes = pool.get("processes")
            if isinstance(processes, list):
                gauge.add_metric([name], len(processes))
        yield gauge

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
        yield from monitor.extra_metrics()

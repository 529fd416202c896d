"""What readers get from the live view: typed copies, theirs to keep, read outside its lock.

The counters are keyed by plain tuples where the applier counts (one tuple per event is cheaper
than a named one); a snapshot names the parts of each key, so a reader writes ``key.worker``
instead of knowing that the worker is the third element.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from celery_monitor.clusters import DEFAULT
from celery_monitor.state.histogram import Histogram


class EventKey(NamedTuple):
    """Events counted per cluster, task name, event type and the worker (or client) that sent them.

    Every key starts with the cluster of the task; a worker is named as in the live view (qualified
    by its cluster unless ``default``, clusters.qualified).
    """

    cluster: str
    task: str
    type: str
    worker: str


class TaskWorker(NamedTuple):
    """Values kept per task name on one worker."""

    cluster: str
    task: str
    worker: str


class QueueTask(NamedTuple):
    """Values kept per queue and task name."""

    cluster: str
    queue: str
    task: str


class ClusterTask(NamedTuple):
    """Values kept per task name."""

    cluster: str
    task: str


class OutcomeKey(NamedTuple):
    """Finished attempts per task name, final state and exception class ("" for a success)."""

    cluster: str
    task: str
    state: str
    exception: str


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """The per-event counters and histograms at one moment (the histograms are copies)."""

    runtime_buckets: tuple[float, ...]
    events: list[tuple[EventKey, int]]
    runtime: list[tuple[TaskWorker, Histogram]]
    prefetch_time: list[tuple[TaskWorker, float]]
    prefetched: list[tuple[TaskWorker, int]]
    outcomes: list[tuple[OutcomeKey, int]]
    queue_wait: list[tuple[ClusterTask, Histogram]]
    queue_latency: list[tuple[QueueTask, Histogram]]
    lost: list[tuple[ClusterTask, int]]  # tasks turned LOST
    reconciled: list[tuple[tuple[str, str], int]]  # tasks settled from the result backend, by (cluster, final state)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    online: bool
    active: int  # tasks executing, as the last heartbeat said
    cluster: str = DEFAULT


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """Everything the metrics and the timeline read, copied in one hold of the lock."""

    taken_at: float
    stats: StatsSnapshot
    workers: dict[str, WorkerStatus]
    state_counts: dict[str, int]
    # Those of each cluster but ``default``, whose counts are the rest of state_counts.
    cluster_state_counts: dict[str, dict[str, int]] = field(default_factory=dict)

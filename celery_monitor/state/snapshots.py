"""What readers get from the live view: typed copies, theirs to keep, read outside its lock.

The counters are keyed by plain tuples where the applier counts (one tuple per event is cheaper
than a named one); a snapshot names the parts of each key, so a reader writes ``key.worker``
instead of knowing that the worker is the third element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from celery_monitor.state.histogram import Histogram


class EventKey(NamedTuple):
    """Events counted per task name, event type and the worker (or client) that sent them."""

    task: str
    type: str
    worker: str


class TaskWorker(NamedTuple):
    """Values kept per task name on one worker."""

    task: str
    worker: str


class QueueTask(NamedTuple):
    """Values kept per queue and task name."""

    queue: str
    task: str


class OutcomeKey(NamedTuple):
    """Finished attempts per task name, final state and exception class ("" for a success)."""

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
    queue_wait: list[tuple[str, Histogram]]  # by task name
    queue_latency: list[tuple[QueueTask, Histogram]]
    lost: list[tuple[str, int]]  # tasks turned LOST, by task name
    reconciled: list[tuple[str, int]]  # tasks settled from the result backend, by final state


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    online: bool
    active: int  # tasks executing, as the last heartbeat said


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """Everything the metrics and the timeline read, copied in one hold of the lock."""

    taken_at: float
    stats: StatsSnapshot
    workers: dict[str, WorkerStatus]
    state_counts: dict[str, int]

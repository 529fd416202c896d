"""Celery's worker event semantics: heartbeats stamped on the monitor's clock decide liveness."""

from __future__ import annotations

from bisect import insort
from typing import Any

from celery_monitor.state.models import WORKER_EVENT_FIELDS, WorkerRecord

MAX_HEARTBEATS = 30


def apply_worker_event(worker: WorkerRecord, event: dict[str, Any], received_at: float) -> None:
    """Apply a worker-online/heartbeat/offline event (or a task event's implied heartbeat)."""
    event_type = event.get("type", "")
    if event_type.startswith("worker-"):
        for key in WORKER_EVENT_FIELDS:
            value = event.get(key)
            if value is not None:
                setattr(worker, key, value)
    worker.last_seen = received_at
    timestamp = event.get("timestamp")
    if isinstance(timestamp, int | float):
        worker.clock_skew = round(received_at - timestamp, 3)
    if event_type == "worker-offline":
        worker.heartbeats.clear()
        worker.went_offline = received_at
        return
    # Any event from a live worker proves it alive, as a heartbeat would.
    worker.went_offline = None
    beats = worker.heartbeats
    if not beats or received_at >= beats[-1]:
        beats.append(received_at)  # what insort would do, without the search (events of a batch share a time)
    else:
        insort(beats, received_at)
    if len(beats) > MAX_HEARTBEATS:
        del beats[: len(beats) - MAX_HEARTBEATS]

"""Samples the monitor's counters at a fixed pace so the graphs page can draw history.

The live view keeps cumulative counters only; a graph needs rates and recent percentiles. Every
``interval`` seconds we copy the counters (briefly, under the live view's lock), turn the
difference with the previous copy into one point, and keep the last hour of points.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from celery_monitor.supervision import Loop

if TYPE_CHECKING:
    from celery_monitor.service import Monitor

INTERVAL = 2.0
POINTS = 1800
QUANTILES = (0.5, 0.95, 0.99)
RECEIVED = "task-received"


def quantile(bounds: tuple[float, ...], counts: list[int], q: float) -> float | None:
    """The q-quantile of a bucketed distribution, interpolated inside its bucket."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    running = 0
    for index, count in enumerate(counts):
        if count and running + count >= rank:
            low = bounds[index - 1] if index > 0 else 0.0
            high = bounds[index] if index < len(bounds) else bounds[-1]
            return low + (high - low) * ((rank - running) / count)
        running += count
    return bounds[-1]


class Timeline:
    def __init__(self, monitor: Monitor, interval: float = INTERVAL, points: int = POINTS) -> None:
        self.monitor = monitor
        self.interval = interval
        self.points: deque[dict[str, Any]] = deque(maxlen=points)
        self._previous: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.loop = Loop("timeline", stall_after=interval + 60)
        monitor.supervisor.add(self.loop)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop_event.clear()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()

    def _run(self) -> None:
        self.loop.run(self._tick, self._stop_event, self.interval, wait_first=True)

    def _tick(self) -> None:
        point = self.sample()
        if point is not None:
            self.monitor.hub.publish([{"kind": "sample", "sample": point}])

    def _snapshot(self) -> dict[str, Any]:
        live = self.monitor.live
        now = time.time()
        with live.lock:
            stats = live.stats
            outcomes: dict[str, int] = {}
            for (_name, state, _exc), count in stats.outcomes.items():
                outcomes[state] = outcomes.get(state, 0) + count
            received = sum(count for (_n, kind, _h), count in stats.events.items() if kind == RECEIVED)
            runtimes: dict[str, list[int]] = {}
            for (name, _worker), hist in stats.runtime.items():
                merged = runtimes.setdefault(name, [0] * len(hist.counts))
                for index, count in enumerate(hist.counts):
                    merged[index] += count
            online = sum(1 for worker in live.workers.values() if worker.is_online(now))
            bounds = stats.runtime_buckets
        return {"time": now, "outcomes": outcomes, "received": received, "runtimes": runtimes,
                "bounds": bounds, "online": online}

    def sample(self) -> dict[str, Any] | None:
        """Take one point; the first call only sets the baseline."""
        current = self._snapshot()
        with self._lock:
            previous, self._previous = self._previous, current
            if previous is None:
                return None
            point = self._point(previous, current)
            self.points.append(point)
            return point

    def _point(self, previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
        elapsed = max(current["time"] - previous["time"], 1e-6)
        states = set(previous["outcomes"]) | set(current["outcomes"])
        done = {s: current["outcomes"].get(s, 0) - previous["outcomes"].get(s, 0) for s in states}
        rates = {s: round(max(d, 0) / elapsed, 3) for s, d in done.items()}
        rates["RECEIVED"] = round(max(current["received"] - previous["received"], 0) / elapsed, 3)
        finished = done.get("SUCCESS", 0) + done.get("FAILURE", 0)
        failure_rate = round(done.get("FAILURE", 0) / finished, 4) if finished > 0 else None
        runtimes: dict[str, list[float | None]] = {}
        for name, counts in current["runtimes"].items():
            before = previous["runtimes"].get(name, [0] * len(counts))
            delta = [max(a - b, 0) for a, b in zip(counts, before, strict=True)]
            if any(delta):
                runtimes[name] = [quantile(current["bounds"], delta, q) for q in QUANTILES]
        queues = self.monitor.queue_poller.latest
        return {
            "time": round(current["time"], 3),
            "rates": rates,
            "failure_rate": failure_rate,
            "runtimes": runtimes,
            "online": current["online"],
            "queues": {q["name"]: q.get("messages", 0) for q in queues},
        }

    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.points)


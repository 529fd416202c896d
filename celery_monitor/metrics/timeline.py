"""Samples the monitor's counters at a fixed pace so the graphs page can draw history.

The live view keeps cumulative counters only; a graph needs rates and recent percentiles. Every
``interval`` seconds we take a snapshot of the live view (:meth:`LiveView.snapshot`), turn the
difference with the previous one into one point, keep the last hour of points and push each new
point to the pages. The service builds and starts it with the monitor's other loops.

The points are saved with the history, so the graphs outlive a restart and every replica of a shared
PostgreSQL history draws the same ones: the writer saves them in the ``meta`` table with each flush,
one entry per minute of the hour (``store.meta_keys``: an hour later the same entry is overwritten,
so nothing needs deleting). Only the ingesting replica samples; a standby's counters are
only the leader's last flush, so it follows the saved points instead and pushes the new ones to its
own pages.

With several clusters (``--clusters``) a point also holds each cluster's measures under
``clusters`` (the totals are kept per cluster as events come, so a point costs a few small tables
per cluster); :func:`narrow` makes the point of some clusters from them, for the graphs of a chosen
cluster and for an identity scoped to some clusters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from celery_monitor import states
from celery_monitor.broker.poller import QueuePoller
from celery_monitor.clusters import DEFAULT, qualified
from celery_monitor.hub import Hub
from celery_monitor.state.live import LiveView
from celery_monitor.state.stats import GraphTotals
from celery_monitor.store.meta_keys import TIMELINE_KEYS, timeline_key
from celery_monitor.supervision import Loop

log = logging.getLogger(__name__)
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


# A point's measures of the queues, per cluster too (the others are _measured's).
QUEUE_MEASURES = ("queues", "oldest_message_age")


def narrow(point: dict[str, Any], chosen: list[str], first: str, several: bool) -> dict[str, Any]:
    """The point as the graphs of the ``chosen`` clusters draw it: their measures (added up: rates
    and workers online summed, the failure rate of the summed rates, of percentiles the highest of
    theirs, the queues of each under ``<cluster>:<queue>`` as the backlog names them)."""
    parts: dict[str, Any] | None = point.get("clusters")
    if parts is None:  # a monitor of one cluster (or a point saved before clusters were kept apart)
        parts = {} if several else {first: point}
    picked = [(name, parts[name]) for name in chosen if name in parts]
    narrowed = {key: value for key, value in point.items() if key != "clusters"}
    narrowed.update(picked[0][1] if len(picked) == 1 else _added(picked))
    for measure in QUEUE_MEASURES:  # a point saved before queues were kept per cluster has none there
        narrowed[measure] = picked[0][1].get(measure, {}) if len(picked) == 1 else narrowed.get(measure, {})
    return narrowed


def _added(parts: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    rates: dict[str, float] = {}
    runtimes: dict[str, list[float | None]] = {}
    latency: dict[str, float | None] = {}
    queues: dict[str, dict[str, float]] = {measure: {} for measure in QUEUE_MEASURES}
    for cluster, part in parts:
        for state, rate in part.get("rates", {}).items():
            rates[state] = round(rates.get(state, 0.0) + rate, 3)
        for name, values in part.get("runtimes", {}).items():
            runtimes[name] = [_highest(a, b) for a, b in zip(runtimes.get(name, [None] * len(values)), values,
                                                              strict=True)]
        for queue, value in part.get("latency_p95", {}).items():
            latency[queue] = _highest(latency.get(queue), value)
        for measure in QUEUE_MEASURES:
            for queue, value in part.get(measure, {}).items():
                queues[measure][qualified(cluster, queue)] = value
    finished = rates.get(states.SUCCESS, 0.0) + rates.get(states.FAILURE, 0.0)
    return {"rates": rates, "runtimes": runtimes, "latency_p95": latency,
            "failure_rate": round(rates.get(states.FAILURE, 0.0) / finished, 4) if finished > 0 else None,
            "online": sum(int(part.get("online", 0)) for _, part in parts), **queues}


def _queue_measures(queues: list[dict[str, Any]], now: float, named: Callable[[dict[str, Any]], str]
                    ) -> dict[str, dict[str, float]]:
    """The queues' lengths and their oldest messages' ages, each queue under ``named(queue)``."""
    return {"oldest_message_age": {named(q): round(max(0.0, now - q["oldest_message_timestamp"]), 3)
                                   for q in queues if "oldest_message_timestamp" in q},
            "queues": {named(q): q.get("messages", 0) for q in queues}}


def _highest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _cluster(queue: dict[str, Any]) -> str:
    return str(queue.get("cluster") or DEFAULT)


def minute_of(point: dict[str, Any]) -> int:
    return int(point["time"] // 60)


def saved_points(entry: Any, minute: int | None = None) -> list[dict[str, Any]]:
    """The points of a saved entry, or none if it is damaged or (``minute``) of another minute."""
    if not isinstance(entry, dict) or not isinstance(entry.get("points"), list):
        return []
    if minute is not None and entry.get("minute") != minute:
        return []
    return [point for point in entry["points"]
            if isinstance(point, dict) and isinstance(point.get("time"), int | float)]


class Timeline:
    def __init__(self, live: LiveView, hub: Hub, queues: QueuePoller, interval: float = INTERVAL,
                 points: int = POINTS, leading: Callable[[], bool] = lambda: True,
                 load_saved: Callable[[str], Any] | None = None) -> None:
        self.live = live
        self.hub = hub
        self.queues = queues
        self.interval = interval
        self.points: deque[dict[str, Any]] = deque(maxlen=points)
        self._leading = leading  # False on a standby replica: it follows the leader's saved points
        self._load_saved = load_saved  # the history's meta entries; None keeps the points in memory only
        self._unsaved: set[int] = set()  # minutes with points the writer has not saved yet
        self._previous: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.loop = Loop("timeline", stall_after=interval + 60)

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
        if self._leading():
            point = self.sample()
            new = [point] if point is not None else []
        else:
            new = self.follow()
        if new:
            self.hub.publish([{"kind": "sample", "sample": point} for point in new])

    def restore(self, now: float) -> None:
        """Take up the points saved in the last hour (a restart, or a replica joining a shared history)."""
        if self._load_saved is None:
            return
        oldest = now - self.interval * (self.points.maxlen or POINTS)
        found: list[dict[str, Any]] = []
        for key in TIMELINE_KEYS:
            found.extend(point for point in saved_points(self._load_saved(key))
                         if point["time"] >= oldest)
        found.sort(key=lambda point: point["time"])
        with self._lock:
            self.points.clear()
            self.points.extend(found)
        if found:
            log.info("graphs: %d points of the last hour restored from the history", len(found))

    def follow(self) -> list[dict[str, Any]]:
        """A standby's tick: the points the leader saved since the last one this replica has."""
        if self._load_saved is None:
            return []
        with self._lock:
            self._previous = None  # on taking the lead, the first sample only sets the baseline
            last = self.points[-1]["time"] if self.points else float("-inf")
        now_minute = int(time.time() // 60)
        new: list[dict[str, Any]] = []
        for minute in (now_minute - 1, now_minute):
            new.extend(point for point in saved_points(self._load_saved(timeline_key(minute)), minute)
                       if point["time"] > last)
        new.sort(key=lambda point: point["time"])
        with self._lock:
            self.points.extend(new)
        return new

    def points_to_save(self) -> dict[str, Any]:
        """The meta entries of the minutes that have new points (the writer saves them with its flush)."""
        if self._load_saved is None:
            return {}
        with self._lock:
            minutes, self._unsaved = self._unsaved, set()
            entries: dict[str, Any] = {}
            for minute in minutes:
                points: list[dict[str, Any]] = []
                for point in reversed(self.points):  # in time order: the newest minutes are at the end
                    if minute_of(point) < minute:
                        break
                    if minute_of(point) == minute:
                        points.append(point)
                entries[timeline_key(minute)] = {"minute": minute, "points": points[::-1]}
            return entries

    def _snapshot(self) -> dict[str, Any]:
        """The totals a point is the difference of: kept per cluster as events come
        (``GraphTotals``), so this copies a few small tables however many workers the counters hold;
        each cluster's under ``clusters`` when there is one but ``default``."""
        now = time.time()
        graphs, online = self.live.graph_totals(now)
        total = GraphTotals(self.live.runtime_buckets)
        for graph in graphs.values():
            total.add(graph)
        snapshot = _totals_of(now, total, sum(online.values()))
        names = set(graphs) | set(online)
        if names - {DEFAULT}:
            snapshot["clusters"] = {name: _totals_of(now, graphs.get(name) or GraphTotals(total.runtime_buckets),
                                                     online.get(name, 0)) for name in names}
        return snapshot

    def sample(self) -> dict[str, Any] | None:
        """Take one point; the first call only sets the baseline."""
        current = self._snapshot()
        with self._lock:
            previous, self._previous = self._previous, current
            if previous is None:
                return None
            point = self._point(previous, current)
            self.points.append(point)
            self._unsaved.add(minute_of(point))
            return point

    def _point(self, previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
        point = _measured(previous, current)
        queues = self.queues.latest
        # Every cluster's queues, a queue outside default under <cluster>:<queue>; each cluster's
        # own under their bare names in its part.
        point.update({"time": round(current["time"], 3),
                      **_queue_measures(queues, current["time"], lambda q: qualified(_cluster(q), q["name"]))})
        if "clusters" in current:
            before = previous.get("clusters", {})
            point["clusters"] = {name: _measured(before.get(name) or _empty_like(totals, previous["time"]), totals)
                                 for name, totals in current["clusters"].items()}
            for name, part in point["clusters"].items():
                part.update(_queue_measures([q for q in queues if _cluster(q) == name], current["time"],
                                            lambda q: str(q["name"])))
        return point

    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.points)


def _totals_of(now: float, totals: GraphTotals, online: int) -> dict[str, Any]:
    latency_bounds = next(iter(totals.latency.values())).bounds if totals.latency else ()
    return {"time": now, "outcomes": totals.outcomes, "received": totals.received,
            "runtimes": {name: hist.counts for name, hist in totals.runtime.items()},
            "bounds": totals.runtime_buckets, "online": online,
            "latency": {queue: hist.counts for queue, hist in totals.latency.items()},
            "latency_bounds": latency_bounds}


def _empty_like(totals: dict[str, Any], then: float) -> dict[str, Any]:
    """The totals of a cluster at the previous point, before its first event: it counts from zero."""
    return {**totals, "time": then, "outcomes": {}, "received": 0, "runtimes": {}, "latency": {}}


def _measured(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """What a point measures of the tasks and workers between two totals."""
    elapsed = max(current["time"] - previous["time"], 1e-6)
    outcomes = set(previous["outcomes"]) | set(current["outcomes"])
    done = {s: current["outcomes"].get(s, 0) - previous["outcomes"].get(s, 0) for s in outcomes}
    rates = {s: round(max(d, 0) / elapsed, 3) for s, d in done.items()}
    rates[states.RECEIVED] = round(max(current["received"] - previous["received"], 0) / elapsed, 3)
    finished = done.get(states.SUCCESS, 0) + done.get(states.FAILURE, 0)
    failure_rate = round(done.get(states.FAILURE, 0) / finished, 4) if finished > 0 else None
    runtimes: dict[str, list[float | None]] = {}
    for name, counts in current["runtimes"].items():
        before = previous["runtimes"].get(name, [0] * len(counts))
        delta = [max(a - b, 0) for a, b in zip(counts, before, strict=True)]
        if any(delta):
            runtimes[name] = [quantile(current["bounds"], delta, q) for q in QUANTILES]
    # The 95th percentile of the queue latency of the tasks started in this interval, per queue.
    latency: dict[str, float | None] = {}
    for queue, counts in current["latency"].items():
        before = previous["latency"].get(queue, [0] * len(counts))
        delta = [max(a - b, 0) for a, b in zip(counts, before, strict=True)]
        if any(delta):
            latency[queue or "(unknown)"] = quantile(current["latency_bounds"], delta, 0.95)
    return {"latency_p95": latency, "rates": rates, "failure_rate": failure_rate, "runtimes": runtimes,
            "online": current["online"]}


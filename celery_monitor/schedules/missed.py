"""Missed runs: an enabled entry whose next run has not arrived by its due time plus a tolerance.

"Arrived" means the monitor saw a task of the entry's name (its ``received`` or ``sent`` time):
a beat that stopped, a broker that lost the message and workers that never took it all look the
same from here, and all of them mean the periodic work did not happen. Each due time that passes
without a run counts once in ``celery_monitor_schedule_missed_total{entry}``.

Runs before the monitor watched an entry prove nothing about now, so an entry is judged from the
later of its last run and when it was first seen enabled (the monitor's start, its creation, or
its re-enabling): a monitor that was down for a day does not count a day of misses at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from celery_monitor.schedules.entries import MAX_STEPS, Entry, next_after


@dataclass(frozen=True, slots=True)
class Verdict:
    due_at: float | None  # the run being waited for (None: the entry is not judged)
    missed: bool = False
    missed_runs: int = 0  # due times passed without a run since the last one


log = logging.getLogger(__name__)
NOT_JUDGED = Verdict(None)
MissedListener = Callable[[Entry, Verdict], None]
Counted = str | tuple[str, str]  # an entry's name, or (its cluster, its name)


class MissedRuns:
    def __init__(self, tolerance: float, started_at: float) -> None:
        self.tolerance = tolerance
        self.started_at = started_at
        self._watched_since: dict[str, float] = {}
        self._counted: dict[str, tuple[float, int]] = {}  # key -> (reference, misses counted from it)
        self._totals: dict[Counted, int] = {}
        self._lock = threading.Lock()
        self._first_pass_done = False  # entries of the first pass were there when the monitor started
        # Called (on the schedules thread) when an entry turns missed, and again for each further miss:
        # where a notification would hook in. A listener must not block.
        self.listeners: list[MissedListener] = []

    def totals(self) -> dict[Counted, int]:
        """Missed runs counted per entry name (or what ``judge`` was told to count them as) since
        the monitor started."""
        with self._lock:
            return dict(self._totals)

    def judge(self, entry: Entry, last_arrival: float | None, now: float, key: str | None = None,
              counted_as: Counted | None = None) -> Verdict:
        """``key``: the entry's key in this monitor (default: its own); ``counted_as``: the name its
        misses are totalled under (default: the entry's name)."""
        key = key or entry.key
        counted_as = counted_as or entry.name
        if not entry.enabled:
            self._watched_since.pop(key, None)
            self._counted.pop(key, None)
            return NOT_JUDGED
        since = self._watched_since.setdefault(key, now if self._first_pass_done else self.started_at)
        reference = max(last_arrival or since, since)
        due = next_after(entry.schedule, reference)
        if due is None:
            return NOT_JUDGED
        misses = 0
        step_at: float | None = due
        while step_at is not None and step_at + self.tolerance < now and misses < MAX_STEPS:
            misses += 1
            step_at = next_after(entry.schedule, step_at)
        verdict = Verdict(due, misses > 0, misses)
        counted_from, counted = self._counted.get(key, (reference, 0))
        if counted_from != reference:
            counted = 0
        if misses > counted:
            with self._lock:
                self._totals[counted_as] = self._totals.get(counted_as, 0) + misses - counted
            for listener in self.listeners:
                try:
                    listener(entry, verdict)
                except Exception as exc:  # a listener's failure must not stop the judging
                    log.warning("a missed-run listener failed for %s: %s", key, exc)
        self._counted[key] = (reference, max(misses, counted))
        return verdict

    def pass_done(self, keys: set[str]) -> None:
        """One pass over every entry is over: entries seen from now on are new (watched from when they
        appear), and those gone from every source have nothing left to judge (their counts stay)."""
        self._first_pass_done = True
        for key in set(self._watched_since) - keys:
            self._watched_since.pop(key, None)
            self._counted.pop(key, None)

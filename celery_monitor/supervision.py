"""Background loops that outlive their own failures, and the record liveness is judged on.

Every background loop of the monitor (reader, applier, writer, search indexer, inspector,
reconciler, queue poller, timeline, housekeeping, the enable-events broadcast) runs its passes through a
:class:`Loop`. An unexpected exception costs one pass: it is logged with its traceback once (then a
reminder at most every few minutes while it goes on, and a line when the loop recovers), counted
(``celery_monitor_background_errors_total{loop}``), and the loop carries on after a backoff that
doubles while the failures go on. Each pass also marks the loop's progress, so a loop that is
stuck (blocked in a call that never returns) is told apart from one that is merely idle, and a
thread that ended although nobody asked it to is told apart from one that was stopped.
:class:`Supervisor` holds the loops and says which of the critical ones (those ingestion depends
on) are dead or stuck: ``/livez`` turns 503 on that, and Kubernetes restarts the pod.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

REMIND_EVERY = 300.0  # seconds between two log lines about the same failure going on
MIN_BACKOFF = 0.5
MAX_BACKOFF = 30.0

# What each loop is called in log lines and health reports.
TITLES = {
    "reader": "event reader",
    "spool": "spool tailer",
    "applier": "event applier",
    "housekeeping": "housekeeping (worker purge, memory release)",
    "writer": "history writer",
    "search_indexer": "search indexer",
    "inspector": "inspector",
    "reconciler": "result-backend reconciler",
    "queue_poller": "queue poller",
    "timeline": "timeline sampler",
    "enable_events": "enable-events broadcast",
    "schedules": "schedule watcher (beat entries and missed runs)",
    "notifier": "notifications",
}


def _failures(count: int) -> str:
    return f"{count} failure{'' if count == 1 else 's'}"


class ThrottledLog:
    """One line when something starts failing, a reminder while it goes on, one when it recovers.

    A new ``key`` (another kind of failure) is logged at once: it is news. The same key again is
    logged at most every ``every`` seconds, with how many failures there were meanwhile.
    """

    def __init__(self, logger: logging.Logger, every: float = REMIND_EVERY) -> None:
        self.logger = logger
        self.every = every
        self.failures = 0
        self.failing_since: float | None = None
        self._key: str | None = None
        self._logged_at = float("-inf")

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failure(self, key: str, message: str, level: int = logging.WARNING,
                exc_info: BaseException | None = None) -> None:
        now = time.monotonic()
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.time()
        if key != self._key:
            self._key, self._logged_at = key, now
            self.logger.log(level, "%s", message, exc_info=exc_info)
        elif now - self._logged_at >= self.every:
            self._logged_at = now
            self.logger.log(level, "%s (still failing: %s in %.0fs)", message, _failures(self.failures),
                            time.time() - self.failing_since)

    def recovered(self, message: str) -> None:
        if self.failing_since is None:
            return
        self.logger.info("%s after %s in %.0fs", message, _failures(self.failures), time.time() - self.failing_since)
        self.failures, self.failing_since, self._key = 0, None, None


class Loop:
    """One background loop's passes, failures and progress (plain attributes, read without locks)."""

    def __init__(self, name: str, critical: bool = False, stall_after: float | None = None,
                 max_backoff: float = MAX_BACKOFF) -> None:
        self.name = name
        self.title = TITLES.get(name, name)
        self.critical = critical
        self.stall_after = stall_after
        self.max_backoff = max_backoff
        self.errors = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.started = False
        self.running = False
        self.exit_reason: str | None = None  # set when the thread ended without being asked to
        self.progress_at = time.monotonic()
        self._logs: dict[str, ThrottledLog] = {}

    def beat(self) -> None:
        """Mark progress: the loop is not stuck."""
        self.progress_at = time.monotonic()

    def _log(self, context: str) -> ThrottledLog:
        found = self._logs.get(context)
        if found is None:
            found = self._logs[context] = ThrottledLog(logging.getLogger(f"{__name__}.{self.name}"))
        return found

    def failed(self, exc: Exception, context: str = "") -> None:
        """Count and log (throttled) an unexpected exception of one pass or part of a pass."""
        self.errors += 1
        self.last_error = f"{f'{context}: ' if context else ''}{type(exc).__name__}: {exc}"[:500]
        self.last_error_at = time.time()
        what = f"{self.title} ({context})" if context else self.title
        self._log(context).failure(f"{type(exc).__name__}:{context}", f"{what} failed; it carries on: {exc!r}",
                                   logging.ERROR, exc_info=exc)

    def succeeded(self, context: str = "") -> None:
        found = self._logs.get(context)
        if found is not None and found.failing:
            what = f"{self.title} ({context})" if context else self.title
            found.recovered(f"{what} works again")

    @contextlib.contextmanager
    def guard(self, context: str = "") -> Iterator[None]:
        """Run one part of a pass: its exception is counted and logged, and goes no further."""
        try:
            yield
        except Exception as exc:
            self.failed(exc, context)
        else:
            self.succeeded(context)

    @contextlib.contextmanager
    def lifetime(self, stop: threading.Event) -> Iterator[None]:
        """The loop's thread body: knows whether it ended because it was asked to."""
        self.started = self.running = True
        self.exit_reason = None
        self.beat()
        try:
            yield
        except BaseException as exc:
            self.exit_reason = f"{type(exc).__name__}: {exc}"[:500]
            log.critical("the %s has stopped: %s", self.title, self.exit_reason, exc_info=exc)
            raise
        finally:
            self.running = False
            if not stop.is_set() and self.exit_reason is None:
                self.exit_reason = "its thread ended"

    def run(self, step: Callable[[], Any], stop: threading.Event, interval: float, wait_first: bool = False) -> None:
        """Call ``step`` every ``interval`` seconds until ``stop`` is set, surviving its exceptions."""
        with self.lifetime(stop):
            if wait_first and stop.wait(interval):
                return
            backoff = MIN_BACKOFF
            while not stop.is_set():
                self.beat()
                try:
                    step()
                except Exception as exc:
                    if stop.is_set():  # a pass cut short by the shutdown is no failure
                        break
                    self.failed(exc)
                    delay, backoff = backoff, min(backoff * 2, self.max_backoff)
                else:
                    self.succeeded()
                    delay, backoff = interval, MIN_BACKOFF
                if stop.wait(delay):
                    break

    def problem(self, now: float | None = None) -> str | None:
        """Why this loop has stopped doing its job (dead or stuck), or None."""
        if not self.started:
            return None
        if not self.running:
            return None if self.exit_reason is None else f"the {self.title} has stopped: {self.exit_reason}"
        idle = (time.monotonic() if now is None else now) - self.progress_at
        if self.stall_after is not None and idle > self.stall_after:
            return f"the {self.title} has made no progress for {idle:.0f}s"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "critical": self.critical,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "seconds_since_progress": round(time.monotonic() - self.progress_at, 3) if self.running else None,
            "problem": self.problem(),
        }


class Supervisor:
    """The monitor's loops by name: their errors, and which critical ones are dead or stuck."""

    def __init__(self) -> None:
        self.loops: dict[str, Loop] = {}

    def add(self, *loops: Loop) -> None:
        for loop in loops:
            self.loops[loop.name] = loop

    def errors(self) -> dict[str, int]:
        return {name: loop.errors for name, loop in self.loops.items()}

    def problems(self, critical: bool = True) -> list[str]:
        """What is dead or stuck among the critical loops (``critical=False``: among the others)."""
        now = time.monotonic()
        return [problem for loop in self.loops.values()
                if loop.critical == critical and (problem := loop.problem(now)) is not None]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: loop.as_dict() for name, loop in self.loops.items()}

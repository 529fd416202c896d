"""Reconciliation: the final states whose events were missed, read from the result backend.

Events missed while the monitor was down (a rollout, a crash) or its event stream was broken leave
tasks in their last seen state, although the result backend knows how they ended. This loop asks
the backend about the tasks the history holds unfinished (PENDING, RECEIVED, STARTED, RETRY,
LOST) and hands the final outcomes it finds to the applier, which settles a task only if no event
of it is newer (:mod:`celery_monitor.applier.settle`):

- a **full pass** over every unfinished task (newest first, at most ``MAX_PER_PASS``) a few
  seconds after the start, after each reconnection of the event stream, and after the hand-off
  dropped events;
- the tasks the applier just turned **LOST**, a few seconds later (their worker may have stored a
  result it could not announce);
- a **periodic pass** every minute over the tasks unfinished for five minutes, each asked again
  no sooner than ten minutes later (a task that really runs for hours costs one read per ten
  minutes), at most ``MAX_PER_PERIOD`` a pass.

Reads go in batches (one multi-get on Redis) at most ``RATE`` tasks a second, in a thread of their
own, never on the event path. A backend out of reach is no bug: it is reported in the status and
the log (throttled), and the pass is tried again after a backoff.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any

from celery_monitor.applier.settle import BackendOutcome
from celery_monitor.receiver.health import ReceiverHealth
from celery_monitor.reconciler.backend import ResultReader
from celery_monitor.states import UNSETTLED_STATES
from celery_monitor.store.lookup import TaskLookup
from celery_monitor.store.query import TaskQuery
from celery_monitor.supervision import Loop, ThrottledLog

log = logging.getLogger(__name__)

BATCH = 100  # tasks per backend read (one MGET on Redis)
RATE = 500.0  # tasks read per second at most
SETTLE = 5.0  # seconds after a start or a reconnection before the full pass: queued events come first
PERIOD = 60.0  # seconds between periodic passes
STALE_AFTER = 300.0  # a periodic pass asks about tasks unfinished (no change) for this long
RECHECK_AFTER = 600.0  # ... and asks again about the same task no sooner than this
MAX_PER_PASS = 50_000
MAX_PER_PERIOD = 5_000
REMEMBERED = 100_000  # tasks whose last question is remembered for RECHECK_AFTER
MAX_BACKOFF = 60.0


class Reconciler:
    def __init__(self, reader: ResultReader, tasks: TaskLookup, health: ReceiverHealth,
                 submit: Callable[[list[BackendOutcome]], None], clusters: list[str] | None = None) -> None:
        """``clusters``: with several, the one cluster whose tasks this backend holds (None: all tasks)."""
        self.reader = reader
        self.clusters = clusters or []
        self.tasks = tasks
        self.health = health
        self.submit = submit
        self.loop = Loop("reconciler", stall_after=MAX_PER_PASS / RATE + 300)
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._outage = ThrottledLog(log)
        now = time.monotonic()
        self._full_due: float | None = now + SETTLE  # the start-up pass
        self._periodic_due = now + PERIOD
        self._retry_at = now
        self._backoff = 1.0
        self._seen_since: float | None = None
        self._seen_dropped = 0
        self._asked: OrderedDict[str, float] = OrderedDict()
        # Tasks to ask about on their own (just turned LOST), with when: filled by the applier's thread.
        self._soon: deque[tuple[float, list[str]]] = deque()
        # What the status shows.
        self.last_error: str | None = None
        self.last_pass_at: float | None = None
        self.asked = 0
        self.found = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        self.reader.close()

    def _run(self) -> None:
        self.loop.run(self.step, self._stop_event, interval=1.0)

    def step(self, now: float | None = None) -> None:
        """One check: a pass when one is due (and the backend not in its backoff)."""
        now = time.monotonic() if now is None else now
        self._watch_stream(now)
        if now < self._retry_at:
            return
        if self._soon and now >= self._soon[0][0] and not self._ask_due_soon(now):
            return
        if self._full_due is not None and now >= self._full_due:
            due = self._full_due
            if self.sweep(full=True) and self._full_due == due:  # no new trigger meanwhile
                self._full_due = None
        elif now >= self._periodic_due and self.sweep(full=False):
            self._periodic_due = now + PERIOD

    def ask_soon(self, uuids: list[str], delay: float = SETTLE) -> None:
        """Ask about these tasks ``delay`` seconds from now (the applier, when it turned them LOST: a
        worker that died, or that the monitor no longer hears, may have stored their results)."""
        self._soon.append((time.monotonic() + delay, uuids))

    def _ask_due_soon(self, now: float) -> bool:
        while self._soon and now >= self._soon[0][0]:
            uuids = self._soon[0][1]
            for start in range(0, len(uuids), BATCH):
                if not self._ask(uuids[start : start + BATCH]):
                    return False  # kept, tried again after the backoff
            self._soon.popleft()
        return True

    def _watch_stream(self, now: float) -> None:
        """A new connection of the event stream, or events dropped by the hand-off: a full pass."""
        since, dropped = self.health.connected_since, self.health.messages_dropped
        if (since is not None and since != self._seen_since) or dropped != self._seen_dropped:
            self._full_due = now + SETTLE
        if since is not None:
            self._seen_since = since
        self._seen_dropped = dropped

    def _candidates(self, full: bool) -> Iterator[str]:
        """The unfinished tasks to ask about: all of them (newest first), or the stale ones not asked lately."""
        query = TaskQuery(states=list(UNSETTLED_STATES), sort_by="timestamp", descending=full, clusters=self.clusters)
        stale_before = time.time() - STALE_AFTER
        asked_before = time.monotonic() - RECHECK_AFTER
        for chunk in self.tasks.stream(query):
            for task in chunk:
                uuid: str = task["uuid"]
                if not full:
                    stamp = task.get("timestamp")
                    if isinstance(stamp, int | float) and stamp > stale_before:
                        continue
                    if self._asked.get(uuid, float("-inf")) > asked_before:
                        continue
                yield uuid

    def sweep(self, full: bool) -> bool:
        """Ask the backend about the unfinished tasks; False when it could not be reached."""
        batch: list[str] = []
        for uuid in itertools.islice(self._candidates(full), MAX_PER_PASS if full else MAX_PER_PERIOD):
            if self._stop_event.is_set():
                return True
            batch.append(uuid)
            if len(batch) == BATCH:
                if not self._ask(batch):
                    return False
                batch = []
        if batch and not self._ask(batch):
            return False
        self.last_pass_at = time.time()
        return True

    def _ask(self, uuids: list[str]) -> bool:
        """Read one batch and hand its outcomes over, paced to ``RATE``; False when the backend failed."""
        began = time.monotonic()
        self.loop.beat()
        try:
            outcomes = self.reader.outcomes(uuids)
        except Exception as exc:  # the backend out of reach (its client's errors are many): retried later
            self._failed(exc)
            return False
        self._recovered()
        self.asked += len(uuids)
        self.found += len(outcomes)
        for uuid in uuids:
            self._asked[uuid] = began
            self._asked.move_to_end(uuid)
        while len(self._asked) > REMEMBERED:
            self._asked.popitem(last=False)
        if outcomes:
            self.submit(outcomes)
        self._stop_event.wait(max(0.0, began + len(uuids) / RATE - time.monotonic()))
        return True

    def _failed(self, exc: Exception) -> None:
        self.last_error = f"result backend: {type(exc).__name__}: {exc}"[:500]
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self._outage.failure(type(exc).__name__, f"reconciliation cannot read the result backend, "
                                                 f"retrying: {self.last_error}")

    def _recovered(self) -> None:
        self.last_error = None
        self._backoff = 1.0
        self._outage.recovered("reconciliation reads the result backend again")

    def as_dict(self) -> dict[str, Any]:
        return {"last_pass_at": self.last_pass_at, "asked": self.asked, "found": self.found,
                "full_pass_due": self._full_due is not None, "last_error": self.last_error}

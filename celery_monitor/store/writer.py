"""Batched, periodic store writes off the applier path.

The applier hands over changed records; this thread writes them in one transaction every
``interval`` seconds (sooner when the applier waits for room), so a crash loses at most that
interval of history.

When the history cannot be written (the disk is full or read-only, an I/O error), ingestion goes
on: what was not written stays pending, visible to lookups (``/api/task/info`` keeps up), and is
tried again with a backoff up to ``RETRY_MAX`` seconds; search indexing and trimming pause. The
pending changes are bounded: past ``pending_limit`` tasks (``--max_tasks``, at most
``MAX_PENDING_TASKS``) the tasks that have waited longest are dropped and counted
(``celery_monitor_store_writes_dropped_total``): a history trimmed to ``--max_tasks`` could not keep
more anyway. When writing works again, everything still pending is written in the next flush.
SQLite rolls a failed transaction back whole, so the file is never left half-written.

Memory: while writing works, the applier waits for room before it applies more
(:meth:`StoreWriter.wait_for_room`): a burst then waits as raw bytes (in the spool on disk, or the
hand-off), not as decoded tasks here, and Python's allocator does not grow for it (it seldom gives
that back). Once nothing has been written for ``RELEASE_AFTER`` seconds, the history's page cache is
let go (:meth:`Store.release_memory`) and the freed memory is returned to the OS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from celery_monitor.state.memory import release_free_memory
from celery_monitor.store import disk
from celery_monitor.store.base import Removed, Store, TaskDict
from celery_monitor.supervision import Loop, ThrottledLog

log = logging.getLogger(__name__)
MAX_PENDING_TASKS = 50_000
SPOOL_POSITION = "spool_position"  # the meta key: where in the spool the history ends
RETRY_MAX = 10.0  # seconds between two attempts at most while writing fails
RELEASE_AFTER = 2.0  # seconds without a write after which memory is let go (then at most this often)
# Progress is marked at every pass (every ``interval``); a flush of a large backlog or a trim can
# take seconds on a slow disk, but five minutes without a pass is a stuck writer.
STALL_AFTER = 300.0
INDEX_SHARE = 0.8  # of the interval between flushes, that search indexing may use at most
# ...but while the applier has waited for room this recently, a tenth only: the CPU goes to
# ingesting first, and indexing catches up (with the writer's idle time) once the press is over.
PRESSED_SECONDS = 1.0


class StoreWriter(threading.Thread):
    def __init__(
        self,
        store: Store,
        interval: float = 0.5,
        max_tasks: int = 100_000,
        snapshot_meta: Callable[[], dict[str, Any]] | None = None,
        on_trim: Callable[[Removed], None] | None = None,
        trim_every: float = 2.0,
        path: str | None = None,
        max_failed_tasks: int | None = None,
        max_task_age: float | None = None,
    ) -> None:
        super().__init__(name="store-writer", daemon=True)
        self.store = store
        self.interval = interval
        self.max_tasks = max_tasks
        self.max_failed_tasks = max_tasks if max_failed_tasks is None else max_failed_tasks
        self.max_task_age = max_task_age  # seconds (--max_task_age), None: no trimming by age
        self.snapshot_meta = snapshot_meta
        self.on_trim = on_trim
        self.trim_every = trim_every
        self.path = path  # the history's file, for messages about the disk (None: in memory)
        # Search indexing gets the writer's time between flushes, up to the next one (and gives it
        # back as soon as the applier waits for room): the index keeps up with the writes.
        self.index_budget = interval * INDEX_SHARE
        self.pressed_index_budget = interval / 10
        self._pressed_at = float("-inf")  # when the applier last waited for room
        self._indexed_for = 0.0  # seconds the last pass spent indexing: taken off the wait for the next
        self.pending_limit = min(max_tasks, MAX_PENDING_TASKS)
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskDict] = {}
        # What the current flush is writing: still visible to lookups until it is committed, so
        # neither the API nor the applier sees a task vanish between hand-over and commit.
        self._writing: dict[str, TaskDict] = {}
        self._workers: dict[str, dict[str, Any]] = {}
        self._meta: dict[str, Any] = {}  # counters a failed flush could not save
        # The spool position of the newest changes submitted, and of the newest committed (what a
        # restart replays from, and below which the spool's segments may go).
        self._position: tuple[int, int] | None = None
        self.saved_position: tuple[int, int] | None = None
        # Whether positions are the spool's (saved in the history for a restart to tail from), or
        # only this run's (RabbitMQ delivery tags a shared queue acknowledges once committed).
        self.saves_position = True
        self._stop_event = threading.Event()
        self._wake = threading.Event()  # flush now: the applier waits for room
        self._flushed = threading.Condition()
        self.flushes = 0
        self.last_flush: float | None = None
        # Persistence health, read by the status and the metrics.
        self.persisting = True
        self.errors = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._outage = ThrottledLog(log)
        self._retry_delay = interval
        self._next_attempt = 0.0
        self._next_trim = time.monotonic() + trim_every
        # When the history last wrote something, whether its caches were let go since (search
        # indexing fills them too) and when.
        self._busy_at = time.monotonic()
        self._released = False
        self._released_at = float("-inf")
        self.releases = 0
        self.loop = Loop("writer", critical=True, stall_after=STALL_AFTER)
        self.index_loop = Loop("search_indexer")

    @property
    def failing_since(self) -> float | None:
        return self._outage.failing_since

    def submit(self, tasks: dict[str, TaskDict], workers: dict[str, dict[str, Any]],
               position: tuple[int, int] | None = None) -> None:
        """Queue changes for the next flush; ``position`` is where in the spool the events that made
        them end: the flush that writes them saves it in the same transaction."""
        with self._lock:
            self._tasks.update(tasks)
            self._workers.update(workers)
            if position is not None:
                self._position = position

    def pending_task(self, uuid: str) -> TaskDict | None:
        with self._lock:
            return self._tasks.get(uuid) or self._writing.get(uuid)

    def pending_tasks(self, uuids: set[str]) -> dict[str, TaskDict]:
        """The pending versions of those of ``uuids`` not yet written (one lock for a whole batch)."""
        with self._lock:
            found = {uuid: task for uuid in uuids if (task := self._writing.get(uuid)) is not None}
            pending = self._tasks
            found.update((uuid, pending[uuid]) for uuid in uuids if uuid in pending)
            return found

    def pending_snapshot(self) -> dict[str, TaskDict]:
        """Every task not yet committed, in its newest version, in the order the history will first
        take them in (the one being written, then the queued): what lists lay over the history."""
        with self._lock:
            return {**self._writing, **self._tasks} if self._tasks else dict(self._writing)

    def wait_for_room(self, limit: int, timeout: float) -> bool:
        """Block while ``limit`` changed tasks or more are queued for the next flush (the one being
        written aside), for at most ``timeout`` seconds; True when there is room. The writer is woken
        to flush at once. Only while it runs and writing works: when writing fails, ingestion goes on
        in memory (up to ``pending_limit``)."""
        def room() -> bool:
            return (len(self._tasks) < limit or not self.persisting or not self.is_alive()
                    or self._stop_event.is_set())

        with self._flushed:
            if room():
                return True
            self._pressed_at = time.monotonic()  # before the wake: the pass it starts sees it
            self._wake.set()
            return self._flushed.wait_for(room, timeout)

    @property
    def pending_count(self) -> int:
        """Changed tasks not yet committed (queued, and being written)."""
        with self._lock:
            return len(self._tasks) + len(self._writing)

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> bool:
        """Write everything pending in one transaction; False when the storage refused it."""
        meta = {**self._meta, **(self.snapshot_meta() if self.snapshot_meta else {})}  # before taking the tasks
        self._meta = {}
        with self._lock:
            tasks, self._tasks = self._tasks, {}
            self._writing = tasks
            workers, self._workers = self._workers, {}
            position, self._position = self._position, None
        if tasks:
            with self._flushed:  # room for the applier, while these are written
                self._flushed.notify_all()
        if position is not None and self.saves_position:
            meta[SPOOL_POSITION] = list(position)
        if tasks or workers:
            self._busy_at = time.monotonic()
            self._released = False
        if tasks or workers or meta:
            try:
                self.store.write(tasks.values(), workers.values(), meta)
            except disk.storage_faults() as exc:
                self._keep(tasks, workers, meta)
                self._write_failed(exc)
                return False
            except Exception as exc:  # the batch holds something the store cannot take
                if not self._write_apart(tasks, workers, meta, exc):
                    return False
        with self._lock:
            self._writing = {}
        if position is not None:
            self.saved_position = position
        self._write_succeeded()
        with self._flushed:
            self.flushes += 1
            self._flushed.notify_all()
        return True

    def _keep(self, tasks: dict[str, TaskDict], workers: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
        """Put back what a failed flush did not write, behind nothing newer, within the bound."""
        with self._lock:
            # Older first, so the bound drops those that waited longest; newer versions win.
            self._tasks = {**tasks, **self._tasks}
            self._workers = {**workers, **self._workers}
            self._writing = {}
            excess = len(self._tasks) - self.pending_limit
            if excess > 0:
                for uuid in list(self._tasks)[:excess]:
                    del self._tasks[uuid]
                self.dropped += excess
        self._meta = {**meta, **self._meta}

    def _write_apart(self, tasks: dict[str, TaskDict], workers: dict[str, dict[str, Any]],
                     meta: dict[str, Any], exc: Exception) -> bool:
        """Write a batch the store refused task by task, setting aside the tasks it cannot take.

        One task the store cannot hold must not stop the history of every other one.
        """
        self.loop.failed(exc, "writing a batch; writing its tasks one by one")
        try:
            self.store.write((), workers.values(), meta)
            for uuid, task in tasks.items():
                try:
                    self.store.write((task,), (), {})
                except disk.storage_faults():
                    raise
                except Exception as refused:
                    self.dropped += 1
                    self.store.set_aside("task", uuid, f"the history could not store it: {refused}",
                                         orjson.dumps(task, default=repr, option=orjson.OPT_NON_STR_KEYS))
        except disk.storage_faults() as fault:
            self._keep(tasks, workers, meta)
            self._write_failed(fault)
            return False
        return True

    def _write_failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.persisting = False
        self.last_error = disk.explain(exc, self.path)
        self.last_error_at = time.time()
        self._outage.failure(type(exc).__name__ + str(exc),
                             f"{self.last_error}; ingestion goes on in memory, the writes are kept "
                             f"(up to {self.pending_limit} tasks) and retried")
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
        self._next_attempt = time.monotonic() + self._retry_delay
        with self._flushed:  # an applier waiting for room goes on (in memory) instead
            self._flushed.notify_all()

    def _write_succeeded(self) -> None:
        self.last_flush = time.time()
        if not self.persisting:
            self.persisting = True
            self.last_error = None
            self._outage.recovered("writing the history again")
        self._retry_delay = self.interval
        self._next_attempt = 0.0

    def wait_for_flush(self, timeout: float = 5.0) -> bool:
        """Block until a flush that starts after this call has completed (used by shutdown and tests)."""
        with self._flushed:
            target = self.flushes + 2
            return self._flushed.wait_for(lambda: self.flushes >= target, timeout)

    def trim(self) -> None:
        removed = self.store.trim(self.max_tasks)
        self.store.trim_failures(self.max_failed_tasks)
        if self.max_task_age is not None:
            cutoff = time.time() - self.max_task_age
            removed.merge(self.store.trim_age(cutoff))
            self.store.trim_failures_age(cutoff)
        if removed and self.on_trim:
            self.on_trim(removed)

    def index(self) -> None:
        """Between flushes, search indexing (off the applier's path), until the applier waits for room
        (and only a tenth of the time while it has lately)."""
        started = time.monotonic()
        pressed = started - self._pressed_at < PRESSED_SECONDS
        with self.index_loop.guard():
            if self.store.index_search(self.pressed_index_budget if pressed else self.index_budget, self._wake.is_set):
                self._released = False  # its pages are cached again (let go every RELEASE_AFTER at most)
        self._indexed_for = time.monotonic() - started

    def release_memory(self) -> None:
        """Once idle for ``RELEASE_AFTER`` seconds: let the history's caches go and return free memory
        to the OS (a burst filled them; the next write reads what it needs back from the OS's cache)."""
        now = time.monotonic()
        if self._released or now - self._busy_at < RELEASE_AFTER or now - self._released_at < RELEASE_AFTER:
            return
        self._released, self._released_at = True, now
        self.releases += 1
        self.store.release_memory()
        release_free_memory()

    # -- the thread ----------------------------------------------------------------------------

    def step(self) -> None:
        """One pass: flush; while the storage takes writes, index a little (unless the applier waits
        for the next flush) and trim now and then.

        While it refuses them, a flush is tried again only after the backoff.
        """
        self._indexed_for = 0.0
        if time.monotonic() < self._next_attempt or not self.flush():
            return
        if not self._wake.is_set():  # the applier waits for room: search indexing catches up later
            self.index()
        if time.monotonic() >= self._next_trim:
            self._next_trim = time.monotonic() + self.trim_every
            with self.loop.guard("trimming"):
                self.trim()
        with self.loop.guard("releasing memory"):
            self.release_memory()

    def _next_step(self) -> None:
        """Wait ``interval`` (less the time the last pass indexed, less when the applier waits for
        room), then one pass."""
        self._wake.wait(max(self.interval - self._indexed_for, 0.0))
        self._wake.clear()
        if not self._stop_event.is_set():
            self.step()

    def run(self) -> None:
        self.loop.run(self._next_step, self._stop_event, 0)
        with self.loop.guard("the last flush"):
            self.flush()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

"""Batched, periodic store writes off the applier path.

The applier hands over changed records; this thread writes them in one transaction every
``interval`` seconds, so a crash loses at most that interval of history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery_monitor.store.base import Store, TaskDict

log = logging.getLogger(__name__)


class StoreWriter(threading.Thread):
    def __init__(
        self,
        store: Store,
        interval: float = 0.5,
        max_tasks: int = 100_000,
        snapshot_meta: Callable[[], dict[str, Any]] | None = None,
        on_trim: Callable[[dict[str, int]], None] | None = None,
        trim_every: float = 2.0,
    ) -> None:
        super().__init__(name="store-writer", daemon=True)
        self.store = store
        self.interval = interval
        self.max_tasks = max_tasks
        self.snapshot_meta = snapshot_meta
        self.on_trim = on_trim
        self.trim_every = trim_every
        self.index_budget = interval / 10  # a tenth of the writer's time at most
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskDict] = {}
        # What the current flush is writing: still visible to lookups until it is committed, so
        # neither the API nor the applier sees a task vanish between hand-over and commit.
        self._writing: dict[str, TaskDict] = {}
        self._workers: dict[str, dict[str, Any]] = {}
        self._stop_event = threading.Event()
        self._flushed = threading.Condition()
        self.flushes = 0
        self.last_flush: float | None = None
        self.errors = 0

    def submit(self, tasks: dict[str, TaskDict], workers: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            self._tasks.update(tasks)
            self._workers.update(workers)

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

    @property
    def pending_count(self) -> int:
        """Changed tasks not yet committed (queued, and being written)."""
        with self._lock:
            return len(self._tasks) + len(self._writing)

    def flush(self) -> None:
        with self._lock:
            tasks, self._tasks = self._tasks, {}
            self._writing = tasks
            workers, self._workers = self._workers, {}
        meta = self.snapshot_meta() if self.snapshot_meta else {}
        if tasks or workers or meta:
            try:
                self.store.write(tasks.values(), workers.values(), meta)
            except Exception:
                self.errors += 1
                log.exception("writing the history failed; will retry")
                with self._lock:
                    # Keep what was not written, unless newer versions arrived meanwhile.
                    for uuid, task in tasks.items():
                        self._tasks.setdefault(uuid, task)
                    for name, worker in workers.items():
                        self._workers.setdefault(name, worker)
                    self._writing = {}
                return
        with self._lock:
            self._writing = {}
        self.last_flush = time.time()
        with self._flushed:
            self.flushes += 1
            self._flushed.notify_all()

    def wait_for_flush(self, timeout: float = 5.0) -> bool:
        """Block until a flush that starts after this call has completed (used by shutdown and tests)."""
        with self._flushed:
            target = self.flushes + 2
            return self._flushed.wait_for(lambda: self.flushes >= target, timeout)

    def trim(self) -> None:
        removed = self.store.trim(self.max_tasks)
        if removed and self.on_trim:
            self.on_trim(removed)

    def index(self) -> None:
        """Between flushes, a bounded slice of search indexing (off the applier's path)."""
        try:
            self.store.index_search(self.index_budget)
        except Exception:
            log.exception("indexing the history for search failed")

    def run(self) -> None:
        next_trim = time.monotonic() + self.trim_every
        while not self._stop_event.wait(self.interval):
            self.flush()
            self.index()
            if time.monotonic() >= next_trim:
                next_trim = time.monotonic() + self.trim_every
                try:
                    self.trim()
                except Exception:
                    log.exception("trimming the history failed")
        self.flush()

    def stop(self) -> None:
        self._stop_event.set()

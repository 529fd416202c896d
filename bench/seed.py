"""A large task history written straight through the monitor's own store (SQLiteStore.write).

Publishing a million tasks' events would take minutes per run; start-up and query timings only
need the history on disk, in exactly the shape the monitor writes it. That includes the search
index, which a running monitor fills behind its writes: it is built completely here, as a monitor
that has been running for a while has it.
"""

from __future__ import annotations

import time
from pathlib import Path

from stream import StreamFactory

from celery_monitor.store.sqlite import SQLiteStore

CHUNK = 20_000


def seed_history(path: Path, tasks: int, factory: StreamFactory) -> tuple[float, list[str]]:
    """Write ``tasks`` finished tasks and index them for search.

    Returns the seconds it took and a few of the tasks' ids (oldest first).
    """
    started = time.monotonic()
    # No settle delay: every task is finished, and no late event will come.
    store = SQLiteStore(str(path), search_settle_seconds=0)
    base = time.time() - tasks * 0.01
    picked: list[str] = []
    every = max(1, tasks // 50)
    try:
        written = 0
        while written < tasks:
            batch = []
            for i in range(written, min(tasks, written + CHUNK)):
                task = factory.stored_task(base + i * 0.01)
                if i % every == 0:
                    picked.append(task["uuid"])
                batch.append(task)
            store.write(batch, [], {})
            written += len(batch)
        index_search(store)
    finally:
        store.close()
    return time.monotonic() - started, picked


def index_search(store: SQLiteStore) -> int:
    """Bring the search index up to date at once, merged; returns how many tasks were indexed."""
    total = store.index_search(budget_seconds=1.0)
    while not store.search_indexer.caught_up:
        total += store.index_search(budget_seconds=1.0)
    return total

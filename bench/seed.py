"""A large task history written straight through the monitor's own store (SQLiteStore.write).

Publishing a million tasks' events would take minutes per run; start-up and query timings only
need the history on disk, in exactly the shape the monitor writes it.
"""

from __future__ import annotations

import time
from pathlib import Path

from stream import StreamFactory

from celery_monitor.store.sqlite import SQLiteStore

CHUNK = 20_000


def seed_history(path: Path, tasks: int, factory: StreamFactory) -> tuple[float, list[str]]:
    """Write ``tasks`` finished tasks; returns the seconds it took and a few of their ids (oldest first)."""
    started = time.monotonic()
    store = SQLiteStore(str(path))
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
    finally:
        store.close()
    return time.monotonic() - started, picked

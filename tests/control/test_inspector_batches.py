"""Workers that come online together are inspected together: one refresh (a broadcast per inspect
method, naming them all) rather than one per worker, on a real broker."""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from celery import Celery
from support.processes import RedisServer, free_port, wait_for

from celery_monitor.inspector.inspector import METHODS, ONLINE_BATCH_SECONDS, Inspector


class CountingInspector(Inspector):
    """Records each broadcast's destination (the broadcasts still go to the broker)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.destinations: list[list[str] | None] = []

    def _call(self, app: Celery, method: str, destination: list[str] | None) -> dict[str, Any]:
        self.destinations.append(destination)
        return super()._call(app, method, destination)


def test_workers_coming_online_together_share_one_refresh(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path).start()
    app = Celery("batches", broker=server.url, broker_transport_options={"polling_interval": 0.02})
    inspector = CountingInspector(app, timeout=0.2)
    started: list[tuple[float, Future[Any]]] = []  # each refresh handed to the watcher, and when

    def watch(refresh: Future[Any]) -> None:
        started.append((time.monotonic(), refresh))

    try:
        names = [f"celery@node-{i}" for i in range(12)]
        asked = time.monotonic()
        for name in names:
            inspector.refresh_soon(name, watch)
        wait_for(lambda: started, 10, message="the batch's refresh")
        [(at, refresh)] = started
        assert at >= asked + ONLINE_BATCH_SECONDS * 0.9  # handed over as it is asked, not when opened
        assert refresh.result(timeout=30) == {}  # nobody answers on this broker
        assert len(inspector.destinations) == len(METHODS)
        assert all(sorted(destination or []) == sorted(names) for destination in inspector.destinations)
        inspector.refresh_soon("celery@late", watch)  # after the batch: a batch of its own
        wait_for(lambda: len(started) == 2, 10, message="the second batch's refresh")
        started[1][1].result(timeout=30)
        assert inspector.destinations[len(METHODS):] == [["celery@late"]] * len(METHODS)
    finally:
        inspector.stop()
        app.close()
        server.stop()

"""The live view owns its data: readers get copies, and never wait while the applier uses SQLite."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.harness import Harness

from celery_monitor.state.live import LiveView


def reader_kept_waiting(live: LiveView) -> bool:
    """Does a reader on another thread wait more than a second for the live view?"""
    reader = threading.Thread(target=live.worker_dicts, daemon=True)
    reader.start()
    reader.join(1.0)
    return reader.is_alive()


def watching(live: LiveView, method: Callable[..., Any], waits: list[bool]) -> Callable[..., Any]:
    """``method``, noting on each call whether a reader is kept waiting while it runs."""
    def watched(*args: Any, **kwargs: Any) -> Any:
        waits.append(reader_kept_waiting(live))
        return method(*args, **kwargs)
    return watched


def test_the_history_is_read_and_written_with_the_live_view_free(tmp_path: Path, history_db: str) -> None:
    db = history_db
    first = Harness(tmp_path, db=db)
    task_id = first.run_task("tests.add", "w1", finish=False)
    first.flush()
    first.close()

    harness = Harness(tmp_path, "--max_workers=1", db=db)  # the task is now only in the history
    store, live = harness.monitor.store, harness.monitor.live
    waits: list[bool] = []
    store.get_tasks = watching(live, store.get_tasks, waits)  # type: ignore[method-assign]
    store.delete_workers = watching(live, store.delete_workers, waits)  # type: ignore[method-assign]
    try:
        harness.feed({"type": "task-succeeded", "uuid": task_id, "hostname": "w1", "result": "3", "runtime": 0.2})
        harness.heartbeat("w2")  # beyond --max_workers: w1 is forgotten, in memory and in the history
        assert len(waits) == 2 and not any(waits)
        assert harness.monitor.get_task(task_id)["state"] == "SUCCESS"  # type: ignore[index]
        assert harness.monitor.live.worker_names() == ["w2"]
    finally:
        harness.close()


def test_readers_get_copies_the_applier_does_not_change(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        task_id = harness.run_task("tests.add", "w1", finish=False)
        task = harness.monitor.live.task_dict(task_id)
        snapshot = harness.monitor.live.snapshot()
        assert task is not None
        transitions, counted = list(task["transitions"]), dict(snapshot.state_counts)
        runtimes = [(key, list(hist.counts)) for key, hist in snapshot.stats.runtime]

        harness.feed({"type": "task-succeeded", "uuid": task_id, "hostname": "w1", "result": "3", "runtime": 0.2})
        task["transitions"].append(["MINE", 0])

        assert task["transitions"][:-1] == transitions  # the applier's later events left the copy alone
        assert snapshot.state_counts == counted
        assert [(key, list(hist.counts)) for key, hist in snapshot.stats.runtime] == runtimes
        now = harness.monitor.live.task_dict(task_id)
        assert now is not None and now["state"] == "SUCCESS"
        assert [state for state, *_ in now["transitions"]] == ["RECEIVED", "STARTED", "SUCCESS"]  # not "MINE"
        assert {state: n for state, n in harness.monitor.live.snapshot().state_counts.items() if n} == {"SUCCESS": 1}
    finally:
        harness.close()

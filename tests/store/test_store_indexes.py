"""Every filter and sort the API offers is answered from an index, never by walking every task."""

from __future__ import annotations

from pathlib import Path

import pytest

from celery_monitor.store.query import SORT_KEYS, TaskQuery
from celery_monitor.store.sqlite import SQLiteStore


def plan(store: SQLiteStore, query: TaskQuery) -> str:
    sql = store.query_sql(query)
    return " | ".join(row[-1] for row in store._reader.execute("EXPLAIN QUERY PLAN " + sql[0], sql[1]))


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(str(tmp_path / "h.db"))
    tasks = [{"uuid": f"t{i}", "name": f"n{i % 7}", "state": "SUCCESS" if i % 3 else "FAILURE",
              "worker": f"w{i % 4}", "received": float(i), "started": float(i) + 0.5, "runtime": 0.1 * i,
              "timestamp": float(i) + 1, "args": "()", "kwargs": "{}", "result": None} for i in range(2000)]
    store.write(tasks, [], {})
    store._reader.execute("ANALYZE")
    return store


@pytest.mark.parametrize("query", [
    TaskQuery(),
    TaskQuery(states=["FAILURE"]),
    TaskQuery(names=["n3"]),
    TaskQuery(workers=["w1"]),
    TaskQuery(received_start=10.0, received_end=20.0, limit=100),
    *[TaskQuery(sort_by=key) for key in SORT_KEYS],
    *[TaskQuery(sort_by=key, descending=False) for key in SORT_KEYS],
], ids=lambda q: f"{q.sort_by}-{q.states}{q.names}{q.workers}{q.received_start}-{q.descending}")
def test_query_uses_an_index(store: SQLiteStore, query: TaskQuery) -> None:
    text = plan(store, query)
    # Rows come out in index order, so LIMIT stops the walk early: never sorted in a temporary tree.
    assert "TEMP B-TREE" not in text, text
    if query.states or query.names or query.workers or query.received_start is not None:
        assert "USING INDEX" in text, text


def test_store_round_trips_and_trims(store: SQLiteStore) -> None:
    assert store.task_count() == 2000
    assert store.get_task("t5")["name"] == "n5"
    removed = store.trim(500)
    assert sum(removed.values()) == 1500 and store.task_count() == 500
    assert store.get_task("t0") is None and store.get_task("t1999") is not None
    assert store.state_counts() == {"SUCCESS": 333, "FAILURE": 167}
    assert [t["uuid"] for t in store.query_tasks(TaskQuery(limit=2))] == ["t1999", "t1998"]

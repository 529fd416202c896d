"""Every filter and sort the API offers is answered from an index, never by walking every task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.postgres import fresh_database, written_history

from celery_monitor.store import pg_search
from celery_monitor.store.base import Store
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.query import SORT_KEYS, TEXT_KEYS, Cursor, TaskQuery, after_clauses, order_column
from celery_monitor.store.search import parse_search
from celery_monitor.store.sqlite import SQLiteStore

TASKS = [{"uuid": f"t{i}", "name": f"n{i % 7}", "state": "SUCCESS" if i % 3 else "FAILURE",
          "worker": f"w{i % 4}", "received": float(i), "started": float(i) + 0.5, "runtime": 0.1 * i,
          "timestamp": float(i) + 1, "args": "()", "kwargs": "{}", "result": None} for i in range(2000)]
QUERIES = [
    TaskQuery(),
    TaskQuery(states=["FAILURE"]),
    TaskQuery(names=["n3"]),
    TaskQuery(workers=["w1"]),
    TaskQuery(received_start=10.0, received_end=20.0, limit=100),
    *[TaskQuery(sort_by=key) for key in SORT_KEYS],
    *[TaskQuery(sort_by=key, descending=False) for key in SORT_KEYS],
]


def query_id(q: TaskQuery) -> str:
    return f"{q.sort_by}-{q.states}{q.names}{q.workers}{q.received_start}-{q.descending}"


def plan(store: SQLiteStore, query: TaskQuery) -> str:
    sql = store.query_sql(query)
    return " | ".join(row[-1] for row in store._reader.execute("EXPLAIN QUERY PLAN " + sql[0], sql[1]))


@pytest.fixture
def sqlite_store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(str(tmp_path / "h.db"))
    store.write(TASKS, [], {})
    store._reader.execute("ANALYZE")
    return store


@pytest.fixture(scope="module")
def postgres_store() -> Iterator[PostgresStore]:
    with fresh_database() as dsn:
        store = PostgresStore(dsn, search_settle_seconds=0)
        rare = [{**task, "uuid": f"r{i}", "state": "REVOKED", "name": "rare.task", "worker": "w-rare"}
                for i, task in enumerate(TASKS[::50])]
        store.write([*TASKS, *rare], [], {})
        while store.index_search(1.0):  # the search table filled, as behind a writer
            pass
        store._reader.execute("ANALYZE")
        yield store
        store.close()


@pytest.fixture
def store(history_db: str) -> Iterator[Store]:
    with written_history(history_db, TASKS) as opened:
        yield opened


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_query_uses_an_index(sqlite_store: SQLiteStore, query: TaskQuery) -> None:
    text = plan(sqlite_store, query)
    # Rows come out in index order, so LIMIT stops the walk early: never sorted in a temporary tree.
    assert "TEMP B-TREE" not in text, text
    if query.states or query.names or query.workers or query.received_start is not None:
        assert "USING INDEX" in text, text


def pg_plan(store: PostgresStore, query: TaskQuery, *off: str, extra: tuple[str, list[Any]] | None = None) -> str:
    """The plan PostgreSQL picks when what is ``off`` (walking the table, sorting...) costs it all it
    can: an index that serves the query is then always taken, and what is off left in the plan
    means none can."""
    sql, params = store.query_sql(query, extra=extra)
    conn: psycopg.Connection[Any] = store._reader
    with conn.transaction():
        for setting in off:
            conn.execute(f"SET LOCAL {setting} = off")  # type: ignore[arg-type]
        rows = conn.execute("EXPLAIN " + sql, params).fetchall()  # type: ignore[arg-type]
    return " | ".join(row[0] for row in rows)


@pytest.mark.parametrize("query", [*QUERIES, TaskQuery(offset=1500, limit=20), TaskQuery(states=["failure"], offset=500,
                                   limit=20, sort_by="runtime")], ids=query_id)
def test_postgres_query_uses_an_index(postgres_store: PostgresStore, query: TaskQuery) -> None:
    text = pg_plan(postgres_store, query, "enable_seqscan", "enable_sort")
    assert "Sort" not in text and "Seq Scan" not in text, text
    assert "Index" in text, text


@pytest.mark.parametrize("query", [
    TaskQuery(limit=20), TaskQuery(limit=20, descending=False), TaskQuery(sort_by="received", limit=20),
    TaskQuery(sort_by="received", descending=False, limit=20), TaskQuery(sort_by="runtime", limit=20),
    TaskQuery(sort_by="name", limit=20), TaskQuery(sort_by="uuid", limit=20),
    TaskQuery(states=["failure"], sort_by="received", limit=20), TaskQuery(received_start=10.0, limit=20),
], ids=query_id)
def test_postgres_pages_past_a_cursor_seek_the_orders_index(postgres_store: PostgresStore, query: TaskQuery) -> None:
    # Keyset paging: each part of the order past the cursor starts with one seek in the order's
    # index (its conditions are the index's), however deep the page.
    column = order_column(query)
    values: list[Any] = [None] if column is None else ["t1000", None] if column in TEXT_KEYS else [500.0, None]
    for value in values:
        cursor = Cursor(column, value, 1000, "t1000")
        for clause in after_clauses(column, cursor, 1000, query.descending, "%s"):
            text = pg_plan(postgres_store, query, "enable_seqscan", "enable_sort", extra=clause)
            assert "Sort" not in text and "Seq Scan" not in text and "Index Cond" in text, (clause, text)
            filters = [part for part in text.split(" | ") if "Filter:" in part]
            assert not any(mark in part for part in filters for mark in ("ROW(", "NULL", "seq ", "uuid ")), \
                (clause, text)  # the cursor's condition is the index's, never checked row by row


@pytest.mark.parametrize(("column", "query"), [
    ("state", TaskQuery(states=["revoked"], offset=20, limit=10)),
    ("name", TaskQuery(names=["RARE.task"], offset=20, limit=10)),
    ("worker", TaskQuery(workers=["W-rare"], offset=20, limit=10, descending=False)),
], ids=["state", "name", "worker"])
def test_postgres_filtered_pages_walk_the_filters_index(postgres_store: PostgresStore, column: str,
                                                             query: TaskQuery) -> None:
    # A value few tasks have: walking every task in seq order, checking each, would pass them all.
    text = pg_plan(postgres_store, query, "enable_seqscan", "enable_sort")
    assert f"tasks_{column}" in text and "Sort" not in text, text


@pytest.mark.parametrize("search", ["declined", "args:Straße", "kwargs:user=alice", "worker:w1x OR name:n3y",
                                    "SUCC declined"])
def test_postgres_search_uses_its_indexes(postgres_store: PostgresStore, search: str) -> None:
    # The search table's GIN indexes find the hits; the tasks are then read by seq (the hits, the
    # tail above the watermark, the skipped ones), never walked.
    expression = parse_search(search).expression
    assert expression is not None
    predicate = pg_search.index_predicate(expression, trigram=True)
    assert predicate is not None
    conn: psycopg.Connection[Any] = postgres_store._reader
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        rows = conn.execute(f"EXPLAIN SELECT seq FROM task_search WHERE {predicate[0]}",  # type: ignore[arg-type]
                            predicate[1]).fetchall()
    text = " | ".join(row[0] for row in rows)
    assert "task_search_text" in text or "task_search_pairs" in text, text
    with postgres_store.snapshot():
        text = pg_plan(postgres_store, TaskQuery(search=parse_search(search), limit=20), "enable_seqscan")
    assert "Seq Scan" not in text and "tasks_pkey" in text, text


def test_store_round_trips_and_trims(store: Store) -> None:
    assert store.task_count() == 2000
    assert (store.get_task("t5") or {})["name"] == "n5"
    removed = store.trim(500)
    assert sum(removed.values()) == 1500 and store.task_count() == 500
    assert store.get_task("t1") is None and store.get_task("t1999") is not None
    # A failure trimmed from the tasks is still kept apart (--max_failed_tasks, default --max_tasks).
    assert (store.get_task("t0") or {}).get("state") == "FAILURE"
    assert store.state_counts() == {"SUCCESS": 333, "FAILURE": 167}
    assert [t["uuid"] for t in store.query_tasks(TaskQuery(limit=2))] == ["t1999", "t1998"]

"""A workflow's tasks come from an index on root_id, on both stores; histories of earlier versions get it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.postgres import execute, fresh_database, written_history

from celery_monitor.store import pg_schema
from celery_monitor.store.base import Store
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.sqlite import SQLiteStore


def tasks_of(root: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"uuid": root if i == 0 else f"{root}-{i}", "name": "n", "state": "SUCCESS", "root_id": root,
             "parent_id": None if i == 0 else root, "received": float(start + i)} for i in range(count)]


TASKS = [task for i in range(50) for task in tasks_of(f"root{i}", 20, i * 20)]


@pytest.fixture
def store(history_db: str) -> Iterator[Store]:
    with written_history(history_db, TASKS) as opened:
        yield opened


def test_a_workflows_tasks_in_the_order_first_seen(store: Store) -> None:
    found = store.workflow_tasks("root7", 100)
    assert [t["uuid"] for t in found] == ["root7", *[f"root7-{i}" for i in range(1, 20)]]
    assert all(t["root_id"] == "root7" and t["name"] == "n" for t in found)
    assert [t["uuid"] for t in store.workflow_tasks("root7", 3)] == ["root7", "root7-1", "root7-2"]
    store.write([{**found[5], "state": "FAILURE"}], [], {})
    assert store.workflow_tasks("root7", 100)[5]["state"] == "FAILURE"
    assert store.workflow_tasks("nobody", 100) == []


def test_sqlite_reads_a_workflow_from_its_index(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"))
    store.write(TASKS, [], {})
    store._reader.execute("ANALYZE")
    root_id = "(CASE WHEN json_valid(CAST(data AS TEXT)) THEN json_extract(CAST(data AS TEXT), '$.root_id') END)"
    plan = store._reader.execute(
        f"EXPLAIN QUERY PLAN SELECT uuid FROM tasks WHERE {root_id} = ? AND {root_id} <> uuid ORDER BY seq LIMIT 5",
        ("root3",)).fetchall()
    assert "tasks_workflow" in " ".join(row[-1] for row in plan)
    # Only the tasks that are not their own root are in the index.
    held = store._reader.execute(f"SELECT count(*) FROM tasks INDEXED BY tasks_workflow WHERE {root_id} <> uuid")
    assert held.fetchone()[0] == len(TASKS) - 50
    # A history of an earlier version (every task in an index of root ids) gets the new index when opened.
    store._writer.execute("DROP INDEX tasks_workflow")
    store._writer.execute(f"CREATE INDEX tasks_root_id ON tasks({root_id}, seq)")
    store.close()
    reopened = SQLiteStore(str(tmp_path / "h.db"))
    names = {row[0] for row in reopened._reader.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "tasks_workflow" in names and "tasks_root_id" not in names
    assert [t["uuid"] for t in reopened.workflow_tasks("root3", 3)] == ["root3", "root3-1", "root3-2"]
    assert len(reopened.workflow_tasks("root3", 100)) == 20
    reopened.close()


def test_postgres_migration_fills_root_id_and_reads_from_its_index() -> None:
    with fresh_database() as dsn:
        store = PostgresStore(dsn)
        store.write([*TASKS, {"uuid": "nul", "root_id": "root1", "exception": "a\x00b", "state": "FAILURE"}], [], {})
        store.close()
        # The database as version 3 left it: no column, no index, root_id in each row's JSON only.
        execute(dsn, "DROP INDEX tasks_workflow")
        execute(dsn, "ALTER TABLE tasks DROP COLUMN root_id")
        execute(dsn, "DROP TABLE failure_counts")  # migration 8's, keyed by cluster since migration 11
        execute(dsn, "DELETE FROM schema_version WHERE version >= 4")  # and the later ones
        execute(dsn, "UPDATE tasks SET data = '{not json' WHERE uuid = 'root2-5'")
        upgraded = PostgresStore(dsn)
        try:
            assert [row[0] for row in execute(dsn, "SELECT max(version) FROM schema_version")] == [pg_schema.LATEST]
            assert len(upgraded.workflow_tasks("root1", 100)) == 20  # the row with a NUL keeps no root_id column
            assert len(upgraded.workflow_tasks("root2", 100)) == 19  # nor does the damaged one
            conn: psycopg.Connection[Any] = upgraded._reader
            with conn.transaction():
                conn.execute("SET LOCAL enable_seqscan = off")
                plan = conn.execute("EXPLAIN SELECT seq FROM tasks WHERE root_id = %s AND root_id <> uuid "
                                    "ORDER BY seq LIMIT 10", ("root4",)).fetchall()
            assert "tasks_workflow" in " ".join(row[0] for row in plan)
            # Only the tasks that are not their own root are in it.
            definition = execute(dsn, "SELECT indexdef FROM pg_indexes WHERE indexname = 'tasks_workflow'")[0][0]
            assert definition.endswith("WHERE (root_id <> uuid)"), definition
            assert not execute(dsn, "SELECT 1 FROM pg_indexes WHERE indexname = 'tasks_root_id'")
        finally:
            upgraded.close()

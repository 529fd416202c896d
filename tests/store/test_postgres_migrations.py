"""The PostgreSQL history's schema: migrations applied once and recorded, what is not ours refused,
and pg_trgm optional (searches answer the same without it; the index comes once it is there)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from support.postgres import ADMIN, execute, fresh_database

from celery_monitor.cli import db as db_command
from celery_monitor.store import pg_schema
from celery_monitor.store.base import StoreError
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.search import parse_search

TASKS = [{"uuid": f"t{i}", "name": "billing.charge", "state": "FAILURE" if i % 4 else "SUCCESS",
          "args": f"('customer-{i}',)", "kwargs": repr({"user": f"u{i % 3}"}), "result": None} for i in range(40)]


def indexes(dsn: str, table: str = "tasks") -> set[str]:
    return {str(row[0]) for row in execute(dsn, f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'")}


def test_migrations_are_applied_once_and_recorded() -> None:
    with fresh_database() as dsn:
        PostgresStore(dsn).close()
        PostgresStore(dsn).close()
        rows = execute(dsn, "SELECT version, description FROM schema_version ORDER BY version")
        assert [row[0] for row in rows] == [m.version for m in pg_schema.MIGRATIONS]
        assert {"tasks_received", "tasks_name"} <= indexes(dsn)
        # Search's GIN indexes are on the search table, off the tasks' write path (migration 9).
        assert {"task_search_text", "task_search_pairs"} <= indexes(dsn, "task_search")
        assert not {"tasks_search", "tasks_kwargs_pairs"} & indexes(dsn)
        assert db_command.upgrade(dsn).endswith(f"schema already at version {pg_schema.LATEST}")


def test_a_newer_schema_or_another_applications_tables_are_refused() -> None:
    with fresh_database() as dsn:
        PostgresStore(dsn).close()
        execute(dsn, "INSERT INTO schema_version (version, description) VALUES (99, 'from the future')")
        with pytest.raises(StoreError, match="version 99, newer than this monitor's"):
            PostgresStore(dsn)
    with fresh_database() as dsn:
        execute(dsn, "CREATE TABLE tasks (id serial PRIMARY KEY, title text)")
        with pytest.raises(StoreError, match=r"tables of another application \(tasks\)"):
            PostgresStore(dsn)
        assert execute(dsn, "SELECT count(*) FROM tasks") == [(0,)]  # left as it was


@pytest.fixture
def limited_role() -> Iterator[str]:
    """A role that may create tables in a database's public schema but not extensions."""
    role = f"cm_role_{uuid.uuid4().hex[:12]}"
    execute(ADMIN, f"CREATE ROLE {role} LOGIN")
    yield role
    execute(ADMIN, f"DROP ROLE IF EXISTS {role}")


def test_without_pg_trgm_searches_answer_the_same_and_the_index_comes_later(limited_role: str) -> None:
    with fresh_database() as admin_dsn:
        execute(admin_dsn, f"GRANT CREATE ON SCHEMA public TO {limited_role}")
        dsn = admin_dsn.replace("postgresql://postgres@", f"postgresql://{limited_role}@")
        store = PostgresStore(dsn)
        try:
            assert "task_search_text" not in indexes(dsn, "task_search")
            store.write(TASKS, [], {})
            queries = [TaskQuery(search=parse_search(text), limit=10)
                       for text in ("customer-1", "CUSTOMER-2 OR result:none", "kwargs:user=u1", "args:omer-3")]
            without = [(store.query_tasks(q), store.count_tasks(q)) for q in queries]
            assert [count for _, count in without] == [11, 11, 13, 11]
        finally:
            store.close()

        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_trgm")
        assert db_command.upgrade(dsn).endswith(f"schema already at version {pg_schema.LATEST}")
        assert "task_search_text" in indexes(dsn, "task_search")
        store = PostgresStore(dsn, search_settle_seconds=0)
        try:
            store.index_search(5.0)  # now the search table's indexes narrow the searches down
            assert [(store.query_tasks(q), store.count_tasks(q)) for q in queries] == without
        finally:
            store.close()
        execute(admin_dsn, f"DROP OWNED BY {limited_role}")


def test_migration_9_moves_search_off_the_tasks_of_an_existing_history() -> None:
    # A history written by version 8 (the GIN indexes on tasks): upgraded, its finished tasks are
    # in the search table at once, an unfinished one waits in the skipped ones, answers unchanged.
    tasks = [*TASKS, {"uuid": "running", "name": "billing.charge", "state": "STARTED", "args": "('customer-7',)",
                      "kwargs": "{}", "result": None}]
    with fresh_database() as dsn:
        store = PostgresStore(dsn)
        store.write(tasks, [], {})
        queries = [TaskQuery(search=parse_search(text), limit=10)
                   for text in ("customer-7", "CUSTOMER-2 OR result:none", "kwargs:user=u1", "args:omer-3")]
        before = [(store.query_tasks(q), store.count_tasks(q)) for q in queries]
        store.close()
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            for statement in ("DROP TABLE task_search, search_skipped, search_state",
                              "DROP TRIGGER tasks_search_stale ON tasks", "DROP TRIGGER tasks_search_forget ON tasks",
                              f"CREATE INDEX tasks_search ON tasks USING gin ({pg_schema.SEARCH_TEXT} gin_trgm_ops)",
                              "CREATE INDEX tasks_kwargs_pairs ON tasks USING gin (kwargs_pairs jsonb_path_ops)",
                              "DELETE FROM schema_version WHERE version >= 9"):
                conn.execute(statement)
        assert db_command.upgrade(dsn).endswith(f"schema upgraded from version 8 to {pg_schema.LATEST}")
        assert not {"tasks_search", "tasks_kwargs_pairs"} & indexes(dsn)
        assert execute(dsn, "SELECT count(*) FROM task_search") == [(len(TASKS),)]
        assert execute(dsn, "SELECT t.uuid FROM search_skipped s JOIN tasks t USING (seq)") == [("running",)]
        assert execute(dsn, "SELECT watermark FROM search_state") == [(len(tasks),)]
        store = PostgresStore(dsn)
        try:
            assert [(store.query_tasks(q), store.count_tasks(q)) for q in queries] == before
        finally:
            store.close()

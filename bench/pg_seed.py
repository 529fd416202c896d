"""A large task history in PostgreSQL, in exactly the rows the monitor's PostgresStore writes.

Ten million tasks through the store's upserts would take hours on this machine; the bench only
needs them in the database. So the schema comes from the store itself (its migrations), each row
from the store's own ``_row`` (the same columns, case-folded copies, kwargs pairs and JSON), and
the rows go in with one COPY into the freshly emptied table (``FREEZE``: no vacuum needed after)
with the table's secondary indexes dropped first and built again afterwards, as a restore does.
The failures table is filled from the tasks with the same statement migration 3 uses, the search
table with migration 9's.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from psycopg import sql
from stream import StreamFactory

from celery_monitor.store import pg_schema, postgres
from celery_monitor.store.postgres import PostgresStore

FIRST_SEEN = postgres.FIRST_SEEN
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SPACING = 0.01  # seconds between two seeded tasks: 10,000,000 span ~28 hours
UNIQUE = 1_000_000  # tasks the stream factory makes; the rest are copies of these
TIMES = ("received", "sent", "started", "succeeded", "failed", "timestamp")


def url_of(database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{database}"


def connect(database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url_of(database), autocommit=True)


def task_count(database: str) -> int | None:
    """How many tasks the database holds; None if it does not exist (or holds no history)."""
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            return None
    try:
        with psycopg.connect(url_of(database)) as conn:
            row = conn.execute("SELECT max(seq) - min(seq) + 1 FROM tasks").fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row and row[0] is not None else 0


def create_database(database: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop_database(database: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def _build(conn: psycopg.Connection[Any], indexes: list[tuple[str, str]], log: Any) -> None:
    conn.execute("SET maintenance_work_mem = '1GB'")
    for name, definition in indexes:
        began = time.monotonic()
        conn.execute(definition)
        log(f"  index {name} in {time.monotonic() - began:.0f} s")


def _copies(source: str, offset: int, shift: float) -> str:
    """SQL: the unique tasks again as new tasks (new ids, later seqs and times): COPY's source."""
    moved = {column: f"{column} + {shift!r}" for column in TIMES}
    moved.update(seq=f"seq + {offset}", uuid="u", root_id="u", data="replace(data, uuid, u)")
    picks = ", ".join(moved.get(column, column) for column in postgres._ROW_COLUMNS)
    return (f"SELECT {picks} FROM (SELECT *, md5(uuid || '{offset}')::uuid::text AS u FROM {source}) s "
            "ORDER BY seq")


def seed_history(database: str, tasks: int, factory: StreamFactory, log: Any = print) -> tuple[float, list[str]]:
    """Create ``database`` afresh with ``tasks`` finished tasks; the seconds it took and some task ids.

    The first ``UNIQUE`` tasks are made by the stream factory; the rest are copies of them made by
    the database (new ids, seqs and column times; their JSON's timeline keeps the original times).
    """
    started = time.monotonic()
    drop_database(database)
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    PostgresStore(url_of(database)).close()  # the schema, by the store's own migrations
    unique = min(tasks, UNIQUE)
    picked: list[str] = []
    base = time.time() - tasks * SPACING
    columns = ", ".join(postgres._ROW_COLUMNS)
    with psycopg.connect(url_of(database), autocommit=True) as conn, \
            psycopg.connect(url_of(database), autocommit=True) as source:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        conn.execute("CREATE UNLOGGED TABLE seed (LIKE tasks)")
        with conn.cursor() as cursor, cursor.copy(f"COPY seed ({columns}) FROM STDIN") as copy:
            for i in range(unique):
                task = factory.stored_task(base + i * SPACING)
                copy.write_row(postgres._row(task, i + 1))
        log(f"  made {unique:,} unique tasks in {time.monotonic() - started:.0f} s")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('tasks', 'task_search') AND indexname "
            "NOT IN ('tasks_pkey', 'tasks_uuid_key', 'task_search_pkey')").fetchall()
        with conn.transaction():
            for name, _ in indexes:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            conn.execute("ALTER TABLE tasks DROP CONSTRAINT tasks_uuid_key")
            conn.execute("TRUNCATE tasks")  # in this transaction: COPY FREEZE may write frozen rows
            conn.execute("ALTER TABLE tasks DISABLE TRIGGER USER")  # the counts are made once, after
            with conn.cursor() as cursor, cursor.copy(f"COPY tasks ({columns}) FROM STDIN WITH (FREEZE)") as into:
                for offset in range(0, tasks, unique):
                    select = f"SELECT * FROM seed WHERE seq <= {tasks - offset}"
                    query = _copies(f"({select}) t", offset, offset * SPACING) if offset else \
                        f"SELECT {columns} FROM seed ORDER BY seq"
                    with source.cursor() as reader, reader.copy(f"COPY ({query}) TO STDOUT") as out:
                        for chunk in out:
                            into.write(chunk)
                    log(f"  copied {min(tasks, offset + unique):,} tasks ({time.monotonic() - started:.0f} s)")
            conn.execute("INSERT INTO task_names SELECT to_json(n)::text FROM unnest(%s::text[]) n "
                         "ON CONFLICT DO NOTHING", (sorted(factory.names),))
        conn.execute("DROP TABLE seed")
        for statement in pg_schema.SEARCH_FILL:  # the search table as migration 9 fills it
            conn.execute(statement)
        log(f"  {tasks:,} tasks (and the search table) in {time.monotonic() - started:.0f} s; building the indexes")
        conn.execute("ALTER TABLE tasks ADD CONSTRAINT tasks_uuid_key UNIQUE (uuid)")
        # The trigram index takes longest: built beside the others, on the second connection.
        slow = [(name, definition) for name, definition in indexes if name == pg_schema.TRIGRAM_INDEX]
        builder = threading.Thread(target=_build, args=(source, slow, log))
        builder.start()
        _build(conn, [index for index in indexes if index not in slow], log)
        builder.join()
        conn.execute("ALTER TABLE tasks ENABLE TRIGGER USER")
        # Then filled as their migrations fill them, the counts once at the end.
        conn.execute("TRUNCATE failures, task_counts, failure_counts")
        conn.execute("ALTER TABLE failures DISABLE TRIGGER USER")
        conn.execute(pg_schema.MIGRATIONS[2].statements[-1])
        conn.execute("ALTER TABLE failures ENABLE TRIGGER USER")
        for version in (7, 11):  # the task counts, and the failure counts per cluster (migration 11's key)
            conn.execute(pg_schema.MIGRATIONS[version - 1].statements[-1])
        conn.execute("VACUUM ANALYZE tasks")
        conn.execute("VACUUM ANALYZE failures")
        conn.execute("VACUUM ANALYZE task_search")
        every = max(1, tasks // 50)
        picked = [row[0] for row in conn.execute(
            "SELECT uuid FROM tasks WHERE seq %% %s = 1 ORDER BY seq", (every,))]
    log(f"  seeded in {time.monotonic() - started:.0f} s")
    return time.monotonic() - started, picked

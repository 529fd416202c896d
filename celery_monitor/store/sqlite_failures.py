"""The SQLite history's failures table (see ``failures.py``): schema, writes, trimming and reads.

Writes go as one JSON array per statement, unpacked by SQLite, like the tasks' (``sqlite.py``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from celery_monitor.store import stored
from celery_monitor.store.failures import MAX_GROUPS, FailureRow, GroupCounts

SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL, exception_type TEXT NOT NULL, failed REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_group ON failures(name, exception_type, failed);
CREATE INDEX IF NOT EXISTS failures_failed ON failures(failed);
"""
# A group's page, the latest first: read in the order of the failures_group index (seq is the rowid,
# the last column of every index).
GROUP_TASKS = ("SELECT uuid, data FROM failures WHERE name = ? AND exception_type = ? "
               "ORDER BY failed DESC, seq DESC LIMIT ? OFFSET ?")
# Every group's totals from the failures_group index alone; the window's counts from failures_failed.
GROUPS = ("SELECT name, exception_type, count(*), min(failed), max(failed) FROM failures "
          "GROUP BY name, exception_type ORDER BY count(*) DESC, max(failed) DESC LIMIT ?")
WINDOW = ("SELECT name, exception_type, CAST((failed - ?) / ? AS INTEGER), count(*) FROM failures "
          "WHERE failed >= ? GROUP BY 1, 2, 3")
_UPSERT = (
    "INSERT INTO failures (uuid, name, exception_type, failed, data) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "json_extract(value, '$[3]'), json_extract(value, '$[4]') FROM json_each(?) WHERE true "
    "ON CONFLICT(uuid) DO UPDATE SET name = excluded.name, exception_type = excluded.exception_type, "
    "failed = excluded.failed, data = excluded.data"
)
_DELETE = "DELETE FROM failures WHERE uuid IN (SELECT value FROM json_each(?))"


def create(conn: sqlite3.Connection) -> bool:
    """Create the table if the history lacks it; whether it was created (then the caller fills it
    with the failed tasks the history already holds)."""
    existed = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'failures'").fetchone()
    conn.executescript(SCHEMA)
    return existed is None


def upsert(conn: sqlite3.Connection, rows: list[FailureRow]) -> None:
    conn.execute(_UPSERT, (orjson.dumps([[*row[:4], orjson.dumps(row[4]).decode()] for row in rows]).decode(),))


def write(conn: sqlite3.Connection, rows: list[FailureRow], others: list[str]) -> None:
    """Inside the writer's transaction: failed tasks in, tasks no longer failed out."""
    if rows:
        upsert(conn, rows)
    if others:
        conn.execute(_DELETE, (orjson.dumps(others).decode(),))


def trim(conn: sqlite3.Connection, keep: int) -> int:
    """Delete the oldest failures beyond ``keep``; how many went."""
    count = int(conn.execute("SELECT count(*) FROM failures").fetchone()[0])
    if count <= keep:
        return 0
    conn.execute("DELETE FROM failures WHERE seq IN (SELECT seq FROM failures ORDER BY seq LIMIT ?)",
                 (count - keep,))
    return count - keep


def trim_age(conn: sqlite3.Connection, cutoff: float, chunk: int) -> int:
    """Delete up to ``chunk`` failures that failed before ``cutoff``; how many went."""
    return conn.execute("DELETE FROM failures WHERE seq IN (SELECT seq FROM failures WHERE failed < ? LIMIT ?)",
                        (cutoff, chunk)).rowcount


def _task(data: Any, uuid: str) -> dict[str, Any] | None:
    try:
        task = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(task, dict):
        return None
    if stored.task_problems(task) is None:
        return task
    repaired, _ = stored.repair_task(task, uuid)
    return repaired


def get(conn: sqlite3.Connection, uuid: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT data FROM failures WHERE uuid = ?", (uuid,)).fetchone()
    return _task(row[0], uuid) if row else None


def groups(conn: sqlite3.Connection, since: float, width: float) -> list[GroupCounts]:
    """Every group (the largest first, at most ``MAX_GROUPS``), with counts per bucket from ``since``."""
    found = {
        (name, kind): GroupCounts(name, kind, count, first, last)
        for name, kind, count, first, last in conn.execute(GROUPS, (MAX_GROUPS,))
    }
    for name, kind, bucket, count in conn.execute(WINDOW, (since, width, since)):
        group = found.get((name, kind))
        if group is not None:
            group.buckets[int(bucket)] = int(count)
    return list(found.values())


def sample(conn: sqlite3.Connection, name: str, kind: str) -> dict[str, Any] | None:
    """The group's latest failure."""
    row = conn.execute("SELECT uuid, data FROM failures WHERE name = ? AND exception_type = ? "
                       "ORDER BY failed DESC, seq DESC LIMIT 1", (name, kind)).fetchone()
    return _task(row[1], row[0]) if row else None


def after(conn: sqlite3.Connection, seq: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """The failures kept after ``seq``, in the order they were first kept (a copy reads them all)."""
    rows = conn.execute("SELECT seq, uuid, data FROM failures WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [(seq, task) for seq, uuid, data in rows.fetchall() if (task := _task(data, uuid)) is not None]


def tasks(conn: sqlite3.Connection, name: str, kind: str, limit: int | None, offset: int) -> list[dict[str, Any]]:
    """The group's failures, the latest first."""
    rows = conn.execute(GROUP_TASKS, (name, kind, -1 if limit is None else limit, offset)).fetchall()
    return [task for uuid, data in rows if (task := _task(data, uuid)) is not None]


def count(conn: sqlite3.Connection, name: str, kind: str) -> int:
    return int(conn.execute("SELECT count(*) FROM failures WHERE name = ? AND exception_type = ?",
                            (name, kind)).fetchone()[0])


def total(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM failures").fetchone()[0])

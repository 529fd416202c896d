"""The SQLite history's failures table (see ``failures.py``): schema, writes, trimming and reads.

Writes go as one JSON array per statement, unpacked by SQLite, like the tasks' (``sqlite.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from celery_monitor.clusters import DEFAULT as DEFAULT_CLUSTER
from celery_monitor.store import failures, stored
from celery_monitor.store.failures import MAX_GROUPS, FailureRow, GroupCounts

SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL, exception_type TEXT NOT NULL, failed REAL NOT NULL,
    data BLOB NOT NULL,
    cluster TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS failures_cluster_group ON failures(cluster, name, exception_type, failed);
CREATE INDEX IF NOT EXISTS failures_failed ON failures(failed);
DROP INDEX IF EXISTS failures_group;
"""
# The cluster column holds '' for ``default`` (failures.column): a group is (cluster, name, exception
# type), the failures_cluster_group index's first three columns. Histories written before there were
# clusters have failures_group (name, exception_type, failed): replaced at open (add_cluster_column).
# A group's page, the latest first: read in the order of the failures_cluster_group index (seq is the
# rowid, the last column of every index). {clusters}: _in() of the clusters asked for.
GROUP_TASKS = ("SELECT uuid, data FROM failures WHERE {clusters} AND name = ? AND exception_type = ? "
               "ORDER BY failed DESC, seq DESC LIMIT ? OFFSET ?")
# Every group's totals from the failures_cluster_group index alone; the window's counts from failures_failed
# (or a skip-scan of the group index). {where}: nothing, or the clusters asked for.
GROUPS = ("SELECT cluster, name, exception_type, count(*), min(failed), max(failed) FROM failures {where}"
          "GROUP BY cluster, name, exception_type ORDER BY count(*) DESC, max(failed) DESC LIMIT ?")
WINDOW = ("SELECT cluster, name, exception_type, CAST((failed - ?) / ? AS INTEGER), count(*) FROM failures "
          "WHERE failed >= ? {clusters}GROUP BY 1, 2, 3, 4")
_UPSERT = (
    "INSERT INTO failures (uuid, name, exception_type, failed, cluster, data) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]') "
    "FROM json_each(?) WHERE true "
    "ON CONFLICT(uuid) DO UPDATE SET name = excluded.name, exception_type = excluded.exception_type, "
    "failed = excluded.failed, cluster = excluded.cluster, data = excluded.data"
)
_DELETE = "DELETE FROM failures WHERE uuid IN (SELECT value FROM json_each(?))"


def _in(clusters: Sequence[str]) -> tuple[str, list[str]]:
    """SQL narrowing to the clusters named (their column values), and its parameters."""
    values = [failures.column(name) for name in clusters]
    return f"cluster IN ({', '.join('?' * len(values))})", values


def add_cluster_column(conn: sqlite3.Connection) -> None:
    """A failures table written before there were clusters gets the column, filled from each
    failure's JSON (a task of another cluster than default says its cluster there)."""
    if "cluster" in {row[1] for row in conn.execute("PRAGMA table_info(failures)")}:
        return
    conn.execute("ALTER TABLE failures ADD COLUMN cluster TEXT NOT NULL DEFAULT ''")
    conn.execute(
        "UPDATE failures SET cluster = json_extract(CAST(data AS TEXT), '$.cluster') "
        "WHERE json_valid(CAST(data AS TEXT)) AND json_type(CAST(data AS TEXT), '$.cluster') = 'text' "
        f"AND json_extract(CAST(data AS TEXT), '$.cluster') NOT IN ('', '{DEFAULT_CLUSTER}')")


def create(conn: sqlite3.Connection) -> bool:
    """Create the table if the history lacks it, or give an older one its cluster column; whether
    it was created (then the caller fills it with the failed tasks the history already holds)."""
    existed = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'failures'").fetchone()
    if existed is not None:
        add_cluster_column(conn)
    conn.executescript(SCHEMA)
    return existed is None


def upsert(conn: sqlite3.Connection, rows: list[FailureRow]) -> None:
    conn.execute(_UPSERT, (orjson.dumps([[*row[:5], orjson.dumps(row[5]).decode()] for row in rows]).decode(),))


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


def groups(conn: sqlite3.Connection, since: float, width: float, clusters: Sequence[str] = ()) -> list[GroupCounts]:
    """Every group (the largest first, at most ``MAX_GROUPS``) of the clusters named (none: every
    cluster), with counts per bucket from ``since``."""
    where, params = _in(clusters) if clusters else ("", [])
    found = {
        (cluster, name, kind): GroupCounts(failures.cluster_of(cluster), name, kind, count, first, last)
        for cluster, name, kind, count, first, last in conn.execute(
            GROUPS.format(where=f"WHERE {where} " if where else ""), (*params, MAX_GROUPS))
    }
    window = WINDOW.format(clusters=f"AND {where} " if where else "")
    for cluster, name, kind, bucket, count in conn.execute(window, (since, width, since, *params)):
        group = found.get((cluster, name, kind))
        if group is not None:
            group.buckets[int(bucket)] = int(count)
    return list(found.values())


def sample(conn: sqlite3.Connection, name: str, kind: str, cluster: str) -> dict[str, Any] | None:
    """The group's latest failure."""
    row = conn.execute("SELECT uuid, data FROM failures WHERE cluster = ? AND name = ? AND exception_type = ? "
                       "ORDER BY failed DESC, seq DESC LIMIT 1", (failures.column(cluster), name, kind)).fetchone()
    return _task(row[1], row[0]) if row else None


def after(conn: sqlite3.Connection, seq: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """The failures kept after ``seq``, in the order they were first kept (a copy reads them all)."""
    rows = conn.execute("SELECT seq, uuid, data FROM failures WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [(seq, task) for seq, uuid, data in rows.fetchall() if (task := _task(data, uuid)) is not None]


def tasks(conn: sqlite3.Connection, name: str, kind: str, clusters: Sequence[str], limit: int | None,
          offset: int) -> list[dict[str, Any]]:
    """The group's failures in the clusters named, the latest first."""
    where, params = _in(clusters)
    rows = conn.execute(GROUP_TASKS.format(clusters=where),
                        (*params, name, kind, -1 if limit is None else limit, offset)).fetchall()
    return [task for uuid, data in rows if (task := _task(data, uuid)) is not None]


def count(conn: sqlite3.Connection, name: str, kind: str, clusters: Sequence[str]) -> int:
    where, params = _in(clusters)
    return int(conn.execute(f"SELECT count(*) FROM failures WHERE {where} AND name = ? AND exception_type = ?",
                            (*params, name, kind)).fetchone()[0])


def total(conn: sqlite3.Connection, clusters: Sequence[str] = ()) -> int:
    if not clusters:
        return int(conn.execute("SELECT count(*) FROM failures").fetchone()[0])
    where, params = _in(clusters)
    return int(conn.execute(f"SELECT count(*) FROM failures WHERE {where}", params).fetchone()[0])

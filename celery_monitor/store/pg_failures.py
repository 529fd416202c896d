"""The PostgreSQL history's failures table (see ``failures.py``; created by migration 3 in ``pg_schema.py``, its
cluster column by migration 11)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
import psycopg

from celery_monitor.store import failures, stored
from celery_monitor.store.failures import MAX_GROUPS, FailureRow, GroupCounts
from celery_monitor.store.pg_arrays import Texts

Rows = Callable[[str, Sequence[Any]], list[Any]]

# The cluster column holds '' for ``default`` (failures.column); a group is (cluster, name, exception
# type), the failures_cluster_group index's first three columns (pg_schema, migration 11).
# A group's page, the latest first: read in the order of the failures_cluster_group index (of one
# cluster: ``cluster = %s``; several are merged by a sort). {clusters}: _in() of the clusters asked for.
GROUP_TASKS = ("SELECT uuid, data FROM failures WHERE {clusters} AND name = %s AND exception_type = %s "
               "ORDER BY failed DESC, seq DESC LIMIT %s OFFSET %s")
# Every group's size from failure_counts (pg_schema, migrations 8 and 11), its first and last failure
# from two seeks in the failures_cluster_group index; the window's counts from failures_failed.
# {where}: nothing, or the clusters asked for.
_GROUP = "FROM failures f WHERE f.cluster = c.cluster AND f.name = c.name AND f.exception_type = c.exception_type"
GROUPS = (f"SELECT c.cluster, c.name, c.exception_type, c.n, (SELECT min(f.failed) {_GROUP}), "
          f"(SELECT max(f.failed) {_GROUP}) AS last FROM failure_counts c "
          "WHERE c.n > 0 {where}ORDER BY c.n DESC, last DESC LIMIT %s")
WINDOW = ("SELECT cluster, name, exception_type, floor((failed - %s) / %s)::integer, count(*) FROM failures "
          "WHERE failed >= %s {where}GROUP BY 1, 2, 3, 4")
# One statement for a batch (the triggers of failure_counts then run once, not once per failure).
_UPSERT = (
    "INSERT INTO failures (uuid, name, exception_type, failed, cluster, data) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::text[]) "
    "ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, exception_type = excluded.exception_type, "
    "failed = excluded.failed, cluster = excluded.cluster, data = excluded.data"
)


def _columns(clusters: Sequence[str]) -> list[str]:
    return [_text(failures.column(name)) for name in clusters]


def _in(clusters: Sequence[str]) -> tuple[str, Any]:
    """SQL narrowing to the clusters named, and its parameter: one cluster as an equality (an index
    then gives the group's rows in order), several as an array."""
    if len(clusters) == 1:
        return "cluster = %s", _columns(clusters)[0]
    return "cluster = ANY(%s)", _columns(clusters)

def _text(value: str) -> str:
    return value.replace("\x00", "") if "\x00" in value else value


def write(conn: psycopg.Connection[Any], rows: list[FailureRow], others: list[str]) -> None:
    """Inside the writer's transaction: failed tasks in, tasks no longer failed out."""
    if rows:
        columns = zip(*[(_text(uuid), _text(name), _text(kind), failed, _text(cluster), orjson.dumps(task).decode())
                        for uuid, name, kind, failed, cluster, task in rows], strict=True)
        uuids, names, kinds, times, clusters, data = columns
        conn.execute(_UPSERT, [Texts(uuids), Texts(names), Texts(kinds), list(times), Texts(clusters), Texts(data)])
    if others:
        conn.execute("DELETE FROM failures WHERE uuid = ANY(%s)", (Texts(_text(uuid) for uuid in others),))


def trim(conn: psycopg.Connection[Any], keep: int) -> int:
    """Delete the oldest failures beyond ``keep``; how many went."""
    row = conn.execute("SELECT coalesce(sum(n), 0) FROM failure_counts").fetchone()
    count = int(row[0]) if row else 0
    if count <= keep:
        return 0
    conn.execute("DELETE FROM failures WHERE seq IN (SELECT seq FROM failures ORDER BY seq LIMIT %s)",
                 (count - keep,))
    return count - keep


def trim_age(conn: psycopg.Connection[Any], cutoff: float, chunk: int) -> int:
    """Delete up to ``chunk`` failures that failed before ``cutoff``; how many went."""
    return conn.execute("DELETE FROM failures WHERE seq IN (SELECT seq FROM failures WHERE failed < %s LIMIT %s)",
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


def get(rows: Rows, uuid: str) -> dict[str, Any] | None:
    found = rows("SELECT data FROM failures WHERE uuid = %s", (_text(uuid),))
    return _task(found[0][0], uuid) if found else None


def groups(rows: Rows, since: float, width: float, clusters: Sequence[str] = ()) -> list[GroupCounts]:
    """Every group (the largest first, at most ``MAX_GROUPS``) of the clusters named (none: every
    cluster), with counts per bucket from ``since``."""
    where = "AND cluster = ANY(%s) " if clusters else ""
    params = [_columns(clusters)] if clusters else []
    found = {
        (cluster, name, kind): GroupCounts(failures.cluster_of(cluster), name, kind, int(count), float(first),
                                           float(last))
        for cluster, name, kind, count, first, last in rows(GROUPS.format(where=where.replace("cluster", "c.cluster")),
                                                            (*params, MAX_GROUPS))
    }
    for cluster, name, kind, bucket, count in rows(WINDOW.format(where=where), (since, width, since, *params)):
        group = found.get((cluster, name, kind))
        if group is not None:
            group.buckets[int(bucket)] = int(count)
    return list(found.values())


def sample(rows: Rows, name: str, kind: str, cluster: str) -> dict[str, Any] | None:
    """The group's latest failure."""
    found = rows("SELECT uuid, data FROM failures WHERE cluster = %s AND name = %s AND exception_type = %s "
                 "ORDER BY failed DESC, seq DESC LIMIT 1", (_text(failures.column(cluster)), _text(name), _text(kind)))
    return _task(found[0][1], found[0][0]) if found else None


def after(rows: Rows, seq: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """The failures kept after ``seq``, in the order they were first kept (a copy reads them all)."""
    found = rows("SELECT seq, uuid, data FROM failures WHERE seq > %s ORDER BY seq LIMIT %s", (seq, limit))
    return [(int(seq), task) for seq, uuid, data in found if (task := _task(data, uuid)) is not None]


def tasks(rows: Rows, name: str, kind: str, clusters: Sequence[str], limit: int | None,
          offset: int) -> list[dict[str, Any]]:
    """The group's failures in the clusters named, the latest first."""
    where, param = _in(clusters)
    found = rows(GROUP_TASKS.format(clusters=where), (param, _text(name), _text(kind), limit, offset))
    return [task for uuid, data in found if (task := _task(data, uuid)) is not None]


def count(rows: Rows, name: str, kind: str, clusters: Sequence[str]) -> int:
    found = rows("SELECT coalesce(sum(n), 0) FROM failure_counts WHERE cluster = ANY(%s) AND name = %s "
                 "AND exception_type = %s", (_columns(clusters), _text(name), _text(kind)))
    return int(found[0][0]) if found else 0


def total(rows: Rows, clusters: Sequence[str] = ()) -> int:
    if not clusters:
        return int(rows("SELECT coalesce(sum(n), 0) FROM failure_counts", ())[0][0])
    return int(rows("SELECT coalesce(sum(n), 0) FROM failure_counts WHERE cluster = ANY(%s)",
                    (_columns(clusters),))[0][0])

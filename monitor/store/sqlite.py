"""SQLite task history: WAL journal, one writer, a connection per reading thread, indexes for
every filter and sort the API offers.

Rows keep the searchable and sortable fields as columns and everything else as one JSON blob.
``seq`` (the rowid) is the order tasks were first seen in: new tasks list first, and trimming to
``--max_tasks`` deletes from the low end, so the row count is always ``max(seq) - min(seq) + 1``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid as uuid_module
from collections.abc import Iterable
from typing import Any

import orjson

from celery_monitor.state.models import TASK_FIELDS
from celery_monitor.store.base import TaskDict
from celery_monitor.store.query import SORT_KEYS, TaskQuery
from celery_monitor.store.search import kwargs_match

SCHEMA_VERSION = 1

_COLUMNS = ("uuid", "name", "state", "worker", "received", "sent", "started", "succeeded", "failed",
            "timestamp", "runtime", "args", "kwargs", "result")  # fmt: skip
_COLUMN_SET = frozenset(_COLUMNS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT, state TEXT, worker TEXT,
    received REAL, sent REAL, started REAL, succeeded REAL, failed REAL, timestamp REAL, runtime REAL,
    args TEXT, kwargs TEXT, result TEXT,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state, seq);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks(name, seq);
CREATE INDEX IF NOT EXISTS tasks_worker ON tasks(worker, seq);
CREATE INDEX IF NOT EXISTS tasks_received ON tasks(received);
CREATE INDEX IF NOT EXISTS tasks_started ON tasks(started);
CREATE INDEX IF NOT EXISTS tasks_sent ON tasks(sent);
CREATE INDEX IF NOT EXISTS tasks_succeeded ON tasks(succeeded);
CREATE INDEX IF NOT EXISTS tasks_failed ON tasks(failed);
CREATE INDEX IF NOT EXISTS tasks_timestamp ON tasks(timestamp);
CREATE INDEX IF NOT EXISTS tasks_runtime ON tasks(runtime);
CREATE TABLE IF NOT EXISTS task_names (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers (hostname TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""

_UPSERT = (
    f"INSERT INTO tasks ({', '.join(_COLUMNS)}, data) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))}) "
    f"ON CONFLICT(uuid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*_COLUMNS[1:], "data"))
)
_SELECT = f"SELECT {', '.join(_COLUMNS)}, data FROM tasks"
TRIM_CHUNK = 5000


class StoreError(RuntimeError):
    """The database cannot be opened or is not ours."""


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _row_to_task(row: tuple[Any, ...]) -> TaskDict:
    """Rebuild the task dict in the API's field order (columns first stored apart from the blob)."""
    rest: TaskDict = orjson.loads(row[-1])
    rest.update(zip(_COLUMNS, row, strict=False))
    task = {name: rest.pop(name, None) for name in TASK_FIELDS}
    task.update(rest)
    return task


def _task_to_row(task: TaskDict) -> tuple[Any, ...]:
    rest = {k: v for k, v in task.items() if k not in _COLUMN_SET}
    return (*(task.get(c) for c in _COLUMNS), orjson.dumps(rest))


class SQLiteStore:
    def __init__(self, path: str | None) -> None:
        """Open (or create) the history at ``path``; ``None`` keeps it in memory only."""
        self.path = path
        if path is None:
            self._target = f"file:celery-monitor-{uuid_module.uuid4().hex}?mode=memory&cache=shared"
        else:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise StoreError(f"directory {directory} does not exist")
            self._target = f"file:{path}"
        self._local = threading.local()
        self._write_lock = threading.Lock()
        # An in-memory database lives while one connection is open: the writer keeps it.
        try:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a Celery Monitor database ({exc})") from None

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._target, uri=True, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        if self.path is None:
            conn.execute("PRAGMA read_uncommitted = 1")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -16000")
        conn.execute("PRAGMA mmap_size = 268435456")
        conn.create_function("kwargs_match", 3, kwargs_match, deterministic=True)
        return conn

    def _check_version(self) -> None:
        row = self._writer.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._writer.execute("INSERT INTO meta VALUES ('schema_version', ?)", (orjson.dumps(SCHEMA_VERSION),))
        elif orjson.loads(row[0]) != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {orjson.loads(row[0])}, expected {SCHEMA_VERSION}")

    @property
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    # -- writing -------------------------------------------------------------------------------

    def write(
        self, tasks: Iterable[TaskDict], workers: Iterable[dict[str, Any]], meta: dict[str, Any]
    ) -> None:
        task_rows = [_task_to_row(t) for t in tasks]
        names = {(row[1],) for row in task_rows if row[1]}
        worker_rows = [(w["hostname"], orjson.dumps(w)) for w in workers]
        meta_rows = [(k, orjson.dumps(v)) for k, v in meta.items()]
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN")
            try:
                if task_rows:
                    conn.executemany(_UPSERT, task_rows)
                if names:
                    conn.executemany("INSERT OR IGNORE INTO task_names VALUES (?)", names)
                if worker_rows:
                    conn.executemany("INSERT OR REPLACE INTO workers VALUES (?, ?)", worker_rows)
                if meta_rows:
                    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta_rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def delete_workers(self, hostnames: Iterable[str]) -> None:
        with self._write_lock:
            self._writer.executemany("DELETE FROM workers WHERE hostname = ?", [(h,) for h in hostnames])

    def trim(self, max_tasks: int) -> dict[str, int]:
        removed: dict[str, int] = {}
        with self._write_lock:
            low, high = self._writer.execute("SELECT min(seq), max(seq) FROM tasks").fetchone()
        if high is None or high - low + 1 <= max_tasks:
            return removed
        cutoff = high - max_tasks
        # Delete in chunks so readers and the writer never wait long behind one big transaction.
        for start in range(low, cutoff + 1, TRIM_CHUNK):
            end = min(start + TRIM_CHUNK - 1, cutoff)
            with self._write_lock:
                conn = self._writer
                conn.execute("BEGIN")
                for state, count in conn.execute(
                    "SELECT state, count(*) FROM tasks WHERE seq BETWEEN ? AND ? GROUP BY state", (start, end)
                ):
                    removed[state] = removed.get(state, 0) + count
                conn.execute("DELETE FROM tasks WHERE seq BETWEEN ? AND ?", (start, end))
                conn.execute("COMMIT")
        return removed

    def close(self) -> None:
        with self._write_lock:
            if self.path is not None:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.close()

    # -- reading -------------------------------------------------------------------------------

    def get_task(self, uuid: str) -> TaskDict | None:
        row = self._reader.execute(f"{_SELECT} WHERE uuid = ?", (uuid,)).fetchone()
        return _row_to_task(row) if row else None

    def get_tasks(self, uuids: Iterable[str]) -> dict[str, TaskDict]:
        wanted = list(uuids)
        found: dict[str, TaskDict] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            sql = f"{_SELECT} WHERE uuid IN ({', '.join('?' * len(chunk))})"
            for row in self._reader.execute(sql, chunk):
                found[row[0]] = _row_to_task(row)
        return found

    def _where(self, query: TaskQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: list[str]) -> None:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)

        if query.workers:
            any_of("worker", query.workers)
        if query.names:
            any_of("name", query.names)
        if query.states:
            any_of("state", query.states)
        if query.received_start is not None:
            clauses.append("received >= ?")
            params.append(query.received_start)
        if query.received_end is not None:
            clauses.append("received <= ?")
            params.append(query.received_end)
        terms = query.search
        if terms.states:
            any_of("state", terms.states)
        for value in terms.any:
            clauses.append("(args LIKE ? ESCAPE '\\' OR kwargs LIKE ? ESCAPE '\\' OR result LIKE ? ESCAPE '\\')")
            params.extend([_like(value)] * 3)
        for column, values in (("args", terms.args), ("result", terms.result), ("name", terms.names),
                               ("worker", terms.workers)):
            for value in values:
                clauses.append(f"{column} LIKE ? ESCAPE '\\'")
                params.append(_like(value))
        for key, expected in terms.kwargs:
            clauses.append("kwargs LIKE ? ESCAPE '\\' AND kwargs_match(kwargs, ?, ?)")
            params.extend([_like(key), key, expected])
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query_tasks(self, query: TaskQuery) -> list[TaskDict]:
        where, params = self._where(query)
        direction = "DESC" if query.descending else "ASC"
        if query.sort_by and query.sort_by in SORT_KEYS:
            order = f" ORDER BY {query.sort_by} {direction}, seq {direction}"
        else:
            order = f" ORDER BY seq {direction}"
        page = ""
        if query.limit is not None or query.offset:
            page = " LIMIT ? OFFSET ?"
            params = [*params, -1 if query.limit is None else query.limit, query.offset]
        return [_row_to_task(row) for row in self._reader.execute(_SELECT + where + order + page, params)]

    def count_tasks(self, query: TaskQuery) -> int:
        where, params = self._where(query)
        if not where:
            return self.task_count()
        return int(self._reader.execute("SELECT count(*) FROM tasks" + where, params).fetchone()[0])

    def task_count(self) -> int:
        low, high = self._reader.execute("SELECT min(seq), max(seq) FROM tasks").fetchone()
        return 0 if high is None else high - low + 1

    def task_names(self) -> list[str]:
        return [row[0] for row in self._reader.execute("SELECT name FROM task_names ORDER BY name")]

    def state_counts(self) -> dict[str, int]:
        sql = "SELECT state, count(*) FROM tasks GROUP BY state"
        return {state: count for state, count in self._reader.execute(sql) if state}

    def load_workers(self) -> list[dict[str, Any]]:
        return [orjson.loads(row[0]) for row in self._reader.execute("SELECT data FROM workers")]

    def load_meta(self, key: str) -> Any:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def size_bytes(self) -> int:
        if self.path is None:
            page_count = self._reader.execute("PRAGMA page_count").fetchone()[0]
            page_size = self._reader.execute("PRAGMA page_size").fetchone()[0]
            return int(page_count * page_size)
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total

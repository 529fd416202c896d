"""PostgreSQL task history: the SQLite store's answers, from a database several machines can reach.

The same rows as ``sqlite.py``: the searchable and sortable fields as columns, everything else as
one JSON text. What differs, and why:

- ``seq`` is handed out by the writer (the highest plus one, in the order tasks are first seen),
  not by a sequence: an upsert would spend a sequence number on every update, and the gaps would
  break the deep-page shortcut and the count (``max(seq) - min(seq) + 1``), which rely on none.
  Writers take an advisory lock for the transaction, so two never hand out the same numbers.
- Writes go in bulk: the batch is copied (COPY) into a temporary table, then upserted with one
  ``INSERT ... ON CONFLICT``.
- PostgreSQL's text cannot hold NUL characters: a column keeps its text without them (for sorting
  and search), and the exact value rides in the JSON (under the key ``"\\u0000"``). A value of the
  wrong type for its column (a damaged record) rides there too, with the column NULL, and is
  repaired when read, as SQLite's are.
- Search equals SQLite's (``search.py``): an ASCII term is looked for in the text with ASCII letters
  lowered (``translate``), another in the text as ``str.casefold()`` makes it, stored beside the
  column (``fold_<column>``) where that differs; ``kwargs:key=value`` in the pairs the writer read
  from the kwargs with the same rules as ``kwargs_match``, or, for kwargs that are no literal,
  in their folded text. The search table's indexes narrow the rows down (``pg_search.py``: filled
  behind the writer, what it does not hold yet is scanned) and these checks decide.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from celery_monitor.state.models import DEFAULT_CLUSTER, TASK_FIELDS
from celery_monitor.store import dsn, failures, pg_arrays, pg_failures, pg_notices, pg_schema, pg_search, stored
from celery_monitor.store.base import Removed, StoreError, TaskDict
from celery_monitor.store.pg_statistics import TableStatistics
from celery_monitor.store.quarantine import LATEST, raw_text
from celery_monitor.store.query import SORT_KEYS, TaskQuery, seqs_past_cursor
from celery_monitor.store.search import BARE_COLUMNS, All, Expression, Term

log = logging.getLogger(__name__)

# cluster: NULL for ``default``, which stays out of its index (pg_schema, migration 10).
_COLUMNS = ("uuid", "name", "state", "worker", "received", "sent", "started", "succeeded", "failed",
            "timestamp", "runtime", "args", "kwargs", "result", "cluster")  # fmt: skip
_TIME_COLUMNS = frozenset({"received", "sent", "started", "succeeded", "failed", "timestamp", "runtime"})
_COLUMN_SET = frozenset(_COLUMNS)
_FOLD_COLUMNS = tuple(f"fold_{c}" for c in BARE_COLUMNS)
# root_id is kept in the JSON too: its column only indexes a workflow's tasks (pg_schema, migrations 4 and 12).
_ROW_COLUMNS = ("seq", *_COLUMNS, *_FOLD_COLUMNS, "kwargs_pairs", "root_id", "data")
_SELECT = f"SELECT seq, {', '.join(_COLUMNS)}, data FROM tasks"
_UPSERT = (f"INSERT INTO tasks ({', '.join(_ROW_COLUMNS)}) SELECT {', '.join(_ROW_COLUMNS)} FROM incoming "
           "ON CONFLICT (uuid) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in _ROW_COLUMNS if c not in ("seq", "uuid")))
_SEQ_RANGE = "SELECT (SELECT min(seq) FROM tasks), (SELECT max(seq) FROM tasks)"
EXACT_KEY = "\x00"  # the key, in a row's JSON, of the exact values of columns that held NUL characters
WRITE_LOCK_KEY = 0x43_4D_4F_4E_02  # pg_advisory_xact_lock key of task writes
# Held by the writing connection of the one monitor that ingests into (leads) the history: the
# others are standbys (replica.py) that try it every second or so, and the first to get it once the
# leader's session ends (it stopped, or died: the server ends a session whose client has gone) leads.
OWNER_LOCK_KEY = 0x43_4D_4F_4E_03  # after the migrations (01) and the writes (02)
OWNER_PATIENCE = 5.0  # seconds a starting monitor waits for one that is stopping
TRIM_CHUNK = 1000
# The search indexer's slice while no task is written: most of the writer's 0.5 s interval (the
# next flush waits for it at most this long); a tenth of it otherwise (the writer's budget).
IDLE_INDEX_SECONDS = 0.4
# From this offset on, a page's seqs are found first (an index-only walk) and its rows read after.
DEEP_PAGE = 1000
FIRST_SEEN = "coalesce(sent, received, started, timestamp)"  # a task's age, as the SQLite store's
CONNECT_TIMEOUT = 10
# How soon a connection notices that the other end has vanished without closing it (a lost host, a
# cut network): the server then ends a dead leader's session (and its lock) and a replica its own.
# libpq's names; a value given in the URL wins.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2", "keepalives_count": "3",
              "tcp_user_timeout": "10000"}
_ASCII_LOWER = str.maketrans(pg_schema.UPPER, pg_schema.LOWER)


def _text(value: str) -> str:
    """A value as PostgreSQL's text can hold it (no NUL characters), as the columns keep it."""
    return value.replace("\x00", "") if "\x00" in value else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def kwargs_pairs(kwargs_repr: Any) -> list[dict[str, str]] | None:
    """The (key, value) pairs ``kwargs:key=value`` can find in a task's kwargs, case-folded, each value
    as ``str()`` and ``repr()`` print it; None for kwargs that are not a literal dict (searched as text).

    The same reading as :func:`celery_monitor.store.search.kwargs_match`.
    """
    if not kwargs_repr or not isinstance(kwargs_repr, str):
        return []
    try:
        kwargs = ast.literal_eval(kwargs_repr)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(kwargs, dict):
        return None
    pairs: list[dict[str, str]] = []
    for key, value in kwargs.items():
        try:
            folded_key = _text(str(key).casefold())
            for shown in dict.fromkeys((str(value).casefold(), repr(value).casefold())):
                pairs.append({"k": folded_key, "v": _text(shown)})
        except ValueError:  # an integer too long to print: kwargs_match cannot compare it either
            continue
    return pairs


def _kwargs_pairs_json(kwargs_repr: Any) -> str | None:
    """:func:`kwargs_pairs` as the ``kwargs_pairs`` column's JSON; a task's kwargs are read once per
    flush that writes it, and most fleets send the same few again and again: short ones are remembered."""
    if isinstance(kwargs_repr, str) and len(kwargs_repr) <= _REMEMBERED_KWARGS_CHARS:
        return _remembered_kwargs_pairs_json(kwargs_repr)
    pairs = kwargs_pairs(kwargs_repr)
    return None if pairs is None else orjson.dumps(pairs).decode()


# Parsing kwargs (ast.literal_eval) was a fifth of the PostgreSQL writer's time: up to this many
# short ones keep their answer (with the pairs' JSON, a couple of MB at most).
_REMEMBERED_KWARGS = 1024
_REMEMBERED_KWARGS_CHARS = 512


@functools.lru_cache(maxsize=_REMEMBERED_KWARGS)
def _remembered_kwargs_pairs_json(kwargs_repr: str) -> str | None:
    pairs = kwargs_pairs(kwargs_repr)
    return None if pairs is None else orjson.dumps(pairs).decode()


def _row(task: TaskDict, seq: int) -> tuple[Any, ...]:
    """The table row of one task (in ``_ROW_COLUMNS`` order)."""
    rest = {k: v for k, v in task.items() if k not in _COLUMN_SET}
    values: dict[str, Any] = {}
    exact: dict[str, str] = {}
    for column in _COLUMNS:
        value = task.get(column)
        fits = value is None or (_is_number(value) if column in _TIME_COLUMNS else isinstance(value, str))
        if not fits:
            rest[column] = value  # repaired when read, as a damaged SQLite row is
            value = None
        elif isinstance(value, str) and "\x00" in value:
            exact[column] = value
            value = _text(value)
        values[column] = value
    if values["cluster"] == DEFAULT_CLUSTER:
        values["cluster"] = None
    if exact:
        rest[EXACT_KEY] = exact
    if not isinstance(values["uuid"], str):
        raise TypeError("a task without a text uuid")
    folds = []
    for column in BARE_COLUMNS:
        text = values[column]
        folded = text.casefold() if isinstance(text, str) and not text.isascii() else None
        folds.append(folded if folded is not None and folded != text.translate(_ASCII_LOWER) else None)
    root_id = task.get("root_id")
    return (seq, *values.values(), *folds, _kwargs_pairs_json(task.get("kwargs")),
            _text(root_id) if isinstance(root_id, str) else None, orjson.dumps(rest).decode())


def _assemble(columns: Sequence[Any], rest: dict[str, Any]) -> TaskDict:
    """The task dict in the API's field order, from its column values and its JSON's fields."""
    exact = rest.pop(EXACT_KEY, None)
    for column, value in zip(_COLUMNS, columns, strict=True):
        if value is not None or column not in rest:
            rest[column] = value
    if isinstance(exact, dict):
        rest.update(exact)
    task = {name: rest.pop(name, None) for name in TASK_FIELDS}
    task["cluster"] = task["cluster"] or DEFAULT_CLUSTER
    task.update(rest)
    return task


def _cluster_sql(clusters: Sequence[str]) -> tuple[str, list[Any]]:
    named = [name for name in clusters if name != DEFAULT_CLUSTER]
    parts = ["cluster = ANY(%s)"] if named else []
    if DEFAULT_CLUSTER in clusters:
        parts.append("cluster IS NULL")
    return "(" + " OR ".join(parts) + ")", [named] if named else []


def _any_of(column: str, values: list[str]) -> tuple[str, list[Any]]:
    """``column`` is one of ``values``. One value (nearly always) is an equality, which walks the
    column's index ``(column, seq)`` in seq order: a page of the newest matches stops at its end."""
    if len(values) == 1:
        return f"{column} = %s", values
    return f"{column} = ANY(%s)", [values]


def _prepare(query: TaskQuery) -> bool | None:
    """Searches are never prepared statements: a generic plan knows neither the search table's hits
    nor the watermark, and may walk a whole index where the hits are a few rows."""
    return False if query.search.expression is not None else None


def _take_ownership(conn: psycopg.Connection[Any], patience: float = 0.0) -> bool:
    """Whether ``conn`` now holds the database for this monitor (the lock ends with the session).

    A monitor that has just let go may still hold it for a moment: the server ends a closed
    session after the client has gone, so a monitor restarted at once asks for ``patience`` seconds.
    """
    deadline = time.monotonic() + patience
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (OWNER_LOCK_KEY,)).fetchone()
        if row is not None and row[0]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


class PostgresStore:
    def __init__(self, url: str, standby: bool = False,
                 search_settle_seconds: float = pg_schema.SETTLE_SECONDS) -> None:
        """Open the history in the database ``url`` names, applying the migrations it lacks.

        When another monitor leads it already: with ``standby``, open it to read (``leading`` is
        False until :meth:`try_lead` succeeds); without, refuse with one line. A finished task joins
        the search table once its last event is ``search_settle_seconds`` old.
        """
        self.dsn = url
        self.leading = False
        self.deposed = False  # lost the lead while cut off from the database: another leads now
        self.path = dsn.shown(url)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[psycopg.Connection[Any]] = []
        self._connections_lock = threading.Lock()
        self.search_indexer = pg_search.SearchIndexer(search_settle_seconds)
        self._hit_cache = pg_search.HitCache()
        self._wrote_at = float("-inf")  # when tasks were last written (the search indexer's budget)
        self._statistics = TableStatistics()
        try:
            self._writer = self._connect(psycopg.IsolationLevel.READ_COMMITTED)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.path}: {dsn.scrub(str(exc), url)}") from None
        try:
            pg_schema.upgrade(self._writer)
            self._trigram = pg_schema.has_trigram_index(self._writer)
            self._writer.execute("CREATE TEMP TABLE incoming (LIKE tasks) ON COMMIT DELETE ROWS")
            owner = _take_ownership(self._writer, patience=0.0 if standby else OWNER_PATIENCE)
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"{self.path}: {dsn.scrub(str(exc), url)}") from None
        if not owner and not standby:
            self.close()
            raise StoreError(f"{self.path}: another monitor keeps its history in this database (one monitor "
                             "per database: stop the other, or give this one a database of its own)")
        self.leading = owner

    def try_lead(self) -> bool:
        """Whether this store leads the history now (taking the lock if it is free)."""
        if self.leading or self.deposed:
            return self.leading
        with self._write_lock:
            try:
                if self._writer.closed:
                    self._writer = self._connect(psycopg.IsolationLevel.READ_COMMITTED)
                    self._writer.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE tasks) "
                                         "ON COMMIT DELETE ROWS")
                self.leading = _take_ownership(self._writer)
            except psycopg.OperationalError as exc:
                log.debug("trying the lead: %s", dsn.scrub(str(exc), self.dsn))
                return False
        return self.leading

    def change_listener(self) -> pg_notices.ChangeListener:
        """A listener for the leader's change notices, on a connection of its own."""
        return pg_notices.ChangeListener(self._connect)

    def _connect(self, isolation: psycopg.IsolationLevel = psycopg.IsolationLevel.REPEATABLE_READ
                 ) -> psycopg.Connection[Any]:
        """A connection in autocommit mode; ``isolation`` for its explicit transactions (readers'
        snapshots repeat their reads; the writer's statements each see what was committed before).
        Raises psycopg's OperationalError when the database cannot be reached: for the writer, a
        storage fault to retry (``disk.storage_faults()``)."""
        given = conninfo_to_dict(self.dsn)
        extra = {k: v for k, v in KEEPALIVES.items() if k not in given}
        conn = psycopg.connect(make_conninfo(self.dsn, **extra), autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        conn.isolation_level = isolation
        pg_arrays.register(conn)
        with self._connections_lock:  # kept to be closed with the store; those dropped are let go
            self._connections = [*(c for c in self._connections if not c.closed), conn]
        return conn

    @property
    def _reader(self) -> psycopg.Connection[Any]:
        """This thread's connection (a new one after the database dropped it)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._connect()
        return conn

    def _rows(self, sql: str, params: Sequence[Any] = (), prepare: bool | None = None) -> list[Any]:
        """Every row of one read on this thread's connection. A connection the database dropped (a
        restart, a failover, an idle timeout) is replaced and the read made again, once, unless it
        was part of a snapshot, whose reads must all come from one transaction. ``prepare`` False:
        never as a prepared statement (whose generic plan cannot see the parameters' values)."""
        conn = self._reader
        try:
            return conn.execute(sql, params, prepare=prepare).fetchall()
        except psycopg.OperationalError:
            if not conn.closed or conn is getattr(self._local, "snapshot", None):
                raise
        return self._reader.execute(sql, params, prepare=prepare).fetchall()

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _write_conn(self) -> psycopg.Connection[Any]:
        """The writing connection (called under the write lock); reopened if the database dropped it.

        A standby does not write: its repairs of damaged rows are left to the leader."""
        if not self.leading:
            raise psycopg.OperationalError("a standby does not write the history")
        if self._writer.closed:
            conn = self._connect(psycopg.IsolationLevel.READ_COMMITTED)
            if not _take_ownership(conn):
                # Taken while this monitor was cut off: another replica leads now. A storage fault
                # for the writer (the writes are kept); the liveness probe asks for a restart.
                conn.close()
                # For good: its pending changes are older than what the new leader writes.
                self.deposed, self.leading = True, False
                raise psycopg.OperationalError("another monitor took this database over while the connection was down")
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE tasks) ON COMMIT DELETE ROWS")
            self._writer = conn
        return self._writer

    # -- writing -------------------------------------------------------------------------------

    def write(
        self, tasks: Iterable[TaskDict], workers: Iterable[dict[str, Any]], meta: dict[str, Any]
    ) -> None:
        batch: dict[Any, TaskDict] = {}
        for task in tasks:
            uuid = task.get("uuid")
            batch[_text(uuid) if isinstance(uuid, str) else uuid] = task
        worker_rows = [(_text(w["hostname"]), orjson.dumps(w).decode()) for w in workers]
        meta_rows = [(k, orjson.dumps(v).decode()) for k, v in meta.items()]
        rows = [_row(task, 0) for task in batch.values()]  # refuses what cannot be stored, before writing
        failed, others = failures.split(batch.values())
        # Names as JSON (exact, NUL characters included): see pg_schema's task_names.
        names = sorted({orjson.dumps(task["name"]).decode() for task in batch.values()
                        if isinstance(task.get("name"), str)})
        with self._write_lock:
            conn = self._write_conn()
            if rows:
                self._wrote_at = time.monotonic()
            added = 0
            with conn.transaction():
                if rows:
                    added = self._upsert(conn, rows, names)
                    pg_failures.write(conn, failed, others)
                if worker_rows:
                    with conn.cursor() as cursor:
                        cursor.executemany("INSERT INTO workers VALUES (%s, %s) "
                                           "ON CONFLICT (hostname) DO UPDATE SET data = excluded.data", worker_rows)
                if meta_rows:
                    with conn.cursor() as cursor:
                        cursor.executemany("INSERT INTO meta VALUES (%s, %s) "
                                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", meta_rows)
                if rows or worker_rows:  # standbys' pages: sent when (and only if) this commits
                    pg_notices.send(conn, [row[1] for row in rows], [row[0] for row in worker_rows])
            self._statistics.grown(conn, added)

    @staticmethod
    def _upsert(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]], names: list[str]) -> int:
        """Give the new tasks the next seqs, in order, then copy and upsert the whole batch; returns
        how many tasks were new."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        uuids = pg_arrays.Texts(row[1] for row in rows)
        known = dict(conn.execute("SELECT uuid, seq FROM tasks WHERE uuid = ANY(%s)", (uuids,)).fetchall())
        top = conn.execute("SELECT max(seq) FROM tasks").fetchone()
        next_seq = first_seq = (top[0] if top and top[0] is not None else 0) + 1
        with conn.cursor() as cursor, cursor.copy(f"COPY incoming ({', '.join(_ROW_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                seq = known.get(row[1])
                if seq is None:
                    seq, next_seq = next_seq, next_seq + 1
                copy.write_row((seq, *row[1:]))
        conn.execute(_UPSERT)
        if names:
            conn.execute("INSERT INTO task_names SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (names,))
        return next_seq - first_seq

    def index_search(self, budget_seconds: float = 0.05, until: Callable[[], bool] | None = None) -> int:
        """Fill the search table for about ``budget_seconds`` (the leader's writer, between flushes);
        for ``IDLE_INDEX_SECONDS`` once nothing has been written for a second: the work is the
        server's, and a history left behind by a burst is searched by scanning until it catches up.
        Nothing while ``until`` says the writer is wanted elsewhere (the applier waits for room)."""
        if not self.leading or (until is not None and until()):
            return 0
        if time.monotonic() - self._wrote_at >= 1.0:
            budget_seconds = max(budget_seconds, IDLE_INDEX_SECONDS)
        with self._write_lock:
            return self.search_indexer.run(self._write_conn(), budget_seconds)

    def release_memory(self) -> None:
        """Nothing to do: the server caches the pages, not this process."""

    def delete_workers(self, hostnames: Iterable[str]) -> None:
        with self._write_lock:
            self._write_conn().execute("DELETE FROM workers WHERE hostname = ANY(%s)",
                                       ([_text(h) for h in hostnames],))

    def trim(self, max_tasks: int) -> Removed:
        removed = Removed()
        with self._write_lock:
            low, high = self._write_conn().execute(_SEQ_RANGE).fetchone() or (None, None)
        if low is None or high is None or high - low + 1 <= max_tasks:
            return removed
        cutoff = high - max_tasks
        for start in range(low, cutoff + 1, TRIM_CHUNK):
            end = min(start + TRIM_CHUNK - 1, cutoff)
            with self._write_lock:
                conn = self._write_conn()
                with conn.transaction():
                    counted = conn.execute(
                        "WITH gone AS (DELETE FROM tasks WHERE seq BETWEEN %s AND %s RETURNING cluster, state) "
                        "SELECT cluster, state, count(*) FROM gone GROUP BY cluster, state", (start, end)).fetchall()
                for cluster, state, count in counted:
                    removed.add(cluster, state, count)
        return removed

    def trim_age(self, cutoff: float) -> Removed:
        removed = Removed()
        more = True
        while more:  # a chunk per transaction, as trim(), up to the first task seen at or after cutoff
            with self._write_lock:
                conn = self._write_conn()
                with conn.transaction():
                    more = self._trim_age_chunk(conn, cutoff, removed)
        return removed

    @staticmethod
    def _trim_age_chunk(conn: psycopg.Connection[Any], cutoff: float, removed: Removed) -> bool:
        """Delete the oldest tasks, at most a chunk, up to the first seen at or after ``cutoff``; count
        them into ``removed``. Whether there may be more to delete."""
        row = conn.execute("SELECT min(seq) FROM tasks").fetchone()
        low = row[0] if row else None
        if low is None:
            return False
        end = low + TRIM_CHUNK - 1
        row = conn.execute(f"SELECT min(seq) FROM tasks WHERE seq BETWEEN %s AND %s AND {FIRST_SEEN} >= %s",
                           (low, end, cutoff)).fetchone()
        young = row[0] if row else None
        if young is not None:
            end = young - 1
        if end < low:
            return False
        for cluster, state, count in conn.execute(
                "WITH gone AS (DELETE FROM tasks WHERE seq BETWEEN %s AND %s RETURNING cluster, state) "
                "SELECT cluster, state, count(*) FROM gone GROUP BY cluster, state", (low, end)).fetchall():
            removed.add(cluster, state, count)
        return young is None

    def trim_failures_age(self, cutoff: float) -> int:
        gone = 0
        while True:
            with self._write_lock:
                conn = self._write_conn()
                with conn.transaction():
                    count = pg_failures.trim_age(conn, cutoff, TRIM_CHUNK)
            gone += count
            if count < TRIM_CHUNK:
                return gone

    def trim_failures(self, max_failed: int) -> int:
        with self._write_lock:
            conn = self._write_conn()
            with conn.transaction():
                return pg_failures.trim(conn, max_failed)

    def close(self) -> None:
        # Let go of the database before the connections go: the next monitor need not wait for
        # the server to notice the session has ended.
        if not self._writer.closed:
            try:
                self._writer.execute("SELECT pg_advisory_unlock_all()")
            except psycopg.Error:
                pass  # the session is ending anyway, and its locks with it
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except psycopg.Error as exc:
                log.debug("closing a history connection: %s", dsn.scrub(str(exc), self.dsn))

    # -- reading -------------------------------------------------------------------------------

    def get_task(self, uuid: str) -> TaskDict | None:
        tasks = self._fetch_tasks(f"{_SELECT} WHERE uuid = %s", (_text(uuid),))
        if not tasks:  # trimmed from the history, a failure may still be kept (--max_failed_tasks)
            return pg_failures.get(self._rows, uuid)
        return tasks[0][1]

    # -- failure groups (failures.py) ------------------------------------------------------------

    def failure_groups(self, since: float, width: float, clusters: Sequence[str] = ()) -> list[failures.GroupCounts]:
        with self.snapshot():
            return pg_failures.groups(self._rows, since, width, clusters)

    def failure_sample(self, name: str, exception_type: str,
                       cluster: str = DEFAULT_CLUSTER) -> TaskDict | None:
        return pg_failures.sample(self._rows, name, exception_type, cluster)

    def failure_tasks(self, name: str, exception_type: str, limit: int | None = None, offset: int = 0,
                      clusters: Sequence[str] = (DEFAULT_CLUSTER,)) -> list[TaskDict]:
        return pg_failures.tasks(self._rows, name, exception_type, clusters, limit, offset)

    def failure_count(self, name: str, exception_type: str, clusters: Sequence[str] = (DEFAULT_CLUSTER,)) -> int:
        return pg_failures.count(self._rows, name, exception_type, clusters)

    def failures_after(self, seq: int, limit: int) -> list[tuple[int, TaskDict]]:
        return pg_failures.after(self._rows, seq, limit)

    def keep_failures(self, tasks: Iterable[TaskDict]) -> None:
        rows, _ = failures.split(tasks)
        if rows:
            with self._write_lock:
                conn = self._write_conn()
                with conn.transaction():
                    pg_failures.write(conn, rows, [])

    def failure_total(self, clusters: Sequence[str] = ()) -> int:
        return pg_failures.total(self._rows, clusters)

    def get_tasks(self, uuids: Iterable[str]) -> dict[str, TaskDict]:
        wanted = [_text(uuid) for uuid in uuids]
        found: dict[str, TaskDict] = {}
        for i in range(0, len(wanted), 500):
            rows = self._fetch_tasks(f"{_SELECT} WHERE uuid = ANY(%s)", (pg_arrays.Texts(wanted[i : i + 500]),))
            found.update((task["uuid"], task) for _, task in rows)
        return found

    def workflow_tasks(self, root_id: str, limit: int) -> list[TaskDict]:
        """The first ``limit`` tasks (in the order first seen) whose root is ``root_id``."""
        root = _text(root_id)
        # The root by its uuid, the others from the workflow index in order, then the first of them all.
        sql = (f"{_SELECT} WHERE seq IN (SELECT seq FROM tasks WHERE uuid = %s AND root_id = %s UNION ALL "
               "(SELECT seq FROM tasks WHERE root_id = %s AND root_id <> uuid ORDER BY seq LIMIT %s)) "
               "ORDER BY seq LIMIT %s")
        rows = self._fetch_tasks(sql, (root, root, root, limit, limit))
        return [task for _, task in rows if task.get("root_id") == root_id]

    def _fetch_tasks(self, sql: str, params: Sequence[Any], prepare: bool | None = None) -> list[tuple[int, TaskDict]]:
        """The (seq, task) of a ``SELECT seq, <columns>, data`` query, in its order, checked."""
        tasks = []
        for row in self._rows(sql, params, prepare):
            seq, columns, data = row[0], row[1:-1], row[-1]
            try:
                rest = orjson.loads(data)
            except orjson.JSONDecodeError:
                tasks.append((seq, self._repaired(seq, columns, data, "its data is not JSON")))
                continue
            if isinstance(rest, dict):
                task = _assemble(columns, dict(rest))  # rest stays whole, for the quarantine
                if stored.task_problems(task) is None:
                    tasks.append((seq, task))
                    continue
            tasks.append((seq, self._repaired(seq, columns, rest, "a field of the wrong type")))
        return tasks

    def _repaired(self, seq: int, columns: Sequence[Any], data: Any, problem: str) -> TaskDict:
        """Quarantine a bad row and put its repaired version in its place (same seq)."""
        uuid = columns[0]
        original = (_assemble(columns, dict(data)) if isinstance(data, dict)
                    else dict(zip(_COLUMNS, columns, strict=True)))
        task, dropped = stored.repair_task(original, uuid)
        detail = f"{problem}: {', '.join(dropped)}" if dropped else problem
        self.set_aside("task", uuid, detail, raw_text([*columns, data]))
        try:
            with self._write_lock:
                row = _row(task, seq)
                self._write_conn().execute(
                    f"UPDATE tasks SET ({', '.join(_ROW_COLUMNS[2:])}) = ({', '.join(['%s'] * (len(row) - 2))}) "
                    "WHERE seq = %s", (*row[2:], seq))
        except (psycopg.Error, TypeError, orjson.JSONEncodeError) as exc:
            log.warning("could not write the repaired task %s back: %s", uuid[:80], exc)
        return task

    def _where(self, query: TaskQuery, excluding: Sequence[int] = (),
               extra: tuple[str, list[Any]] | None = None) -> tuple[str, list[Any]]:
        """The WHERE clause of a query; ``excluding`` leaves out these seqs (rows known to be stale);
        ``extra``: one more condition (a part of the order past a cursor)."""
        clauses: list[str] = []
        params: list[Any] = []
        if extra is not None:
            clauses.append(extra[0])
            params.extend(extra[1])

        def add(clause: tuple[str, list[Any]]) -> None:
            clauses.append(clause[0])
            params.extend(clause[1])

        # Whole values ignoring case, as SQLite's store compares them: the values present that fold
        # to the same text are looked up first, so the column's index still does the work.
        for column, wanted in (("worker", query.workers), ("name", query.names), ("state", query.states)):
            if wanted:
                add(_any_of(column, self.values_folding_to(column, wanted)))
        if query.clusters:
            add(_cluster_sql(query.clusters))
        if query.received_start is not None:
            add(("received >= %s", [query.received_start]))
        if query.received_end is not None:
            add(("received <= %s", [query.received_end]))
        if query.search.expression is not None:
            add(self._search_sql(query.search.expression))
        if excluding:
            add(("seq <> ALL(%s)", [pg_arrays.Seqs(excluding)]))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _search_sql(self, expression: Expression) -> tuple[str, list[Any]]:
        if not isinstance(expression, Term):
            parts = [self._search_sql(child) for child in expression.children]
            joiner = " AND " if isinstance(expression, All) else " OR "
            return "(" + joiner.join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]
        if expression.pair is not None:
            return self._kwargs_sql(*expression.pair)
        if expression.field == "state":
            return _any_of("state", self.values_folding_to("state", [expression.value]))
        # As SQLite's LIKE reads its pattern: nothing after a NUL character takes part.
        folded = expression.folded.split("\x00", 1)[0]
        columns = BARE_COLUMNS if expression.field is None else (expression.field,)
        text = pg_schema.ascii_lower if expression.plain else pg_schema.folded
        checks = " OR ".join(f"strpos({text(column)}, %s) > 0" for column in columns)
        return f"({checks})", [folded] * len(columns)

    @staticmethod
    def _kwargs_sql(key: str, expected: str) -> tuple[str, list[Any]]:
        """``kwargs:key=value``: the pairs read from literal kwargs, else the pair as text (kwargs_match's rules)."""
        key, expected = pg_search.kwargs_term(key, expected)
        pair = orjson.dumps([{"k": key, "v": expected}]).decode()
        text = pg_schema.folded("kwargs")
        return (f"(kwargs_pairs @> %s::jsonb OR (kwargs_pairs IS NULL AND kwargs <> ''"
                f" AND (strpos({text}, %s) > 0 OR strpos({text}, %s) > 0)))",
                [pair, f"'{key}': {expected}", f"'{key}': '{expected}'"])

    def _candidates(self, query: TaskQuery, counting: bool = False) -> tuple[str, list[Any]] | None:
        """The rows to read (a FROM source and its parameters) when the search table is to answer
        this query's search; None when a scan is (see ``pg_search.index_hits``). Past MAX_HITS hits
        a page is read in its order, checking every task, and a total still from the index."""
        if query.search.expression is None:
            return None
        predicate = pg_search.index_predicate(query.search.expression, self._trigram)
        if predicate is None:
            return None
        found = pg_search.index_hits(self._rows, predicate, self._hit_cache)
        if found is None:
            return None
        hits, watermark = found
        if len(hits) <= pg_search.MAX_HITS:
            return pg_search.CANDIDATE_TASKS, [pg_arrays.Seqs(hits), watermark, watermark]
        if counting:
            return pg_search.CANDIDATE_MATCHES.format(predicate=predicate[0]), [*predicate[1], watermark, watermark]
        return None

    def values_folding_to(self, column: str, wanted: Sequence[str]) -> list[str]:
        """The distinct values of ``column`` (worker, name or state) equal to one of ``wanted``, ignoring case."""
        folded = {_text(value).casefold() for value in wanted}
        present = self.distinct_values(column)
        return [_text(value) for value in present if _text(value).casefold() in folded]

    def distinct_values(self, column: str) -> list[str]:
        """The distinct values of an indexed column, one index seek each (not a walk of every row)."""
        if column == "name":
            return self.task_names()
        sql = (f"WITH RECURSIVE d(v) AS (SELECT min({column}) FROM tasks UNION ALL "
               f"SELECT (SELECT min({column}) FROM tasks WHERE {column} > d.v) FROM d WHERE d.v IS NOT NULL) "
               "SELECT v FROM d WHERE v IS NOT NULL")
        return [row[0] for row in self._rows(sql)]

    def query_sql(self, query: TaskQuery, excluding: Sequence[int] = (), select: str = _SELECT,
                  extra: tuple[str, list[Any]] | None = None) -> tuple[str, list[Any]]:
        """The SELECT for a query: filters, an order an index can deliver, and the page.

        ``select`` is the statement up to and including FROM's table (``SELECT seq FROM tasks`` for
        the order alone). A search the search table can narrow down reads its candidates only (call
        it in a snapshot: the hits and the rows they stand for must agree).
        """
        where, params = self._where(query, excluding, extra)
        if (found := self._candidates(query)) is not None:
            select = select.removesuffix("FROM tasks") + "FROM " + found[0]
            params = [*found[1], *params]
        direction = "DESC" if query.descending else "ASC"
        nulls = "NULLS LAST" if query.descending else "NULLS FIRST"  # SQLite's order: NULL is the least
        if query.sort_by == "uuid":  # never NULL, and unique
            order = f" ORDER BY uuid {direction}"
        elif query.sort_by and query.sort_by in SORT_KEYS:
            order = f" ORDER BY {query.sort_by} {direction} {nulls}, seq {direction}"
        elif query.received_start is not None or query.received_end is not None:
            order = f" ORDER BY received {direction} {nulls}, seq {direction}"
        else:
            order = f" ORDER BY seq {direction}"
            if query.offset and not where:
                # Seq has no gaps (trimming deletes from the low end only), so a deep page of the
                # whole history starts at a seq computed from the offset.
                start = "(SELECT max(seq) FROM tasks) - %s" if query.descending else "(SELECT min(seq) FROM tasks) + %s"
                where = f" WHERE seq {'<=' if query.descending else '>='} {start}"
                limit = "" if query.limit is None else " LIMIT %s"
                return select + where + order + limit, [query.offset, *([] if query.limit is None else [query.limit])]
        page = ""
        if query.limit is not None:
            page += " LIMIT %s"
            params = [*params, query.limit]
        if query.offset:
            page += " OFFSET %s"
            params = [*params, query.offset]
        return select + where + order + page, params

    # -- reading beside the writer's pending changes (service.py lays them over these) ------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction (repeatable read) for several reads that must agree."""
        conn = self._reader
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            yield
            return
        self._local.snapshot = conn
        try:
            with conn.transaction():
                yield
        finally:
            self._local.snapshot = None

    def seqs_of(self, uuids: Iterable[str]) -> dict[str, int]:
        wanted = [_text(uuid) for uuid in uuids]
        if not wanted:
            return {}
        return dict(self._rows("SELECT uuid, seq FROM tasks WHERE uuid = ANY(%s)", (pg_arrays.Texts(wanted),)))

    def ordered_seqs(self, query: TaskQuery, excluding: Sequence[int] = ()) -> list[int]:
        with self.snapshot():  # the total and the page (and the search's hits) from one snapshot
            if query.after is not None:
                return self._seqs_after(query, excluding)
            if query.limit is not None and query.offset >= DEEP_PAGE:
                return self._deep_seqs(query, excluding)
            sql, params = self.query_sql(query, excluding, select="SELECT seq FROM tasks")
            return [row[0] for row in self._rows(sql, params, _prepare(query))]

    def _seqs_after(self, query: TaskQuery, excluding: Sequence[int]) -> list[int]:
        """A page past its cursor (keyset paging): each part of the order past it (pg's row comparison,
        then the NULLs where they follow) is one seek in the order's index, however deep the page."""
        assert query.after is not None
        cursor = query.after
        if isinstance(cursor.value, str):  # as the column holds it
            cursor = dataclasses.replace(cursor, value=_text(cursor.value))

        def seqs_of(part: TaskQuery, clause: tuple[str, list[Any]]) -> list[int]:
            sql, params = self.query_sql(part, excluding, select="SELECT seq FROM tasks", extra=clause)
            return [row[0] for row in self._rows(sql, params, _prepare(query))]

        return seqs_past_cursor(query, cursor, "%s", seqs_of)

    def _deep_seqs(self, query: TaskQuery, excluding: Sequence[int]) -> list[int]:
        """A deep page's seqs. Rows skipped by an offset are still walked, one index entry each: a page
        past the middle is read from the other end (the reverse order, then reversed), so the worst
        page walks half the matches, and the last pages (the table's "last" button) hardly any."""
        assert query.limit is not None
        total = self.count_tasks(query, excluding)
        remaining = total - query.offset
        if remaining <= 0:
            return []
        flip = query.offset > remaining
        if flip:  # position p of the order is position total - 1 - p of the reverse order
            query = dataclasses.replace(query, descending=not query.descending,
                                        offset=max(0, remaining - query.limit), limit=min(query.limit, remaining))
        sql, params = self.query_sql(query, excluding, select="SELECT seq FROM tasks")
        seqs = [row[0] for row in self._rows(sql, params, _prepare(query))]
        return seqs[::-1] if flip else seqs

    def tasks_in_order(self, seqs: Sequence[int]) -> list[tuple[int, TaskDict]]:
        """These tasks with their seqs, in the order given; those deleted meanwhile are left out."""
        sql = (f"SELECT t.seq, {', '.join(f't.{c}' for c in _COLUMNS)}, t.data "
               "FROM unnest(%s::bigint[]) WITH ORDINALITY AS j(seq, n) JOIN tasks t ON t.seq = j.seq ORDER BY j.n")
        return self._fetch_tasks(sql, (pg_arrays.Seqs(seqs),))

    def query_tasks(self, query: TaskQuery, excluding: Sequence[int] = ()) -> list[TaskDict]:
        with self.snapshot():
            if query.after is not None:
                return [task for _, task in self.tasks_in_order(self._seqs_after(query, excluding))]
            if query.limit is not None and query.offset >= DEEP_PAGE:
                # The page's seqs from the order's index alone, then its rows: reading the row of every
                # task the offset skips (as LIMIT ... OFFSET does) took seconds at 10,000,000 tasks.
                return [task for _, task in self.tasks_in_order(self._deep_seqs(query, excluding))]
            sql, params = self.query_sql(query, excluding)
            return [task for _, task in self._fetch_tasks(sql, params, _prepare(query))]

    def count_tasks(self, query: TaskQuery, excluding: Sequence[int] = (), cap: int | None = None) -> int:
        if (query.search.expression is None and query.received_start is None and query.received_end is None
                and not query.clusters):
            total = self._counted(query, excluding)
            return total if cap is None else min(total, cap + 1)
        with self.snapshot():
            where, params = self._where(query, excluding)
            source = "tasks"
            if (found := self._candidates(query, counting=True)) is not None:
                source, params = found[0], [*found[1], *params]
            if cap is None:
                sql = f"SELECT count(*) FROM {source}{where}"
            else:  # the matches up to one past the cap: "more than cap" is all the caller asks beyond it
                if self._past_cap(query, excluding, cap):
                    return cap + 1
                sql = f"SELECT count(*) FROM (SELECT 1 FROM {source}{where} LIMIT %s) AS capped"
                params = [*params, cap + 1]
            rows = self._rows(sql, params, _prepare(query))
            row = rows[0] if rows else None
        return int(row[0]) if row else 0

    def _past_cap(self, query: TaskQuery, excluding: Sequence[int], cap: int) -> bool:
        """Whether the first of a search's many index hits (past MAX_HITS, kept from the page's
        lookup) already hold more than ``cap`` matches: each checked by seq, no walk of the table
        (a common term's capped total took seconds through ``CANDIDATE_MATCHES``' hash join)."""
        predicate = (pg_search.index_predicate(query.search.expression, self._trigram)
                     if query.search.expression is not None else None)
        found = None if predicate is None else pg_search.index_hits(self._rows, predicate, self._hit_cache)
        if found is None or len(found[0]) <= pg_search.MAX_HITS or len(found[0]) <= cap:
            return False
        where, params = self._where(query, excluding)
        sql = f"SELECT count(*) FROM (SELECT 1 FROM tasks{where} AND seq = ANY(%s) LIMIT %s) AS capped"
        row = self._rows(sql, [*params, pg_arrays.Seqs(found[0]), cap + 1], _prepare(query))
        return bool(row) and int(row[0][0]) > cap

    def _counted(self, query: TaskQuery, excluding: Sequence[int]) -> int:
        """The total of a query filtering by name, state and worker only, from ``task_counts``
        (pg_schema, migration 7): a sum over a few hundred rows at most, not a count of the tasks."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, wanted in (("worker", query.workers), ("name", query.names), ("state", query.states)):
            if wanted:
                clause, values = _any_of(column, self.values_folding_to(column, wanted))
                clauses.append(clause)
                params.extend(values)
        if not clauses:
            total = self.task_count()
        else:
            row = self._row(f"SELECT coalesce(sum(n), 0) FROM task_counts WHERE {' AND '.join(clauses)}", params)
            total = int(row[0]) if row else 0
        if excluding:  # rows known to be stale are left out of the total, as from the page
            where = " AND ".join([*clauses, "seq = ANY(%s)"])
            row = self._row(f"SELECT count(*) FROM tasks WHERE {where}", [*params, pg_arrays.Seqs(excluding)])
            total -= int(row[0]) if row else 0
        return total

    def task_count(self) -> int:
        low, high = self._row(_SEQ_RANGE) or (None, None)
        return 0 if high is None else int(high - low + 1)

    def task_names(self) -> list[str]:
        names = []
        for (name_json,) in self._rows("SELECT name_json FROM task_names"):
            try:
                name = orjson.loads(name_json)
            except orjson.JSONDecodeError:
                continue
            if isinstance(name, str):
                names.append(name)
        return sorted(names)  # code point order, as SQLite's

    def cluster_state_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        sql = ("SELECT cluster, state, count(*) FROM tasks WHERE cluster IS NOT NULL AND state IS NOT NULL "
               "GROUP BY cluster, state")
        for cluster, state, count in self._rows(sql):
            counts.setdefault(cluster, {})[state] = int(count)
        return counts

    def state_counts(self) -> dict[str, int]:
        sql = "SELECT state, sum(n) FROM task_counts WHERE state IS NOT NULL GROUP BY state HAVING sum(n) > 0"
        return {state: int(count) for state, count in self._rows(sql) if state}

    def load_workers(self) -> list[dict[str, Any]]:
        workers = []
        for hostname, data in self._rows("SELECT hostname, data FROM workers"):
            try:
                worker, dropped = stored.repair_worker(orjson.loads(data))
            except orjson.JSONDecodeError:
                worker, dropped = None, ["(not JSON)"]
            if worker is not None and worker.hostname == hostname:
                workers.append(worker.to_store())
                if not dropped:
                    continue
            self.set_aside("worker", str(hostname), f"a field of the wrong type: {', '.join(dropped)}",
                           raw_text([hostname, data]))
            try:
                with self._write_lock:
                    conn = self._write_conn()
                    if worker is None or worker.hostname != hostname:
                        conn.execute("DELETE FROM workers WHERE hostname = %s", (hostname,))
                    else:
                        conn.execute("UPDATE workers SET data = %s WHERE hostname = %s",
                                     (orjson.dumps(worker.to_store()).decode(), hostname))
            except psycopg.Error as exc:
                log.warning("could not replace the damaged worker %s: %s", str(hostname)[:80], exc)
        return workers

    def load_meta(self, key: str) -> Any:
        row = self._row("SELECT value FROM meta WHERE key = %s", (key,))
        if row is None:
            return None
        try:
            return orjson.loads(row[0])
        except orjson.JSONDecodeError:
            self.set_aside("meta", key, "not JSON", raw_text(repr(row[0])))
            return None

    def set_aside(self, kind: str, key: str, problem: str, raw: bytes) -> None:
        """Keep a damaged record's original in the quarantine table and report it."""
        log.warning("the history's %s %s is damaged or from an older version (%s): repaired, original "
                    "kept in the quarantine table", kind, key[:80], problem[:200])
        try:
            with self._write_lock:
                self._write_conn().execute(
                    "INSERT INTO quarantine (time, kind, key, problem, raw) VALUES (extract(epoch FROM now()), "
                    "%s, %s, %s, %s)", (kind, _text(key), _text(problem), raw))
        except psycopg.Error as exc:
            log.warning("could not keep the damaged %s %s aside: %s", kind, key[:80], exc)

    def quarantined(self) -> dict[str, Any]:
        count = self._row("SELECT count(*) FROM quarantine")
        rows = self._rows("SELECT time, kind, key, problem FROM quarantine ORDER BY seq DESC LIMIT %s", (LATEST,))
        return {"rows": int(count[0]) if count else 0,
                "latest": [{"at": at, "kind": kind, "key": key, "problem": problem} for at, kind, key, problem in rows]}

    # -- sign-outs and failed logins shared by the replicas -----------------------------------------

    def exchange_auth(self, revoked: dict[str, float], failures: list[tuple[str, float]], window: float
                      ) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Add this replica's new sign-outs (session id: until) and failed logins (client, time),
        forget what has expired, and return every replica's: the sign-outs still in force and the
        failed logins of the last ``window`` seconds per client. Kept in ``meta`` (keys ``auth.*``)."""
        now = time.time()
        by_client: dict[str, list[float]] = {}
        for client, at in failures:
            by_client.setdefault(_text(client), []).append(at)
        conn = self._reader
        with conn.transaction():
            if revoked:
                with conn.cursor() as cursor:
                    cursor.executemany("INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = "
                                       "excluded.value", [(f"auth.revoked.{_text(sid)}", orjson.dumps(until).decode())
                                                          for sid, until in revoked.items()])
            if by_client:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = "
                        "(meta.value::jsonb || excluded.value::jsonb)::text",
                        [(f"auth.failures.{client}", orjson.dumps(at).decode()) for client, at in by_client.items()])
            conn.execute("DELETE FROM meta WHERE key LIKE %s AND value::float8 < %s", ("auth.revoked.%", now))
            conn.execute("DELETE FROM meta WHERE key LIKE %s AND NOT EXISTS (SELECT 1 FROM "
                         "jsonb_array_elements_text(value::jsonb) t WHERE t::float8 >= %s)",
                         ("auth.failures.%", now - window))
            rows = conn.execute("SELECT key, value FROM meta WHERE key LIKE %s", ("auth.%",)).fetchall()
        in_force: dict[str, float] = {}
        recent: dict[str, list[float]] = {}
        for key, value in rows:
            try:
                data = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if key.startswith("auth.revoked.") and _is_number(data):
                in_force[key.removeprefix("auth.revoked.")] = float(data)
            elif key.startswith("auth.failures.") and isinstance(data, list):
                recent[key.removeprefix("auth.failures.")] = [float(t) for t in data
                                                              if _is_number(t) and now - t <= window]
        return in_force, recent

    # -- audit trail -----------------------------------------------------------------------------

    def add_audit(self, entry: dict[str, Any]) -> int:
        """Append one control action; returns its id (ids grow with time)."""
        columns = (entry["time"], entry.get("user"), entry.get("action"), entry.get("target"), entry.get("status"))
        rest = {k: v for k, v in entry.items() if k not in {"id", "time", "user", "action", "target", "status"}}
        sql = ('INSERT INTO audit (time, "user", action, target, status, data) VALUES (%s, %s, %s, %s, %s, %s) '
               "RETURNING seq")
        params = (*columns, orjson.dumps(rest, option=orjson.OPT_NON_STR_KEYS).decode())
        if not self.leading:  # control actions run on every replica: each appends to the one trail
            row = self._reader.execute(sql, params).fetchone()
            return int(row[0]) if row else 0
        with self._write_lock:
            row = self._write_conn().execute(sql, params).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _audit_where(user: str | None, action: str | None, target: str | None = None,
                     since: float | None = None, until: float | None = None,
                     clusters: Sequence[str] = ()) -> tuple[str, list[Any]]:
        tests = (('"user" = %s', user), ("action = %s", action), ("target = %s", target), ("time >= %s", since),
                 ("time <= %s", until))
        clauses = [clause for clause, value in tests if value is not None and value != ""]
        params: list[Any] = [value for _, value in tests if value is not None and value != ""]
        if clusters:
            # The cluster is in the entry's JSON (the trail is short: no index). An entry without
            # the key was written before clusters existed: it is default's.
            clause = "(data::jsonb ->> 'cluster') = ANY(%s)"
            if DEFAULT_CLUSTER in clusters:
                clause = f"({clause} OR NOT (data::jsonb ? 'cluster'))"
            clauses.append(clause)
            params.append(list(clusters))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def audit_entries(self, limit: int = 50, offset: int = 0, user: str | None = None,
                      action: str | None = None, target: str | None = None, since: float | None = None,
                      until: float | None = None, clusters: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        where, params = self._audit_where(user, action, target, since, until, clusters)
        sql = (f'SELECT seq, time, "user", action, target, status, data FROM audit{where}'
               " ORDER BY seq DESC LIMIT %s OFFSET %s")
        entries = []
        for seq, at, who, what, aimed, status, data in self._rows(sql, [*params, limit, offset]):
            entry = {"id": seq, "time": at, "user": who, "action": what, "target": aimed, "status": status}
            entry.update(orjson.loads(data))
            entries.append(entry)
        return entries

    def audit_count(self, user: str | None = None, action: str | None = None, target: str | None = None,
                    since: float | None = None, until: float | None = None, clusters: Sequence[str] = ()) -> int:
        where, params = self._audit_where(user, action, target, since, until, clusters)
        row = self._row(f"SELECT count(*) FROM audit{where}", params)
        return int(row[0]) if row else 0

    def audit_facets(self, clusters: Sequence[str] = ()) -> dict[str, list[str]]:
        """The distinct users and actions of the audit trail."""
        where, params = self._audit_where(None, None, clusters=clusters)
        joiner = " AND" if where else " WHERE"
        return {name: [row[0] for row in self._rows(
                    f"SELECT DISTINCT {column} FROM audit{where}{joiner} {column} IS NOT NULL"
                    f" ORDER BY {column}", params)]
                for name, column in (("user", '"user"'), ("action", "action"))}

    def size_bytes(self) -> int:
        row = self._row("SELECT pg_database_size(current_database())")
        return int(row[0]) if row else 0

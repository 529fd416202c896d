"""SQLite task history: WAL journal, one writer, a connection per reading thread, indexes for
every filter and sort the API offers.

Rows keep the searchable and sortable fields as columns and everything else as one JSON blob.
``seq`` (the rowid) is the order tasks were first seen in: new tasks list first, and trimming to
``--max_tasks`` deletes from the low end, so the row count is always ``max(seq) - min(seq) + 1``.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import uuid as uuid_module
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import orjson

from celery_monitor.state.models import DEFAULT_CLUSTER, TASK_FIELDS
from celery_monitor.store import failures, search_index, sqlite_failures, stored
from celery_monitor.store.base import Removed, StoreError, TaskDict
from celery_monitor.store.quarantine import Quarantine, raw_text
from celery_monitor.store.query import SORT_KEYS, TaskQuery, seqs_past_cursor
from celery_monitor.store.search import (
    BARE_COLUMNS,
    FOLDS_TO_ASCII,
    All,
    Expression,
    Term,
    contains,
    kwargs_match,
    like_pattern,
)

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1

_COLUMNS = ("uuid", "name", "state", "worker", "received", "sent", "started", "succeeded", "failed",
            "timestamp", "runtime", "args", "kwargs", "result", "cluster")  # fmt: skip
_AUDIT_COLUMNS = frozenset({"id", "time", "user", "action", "target", "status"})

# A workflow's tasks (/workflow/<root_id>) by an index on the root_id their JSON holds: the index is
# built when a history of an earlier version is opened, and a blob that is not JSON is left out of it.
# Only tasks of a workflow other than its root are in it: most tasks are their own root, and an
# index entry is rewritten with every write of its row (the whole of `data` is the key's source),
# which made this index an eighth of what the history wrote to disk. The root is read by its uuid.
_ROOT_ID = ("(CASE WHEN json_valid(CAST(data AS TEXT)) "
            "THEN json_extract(CAST(data AS TEXT), '$.root_id') END)")
_IN_WORKFLOW = f"{_ROOT_ID} <> uuid"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT, state TEXT, worker TEXT,
    received REAL, sent REAL, started REAL, succeeded REAL, failed REAL, timestamp REAL, runtime REAL,
    args TEXT, kwargs TEXT, result TEXT,
    data BLOB NOT NULL,
    cluster TEXT
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
DROP INDEX IF EXISTS tasks_root_id;
CREATE INDEX IF NOT EXISTS tasks_workflow ON tasks({_ROOT_ID}, seq) WHERE {_IN_WORKFLOW};
CREATE TABLE IF NOT EXISTS task_names (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers (hostname TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL, user TEXT, action TEXT, target TEXT, status INTEGER,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_user ON audit(user, seq);
CREATE INDEX IF NOT EXISTS audit_action ON audit(action, seq);
CREATE INDEX IF NOT EXISTS audit_target ON audit(target, seq);
CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
"""

# Writes go in bulk: one JSON array of task dicts per statement, unpacked by SQLite itself. A
# statement per row would hand the GIL back and forth for every row, and while the applier keeps
# the GIL busy each hand-back waits for a thread switch (milliseconds): a flush of thousands of
# tasks would take seconds. One statement per chunk runs in C with the GIL released throughout.
_COLUMN_SET = frozenset(_COLUMNS)
_COLUMN_PATHS = [f"'$.{c}'" for c in _COLUMNS]
_COLUMN_VALUES = [f"json_extract(value, {path})" for path in _COLUMN_PATHS]
_COLUMN_VALUES[_COLUMNS.index("cluster")] = f"nullif(json_extract(value, '$.cluster'), '{DEFAULT_CLUSTER}')"
_BULK_UPSERT = (
    f"INSERT INTO tasks ({', '.join(_COLUMNS)}, data) "
    f"SELECT {', '.join(_COLUMN_VALUES)}, "
    f"json_remove(value, {', '.join(_COLUMN_PATHS)}) "
    "FROM json_each(?) WHERE true "  # "WHERE true" tells the parser the ON CONFLICT is the upsert's
    "ON CONFLICT(uuid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*_COLUMNS[1:], "data"))
)
_ROW_UPSERT = (
    f"INSERT INTO tasks ({', '.join(_COLUMNS)}, data) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))}) "
    "ON CONFLICT(uuid) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in (*_COLUMNS[1:], "data"))
)
WAL_CHECKPOINT_PAGES = 10_000  # of 4 KB
WAL_KEPT_BYTES = 64 * 2**20  # a WAL that grew past this (a reader held a checkpoint back) is cut back to it
WRITE_CHUNK = 2000  # tasks per statement: a few MB of JSON, built while holding the GIL briefly
_SELECT_FROM = f"SELECT {', '.join(_COLUMNS)}, data FROM "
_SELECT = _SELECT_FROM + "tasks"
# Two subqueries: SQLite answers a lone min() or max() from the end of the rowid tree, but
# "SELECT min(seq), max(seq)" walks every row (close to a second at a million tasks).
_SEQ_RANGE = "SELECT (SELECT min(seq) FROM tasks), (SELECT max(seq) FROM tasks)"
TRIM_CHUNK = 1000  # rows per trimming transaction: short enough that no flush waits visibly
# A task's age for --max_task_age: its first known time, as close to when the monitor first saw it
# (its seq) as the row tells: sent, else received, else started, else its last event. Age trimming
# deletes a prefix of seq (deep pages and the count rely on seq having no gaps): the oldest tasks,
# up to the first seen at or after the cutoff, which stops it. So no task younger than the age is ever
# deleted by it, while an older one seen after a younger one (clocks that disagree, a task whose only
# time is a recent event) stays until that one is old too; --max_tasks still bounds them all. The
# last event is no measure: a task retried or updated would hold back every task seen after it.
FIRST_SEEN = "coalesce(sent, received, started, timestamp)"


# Search ignores case as search.py says, in SQLite's C code for nearly every row: an ASCII term with
# LIKE alone, which folds ASCII letters. For a term with other letters (Unicode case folding), what
# else can hold it is found with GLOB and checked by casefold_contains in Python: a text with one of
# the few letters casefold() turns into ASCII ones (ß, ﬁ, the Kelvin sign...), and, for a term that
# folds to other letters, a text with any non-ASCII character. A Python call for every row would
# hand the GIL back and forth (see _JSON_ROWS); these rows are rare, and only such terms ask for them.
_SPECIAL = f"*[{FOLDS_TO_ASCII}]*"
_NON_ASCII = "*[^\x01-\x7f]*"
_ASCII_RUN = re.compile(r"[\x00-\x7f]+")


def _contains_sql(column: str, folded: str, plain: bool) -> tuple[str, list[Any]]:
    """SQL true when ``column`` holds the case-folded term ``folded``, ignoring case (``plain``: a term
    of ASCII characters, whose comparison ignores the case of ASCII letters only)."""
    if plain:
        return f"{column} LIKE ? ESCAPE '\\'", [like_pattern(folded)]
    check = f"casefold_contains({column}, ?)"
    if folded.isascii():
        return (f"({column} LIKE ? ESCAPE '\\' OR ({column} GLOB ? AND {check}))",
                [like_pattern(folded), _SPECIAL, folded])
    # The term's longest ASCII part is in the text in some case, unless the text has special letters.
    run = max(_ASCII_RUN.findall(folded), key=len, default="")
    if run:
        return (f"(({column} LIKE ? ESCAPE '\\' OR {column} GLOB ?) AND {column} GLOB ? AND {check})",
                [like_pattern(run), _SPECIAL, _NON_ASCII, folded])
    return f"({column} GLOB ? AND {check})", [_NON_ASCII, folded]


def _kwargs_sql(key: str, expected: str) -> tuple[str, list[Any]]:
    """``kwargs:key=value``: a LIKE on the key narrows the rows down, kwargs_match decides."""
    folded = key.casefold()
    if folded.isascii():
        narrow, params = "(kwargs LIKE ? ESCAPE '\\' OR kwargs GLOB ?)", [like_pattern(folded), _SPECIAL]
    else:
        narrow, params = "kwargs GLOB ?", [_NON_ASCII]
    return f"({narrow} AND kwargs_match(kwargs, ?, ?))", [*params, key, expected]


def _any_of(column: str, values: list[str]) -> tuple[str, list[Any]]:
    if not values:
        return "0", []
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


def _assemble(columns: Sequence[Any], rest: TaskDict) -> TaskDict:
    """Rebuild the task dict in the API's field order from its column values and the blob's fields."""
    rest.update(zip(_COLUMNS, columns, strict=True))
    task = {name: rest.pop(name, None) for name in TASK_FIELDS}
    task["cluster"] = task["cluster"] or DEFAULT_CLUSTER  # NULL in the column: see _CLUSTER_INDEX
    task.update(rest)
    return task


_TIME_COLUMNS = frozenset({"received", "sent", "started", "succeeded", "failed", "timestamp", "runtime"})


def _json_column(column: str) -> str:
    if column in _TIME_COLUMNS:
        # A float printed with 17 significant digits reads back as exactly the same float.
        return f"CASE typeof({column}) WHEN 'real' THEN json(printf('%!.17g', {column})) ELSE {column} END"
    return column


# A page of rows as one JSON array, made in one step of SQLite: fetching row by row hands the GIL
# back and forth for every row, and while the applier keeps it busy each hand-back waits for a
# thread switch, which made a page of a hundred tasks take up to a second under heavy ingest.
_JSON_ROWS = f"SELECT json_group_array(json_array({', '.join(map(_json_column, _COLUMNS))}, json(CAST(data AS TEXT))))"


def _json_chunks(tasks: Iterable[TaskDict]) -> list[str]:
    """The tasks as JSON arrays of at most ``WRITE_CHUNK`` dicts (text: SQLite 3.45+ reads a BLOB as JSONB)."""
    batch = list(tasks)
    return [orjson.dumps(batch[i : i + WRITE_CHUNK]).decode() for i in range(0, len(batch), WRITE_CHUNK)]


def _task_row(task: TaskDict) -> tuple[Any, ...]:
    rest = {k: v for k, v in task.items() if k not in _COLUMN_SET}
    cluster = task.get("cluster")
    return (*(task.get(c) for c in _COLUMNS[:-1]), None if cluster == DEFAULT_CLUSTER else cluster,
            orjson.dumps(rest))


def _upsert_chunk(conn: sqlite3.Connection, chunk: str) -> None:
    if "\\u0000" not in chunk:
        conn.execute(_BULK_UPSERT, (chunk,))
        return
    # SQLite's JSON functions end a string at a NUL character: such a chunk goes row by row.
    conn.executemany(_ROW_UPSERT, [_task_row(task) for task in orjson.loads(chunk)])


def _task_names(batch: list[TaskDict]) -> list[tuple[str]]:
    """The batch's distinct task names, for ``task_names``: a set here costs a fraction of reading
    the chunk's JSON a second time in SQL (4% of the monitor's CPU at 16,000 task events/s)."""
    return [(name,) for name in {task.get("name") for task in batch} if isinstance(name, str)]


# Tasks of the cluster ``default`` hold NULL in the cluster column and stay out of its index: a
# monitor of one cluster writes no index entry more than before there were clusters.
_CLUSTER_INDEX = "CREATE INDEX IF NOT EXISTS tasks_cluster ON tasks(cluster, seq) WHERE cluster IS NOT NULL"


def _add_cluster_column(conn: sqlite3.Connection) -> None:
    """A history written before there were clusters gets the column (NULL: ``default``) and its index."""
    if "cluster" not in {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}:
        conn.execute("ALTER TABLE tasks ADD COLUMN cluster TEXT")
    conn.execute(_CLUSTER_INDEX)


def _cluster_sql(clusters: Sequence[str]) -> tuple[str, list[Any]]:
    named = [name for name in clusters if name != DEFAULT_CLUSTER]
    parts = [f"cluster IN ({', '.join('?' * len(named))})"] if named else []
    if DEFAULT_CLUSTER in clusters:
        parts.append("cluster IS NULL")
    return "(" + " OR ".join(parts) + ")", named


class SQLiteStore:
    def __init__(self, path: str | None, search_settle_seconds: float = search_index.SETTLE_SECONDS) -> None:
        """Open (or create) the history at ``path``; ``None`` keeps it in memory only.

        An unfinished task keeps the search index from walking past it for ``search_settle_seconds``
        at most (see search_index.py).
        """
        self.path = path
        if path is None:
            self._target = f"file:celery-monitor-{uuid_module.uuid4().hex}?mode=memory&cache=shared"
        else:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise StoreError(f"directory {directory} does not exist")
            self._target = f"file:{path}"
        self._local = threading.local()
        # Every reading connection, with the thread it serves: the store closes them itself (those
        # of ended threads when the next one opens, the rest on close). Left to the garbage
        # collector, a connection can be closed inside a query that calls back into Python, where
        # closing it waits on the shared in-memory cache that very query holds.
        self._readers: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._readers_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # An in-memory store's readers see uncommitted writes, FTS5's half-written segments among
        # them: there a search and a change to the search index exclude each other. Readers of a
        # file have snapshots.
        self._index_lock: AbstractContextManager[Any] = threading.Lock() if path is None else nullcontext()
        # An in-memory database lives while one connection is open: the writer keeps it.
        try:
            self._writer = self._connect(writer=True)
            self._check_ours()
            self._writer.executescript(_SCHEMA)
            self._check_version()
            _add_cluster_column(self._writer)
            self.quarantine = Quarantine(self._writer, self._write_lock)
            # Schema version 1 databases get the search index here and fill it from the start.
            self._writer.executescript(search_index.SCHEMA)
            search_index.upgrade(self._writer)
            if sqlite_failures.create(self._writer):
                self._keep_failures_held()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a Celery Monitor history, or is damaged ({exc})") from None
        self.search_indexer = search_index.SearchIndexer(self._writer, self._write_lock, self._index_lock,
                                                         search_settle_seconds)

    def _keep_failures_held(self) -> None:
        """Fill a new failures table with the failed tasks the history already holds, a chunk at a
        time (in the tasks_state index's order), so a large history is never all in memory."""
        after = 0
        while True:
            seqs = [seq for (seq,) in self._writer.execute(
                "SELECT seq FROM tasks WHERE state = 'FAILURE' AND seq > ? ORDER BY seq LIMIT ?",
                (after, WRITE_CHUNK))]
            if not seqs:
                return
            found = self._writer.execute(f"{_SELECT} WHERE seq BETWEEN ? AND ? AND state = 'FAILURE'",
                                         (seqs[0], seqs[-1])).fetchall()
            rows, _ = failures.split(self._task_of_row(row) for row in found)
            if rows:
                sqlite_failures.upsert(self._writer, rows)
            after = seqs[-1]

    def _connect(self, writer: bool = False) -> sqlite3.Connection:
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
            # Checkpoints every 40 MB of WAL instead of 4: a page the flushes change again and again
            # (an index's hot end, a counters row) reaches the main file once per checkpoint. At 1,000
            # task events/s this took a quarter off what the history wrote to disk.
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_KEPT_BYTES}")
        conn.execute("PRAGMA temp_store = MEMORY")
        # Memory stays bounded whatever the history's size: the writer keeps a page cache big enough
        # for its index updates; each reading thread (the server has a pool of them) a small one.
        # No mmap: mapped pages count as the process's resident memory, while pages read through the
        # OS page cache are shared and reclaimable.
        conn.execute(f"PRAGMA cache_size = {-16000 if writer else -4000}")
        conn.execute("PRAGMA mmap_size = 0")
        conn.create_function("kwargs_match", 3, kwargs_match, deterministic=True)
        conn.create_function("casefold_contains", 2, contains, deterministic=True)
        return conn

    def _check_ours(self) -> None:
        """Refuse a database of another application rather than add our tables to it."""
        tables = {row[0] for row in self._writer.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise sqlite3.DatabaseError("it holds tables of another application")

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
            with self._readers_lock:
                self._readers.append((threading.current_thread(), conn))
            self._close_ended_readers()
        return conn

    def _close_ended_readers(self) -> None:
        """Close the reading connections of threads that ended (each holds up to its page cache)."""
        with self._readers_lock:
            ended = [c for thread, c in self._readers if not thread.is_alive()]
            self._readers = [(t, c) for t, c in self._readers if t.is_alive()]
        for old in ended:
            old.close()

    # -- writing -------------------------------------------------------------------------------

    def write(
        self, tasks: Iterable[TaskDict], workers: Iterable[dict[str, Any]], meta: dict[str, Any]
    ) -> None:
        batch = list(tasks)
        failed, others = failures.split(batch)
        chunks = _json_chunks(batch)
        names = _task_names(batch)
        worker_rows = [(w["hostname"], orjson.dumps(w)) for w in workers]
        meta_rows = [(k, orjson.dumps(v)) for k, v in meta.items()]
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN")
            try:
                for chunk in chunks:
                    _upsert_chunk(conn, chunk)
                conn.executemany("INSERT OR IGNORE INTO task_names VALUES (?)", names)
                sqlite_failures.write(conn, failed, others)
                if worker_rows:
                    conn.executemany("INSERT OR REPLACE INTO workers VALUES (?, ?)", worker_rows)
                if meta_rows:
                    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta_rows)
                conn.execute("COMMIT")
            except BaseException:
                # A full disk or an I/O error has SQLite roll back by itself: a second ROLLBACK would
                # fail and hide the error that matters ("database or disk is full").
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def index_search(self, budget_seconds: float = 0.05, until: Callable[[], bool] | None = None) -> int:
        """Add finished tasks to the search index for about ``budget_seconds``, or until ``until()``.

        Meant for the writer thread between flushes; returns how many tasks were indexed.
        """
        return self.search_indexer.run(budget_seconds, until)

    def release_memory(self) -> None:
        """Empty the writer's page cache (up to its cache_size: a burst fills it, and then it stays
        full): SQLite frees the unused pages; what the next write needs comes back from the OS's cache.
        The reading connections of server threads that ended since are closed with their caches.
        An in-memory history is its cache: nothing to let go."""
        if self.path is None:
            return
        with self._write_lock:
            self._writer.execute("PRAGMA shrink_memory")
        self._close_ended_readers()

    def delete_workers(self, hostnames: Iterable[str]) -> None:
        with self._write_lock:
            self._writer.executemany("DELETE FROM workers WHERE hostname = ?", [(h,) for h in hostnames])

    def trim(self, max_tasks: int) -> Removed:
        removed = Removed()
        with self._write_lock:
            low, high = self._writer.execute(_SEQ_RANGE).fetchone()
        if high is None or high - low + 1 <= max_tasks:
            return removed
        cutoff = high - max_tasks
        # Delete in chunks so readers and the writer never wait long behind one big transaction.
        for start in range(low, cutoff + 1, TRIM_CHUNK):
            end = min(start + TRIM_CHUNK - 1, cutoff)
            with self._write_lock, self._index_lock:
                conn = self._writer
                conn.execute("BEGIN")
                for cluster, state, count in conn.execute(
                    "SELECT cluster, state, count(*) FROM tasks WHERE seq BETWEEN ? AND ? GROUP BY cluster, state",
                    (start, end)
                ):
                    removed.add(cluster, state, count)
                conn.execute("DELETE FROM tasks WHERE seq BETWEEN ? AND ?", (start, end))
                search_index.forget(conn, end)
                conn.execute("COMMIT")
        return removed

    def trim_age(self, cutoff: float) -> Removed:
        removed = Removed()
        more = True
        while more:  # a chunk per transaction, as trim(), up to the first task seen at or after cutoff
            with self._write_lock, self._index_lock:
                conn = self._writer
                conn.execute("BEGIN")
                try:
                    more = self._trim_age_chunk(conn, cutoff, removed)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        return removed

    @staticmethod
    def _trim_age_chunk(conn: sqlite3.Connection, cutoff: float, removed: Removed) -> bool:
        """Delete the oldest tasks, at most a chunk, up to the first seen at or after ``cutoff``; count
        them into ``removed``. Whether there may be more to delete."""
        low = conn.execute("SELECT min(seq) FROM tasks").fetchone()[0]
        if low is None:
            return False
        end = low + TRIM_CHUNK - 1
        young = conn.execute(f"SELECT min(seq) FROM tasks WHERE seq BETWEEN ? AND ? AND {FIRST_SEEN} >= ?",
                             (low, end, cutoff)).fetchone()[0]
        if young is not None:
            end = young - 1
        if end < low:
            return False
        for cluster, state, count in conn.execute(
            "SELECT cluster, state, count(*) FROM tasks WHERE seq BETWEEN ? AND ? GROUP BY cluster, state", (low, end)
        ):
            removed.add(cluster, state, count)
        conn.execute("DELETE FROM tasks WHERE seq BETWEEN ? AND ?", (low, end))
        search_index.forget(conn, end)
        return young is None

    def trim_failures(self, max_failed: int) -> int:
        with self._write_lock:
            return sqlite_failures.trim(self._writer, max_failed)

    def trim_failures_age(self, cutoff: float) -> int:
        gone = 0
        while True:
            with self._write_lock:
                count = sqlite_failures.trim_age(self._writer, cutoff, TRIM_CHUNK)
            gone += count
            if count < TRIM_CHUNK:
                return gone

    def close(self) -> None:
        with self._write_lock:
            if self.path is not None:
                try:
                    self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:  # a full or read-only disk: the WAL is replayed at the next open
                    log.warning("could not checkpoint the history on closing: %s", exc)
            self._writer.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for _, conn in readers:
            conn.close()

    # -- reading -------------------------------------------------------------------------------

    def get_task(self, uuid: str) -> TaskDict | None:
        row = self._reader.execute(f"{_SELECT} WHERE uuid = ?", (uuid,)).fetchone()
        if row is None:  # trimmed from the history, a failure may still be kept (--max_failed_tasks)
            return sqlite_failures.get(self._reader, uuid)
        return self._task_of_row(row)

    # -- failure groups (failures.py) ------------------------------------------------------------

    def failure_groups(self, since: float, width: float, clusters: Sequence[str] = ()) -> list[failures.GroupCounts]:
        with search_index.snapshot(self._reader):
            return sqlite_failures.groups(self._reader, since, width, clusters)

    def failure_sample(self, name: str, exception_type: str,
                       cluster: str = DEFAULT_CLUSTER) -> TaskDict | None:
        return sqlite_failures.sample(self._reader, name, exception_type, cluster)

    def failure_tasks(self, name: str, exception_type: str, limit: int | None = None, offset: int = 0,
                      clusters: Sequence[str] = (DEFAULT_CLUSTER,)) -> list[TaskDict]:
        return sqlite_failures.tasks(self._reader, name, exception_type, clusters, limit, offset)

    def failure_count(self, name: str, exception_type: str, clusters: Sequence[str] = (DEFAULT_CLUSTER,)) -> int:
        return sqlite_failures.count(self._reader, name, exception_type, clusters)

    def failures_after(self, seq: int, limit: int) -> list[tuple[int, TaskDict]]:
        return sqlite_failures.after(self._reader, seq, limit)

    def keep_failures(self, tasks: Iterable[TaskDict]) -> None:
        rows, _ = failures.split(tasks)
        if rows:
            with self._write_lock:  # one statement: all of them or none
                sqlite_failures.upsert(self._writer, rows)

    def failure_total(self, clusters: Sequence[str] = ()) -> int:
        return sqlite_failures.total(self._reader, clusters)

    def _fetch_tasks(self, sql: str, params: Any) -> list[TaskDict]:
        """The tasks a ``SELECT <columns>, data`` query returns, in its order, fetched in one step."""
        conn = self._reader
        try:
            rows = orjson.loads(conn.execute(f"{_JSON_ROWS} FROM ({sql})", params).fetchone()[0])
        except (sqlite3.DatabaseError, orjson.JSONDecodeError):
            # A blob that is not JSON fails the whole page in SQLite's json(): read it row by row.
            return [self._task_of_row(row) for row in conn.execute(sql, params).fetchall()]
        tasks = []
        for row in rows:
            if isinstance(row[-1], dict):
                task = _assemble(row[:-1], row[-1])
                if stored.task_problems(task) is None:
                    tasks.append(task)
                    continue
            tasks.append(self._repaired(row[:-1], row[-1], "a field of the wrong type"))
        return tasks

    def _task_of_row(self, row: Sequence[Any]) -> TaskDict:
        """The task of one ``SELECT <columns>, data`` row, checked (and repaired when it must be)."""
        try:
            rest = orjson.loads(row[-1])
        except orjson.JSONDecodeError:
            return self._repaired(row[:-1], row[-1], "its data is not JSON")
        if isinstance(rest, dict):
            task = _assemble(row[:-1], rest)
            if stored.task_problems(task) is None:
                return task
        return self._repaired(row[:-1], rest, "a field of the wrong type")

    def _repaired(self, columns: Sequence[Any], data: Any, problem: str) -> TaskDict:
        """Quarantine a bad row and put its repaired version in its place (same seq: counts stay exact)."""
        uuid = columns[0] if isinstance(columns[0], str) else str(columns[0])
        original = {**(data if isinstance(data, dict) else {}), **dict(zip(_COLUMNS, columns, strict=True))}
        task, dropped = stored.repair_task(original, uuid)
        detail = f"{problem}: {', '.join(dropped)}" if dropped else problem
        self.set_aside("task", uuid, detail, raw_text([*columns, data if not isinstance(data, bytes)
                                                            else data.decode("utf-8", "replace")]))
        try:
            with self._write_lock:
                self._writer.execute(_ROW_UPSERT, _task_row(task))
        except sqlite3.Error as exc:
            log.warning("could not write the repaired task %s back: %s", uuid[:80], exc)
        return task

    def workflow_tasks(self, root_id: str, limit: int) -> list[TaskDict]:
        """The first ``limit`` tasks (in the order first seen) whose root is ``root_id``."""
        # The root by its uuid, the others from the workflow index in order, then the first of them all.
        sql = (f"{_SELECT} WHERE seq IN (SELECT seq FROM tasks WHERE uuid = ?1 AND {_ROOT_ID} = ?1 UNION ALL "
               f"SELECT * FROM (SELECT seq FROM tasks WHERE {_ROOT_ID} = ?1 AND {_IN_WORKFLOW} ORDER BY seq LIMIT ?2)) "
               "ORDER BY seq LIMIT ?2")
        return [task for task in self._fetch_tasks(sql, (root_id, limit)) if task.get("root_id") == root_id]

    def get_tasks(self, uuids: Iterable[str]) -> dict[str, TaskDict]:
        wanted = list(uuids)
        found: dict[str, TaskDict] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            sql = f"{_SELECT} WHERE uuid IN ({', '.join('?' * len(chunk))})"
            found.update((task["uuid"], task) for task in self._fetch_tasks(sql, chunk))
        return found

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

        # Filters compare whole values ignoring case, as Flower's do: the values present that fold
        # to the same text are looked up first, so the column's index still does the work.
        for column, wanted in (("worker", query.workers), ("name", query.names), ("state", query.states)):
            if wanted:
                add(_any_of(column, self.values_folding_to(column, wanted)))
        if query.clusters:
            add(_cluster_sql(query.clusters))
        if query.received_start is not None:
            add(("received >= ?", [query.received_start]))
        if query.received_end is not None:
            add(("received <= ?", [query.received_end]))
        if query.search.expression is not None:
            add(self._search_sql(query.search.expression))
        if excluding:
            add(("seq NOT IN (SELECT value FROM json_each(?))", [orjson.dumps(list(excluding)).decode()]))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _search_sql(self, expression: Expression) -> tuple[str, list[Any]]:
        if not isinstance(expression, Term):
            parts = [self._search_sql(child) for child in expression.children]
            joiner = " AND " if isinstance(expression, All) else " OR "
            return "(" + joiner.join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]
        folded = expression.folded
        if expression.pair is not None:
            key, expected = expression.pair
            return _kwargs_sql(key, expected)
        if expression.field == "state":
            return _any_of("state", self.values_folding_to("state", [expression.value]))
        columns = BARE_COLUMNS if expression.field is None else (expression.field,)
        parts = [_contains_sql(column, folded, expression.plain) for column in columns]
        return "(" + " OR ".join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]

    def values_folding_to(self, column: str, wanted: Sequence[str]) -> list[str]:
        """The distinct values of ``column`` (worker, name or state) equal to one of ``wanted``, ignoring case."""
        folded = {value.casefold() for value in wanted}
        present = self.distinct_values(column)
        return [value for value in present if value.casefold() in folded]

    def distinct_values(self, column: str) -> list[str]:
        """The distinct text values of an indexed column, one index seek each (not a walk of every row)."""
        if column == "name":
            return self.task_names()
        sql = (f"WITH RECURSIVE d(v) AS (SELECT min({column}) FROM tasks UNION ALL "
               f"SELECT (SELECT min({column}) FROM tasks WHERE {column} > d.v) FROM d WHERE d.v IS NOT NULL) "
               "SELECT json_group_array(v) FROM d WHERE typeof(v) = 'text'")
        return list(orjson.loads(self._reader.execute(sql).fetchone()[0]))

    def _candidates(self, query: TaskQuery, by_seq: bool) -> list[Any] | None:
        """The parameters of the search index's candidates, when the index is to answer this search.

        Only the candidates are read then, and the LIKEs of ``_where`` still decide: the same answer
        as a scan. In seq order the page ends after its last match among many hits too; sorted by
        another key, all are read and sorted, and past a few thousand a scan in that order is quicker.
        """
        match = search_index.match_expression(query.search)
        if match is None:
            return None
        limit = search_index.MAX_HITS
        if not by_seq and query.limit is not None:
            limit = search_index.hit_limit(self.task_count(), query.offset + query.limit)
        found = search_index.index_hits(self._reader, match, limit)
        return None if found is None else list(found)

    def query_sql(self, query: TaskQuery, excluding: Sequence[int] = (), select: str = _SELECT_FROM,
                  extra: tuple[str, list[Any]] | None = None) -> tuple[str, list[Any]]:
        """The SELECT for a query: filters, an order an index can deliver, and the page.

        ``select`` is the statement's start up to FROM (``SELECT seq FROM `` for the order alone).
        """
        where, params = self._where(query, excluding, extra)
        by_seq = not (query.sort_by in SORT_KEYS or query.received_start is not None or query.received_end is not None)
        source = "tasks"
        if (found := self._candidates(query, by_seq)) is not None:
            if by_seq:  # walked in seq order, up to the page's end
                where += " AND " + search_index.CANDIDATES
                params = [*params, *found]
            else:
                source = search_index.CANDIDATE_TASKS
                params = [*found, *params]
        direction = "DESC" if query.descending else "ASC"
        if query.sort_by and query.sort_by in SORT_KEYS:
            order = f" ORDER BY {query.sort_by} {direction}, seq {direction}"
        elif query.received_start is not None or query.received_end is not None:
            # A received range is read from its index in received order (close to arrival order).
            order = f" ORDER BY received {direction}, seq {direction}"
        else:
            order = f" ORDER BY seq {direction}"
            if query.offset and not where:
                # Seq has no gaps (trimming deletes from the low end only), so a deep page of the
                # whole history starts at a seq computed from the offset: no walk over the rows
                # before it, which would read every one of them from disk.
                start = "(SELECT max(seq) FROM tasks) - ?" if query.descending else "(SELECT min(seq) FROM tasks) + ?"
                where = f" WHERE seq {'<=' if query.descending else '>='} {start}"
                params = [query.offset]
                return (select + "tasks" + where + order + " LIMIT ?",
                        [*params, -1 if query.limit is None else query.limit])
        page = ""
        if query.limit is not None or query.offset:
            page = " LIMIT ? OFFSET ?"
            params = [*params, -1 if query.limit is None else query.limit, query.offset]
        return select + source + where + order + page, params

    # -- reading beside the writer's pending changes (service.py lays them over these) ------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction for several reads that must agree (on a file; memory has none)."""
        with search_index.snapshot(self._reader):
            yield

    def seqs_of(self, uuids: Iterable[str]) -> dict[str, int]:
        """The seq of each of these tasks the history holds."""
        wanted = orjson.dumps(list(uuids)).decode()
        sql = ("SELECT json_group_object(t.uuid, t.seq) FROM json_each(?) j JOIN tasks t ON t.uuid = j.value")
        return dict(orjson.loads(self._reader.execute(sql, (wanted,)).fetchone()[0]))

    def ordered_seqs(self, query: TaskQuery, excluding: Sequence[int] = ()) -> list[int]:
        """The seqs of the query's page (or of every match, without a limit), in its order, in one step."""
        with self._reading(query):
            if query.after is not None:
                return self._seqs_after(query, excluding)
            return self._seqs(*self.query_sql(query, excluding, select="SELECT seq FROM "))

    def _seqs(self, sql: str, params: list[Any]) -> list[int]:
        return list(orjson.loads(self._reader.execute(f"SELECT json_group_array(seq) FROM ({sql})",
                                                      params).fetchone()[0]))

    def _seqs_after(self, query: TaskQuery, excluding: Sequence[int]) -> list[int]:
        """A page past its cursor (keyset paging): each part of the order past it (a row-value
        comparison, then the NULLs where they follow) is one seek in the order's index."""
        assert query.after is not None
        return seqs_past_cursor(query, query.after, "?", lambda part, clause: self._seqs(
            *self.query_sql(part, excluding, select="SELECT seq FROM ", extra=clause)))

    def tasks_in_order(self, seqs: Sequence[int]) -> list[tuple[int, TaskDict]]:
        """These tasks with their seqs, in the order given; those deleted meanwhile are left out."""
        sql = (f"SELECT {', '.join(f't.{c}' for c in _COLUMNS)}, t.data FROM json_each(?) j "
               "JOIN tasks t ON t.seq = j.value ORDER BY j.key")
        tasks = self._fetch_tasks(sql, (orjson.dumps(list(seqs)).decode(),))
        seq_of = self.seqs_of(task["uuid"] for task in tasks)
        return [(seq_of[task["uuid"]], task) for task in tasks if task["uuid"] in seq_of]

    @contextmanager
    def _reading(self, query: TaskQuery) -> Iterator[None]:
        """One snapshot for the search index's hits and the rows they stand for."""
        searching = search_index.match_expression(query.search) is not None
        with self._index_lock if searching else nullcontext(), search_index.snapshot(self._reader):
            yield

    def query_tasks(self, query: TaskQuery, excluding: Sequence[int] = ()) -> list[TaskDict]:
        with self._reading(query):
            if query.after is not None:
                return [task for _, task in self.tasks_in_order(self._seqs_after(query, excluding))]
            sql, params = self.query_sql(query, excluding)
            return self._fetch_tasks(sql, params)

    def count_tasks(self, query: TaskQuery, excluding: Sequence[int] = (), cap: int | None = None) -> int:
        with self._reading(query):
            where, params = self._where(query, excluding)
            if not where:
                total = self.task_count()
                return total if cap is None else min(total, cap + 1)
            source = "tasks"
            if (found := self._candidates(query, by_seq=False)) is not None:
                source = search_index.CANDIDATE_TASKS
                params = [*found, *params]
            if cap is not None:  # the matches up to one past the cap: "more than cap" beyond it
                sql, params = f"SELECT count(*) FROM (SELECT 1 FROM {source}{where} LIMIT ?)", [*params, cap + 1]
            else:
                sql = f"SELECT count(*) FROM {source}{where}"
            return int(self._reader.execute(sql, params).fetchone()[0])

    def task_count(self) -> int:
        low, high = self._reader.execute(_SEQ_RANGE).fetchone()
        return 0 if high is None else high - low + 1

    # Aggregates skip what is not text: a history from an older version may hold anything there.

    def task_names(self) -> list[str]:
        sql = "SELECT name FROM task_names WHERE typeof(name) = 'text' ORDER BY name"
        return [row[0] for row in self._reader.execute(sql)]

    def cluster_state_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        sql = ("SELECT cluster, state, count(*) FROM tasks WHERE cluster IS NOT NULL AND typeof(state) = 'text' "
               "GROUP BY cluster, state")
        for cluster, state, count in self._reader.execute(sql):
            counts.setdefault(cluster, {})[state] = count
        return counts

    def state_counts(self) -> dict[str, int]:
        sql = "SELECT state, count(*) FROM tasks WHERE typeof(state) = 'text' GROUP BY state"
        return {state: count for state, count in self._reader.execute(sql) if state}

    def load_workers(self) -> list[dict[str, Any]]:
        workers = []
        for hostname, data in self._reader.execute("SELECT hostname, data FROM workers").fetchall():
            try:
                worker, dropped = stored.repair_worker(orjson.loads(data))
            except orjson.JSONDecodeError:
                worker, dropped = None, ["(not JSON)"]
            if worker is not None and worker.hostname == hostname:
                workers.append(worker.to_store())
                if not dropped:
                    continue
            self.set_aside("worker", str(hostname), f"a field of the wrong type: {', '.join(dropped)}",
                           raw_text([hostname, data if isinstance(data, str) else repr(data)]))
            try:
                with self._write_lock:
                    if worker is None or worker.hostname != hostname:
                        self._writer.execute("DELETE FROM workers WHERE hostname = ?", (hostname,))
                    else:
                        self._writer.execute("INSERT OR REPLACE INTO workers VALUES (?, ?)",
                                             (hostname, orjson.dumps(worker.to_store())))
            except sqlite3.Error as exc:
                log.warning("could not replace the damaged worker %s: %s", str(hostname)[:80], exc)
        return workers

    def load_meta(self, key: str) -> Any:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return orjson.loads(row[0])
        except orjson.JSONDecodeError:
            self.set_aside("meta", key, "not JSON", raw_text(repr(row[0])))
            return None

    def set_aside(self, kind: str, key: str, problem: str, raw: bytes) -> None:
        """Keep a damaged record's original in the quarantine table and report it."""
        self.quarantine.keep(kind, key, problem, raw)

    def quarantined(self) -> dict[str, Any]:
        """How many rows were set aside, and the latest few (kind, key, what was wrong)."""
        return {"rows": self.quarantine.count(self._reader), "latest": self.quarantine.latest(self._reader)}

    # -- audit trail -----------------------------------------------------------------------------

    def add_audit(self, entry: dict[str, Any]) -> int:
        """Append one control action; returns its id (ids grow with time)."""
        columns = (entry["time"], entry.get("user"), entry.get("action"), entry.get("target"), entry.get("status"))
        rest = {k: v for k, v in entry.items() if k not in _AUDIT_COLUMNS}
        with self._write_lock:
            cursor = self._writer.execute(
                "INSERT INTO audit (time, user, action, target, status, data) VALUES (?, ?, ?, ?, ?, ?)",
                (*columns, orjson.dumps(rest, option=orjson.OPT_NON_STR_KEYS)))
            return int(cursor.lastrowid or 0)

    def _audit_where(self, user: str | None, action: str | None, target: str | None = None,
                     since: float | None = None, until: float | None = None,
                     clusters: Sequence[str] = ()) -> tuple[str, list[Any]]:
        tests = (("user = ?", user), ("action = ?", action), ("target = ?", target), ("time >= ?", since),
                 ("time <= ?", until))
        clauses = [clause for clause, value in tests if value is not None and value != ""]
        params: list[Any] = [value for _, value in tests if value is not None and value != ""]
        if clusters:
            # The cluster is in the entry's JSON (the trail is short: no index). An entry without
            # the key was written before clusters existed: it is default's.
            marks = ", ".join("?" * len(clusters))
            clause = f"json_extract(CAST(data AS TEXT), '$.cluster') IN ({marks})"
            if DEFAULT_CLUSTER in clusters:
                clause = f"({clause} OR json_type(CAST(data AS TEXT), '$.cluster') IS NULL)"
            clauses.append(clause)
            params.extend(clusters)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def audit_entries(self, limit: int = 50, offset: int = 0, user: str | None = None,
                      action: str | None = None, target: str | None = None, since: float | None = None,
                      until: float | None = None, clusters: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        where, params = self._audit_where(user, action, target, since, until, clusters)
        sql = (f"SELECT seq, time, user, action, target, status, data FROM audit{where}"
               " ORDER BY seq DESC LIMIT ? OFFSET ?")
        entries = []
        for seq, at, who, what, target, status, data in self._reader.execute(sql, [*params, limit, offset]):
            entry = {"id": seq, "time": at, "user": who, "action": what, "target": target, "status": status}
            entry.update(orjson.loads(data))
            entries.append(entry)
        return entries

    def audit_count(self, user: str | None = None, action: str | None = None, target: str | None = None,
                    since: float | None = None, until: float | None = None, clusters: Sequence[str] = ()) -> int:
        where, params = self._audit_where(user, action, target, since, until, clusters)
        return int(self._reader.execute(f"SELECT count(*) FROM audit{where}", params).fetchone()[0])

    def audit_facets(self, clusters: Sequence[str] = ()) -> dict[str, list[str]]:
        """The distinct users and actions of the audit trail (each read from its index)."""
        where, params = self._audit_where(None, None, clusters=clusters)
        joiner = " AND" if where else " WHERE"
        return {column: [row[0] for row in self._reader.execute(
                    f"SELECT DISTINCT {column} FROM audit{where}{joiner} {column} IS NOT NULL"
                    f" ORDER BY {column}", params)]
                for column in ("user", "action")}

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

"""The PostgreSQL history's schema, as ordered migrations recorded in ``schema_version``.

Each migration is a version number and SQL statements, applied in one transaction with the row
that records it; :func:`upgrade` applies those a database lacks, at start-up or from
``celery-monitor db upgrade``, under an advisory lock so that two monitors starting together do not
both apply them. A database newer than this monitor is refused (an older monitor cannot know what
a later migration changed). Add a migration at the end; never edit one that was released.

How the tables serve the API (see ``postgres.py``): ``seq`` is the order tasks were first seen in,
handed out without gaps by the writer, so the whole history's deep pages start at a computed seq;
every sort key has a btree index ``(key NULLS FIRST, seq)`` (SQLite's order: NULL first ascending,
last descending; text in code point order, the "C" collation). Search narrows with GIN indexes
(pg_trgm over the case-folded searchable text, jsonb over the pairs a task's kwargs hold) on a
table of their own, ``task_search``, filled behind the writer (``pg_search.py``), then checks every
candidate exactly. Until migration 9 those GIN indexes were on ``tasks``, where every written task
version updated them: ~85% of the cost of a write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from celery_monitor.states import FINISHED_STATES
from celery_monitor.store.base import StoreError
from celery_monitor.store.query import SORT_KEYS
from celery_monitor.store.search import BARE_COLUMNS

LOCK_KEY = 0x43_4D_4F_4E_01  # pg_advisory_xact_lock key of migrations ("CMON", 1)
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = UPPER.lower()
TRIGRAM_INDEX = "task_search_text"
SETTLE_SECONDS = 10.0  # a finished task is indexed once its last event is this old (late events are in)


def ascii_lower(column: str) -> str:
    """SQL: the column with ASCII letters lowered, and only those (SQLite's LIKE folding).

    Under the "C" collation PostgreSQL's lower() changes the bytes A-Z and nothing else, whatever the
    database's locale; translate() gave the same text ~40 times slower (it maps character by
    character): 3.3 s against 86 ms over the args of 100,000 tasks, the bulk of a common term's search.
    """
    return f'lower({column} COLLATE "C")'


def folded(column: str) -> str:
    """SQL: the column as str.casefold() makes it (``fold_<column>`` is stored where that differs)."""
    return f"coalesce(fold_{column}, {ascii_lower(column)})"


# Every searchable column, case-folded, one per line: what the search table's trigram index holds.
SEARCH_TEXT = "(" + " || chr(10) || ".join(f"coalesce({folded(c)}, '')" for c in BARE_COLUMNS) + ")"
_FINISHED = ", ".join(f"'{state}'" for state in sorted(FINISHED_STATES))
# A task whose text is settled: finished, and its last event is not recent (late out-of-order
# events are in). A timestamp far in the future (a worker's clock ahead) says nothing about that.
# %(recent)s and %(future)s: now - and now + SETTLE_SECONDS.
READY = (f"coalesce(state IN ({_FINISHED}) AND NOT coalesce(timestamp > %(recent)s AND timestamp <= %(future)s, false),"
         " false)")
# What the search table holds of the tasks a ``SELECT seq FROM ...`` picks (%(seqs)s in the text).
SEARCH_ROWS = (f"INSERT INTO task_search (seq, text, kwargs_pairs) SELECT seq, {SEARCH_TEXT}, kwargs_pairs "
               "FROM tasks WHERE seq IN (%(seqs)s) "
               "ON CONFLICT (seq) DO UPDATE SET text = excluded.text, kwargs_pairs = excluded.kwargs_pairs")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# The rows a statement changed, as (name, state, worker, +1 or -1) per row.
_COUNT_CHANGES = {
    "insert": "SELECT name, state, worker, 1 FROM new_rows",
    "update": "SELECT name, state, worker, 1 FROM new_rows UNION ALL SELECT name, state, worker, -1 FROM old_rows",
    "delete": "SELECT name, state, worker, -1 FROM old_rows",
}


def _count_change(changes: str) -> str:
    """SQL: add ``changes`` (rows of name, state, worker, delta) to task_counts, one upsert per group.

    The key is the three values as a JSON array: it tells NULL from any text (a NUL-free text column
    has no spare value to stand for NULL)."""
    return ("INSERT INTO task_counts (key, name, state, worker, n) "
            "SELECT json_build_array(name, state, worker)::text, name, state, worker, sum(d) "
            f"FROM ({changes}) AS c(name, state, worker, d) GROUP BY name, state, worker HAVING sum(d) <> 0 "
            "ON CONFLICT (key) DO UPDATE SET n = task_counts.n + excluded.n;")


_TRANSITION_TABLES = {"insert": "NEW TABLE AS new_rows", "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                      "delete": "OLD TABLE AS old_rows"}
_FAILURE_CHANGES = {event: sql.replace("state, worker", "exception_type") for event, sql in _COUNT_CHANGES.items()}


def _failure_count_change(changes: str) -> str:
    """SQL: add ``changes`` (rows of name, exception_type, delta) to failure_counts, one upsert per group."""
    return ("INSERT INTO failure_counts (name, exception_type, n) SELECT name, exception_type, sum(d) "
            f"FROM ({changes}) AS c(name, exception_type, d) GROUP BY name, exception_type HAVING sum(d) <> 0 "
            "ON CONFLICT (name, exception_type) DO UPDATE SET n = failure_counts.n + excluded.n;")


# Since migration 11 a failure group is (cluster, name, exception type): the counts are kept per cluster.
_FAILURE_CLUSTER_CHANGES = {event: sql.replace("state, worker", "cluster, exception_type")
                            for event, sql in _COUNT_CHANGES.items()}


def _failure_cluster_count_change(changes: str) -> str:
    """SQL: add ``changes`` (rows of name, cluster, exception_type, delta) to failure_counts."""
    return ("INSERT INTO failure_counts (cluster, name, exception_type, n) "
            "SELECT cluster, name, exception_type, sum(d) "
            f"FROM ({changes}) AS c(name, cluster, exception_type, d) GROUP BY cluster, name, exception_type "
            "HAVING sum(d) <> 0 "
            "ON CONFLICT (cluster, name, exception_type) DO UPDATE SET n = failure_counts.n + excluded.n;")


def _counting_triggers(table: str, counter: str, changes: dict[str, str],
                       change: Callable[[str], str]) -> tuple[str, ...]:
    """The statements that keep a count table in step with ``table``: per event, a function adding
    ``change`` of the statement's changed rows (``changes[event]``) and a statement-level trigger
    calling it (dropped first: a migration may be applied again over its own work)."""
    return (
        *(f"""CREATE OR REPLACE FUNCTION cm_{counter}_{event}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {change(sql)}
            RETURN NULL;
        END $$""" for event, sql in changes.items()),
        *(f"DROP TRIGGER IF EXISTS {table}_count_{event} ON {table}" for event in changes),
        *(f"CREATE TRIGGER {table}_count_{event} AFTER {event.upper()} ON {table} REFERENCING {tables} "
          f"FOR EACH STATEMENT EXECUTE FUNCTION cm_{counter}_{event}()"
          for event, tables in _TRANSITION_TABLES.items()),
    )


# The searchable columns: a change to any of them changes what the search table should hold.
_SEARCHED = ("uuid", "name", "state", "worker", "args", "kwargs", "result", "kwargs_pairs")


def _search_triggers() -> tuple[str, ...]:
    """Triggers that keep the search table's invariant: the text of every task at or below the
    watermark and not skipped is in ``task_search``, as it is now. An indexed task whose searchable
    columns change leaves the table and joins the skipped ones (scanned, then indexed again); a
    deleted task leaves both; an emptied history starts again at watermark 0 (its seqs restart at 1).
    Statement-level, from the statement's changed rows, as the counting triggers."""
    changed = " OR ".join(f"n.{c} IS DISTINCT FROM o.{c}" for c in _SEARCHED)
    return (
        f"""CREATE OR REPLACE FUNCTION cm_search_stale() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            WITH stale AS (
                SELECT o.seq FROM old_rows o JOIN new_rows n ON n.seq = o.seq
                WHERE o.seq <= (SELECT watermark FROM search_state) AND ({changed})
            ), gone AS (
                DELETE FROM task_search s USING stale WHERE s.seq = stale.seq
            )
            INSERT INTO search_skipped SELECT seq FROM stale ON CONFLICT DO NOTHING;
            IF FOUND THEN
                UPDATE search_state SET version = version + 1;
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE OR REPLACE FUNCTION cm_search_forget() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM task_search s USING old_rows o WHERE s.seq = o.seq;
            DELETE FROM search_skipped s USING old_rows o WHERE s.seq = o.seq;
            IF NOT EXISTS (SELECT 1 FROM tasks) THEN
                UPDATE search_state SET watermark = 0, version = version + 1;
            END IF;
            RETURN NULL;
        END $$""",
        "DROP TRIGGER IF EXISTS tasks_search_stale ON tasks",
        "DROP TRIGGER IF EXISTS tasks_search_forget ON tasks",
        "CREATE TRIGGER tasks_search_stale AFTER UPDATE ON tasks REFERENCING OLD TABLE AS old_rows "
        "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cm_search_stale()",
        "CREATE TRIGGER tasks_search_forget AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION cm_search_forget()",
    )


def _bulk(statement: str) -> str:
    """A statement of migration 9 with READY's times as of the migration."""
    return statement % {"recent": f"extract(epoch FROM now()) - {SETTLE_SECONDS}",
                        "future": f"extract(epoch FROM now()) + {SETTLE_SECONDS}"}


# The search table filled with every task at once (migration 9, and the bench's seeding).
SEARCH_FILL = (
    "TRUNCATE task_search, search_skipped",
    _bulk(SEARCH_ROWS % {"seqs": f"SELECT seq FROM tasks WHERE {READY}"}),
    _bulk(f"INSERT INTO search_skipped SELECT seq FROM tasks WHERE NOT {READY}"),
    "UPDATE search_state SET watermark = coalesce((SELECT max(seq) FROM tasks), 0), version = version + 1",
)


def _sort_indexes() -> tuple[str, ...]:
    return tuple(f"CREATE INDEX tasks_{key} ON tasks ({key} NULLS FIRST, seq)" for key in SORT_KEYS if key != "uuid")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tasks, task names, workers, meta, audit trail, quarantine; btree indexes for every sort and filter", (
        """CREATE TABLE tasks (
            seq bigint PRIMARY KEY,
            uuid text COLLATE "C" NOT NULL UNIQUE,
            name text COLLATE "C", state text COLLATE "C", worker text COLLATE "C",
            received double precision, sent double precision, started double precision,
            succeeded double precision, failed double precision, timestamp double precision,
            runtime double precision,
            args text COLLATE "C", kwargs text COLLATE "C", result text COLLATE "C",
            """ + ", ".join(f'fold_{c} text COLLATE "C"' for c in BARE_COLUMNS) + """,
            kwargs_pairs jsonb,
            data text NOT NULL
        )""",
        *_sort_indexes(),
        "CREATE INDEX tasks_kwargs_pairs ON tasks USING gin (kwargs_pairs jsonb_path_ops)",
        "CREATE INDEX tasks_kwargs_text ON tasks (seq) WHERE kwargs_pairs IS NULL",
        # Names as JSON text: a name may hold a NUL character, which PostgreSQL's text cannot.
        "CREATE TABLE task_names (name_json text PRIMARY KEY)",
        "CREATE TABLE workers (hostname text PRIMARY KEY, data text NOT NULL)",
        "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
        """CREATE TABLE audit (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            time double precision NOT NULL, "user" text COLLATE "C", action text COLLATE "C", target text COLLATE "C",
            status integer,
            data text NOT NULL
        )""",
        'CREATE INDEX audit_user ON audit ("user", seq)',
        "CREATE INDEX audit_action ON audit (action, seq)",
        "CREATE INDEX audit_target ON audit (target, seq)",
        "CREATE INDEX audit_time ON audit (time)",
        """CREATE TABLE quarantine (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            time double precision NOT NULL, kind text NOT NULL, key text, problem text, raw bytea
        )""",
    )),
    # The trigram index needs the pg_trgm extension: created here when the database lets us
    # (it is a trusted extension since PostgreSQL 13: a database owner may create it). Without it
    # searches still give the same answers, by reading the rows in order; the next upgrade creates
    # the index once the extension is there.
    Migration(2, "trigram index for search (when pg_trgm is available)", ()),
    # Failures kept apart from the history's trimming, grouped by task name and exception type
    # (store/failures.py); the failed tasks already held are copied in (their JSON as jsonb, so a
    # row whose JSON holds a NUL escape, which jsonb refuses, is left out).
    Migration(3, "failures table: failed tasks by name and exception type, trimmed on their own", (
        """CREATE TABLE failures (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            uuid text COLLATE "C" NOT NULL UNIQUE,
            name text COLLATE "C" NOT NULL, exception_type text COLLATE "C" NOT NULL,
            failed double precision NOT NULL,
            data text NOT NULL
        )""",
        "CREATE INDEX failures_group ON failures (name, exception_type, failed, seq)",
        "CREATE INDEX failures_failed ON failures (failed)",
        """INSERT INTO failures (uuid, name, exception_type, failed, data)
        SELECT uuid, coalesce(name, ''),
               left(trim(split_part(coalesce(data::jsonb ->> 'exception', ''), '(', 1)), 200),
               coalesce(failed, timestamp, 0),
               (data::jsonb || jsonb_build_object('uuid', uuid, 'name', name, 'state', state, 'worker', worker,
                   'received', received, 'sent', sent, 'started', started, 'succeeded', succeeded,
                   'failed', failed, 'timestamp', timestamp, 'runtime', runtime, 'args', args,
                   'kwargs', kwargs, 'result', result))::text
        FROM tasks WHERE state = 'FAILURE' AND strpos(data, '\\u0000') = 0 ORDER BY seq""",
    )),
    # Workflows (/workflow/<root_id>) read every task of one root: a column and its index. Rows
    # written before keep root_id in their JSON too, copied here (JSON that does not parse, or
    # holds a NUL character, which PostgreSQL's json refuses, leaves the column empty).
    Migration(4, "root_id column and index for workflows", (
        'ALTER TABLE tasks ADD COLUMN root_id text COLLATE "C"',
        """CREATE FUNCTION pg_temp.cm_root_id(data text) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN
            RETURN data::json ->> 'root_id';
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END $$""",
        "UPDATE tasks SET root_id = pg_temp.cm_root_id(data) WHERE strpos(data, '\\u0000') = 0",
        "DROP FUNCTION pg_temp.cm_root_id(text)",
        "CREATE INDEX tasks_root_id ON tasks (root_id, seq)",
    )),
    # Notifications (celery_monitor/notify/ledger.py reads and writes them through its own connection).
    Migration(5, "notification delivery log, and the rules and channels added through the API", (
        """CREATE TABLE IF NOT EXISTS notification_deliveries (
            id bigserial PRIMARY KEY, message_id text NOT NULL, at double precision NOT NULL, rule text NOT NULL,
            channel text NOT NULL, status text NOT NULL, summary text NOT NULL, outcome text NOT NULL,
            attempts integer NOT NULL, last_error text, updated_at double precision NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS notification_settings (
            kind text NOT NULL, name text NOT NULL, body text NOT NULL, PRIMARY KEY (kind, name)
        )""",
    )),
    # The dashboard's task table sorts by received, newest first, and filters by state, task name or
    # worker: with (filter, received, seq) the page is the index's first rows; with the sort key's
    # index alone, a rare name or worker meant walking most of the history (seconds at 10,000,000).
    # Migrations 6 and 7 may be applied again over their own work (a test rewinds schema_version).
    Migration(6, "indexes for the task table's filters sorted by received", tuple(
        f"CREATE INDEX IF NOT EXISTS tasks_{column}_received ON tasks ({column}, received NULLS FIRST, seq)"
        for column in ("state", "name", "worker"))),
    # Exact totals of the task table's filters without counting rows: the tasks per (name, state,
    # worker), kept by statement-level triggers from each statement's changed rows (one grouped
    # upsert per batch, not per row). Counting a common name's 2,500,000 index entries took ~0.5 s.
    Migration(7, "task counts by name, state and worker, kept by triggers", (
        """CREATE TABLE IF NOT EXISTS task_counts (
            key text PRIMARY KEY,
            name text COLLATE "C", state text COLLATE "C", worker text COLLATE "C",
            n bigint NOT NULL
        )""",
        *_counting_triggers("tasks", "count", _COUNT_CHANGES, _count_change),
        # Writers wait from the triggers' (re)creation to the commit: the counts start exact.
        "DELETE FROM task_counts",
        _count_change("SELECT name, state, worker, 1 FROM tasks"),
    )),
    # The same for the failures page: each group's size kept by triggers on ``failures``; its first
    # and last failure are two seeks in failures_group. Grouping 800,000 failures took over a second.
    Migration(8, "failure counts by task name and exception type, kept by triggers", (
        """CREATE TABLE IF NOT EXISTS failure_counts (
            name text COLLATE "C" NOT NULL, exception_type text COLLATE "C" NOT NULL, n bigint NOT NULL,
            PRIMARY KEY (name, exception_type)
        )""",
        *_counting_triggers("failures", "failure_count", _FAILURE_CHANGES, _failure_count_change),
        "DELETE FROM failure_counts",
        _failure_count_change("SELECT name, exception_type, 1 FROM failures"),
    )),
    # Search out of the write path: the GIN indexes (trigram text, kwargs pairs) move from ``tasks``
    # to ``task_search``, one row per finished task, filled behind the writer (``pg_search.py``);
    # searches scan what it does not hold yet (the rows above ``search_state.watermark`` and those in
    # ``search_skipped``), so their answers stay a scan's. Triggers keep that true: a task indexed
    # whose text changes after all leaves the table and joins the skipped ones; deleted tasks leave
    # both. The tasks already held are indexed here in bulk (the trigram index is built last, by
    # ``upgrade``): on a big history this is the long step (see docs/postgresql.md).
    Migration(9, "search table filled behind the writer; GIN indexes off the tasks table", (
        """CREATE TABLE IF NOT EXISTS task_search (
            seq bigint PRIMARY KEY, text text COLLATE "C" NOT NULL, kwargs_pairs jsonb
        )""",
        "CREATE TABLE IF NOT EXISTS search_skipped (seq bigint PRIMARY KEY)",
        # version: bumped whenever tasks leave the skipped ones for the table or the other way
        # round (a search may reuse hits read at the same version: pg_search.index_hits).
        """CREATE TABLE IF NOT EXISTS search_state (
            id integer PRIMARY KEY CHECK (id = 0), watermark bigint NOT NULL, version bigint NOT NULL DEFAULT 0
        )""",
        "INSERT INTO search_state VALUES (0, 0) ON CONFLICT (id) DO NOTHING",
        *_search_triggers(),
        "DROP INDEX IF EXISTS tasks_search",
        "DROP INDEX IF EXISTS tasks_kwargs_pairs",
        "DROP INDEX IF EXISTS tasks_kwargs_text",
        "SET LOCAL maintenance_work_mem = '256MB'",  # the GIN indexes' bulk builds, below and in upgrade()
        *SEARCH_FILL,
        "CREATE INDEX IF NOT EXISTS task_search_pairs ON task_search USING gin (kwargs_pairs jsonb_path_ops)",
        "ANALYZE task_search",
    )),
    # Several clusters in one monitor (celery_monitor/clusters.py): each task's cluster, NULL for
    # ``default`` so that a one-cluster history indexes nothing more (a partial index).
    Migration(10, "each task's cluster, indexed for the tasks of clusters other than default", (
        'ALTER TABLE tasks ADD COLUMN IF NOT EXISTS cluster text COLLATE "C"',
        "CREATE INDEX IF NOT EXISTS tasks_cluster ON tasks (cluster, seq) WHERE cluster IS NOT NULL",
    )),
    # Failure groups per cluster (store/failures.py): the failures and their counts get the cluster,
    # '' for ``default`` (a key column cannot be NULL), filled from each failure's JSON; the group
    # index leads with it. May be applied again over its own work.
    Migration(11, "failure groups per cluster: the failures' cluster, counted and indexed", (
        """ALTER TABLE failures ADD COLUMN IF NOT EXISTS cluster text COLLATE "C" NOT NULL DEFAULT ''""",
        "DROP INDEX IF EXISTS failures_group",
        "CREATE INDEX IF NOT EXISTS failures_cluster_group ON failures (cluster, name, exception_type, failed, seq)",
        """ALTER TABLE failure_counts ADD COLUMN IF NOT EXISTS cluster text COLLATE "C" NOT NULL DEFAULT ''""",
        "ALTER TABLE failure_counts DROP CONSTRAINT IF EXISTS failure_counts_pkey",
        "ALTER TABLE failure_counts ADD PRIMARY KEY (cluster, name, exception_type)",
        *_counting_triggers("failures", "failure_count", _FAILURE_CLUSTER_CHANGES, _failure_cluster_count_change),
        """CREATE FUNCTION pg_temp.cm_cluster(data text) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN
            RETURN coalesce(nullif(data::json ->> 'cluster', 'default'), '');
        EXCEPTION WHEN others THEN
            RETURN '';
        END $$""",
        "UPDATE failures SET cluster = pg_temp.cm_cluster(data) "
        "WHERE strpos(data, '\"cluster\"') > 0 AND pg_temp.cm_cluster(data) <> cluster",
        "DROP FUNCTION pg_temp.cm_cluster(text)",
        "DELETE FROM failure_counts",
        _failure_cluster_count_change("SELECT name, cluster, exception_type, 1 FROM failures"),
    )),
    # A workflow's index holds its tasks other than the root (read by its uuid): most tasks are their
    # own root, and each version of a row adds an entry to every index that holds it.
    Migration(12, "the workflow index leaves out the tasks that are their own root", (
        "DROP INDEX IF EXISTS tasks_root_id",
        "CREATE INDEX IF NOT EXISTS tasks_workflow ON tasks (root_id, seq) WHERE root_id <> uuid",
    )),
)
LATEST = MIGRATIONS[-1].version
OUR_TABLES = ("tasks", "task_names", "workers", "meta", "audit", "quarantine", "failures", "task_counts",
              "failure_counts", "task_search", "search_skipped", "search_state")


def _current(conn: psycopg.Connection[Any]) -> int:
    conn.execute("""CREATE TABLE IF NOT EXISTS schema_version (
        version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _trigram_index(conn: psycopg.Connection[Any]) -> bool:
    """Create the trigram index if pg_trgm can be had; whether the index exists now."""
    exists = conn.execute("SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s",
                          (TRIGRAM_INDEX,)).fetchone()
    if exists:
        return True
    try:
        with conn.transaction():  # a savepoint: refused, the migration goes on without it
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except psycopg.Error:
        return False
    conn.execute(f"CREATE INDEX {TRIGRAM_INDEX} ON task_search USING gin (text gin_trgm_ops)")
    return True


def upgrade(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Apply the migrations the database lacks; the versions before and after."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        before = _current(conn)
        if before > LATEST:
            raise StoreError(f"the database's schema is version {before}, newer than this monitor's ({LATEST}): "
                             "run a newer Celery Monitor")
        if before == 0:
            present = [row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY(%s)",
                (list(OUR_TABLES),))]
            if present:
                raise StoreError(f"the database holds tables of another application ({', '.join(sorted(present))}) "
                                 "and no schema_version: not a Celery Monitor history")
        for migration in MIGRATIONS[before:]:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                         (migration.version, migration.description))
        if LATEST >= 2:
            _trigram_index(conn)
    return before, LATEST


def has_trigram_index(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s",
                       (TRIGRAM_INDEX,)).fetchone()
    return row is not None

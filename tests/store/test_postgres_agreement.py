"""The PostgreSQL store answers every list, count and search as the SQLite store does.

Both hold the same history (the one the SQLite search-index tests use: case, LIKE's wildcards,
letters that fold specially, NULs, odd timestamps) and are asked every search in every query
shape, through PostgreSQL's indexes and with them turned away (a plain walk of the table). Between
rounds the history changes as in life: tasks finish or change (some after the search table took
them), new ones arrive (not indexed yet), the oldest are trimmed; the search table is filled behind.
"""

from __future__ import annotations

import random
import string
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.postgres import fresh_database
from test_search_index import NOW, SEARCHES, history, make_task, variants

from celery_monitor.store import pg_schema, pg_search
from celery_monitor.store import postgres as postgres_store
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.search import parse_search
from celery_monitor.store.sqlite import SQLiteStore

# SQLite's LIKE reads text and pattern as C strings (each ends at its first NUL); PostgreSQL's text
# holds no NUL. A search term with a NUL in it may answer differently there: docs/postgresql.md.
COMPARED = [text for text in SEARCHES if "\x00" not in text]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SQLiteStore, PostgresStore]]:
    sqlite = SQLiteStore(str(tmp_path / "h.db"))
    with fresh_database() as dsn:
        postgres = PostgresStore(dsn, search_settle_seconds=0)
        yield sqlite, postgres
        postgres.close()
    sqlite.close()


def answers(store: SQLiteStore | PostgresStore, query: TaskQuery) -> tuple[list[Any], int]:
    return store.query_tasks(query), store.count_tasks(query)


def walked(store: PostgresStore, query: TaskQuery) -> tuple[list[Any], int]:
    """The answers with every index turned away: PostgreSQL reads the whole table."""
    conn: psycopg.Connection[Any] = store._reader
    with conn.transaction():
        for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
            conn.execute(f"SET LOCAL {setting} = off")  # type: ignore[arg-type]
        return answers(store, query)


def assert_same(sqlite: SQLiteStore, postgres: PostgresStore, turn: int) -> None:
    found = 0
    for number, text in enumerate(COMPARED):
        for index, query in enumerate(variants(text)):
            if query.limit is not None and (index + number + turn) % 3:
                continue  # a third of the shapes per round: successive rounds ask them all
            expected = answers(sqlite, query)
            assert answers(postgres, query) == expected, (text, query)
            assert walked(postgres, query) == expected, (text, query)
            found += len(expected[0])
    assert found > 500


def index_all(store: PostgresStore) -> None:
    while store.index_search(1.0):
        pass


def test_postgres_answers_as_sqlite_round_after_round(stores: tuple[SQLiteStore, PostgresStore],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite, postgres = stores
    # The search table answers however much of the history waits for it (not only up to a quarter).
    monkeypatch.setattr(pg_search, "MAX_UNINDEXED", 1.0)
    # Searches with more hits than this read their page in order and count through the index.
    monkeypatch.setattr(pg_search, "MAX_HITS", 25)
    tasks = history(600)
    for store in stores:
        store.write(tasks, [], {})
    assert_same(sqlite, postgres, 3)  # right after the writes: nothing indexed, all scanned
    index_all(postgres)
    assert postgres._candidates(TaskQuery(search=parse_search("customer")), counting=True) is not None
    rnd = random.Random(11)
    # Each round changes the history, then asks a third of the shapes: three rounds ask them all.
    # (A history as first written is compared by test_search_agreement, with Python's matching, and below.)
    for turn in range(3):
        changed = [make_task(rnd, i, state=rnd.choice(("SUCCESS", "FAILURE", "STARTED")), timestamp=NOW)
                   for i in rnd.sample(range(len(tasks)), 60)]
        fresh = [make_task(rnd, len(tasks) + 100 * turn + i) for i in range(100)]
        for store in stores:
            store.write([*changed, *fresh], [], {})
            assert store.trim(500 - 50 * turn) is not None
        assert postgres.task_count() == sqlite.task_count()
        assert postgres.state_counts() == sqlite.state_counts()
        assert postgres.task_names() == sqlite.task_names()
        assert_same(sqlite, postgres, turn)
        if turn % 2 == 0:
            index_all(postgres)  # the changed tasks again, the new ones; the next round changes some of them


def test_filters_sorts_and_deep_pages_agree(stores: tuple[SQLiteStore, PostgresStore],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite, postgres = stores
    tasks = history(400, seed=3)
    for store in stores:
        store.write(tasks, [], {})
        store.trim(350)
    queries = [TaskQuery(offset=offset, limit=limit, descending=descending)
               for offset in (0, 1, 49, 349, 350, 500) for limit in (None, 1, 20) for descending in (True, False)]
    queries += [TaskQuery(names=["BILLING.CHARGE"], workers=["celery@w2"], limit=30, offset=10),
                TaskQuery(states=["failure", "success"], sort_by="runtime", descending=False, limit=40, offset=100),
                TaskQuery(received_start=0.0, limit=25, offset=300, descending=False)]
    for query in queries:
        assert answers(postgres, query) == answers(sqlite, query), query
        assert postgres.ordered_seqs(query) == sqlite.ordered_seqs(query), query
    seqs = sqlite.ordered_seqs(TaskQuery(limit=30, sort_by="name"))
    assert postgres.tasks_in_order(seqs) == sqlite.tasks_in_order(seqs)
    excluded = seqs[:10]
    assert answers(postgres, TaskQuery(limit=50, states=["SUCCESS"])) == answers(sqlite, TaskQuery(limit=50,
                                                                                       states=["SUCCESS"]))
    assert postgres.count_tasks(TaskQuery(names=["app.add"]), excluded) == \
        sqlite.count_tasks(TaskQuery(names=["app.add"]), excluded)
    uuids = [task["uuid"] for task in tasks[::7]]
    assert postgres.seqs_of(uuids) == sqlite.seqs_of(uuids)
    assert postgres.get_tasks(uuids) == sqlite.get_tasks(uuids)

    # Deep pages (their seqs first, past the middle from the other end) and the totals kept by
    # triggers, here with every offset counted as deep.
    monkeypatch.setattr(postgres_store, "DEEP_PAGE", 1)
    stale = sqlite.ordered_seqs(TaskQuery(limit=40, sort_by="received"))[::4]
    for offset in (1, 174, 175, 176, 349, 350):
        for sort_by in (None, "received", "name"):
            for states in ([], ["success"]):
                for descending in (True, False):
                    query = TaskQuery(offset=offset, limit=20, sort_by=sort_by, states=states, descending=descending)
                    assert answers(postgres, query) == answers(sqlite, query), query
                    assert postgres.ordered_seqs(query, stale) == sqlite.ordered_seqs(query, stale), query
                    assert postgres.count_tasks(query, stale) == sqlite.count_tasks(query, stale), query
    for query in (TaskQuery(workers=["CELERY@W2"]), TaskQuery(names=["app.add"], states=["FAILURE", "success"]),
                  TaskQuery(names=["no.such"])):
        assert postgres.count_tasks(query) == sqlite.count_tasks(query), query
    assert postgres.state_counts() == sqlite.state_counts()


def test_ascii_lowering_changes_a_to_z_only_whatever_the_collation() -> None:
    """SQLite's LIKE folds A-Z and nothing else; the SQL the searches run (``ascii_lower``) must too,
    on every character, in a column whose own collation lowers more (Turkish lowers I to a dotless i)."""
    every = "".join(chr(code) for code in range(1, sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF)
    expected = every.translate(str.maketrans(string.ascii_uppercase, string.ascii_lowercase))
    with fresh_database() as dsn, psycopg.connect(dsn) as conn:
        conn.execute('CREATE TABLE t (v text COLLATE "tr-x-icu")')
        conn.execute("INSERT INTO t VALUES (%s)", (every,))
        row = conn.execute(f"SELECT {pg_schema.ascii_lower('v')}, lower(v) FROM t").fetchone()
    assert row is not None
    assert row[0] == expected
    assert row[1] != expected  # the column's collation alone would not do

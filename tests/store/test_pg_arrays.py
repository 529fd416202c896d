"""Task ids and seqs go to PostgreSQL as array literals: every id comes back as it was, whatever it holds."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from support.postgres import fresh_database

from celery_monitor.store import pg_arrays
from celery_monitor.store.postgres import PostgresStore

HOSTILE_IDS = ["plain-id", "NULL", "null", "", " spaced ", 'say "hi"', "back\\slash", "\\", '"', "{a,b}", "a,b",
               "ünï ✓", "tab\there", "new\nline", "'quoted'", '\\"both\\"']


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def test_literals_read_back_as_the_values_sent(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        pg_arrays.register(conn)
        texts = conn.execute("SELECT %s::text[]", (pg_arrays.Texts(HOSTILE_IDS),)).fetchone()
        seqs = conn.execute("SELECT %s", (pg_arrays.Seqs([1, -2, 2**62]),)).fetchone()
        empty = conn.execute("SELECT cardinality(%s::text[]), cardinality(%s::bigint[])",
                             (pg_arrays.Texts([]), pg_arrays.Seqs([]))).fetchone()
    assert texts is not None and texts[0] == HOSTILE_IDS
    assert seqs is not None and seqs[0] == [1, -2, 2**62]
    assert empty == (0, 0)


def test_tasks_with_hostile_ids_are_written_updated_and_found(dsn: str) -> None:
    store = PostgresStore(dsn)
    try:
        store.write([{"uuid": uuid, "name": "t", "state": "FAILURE", "exception": "KeyError('x')", "failed": 1.0}
                     for uuid in HOSTILE_IDS], [], {})
        assert store.failure_total() == len(HOSTILE_IDS)
        seqs = store.seqs_of(HOSTILE_IDS)
        assert sorted(seqs) == sorted(HOSTILE_IDS)
        # A second version of each: the same rows (seqs kept), and no longer failures.
        store.write([{"uuid": uuid, "name": "t", "state": "SUCCESS", "result": uuid} for uuid in HOSTILE_IDS], [], {})
        assert store.task_count() == len(HOSTILE_IDS)
        assert store.seqs_of(HOSTILE_IDS) == seqs
        assert store.failure_total() == 0
        found = store.get_tasks(HOSTILE_IDS)
        assert {uuid: task["result"] for uuid, task in found.items()} == {uuid: uuid for uuid in HOSTILE_IDS}
        in_order = store.tasks_in_order([seqs[uuid] for uuid in reversed(HOSTILE_IDS)])
        assert [task["uuid"] for _, task in in_order] == list(reversed(HOSTILE_IDS))
    finally:
        store.close()

"""PostgreSQL's search table, filled behind the writer: searches answer as a scan of every task
would, whatever the table holds yet, while tasks change after being indexed, arrive, and are trimmed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.postgres import execute, fresh_database

from celery_monitor.store import pg_search
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.search import parse_search


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def store(dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStore]:
    # The table answers however much of the history waits for it (not only up to a quarter).
    monkeypatch.setattr(pg_search, "MAX_UNINDEXED", 1.0)
    opened = PostgresStore(dsn, search_settle_seconds=0)
    yield opened
    opened.close()


def task(uuid: str, args: str, state: str = "SUCCESS", **more: Any) -> dict[str, Any]:
    return {"uuid": uuid, "name": "billing.charge", "state": state, "worker": "celery@w1", "args": args,
            "kwargs": "{'user': 'u1'}", "result": None, "timestamp": 1000.0, **more}


def found(store: PostgresStore, text: str) -> list[str]:
    query = TaskQuery(search=parse_search(text), limit=50)
    uuids = [t["uuid"] for t in store.query_tasks(query)]
    assert store.count_tasks(query) == len(uuids)
    return sorted(uuids)


def index_all(store: PostgresStore) -> None:
    while store.index_search(1.0):
        pass


def by_index(store: PostgresStore, text: str) -> bool:
    with store.snapshot():
        return store._candidates(TaskQuery(search=parse_search(text))) is not None


def test_a_search_right_after_writes_finds_what_is_not_indexed_yet(store: PostgresStore) -> None:
    store.write([task(f"t{i}", f"('customer-{i}',)") for i in range(20)], [], {})
    assert by_index(store, "customer-7")  # the table answers, with the tail scanned
    assert found(store, "customer-7") == ["t7"]
    index_all(store)
    store.write([task("t20", "('customer-7b',)")], [], {})
    assert found(store, "customer-7") == ["t20", "t7"]  # one hit, one from the tail
    assert execute(store.dsn, "SELECT count(*) FROM task_search") == [(20,)]


def test_a_task_whose_text_changes_after_it_was_indexed_is_found_by_its_new_text(store: PostgresStore) -> None:
    store.write([task("a", "('alpha-one',)"), task("b", "('alpha-two',)")], [], {})
    index_all(store)
    assert found(store, "alpha") == ["a", "b"] and found(store, "one") == ["a"]  # hits kept for the next search
    store.write([task("a", "('beta-one',)", state="FAILURE", result="'declined'")], [], {})  # run again
    assert execute(store.dsn, "SELECT seq FROM search_skipped") == [(1,)]  # out of the table, scanned
    assert found(store, "alpha") == ["b"] and found(store, "one") == ["a"]  # once, not as a hit and a skipped one
    assert found(store, "beta-one") == ["a"] and found(store, "declined") == ["a"]
    assert found(store, "kwargs:user=u1") == ["a", "b"]
    index_all(store)  # indexed again, with its new text
    assert execute(store.dsn, "SELECT count(*) FROM search_skipped") == [(0,)]
    assert execute(store.dsn, "SELECT count(*) FROM task_search WHERE strpos(text, 'beta-one') > 0") == [(1,)]
    assert found(store, "alpha") == ["b"] and found(store, "beta-one") == ["a"]


def test_an_unfinished_task_waits_in_the_skipped_ones_until_it_finishes(store: PostgresStore) -> None:
    store.write([task("run", "('gamma',)", state="STARTED"), task("done", "('gamma',)")], [], {})
    index_all(store)
    assert execute(store.dsn, "SELECT seq FROM search_skipped") == [(1,)]
    assert found(store, "gamma") == ["done", "run"]
    store.write([task("run", "('gamma',)", result="'delta'")], [], {})
    assert found(store, "delta") == ["run"] and found(store, "gamma") == ["done", "run"]
    index_all(store)  # the skipped task joins the table: hits read before are not reused
    assert execute(store.dsn, "SELECT count(*) FROM search_skipped") == [(0,)]
    assert found(store, "delta") == ["run"] and by_index(store, "delta")
    assert found(store, "gamma") == ["done", "run"]


def test_trimming_takes_tasks_out_of_the_search_table(store: PostgresStore) -> None:
    store.write([task(f"t{i}", f"('epsilon-{i}',)", state="STARTED" if i == 3 else "SUCCESS")
                 for i in range(10)], [], {})
    index_all(store)
    store.trim(4)
    assert found(store, "epsilon") == [f"t{i}" for i in range(6, 10)]
    assert execute(store.dsn, "SELECT min(seq), count(*) FROM task_search") == [(7, 4)]
    assert execute(store.dsn, "SELECT count(*) FROM search_skipped") == [(0,)]
    store.trim(0)  # all gone: the next tasks get seqs from 1 again, not indexed
    assert execute(store.dsn, "SELECT watermark FROM search_state") == [(0,)]
    store.write([task("new", "('epsilon-new',)")], [], {})
    assert found(store, "epsilon") == ["new"]
    store.trim_age(2000.0)  # older than the cutoff: trimmed by age too
    assert found(store, "epsilon") == [] and execute(store.dsn, "SELECT count(*) FROM task_search") == [(0,)]


def test_only_the_leader_fills_the_search_table(store: PostgresStore, dsn: str) -> None:
    standby = PostgresStore(dsn, standby=True, search_settle_seconds=0)
    try:
        store.write([task("t", "('zeta',)")], [], {})
        assert not standby.leading and standby.index_search(1.0) == 0
        assert execute(dsn, "SELECT count(*) FROM task_search") == [(0,)]
        assert found(standby, "zeta") == ["t"]
        index_all(store)
        assert by_index(standby, "zeta") and found(standby, "zeta") == ["t"]
    finally:
        standby.close()


def test_a_search_with_more_hits_than_a_page_reads_is_counted_from_the_index(store: PostgresStore,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_search, "MAX_HITS", 2)
    store.write([*(task(f"t{i}", f"('omega-{i}',)") for i in range(6)), task("x", "('other',)")], [], {})
    index_all(store)
    store.write([task("t6", "('omega-6',)")], [], {})  # not indexed yet
    query = TaskQuery(search=parse_search("omega"))
    with store.snapshot():
        assert store._candidates(query) is None  # the page: read in its order, every task checked
        counted = store._candidates(query, counting=True)
    assert counted is not None and "task_search" in counted[0]  # the total: the index's hits, all of them
    assert found(store, "omega") == [f"t{i}" for i in range(7)]
    assert store.count_tasks(TaskQuery(search=parse_search("omega-3 OR other"))) == 2

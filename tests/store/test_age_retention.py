"""--max_task_age: the history deletes tasks first seen before the cutoff, a prefix of seq in chunks,
so deep pages and counts stay right and neither queries nor flushes wait behind one long delete."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support.postgres import fresh_database

from celery_monitor.store import postgres, sqlite
from celery_monitor.store.base import Store, TaskDict
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.query import SORT_KEYS, TaskQuery
from celery_monitor.store.target import open_store

BASE = 1_700_000_000.0
STATES = ("SUCCESS", "FAILURE", "STARTED", "REVOKED")


def task(i: int, first_seen: float) -> TaskDict:
    """The i-th task, first seen at ``first_seen``; which time column says so varies, as in real rows
    (sent with task_send_sent_event, else received, else started, else only the last event)."""
    state = STATES[i % 4]
    times: dict[str, Any] = {"timestamp": first_seen + 100_000}  # its last event: long after, always young
    kind = i % 5
    if kind == 0:
        times |= {"sent": first_seen, "received": first_seen + 1, "started": first_seen + 2}
    elif kind in (1, 2):
        times |= {"received": first_seen, "started": first_seen + 1}
    elif kind == 3:
        times |= {"started": first_seen}
    else:
        times["timestamp"] = first_seen
    return {"uuid": f"t{i}", "name": f"n{i % 7}", "state": state, "worker": f"w{i % 3}", **times,
            "runtime": 0.01 * (i % 50), "args": f"({i},)", "kwargs": "{}", "result": None,
            **({"failed": first_seen + 3, "exception": "ValueError('x')"} if state == "FAILURE" else {})}


# 3,000 tasks, one a second from BASE: several ages, more than two trimming chunks of them older.
TASKS = [task(i, BASE + i) for i in range(3000)]
CUTOFF = BASE + 2500  # tasks t0..t2499 are older

QUERIES = [
    TaskQuery(limit=20),
    TaskQuery(offset=450, limit=20),
    TaskQuery(offset=480, limit=50, descending=False),
    TaskQuery(states=["FAILURE"], offset=100, limit=20),
    TaskQuery(names=["n3"], offset=30, limit=10, descending=False),
    TaskQuery(workers=["w1"], offset=120, limit=30),
    *[TaskQuery(sort_by=key, offset=400, limit=25) for key in SORT_KEYS],
    *[TaskQuery(sort_by=key, offset=7, limit=25, descending=False) for key in SORT_KEYS],
]


@pytest.fixture
def store(history_db: str) -> Iterator[Store]:
    opened = open_store(history_db)
    opened.write(TASKS, [], {})
    yield opened
    opened.close()


def uuids(tasks: list[TaskDict]) -> list[str]:
    return [t["uuid"] for t in tasks]


def test_only_tasks_younger_than_the_age_remain_and_pages_match_a_fresh_history(
        store: Store, history_db: str, tmp_path: Path) -> None:
    removed = store.trim_age(CUTOFF)
    assert sum(removed.values()) == 2500
    assert removed == {state: sum(1 for t in TASKS[:2500] if t["state"] == state) for state in STATES}
    assert store.task_count() == 500
    assert store.get_task("t2500") is not None
    assert all(store.get_task(f"t{i}") is None for i in (0, 2, 3, 1000, 2498, 2499))  # no failures among them
    assert store.get_task("t1") is not None  # a failure: kept apart (--max_failed_tasks) until its own age trim
    assert store.trim_age(CUTOFF) == {}  # nothing more to delete

    # The same answers as a history that only ever held the younger tasks, on the same kind of store.
    with fresh_history(history_db, tmp_path) as fresh:
        fresh.write(TASKS[2500:], [], {})
        assert store.task_count() == fresh.task_count() == 500
        assert store.state_counts() == fresh.state_counts()
        for query in QUERIES:
            assert uuids(store.query_tasks(query)) == uuids(fresh.query_tasks(query)), query
            assert store.count_tasks(query) == fresh.count_tasks(query), query


@contextmanager
def fresh_history(history_db: str, tmp_path: Path) -> Iterator[Store]:
    if history_db.startswith("postgresql"):
        with fresh_database() as dsn:
            store = open_store(dsn)
            try:
                yield store
            finally:
                store.close()
    else:
        store = open_store(str(tmp_path / "fresh.db"))
        try:
            yield store
        finally:
            store.close()


def test_the_trim_stops_at_the_first_younger_task(store: Store) -> None:
    # A task first seen after the cutoff holds back the older ones seen after it: what goes is
    # always the oldest prefix in seq order, so deep pages (seq arithmetic) stay right.
    young_early = {**TASKS[1200], "received": CUTOFF + 50, "started": CUTOFF + 51}
    young_early.pop("sent", None)
    store.write([young_early], [], {})
    removed = store.trim_age(CUTOFF)
    assert sum(removed.values()) == 1200
    assert store.get_task("t1200") is not None and store.get_task("t1201") is not None
    assert store.task_count() == 1800
    assert uuids(store.query_tasks(TaskQuery(offset=1799, limit=5))) == ["t1200"]


def test_an_age_that_covers_every_task_empties_the_history_and_it_fills_again(store: Store) -> None:
    removed = store.trim_age(BASE + 10_000)
    assert sum(removed.values()) == 3000 and store.task_count() == 0
    store.write([task(5000, BASE + 20_000), task(5001, BASE + 20_001)], [], {})
    assert store.task_count() == 2
    assert uuids(store.query_tasks(TaskQuery(offset=1, limit=5))) == ["t5000"]


def test_failures_older_than_the_age_go_too(store: Store) -> None:
    failure_names = {t["name"] for t in TASKS if t["state"] == "FAILURE"}
    before = {name: store.failure_count(name, "ValueError") for name in failure_names}
    assert sum(before.values()) == 750
    store.trim_age(CUTOFF)
    gone = store.trim_failures_age(CUTOFF)
    # failed = first seen + 3: failures of the tasks first seen before CUTOFF - 3 go.
    expected_kept = [t for t in TASKS if t["state"] == "FAILURE" and t["failed"] >= CUTOFF]
    assert gone == 750 - len(expected_kept)
    assert sum(store.failure_count(name, "ValueError") for name in failure_names) == len(expected_kept)
    assert store.get_task("t1") is None  # a failure trimmed with its task


def chunk_timings(monkeypatch: pytest.MonkeyPatch, store: Store,
                  while_open: Any) -> list[tuple[float, int]]:
    """Record each trimming transaction's duration and how many tasks it deleted; call ``while_open``
    inside the first one, after its delete, before it commits."""
    kind = PostgresStore if isinstance(store, PostgresStore) else sqlite.SQLiteStore
    original = kind._trim_age_chunk
    timings: list[tuple[float, int]] = []

    def timed(conn: Any, cutoff: float, removed: dict[str, int]) -> bool:
        before, started = sum(removed.values()), time.perf_counter()
        more = original(conn, cutoff, removed)
        timings.append((time.perf_counter() - started, sum(removed.values()) - before))
        if len(timings) == 1:
            while_open()
        return more

    monkeypatch.setattr(kind, "_trim_age_chunk", staticmethod(timed))
    return timings


def test_a_large_age_trim_goes_in_chunks_while_queries_and_writes_go_on(
        history_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    many = [task(i, BASE + i / 10) for i in range(20_000)]
    opened = open_store(history_db)
    seen_while_open: list[tuple[list[str], int]] = []

    def query_from_another_thread() -> None:
        # A page and a count from a reader while a trimming transaction holds its delete uncommitted:
        # answered at once, from what was committed before it.
        def query() -> None:
            seen_while_open.append((uuids(opened.query_tasks(TaskQuery(offset=500, limit=3, descending=False))),
                                    opened.count_tasks(TaskQuery())))
        reader = threading.Thread(target=query)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "a query waited for the trimming transaction"

    try:
        opened.write(many, [], {})
        timings = chunk_timings(monkeypatch, opened, query_from_another_thread)
        chunk = postgres.TRIM_CHUNK if isinstance(opened, PostgresStore) else sqlite.TRIM_CHUNK
        done = threading.Event()
        query_times: list[float] = []
        writes: list[float] = []

        def query_and_write_meanwhile() -> None:
            n = 0
            while not done.is_set():
                started = time.perf_counter()
                opened.query_tasks(TaskQuery(offset=100, limit=20))
                opened.count_tasks(TaskQuery(states=["FAILURE"]))
                query_times.append(time.perf_counter() - started)
                if n % 5 == 0:  # a flush now and then: it waits for one chunk at most, not the whole trim
                    started = time.perf_counter()
                    opened.write([task(100_000 + n, BASE + 50_000)], [], {})
                    writes.append(time.perf_counter() - started)
                n += 1

        meanwhile = threading.Thread(target=query_and_write_meanwhile)
        meanwhile.start()
        started = time.perf_counter()
        removed = opened.trim_age(BASE + 1900)  # 19,000 tasks
        total = time.perf_counter() - started
        done.set()
        meanwhile.join(30)

        assert sum(removed.values()) == 19_000
        assert opened.count_tasks(TaskQuery()) == 1000 + len(writes)
        # The chunk being deleted was still there for the reader (writes may have landed before).
        [(page, count)] = seen_while_open
        assert page == ["t500", "t501", "t502"] and count >= 20_000
        # One transaction per chunk: none deletes more than a chunk, and the deletes took many.
        assert all(count <= chunk for _, count in timings)
        assert sum(count for _, count in timings) == 19_000 and len(timings) >= 19_000 // chunk
        longest = max(duration for duration, _ in timings)
        print(f"age trim of 19,000 tasks: {total:.3f}s in {len(timings)} transactions, the longest "
              f"{longest * 1000:.1f} ms; {len(query_times)} queries meanwhile, the slowest "
              f"{max(query_times, default=0) * 1000:.1f} ms; {len(writes)} writes, the slowest "
              f"{max(writes, default=0) * 1000:.1f} ms")
    finally:
        opened.close()

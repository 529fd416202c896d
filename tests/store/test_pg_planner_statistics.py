"""A history that starts empty on PostgreSQL is counted for the planner as it grows, long before
autovacuum would: plans made for an empty table scan it whole (see store/pg_statistics.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.postgres import execute, fresh_database

from celery_monitor.store import pg_statistics
from celery_monitor.store.postgres import PostgresStore


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def tasks(first: int, count: int) -> list[dict[str, object]]:
    return [{"uuid": f"task-{i}", "name": "billing.charge", "state": "SUCCESS", "worker": "celery@w1",
             "args": f"({i},)", "kwargs": "{'tenant': 't1'}", "timestamp": 1000.0 + i}
            for i in range(first, first + count)]


def planner_rows(dsn: str, table: str = "tasks") -> float:
    return float(execute(dsn, "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,))[0][0])


def test_the_planner_learns_the_size_of_a_history_that_grows_from_empty(dsn: str) -> None:
    store = PostgresStore(dsn)
    try:
        written = 0
        for _ in range(3):
            store.write(tasks(written, 300), [], {})
            written += 300
        assert planner_rows(dsn) < 0, "analyzed before the history had grown by MIN_GROWTH tasks"
        store.write(tasks(written, 300), [], {})  # 1,200 tasks: past MIN_GROWTH
        written += 300
        assert planner_rows(dsn) == written
        assert planner_rows(dsn, "task_search") >= 0  # analyzed too (empty until the indexer runs)

        # The next count waits until the history has doubled again.
        store.write(tasks(written, 1_000), [], {})
        written += 1_000
        assert planner_rows(dsn) == 1_200
        store.write(tasks(written, 300), [], {})
        written += 300
        assert planner_rows(dsn) == written == 2_500
    finally:
        store.close()


def test_a_history_the_planner_knows_is_counted_again_only_once_it_has_doubled(dsn: str) -> None:
    seeded = PostgresStore(dsn)
    try:
        seeded.write(tasks(0, pg_statistics.MIN_GROWTH * 3), [], {})
    finally:
        seeded.close()
    execute(dsn, "ANALYZE tasks")
    assert planner_rows(dsn) == 3_000

    store = PostgresStore(dsn)  # a restart: it asks the planner what it knows
    try:
        store.write(tasks(3_000, 2_000), [], {})
        assert planner_rows(dsn) == 3_000
        store.write(tasks(5_000, 1_000), [], {})
        assert planner_rows(dsn) == 6_000
    finally:
        store.close()

"""Failure groups in both stores: exact counts per cluster, task name and exception type, trends,
the group's tasks, failures kept apart from --max_tasks trimming, histories written before the
failures table existed (SQLite: created at open; PostgreSQL: migration 3) getting theirs filled,
and those written before failures knew their cluster (SQLite: at open; PostgreSQL: migration 11)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
from support.postgres import fresh_database

from celery_monitor.store import pg_failures, sqlite_failures
from celery_monitor.store.base import Store
from celery_monitor.store.failures import summary
from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.sqlite import SQLiteStore
from celery_monitor.store.target import open_store

KINDS = ("ValueError", "KeyError", "ConnectionError")


def failed(i: int, name: str, kind: str, at: float, cluster: str = "default") -> dict[str, Any]:
    return {"uuid": f"fail-{i}", "name": name, "state": "FAILURE", "failed": at, "timestamp": at,
            "exception": f"{kind}('boom {i}')", "traceback": f"Traceback ...\n{kind}: boom {i}\n",
            "args": f"({i},)", "kwargs": "{}", "cluster": cluster}


def succeeded(i: int, at: float) -> dict[str, Any]:
    return {"uuid": f"ok-{i}", "name": "tests.add", "state": "SUCCESS", "succeeded": at, "timestamp": at}


def groups_of(store: Store, now: float) -> dict[tuple[str, str], dict[str, Any]]:
    since = now - 3600
    return {(g.name, g.exception_type): summary(g, since, 12, store.failure_sample(g.name, g.exception_type))
            for g in store.failure_groups(since, 300)}


def cluster_groups(store: Store, now: float, clusters: tuple[str, ...] = ()) -> dict[tuple[str, str, str], int]:
    return {(g.cluster, g.name, g.exception_type): g.count for g in store.failure_groups(now - 3600, 300, clusters)}


def test_a_thousand_failures_of_three_types_are_three_groups_with_exact_counts(history_db: str) -> None:
    store = open_store(history_db)
    now = time.time()
    try:
        # Two hours of failures: the first 400 long ago, the rest in the last half hour.
        tasks = [failed(i, "tests.fail_as", KINDS[i % 3], now - 7000 + i if i < 400 else now - 1500 + i)
                 for i in range(1000)]
        tasks += [succeeded(i, now) for i in range(50)]
        for start in range(0, len(tasks), 300):
            store.write(tasks[start:start + 300], [], {})

        groups = groups_of(store, now)
        assert {key: g["count"] for key, g in groups.items()} == {
            ("tests.fail_as", "ValueError"): 334, ("tests.fail_as", "KeyError"): 333,
            ("tests.fail_as", "ConnectionError"): 333}
        value = groups[("tests.fail_as", "ValueError")]
        assert value["first_seen"] == now - 7000 and value["last_seen"] == now - 1500 + 999
        assert sum(value["trend"]["counts"]) == value["trend"]["in_window"] == 200  # the 600 recent, a third
        assert value["trend"]["status"] == "growing"  # nothing in the window's first half, all in the second
        assert value["sample"]["uuid"] == "fail-999" and "ValueError: boom 999" in value["sample"]["traceback"]
        assert store.failure_total() == 1000

        page = store.failure_tasks("tests.fail_as", "KeyError", limit=10, offset=5)
        assert [t["uuid"] for t in page] == [f"fail-{i}" for i in range(997 - 15, 997 - 45, -3)][:10]
        assert store.failure_count("tests.fail_as", "KeyError") == 333

        # A failed task that runs again (a redelivery under the same id) leaves its group.
        store.write([{**tasks[999], "state": "SUCCESS", "succeeded": now}], [], {})
        assert store.failure_count("tests.fail_as", "ValueError") == 333
        # A new kind of failure is a new group, and says so.
        store.write([failed(5000, "tests.other", "TimeoutError", now - 10)], [], {})
        assert groups_of(store, now)[("tests.other", "TimeoutError")]["trend"]["status"] == "new"
    finally:
        store.close()


def test_failures_outlive_max_tasks_trimming_up_to_their_own_bound(history_db: str) -> None:
    store = open_store(history_db)
    now = time.time()
    try:
        store.write([failed(i, "tests.fail_as", KINDS[i % 3], now - 100 + i) for i in range(30)], [], {})
        store.write([succeeded(i, now) for i in range(100)], [], {})
        store.trim(20)  # --max_tasks=20: every failure is gone from the history's tasks
        assert store.task_count() == 20
        assert store.failure_total() == 30
        kept = store.get_task("fail-0")
        assert kept is not None and kept["state"] == "FAILURE" and kept["exception"] == "ValueError('boom 0')"
        assert store.trim_failures(25) == 5  # --max_failed_tasks=25: the oldest five go
        assert store.failure_total() == 25
        assert store.get_task("fail-0") is None
        assert store.get_task("fail-29") is not None
    finally:
        store.close()


def test_a_history_written_before_the_failures_table_gets_its_failures(history_db: str) -> None:
    store = open_store(history_db)
    now = time.time()
    # More than one chunk of the copy (2,000 tasks) in SQLite.
    store.write([failed(i, "tests.fail_as", KINDS[i % 3], now - i) for i in range(4500)], [], {})
    store.write([succeeded(i, now) for i in range(3)], [], {})
    store.close()
    # Take the history back to before the failures table.
    if history_db.startswith("postgresql://"):
        with psycopg.connect(history_db, autocommit=True) as conn:
            conn.execute("DROP TABLE failures")
            conn.execute("DROP TABLE failure_counts")
            conn.execute("ALTER TABLE tasks DROP COLUMN root_id")  # and what the later migrations added
            conn.execute("DELETE FROM schema_version WHERE version >= 3")
    else:
        with sqlite3.connect(history_db) as conn:
            conn.execute("DROP TABLE failures")

    store = open_store(history_db)
    try:
        assert {(g.name, g.exception_type): g.count for g in store.failure_groups(now - 6000, 500)} == {
            ("tests.fail_as", kind): 1500 for kind in KINDS}
        sample = store.failure_sample("tests.fail_as", "KeyError")
        assert sample is not None and sample["uuid"] == "fail-1" and sample["args"] == "(1,)"
    finally:
        store.close()


def test_groups_and_a_groups_pages_are_read_from_indexes(tmp_path: Path) -> None:
    now = time.time()
    tasks = [failed(i, f"tests.t{i % 5}", KINDS[i % 3], now - i) for i in range(3000)]
    sqlite = SQLiteStore(str(tmp_path / "h.db"))
    try:
        sqlite.write(tasks, [], {})
        sqlite._reader.execute("ANALYZE")

        def plan(sql: str, params: tuple[Any, ...]) -> str:
            return " | ".join(row[-1] for row in sqlite._reader.execute("EXPLAIN QUERY PLAN " + sql, params))

        one_cluster = sqlite_failures.GROUP_TASKS.format(clusters="cluster IN (?)")
        page = plan(one_cluster, ("", "tests.t1", "KeyError", 20, 100))
        assert "USING INDEX failures_cluster_group" in page and "TEMP B-TREE" not in page, page
        assert "COVERING INDEX failures_cluster_group" in plan(sqlite_failures.GROUPS.format(where=""), (500,))
        window = plan(sqlite_failures.WINDOW.format(clusters=""), (now - 60, 5, now - 60))
        assert "INDEX failures_" in window and "SCAN failures" not in window, window  # a skip-scan, or by time
    finally:
        sqlite.close()
    with fresh_database() as dsn:
        postgres = PostgresStore(dsn)
        try:
            postgres.write(tasks, [], {})
            conn: psycopg.Connection[Any] = postgres._reader
            with conn.transaction():
                conn.execute("ANALYZE failures")
                for setting in ("enable_seqscan", "enable_sort", "enable_incremental_sort"):
                    conn.execute(f"SET LOCAL {setting} = off")  # type: ignore[arg-type]
                sql = "EXPLAIN " + pg_failures.GROUP_TASKS.format(clusters="cluster = %s")
                rows = conn.execute(sql, ("", "tests.t1", "KeyError", 20, 100)).fetchall()  # type: ignore[arg-type]
            page = " | ".join(row[0] for row in rows)
            assert "failures_cluster_group" in page and "Sort" not in page and "Seq Scan" not in page, page
        finally:
            postgres.close()


def test_the_same_failure_in_two_clusters_is_two_groups_each_with_its_cluster(history_db: str) -> None:
    store = open_store(history_db)
    now = time.time()
    try:
        tasks = [failed(i, "tests.fail_as", "ValueError", now - 100 + i, ("default", "prod", "staging")[i % 3])
                 for i in range(30)]
        tasks.append(failed(99, "tests.other", "KeyError", now - 5, "prod"))
        store.write(tasks, [], {})
        assert cluster_groups(store, now) == {
            ("default", "tests.fail_as", "ValueError"): 10, ("prod", "tests.fail_as", "ValueError"): 10,
            ("staging", "tests.fail_as", "ValueError"): 10, ("prod", "tests.other", "KeyError"): 1}
        assert cluster_groups(store, now, ("prod",)) == {
            ("prod", "tests.fail_as", "ValueError"): 10, ("prod", "tests.other", "KeyError"): 1}
        assert cluster_groups(store, now, ("default", "staging")) == {
            ("default", "tests.fail_as", "ValueError"): 10, ("staging", "tests.fail_as", "ValueError"): 10}
        prod = store.failure_groups(now - 3600, 300, ("prod",))
        assert {g.name: sum(g.buckets.values()) for g in prod} == {"tests.fail_as": 10, "tests.other": 1}
        # A group's page, count, sample and total are of the clusters asked for alone.
        page = store.failure_tasks("tests.fail_as", "ValueError", limit=4, clusters=("staging",))
        assert [t["uuid"] for t in page] == ["fail-29", "fail-26", "fail-23", "fail-20"]
        assert {t["cluster"] for t in page} == {"staging"}
        default = store.failure_tasks("tests.fail_as", "ValueError", limit=2)
        assert [t["uuid"] for t in default] == ["fail-27", "fail-24"]
        both = store.failure_tasks("tests.fail_as", "ValueError", limit=3, clusters=("prod", "staging"))
        assert [t["uuid"] for t in both] == ["fail-29", "fail-28", "fail-26"]
        assert store.failure_count("tests.fail_as", "ValueError", clusters=("prod", "staging")) == 20
        assert store.failure_count("tests.fail_as", "ValueError") == 10  # default
        assert store.failure_count("tests.other", "KeyError", clusters=("staging",)) == 0
        sample = store.failure_sample("tests.fail_as", "ValueError", "prod")
        assert sample is not None and sample["uuid"] == "fail-28" and sample["cluster"] == "prod"
        assert store.failure_total() == 31 and store.failure_total(("prod",)) == 11
        # A failed task that runs again leaves its cluster's group alone.
        store.write([{**tasks[28], "state": "SUCCESS", "succeeded": now}], [], {})
        assert store.failure_count("tests.fail_as", "ValueError", clusters=("prod",)) == 9
        assert store.failure_count("tests.fail_as", "ValueError", clusters=("staging",)) == 10
    finally:
        store.close()


def test_failures_kept_before_they_knew_their_cluster_get_it(history_db: str) -> None:
    store = open_store(history_db)
    now = time.time()
    store.write([failed(i, "tests.fail_as", "ValueError", now - 10 + i, ("default", "prod")[i % 2]) for i in range(6)],
                [], {})
    store.close()
    # Take the failures back to before they had a cluster column (their JSON says the cluster).
    if history_db.startswith("postgresql://"):
        with psycopg.connect(history_db, autocommit=True) as conn:
            conn.execute("DROP INDEX failures_cluster_group")
            conn.execute("ALTER TABLE failures DROP COLUMN cluster")
            conn.execute("CREATE INDEX failures_group ON failures (name, exception_type, failed, seq)")
            conn.execute("DELETE FROM failure_counts")
            conn.execute("ALTER TABLE failure_counts DROP COLUMN cluster")
            conn.execute("ALTER TABLE failure_counts ADD PRIMARY KEY (name, exception_type)")
            conn.execute("DELETE FROM schema_version WHERE version >= 11")
    else:
        with sqlite3.connect(history_db) as conn:
            conn.execute("DROP INDEX failures_cluster_group")
            conn.execute("ALTER TABLE failures DROP COLUMN cluster")
            conn.execute("CREATE INDEX failures_group ON failures(name, exception_type, failed)")

    store = open_store(history_db)
    try:
        assert cluster_groups(store, now) == {("default", "tests.fail_as", "ValueError"): 3,
                                              ("prod", "tests.fail_as", "ValueError"): 3}
        assert [t["uuid"] for t in store.failure_tasks("tests.fail_as", "ValueError", clusters=("prod",))] == [
            "fail-5", "fail-3", "fail-1"]
        store.write([failed(7, "tests.fail_as", "ValueError", now, "prod")], [], {})  # counted on from there
        assert store.failure_count("tests.fail_as", "ValueError", clusters=("prod",)) == 4
    finally:
        store.close()

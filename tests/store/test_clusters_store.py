"""Each task's cluster in the history: kept, filtered on, and ``default`` for what older versions wrote.

Both stores hold a task's cluster in a column that is NULL for ``default``, so that a monitor of
one cluster indexes nothing more; what comes back out always names a cluster.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.postgres import STORES, execute, history_location

from celery_monitor.state.models import TaskRecord, WorkerRecord
from celery_monitor.store import target
from celery_monitor.store.base import Store
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.search import parse_search


def task(uuid: str, cluster: str, worker: str, state: str = "SUCCESS") -> dict[str, object]:
    record = TaskRecord(uuid=uuid, name="billing.charge", state=state, worker=worker, cluster=cluster,
                        args="('customer-1',)", received=1000.0 + len(uuid))
    return record.as_dict()


TASKS = [task("a1", "default", "celery@one"), task("a2", "default", "celery@two", "FAILURE"),
         task("b1", "prod", "prod:celery@one"), task("b2", "prod", "prod:celery@one", "FAILURE"),
         task("c1", "staging", "staging:celery@one")]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with history_location(request.param, tmp_path) as db:
        opened = target.open_store(db)
        opened.write(TASKS, [], {})
        yield opened
        opened.close()


def uuids(store: Store, query: TaskQuery) -> list[str]:
    return sorted(t["uuid"] for t in store.query_tasks(query))


def test_each_task_comes_back_with_its_cluster(store: Store) -> None:
    assert {t["uuid"]: t["cluster"] for t in store.query_tasks(TaskQuery())} == {
        "a1": "default", "a2": "default", "b1": "prod", "b2": "prod", "c1": "staging"}
    assert store.get_task("b1")["cluster"] == "prod"  # type: ignore[index]
    assert store.get_task("a1")["cluster"] == "default"  # type: ignore[index]


@pytest.mark.parametrize(("clusters", "expected"), [
    (["prod"], ["b1", "b2"]),
    (["default"], ["a1", "a2"]),
    (["prod", "default"], ["a1", "a2", "b1", "b2"]),
    (["staging", "nowhere"], ["c1"]),
    (["nowhere"], []),
])
def test_the_cluster_filter_selects_those_clusters_alone(store: Store, clusters: list[str],
                                                         expected: list[str]) -> None:
    query = TaskQuery(clusters=clusters)
    assert uuids(store, query) == expected
    assert store.count_tasks(query) == len(expected)


def test_the_cluster_filter_combines_with_the_others(store: Store) -> None:
    failed_in_prod = TaskQuery(clusters=["prod"], states=["FAILURE"])
    assert uuids(store, failed_in_prod) == ["b2"]
    assert store.count_tasks(failed_in_prod) == 1
    searched = TaskQuery(clusters=["default"], search=parse_search("customer-1"), sort_by="received")
    assert uuids(store, searched) == ["a1", "a2"]
    assert store.count_tasks(searched) == 2


def test_workers_keep_their_cluster(store: Store) -> None:
    worker = WorkerRecord(hostname="prod:celery@one", cluster="prod", heartbeats=[1.0])
    store.write([], [worker.to_store()], {})
    loaded = {w["hostname"]: WorkerRecord.from_store(w) for w in store.load_workers()}
    assert loaded["prod:celery@one"].cluster == "prod"
    assert loaded["prod:celery@one"].as_dict(0)["cluster"] == "prod"


def test_a_sqlite_history_from_before_clusters_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = target.open_store(str(path))
    store.write(TASKS[:2], [], {})
    store.close()
    # The table as an earlier version wrote it: no cluster column, no index on it.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX tasks_cluster")
        conn.execute("ALTER TABLE tasks DROP COLUMN cluster")
    store = target.open_store(str(path))
    try:
        assert {t["uuid"]: t["cluster"] for t in store.query_tasks(TaskQuery())} == {"a1": "default", "a2": "default"}
        store.write([task("b1", "prod", "prod:celery@one")], [], {})
        assert uuids(store, TaskQuery(clusters=["prod"])) == ["b1"]
        assert uuids(store, TaskQuery(clusters=["default"])) == ["a1", "a2"]
    finally:
        store.close()


def test_tasks_of_the_default_cluster_stay_out_of_the_cluster_index(tmp_path: Path) -> None:
    # A monitor of one cluster pays for no index entry: only named clusters' tasks are indexed.
    with history_location("postgresql", tmp_path) as dsn:
        store = target.open_store(dsn)
        try:
            store.write(TASKS, [], {})
            assert execute(dsn, "SELECT count(*) FROM tasks WHERE cluster IS NULL") == [(2,)]
            assert execute(dsn, "SELECT indexdef FROM pg_indexes WHERE indexname = 'tasks_cluster'")[0][0].endswith(
                "WHERE (cluster IS NOT NULL)")
        finally:
            store.close()


def test_each_clusters_state_counts_are_counted_and_trimmed_per_cluster(store: Store) -> None:
    # default's are the rest of the totals: only the other clusters are counted apart.
    assert store.cluster_state_counts() == {"prod": {"SUCCESS": 1, "FAILURE": 1}, "staging": {"SUCCESS": 1}}
    removed = store.trim(2)  # the three oldest: a1, a2 and b1, in the order written
    assert dict(removed) == {"SUCCESS": 2, "FAILURE": 1}
    assert removed.of_clusters == {"prod": {"SUCCESS": 1}}
    assert store.cluster_state_counts() == {"prod": {"FAILURE": 1}, "staging": {"SUCCESS": 1}}


def test_the_audit_trail_is_filtered_by_the_cluster_each_action_reached(store: Store) -> None:
    def action(user: str, cluster: str | None, **extra: object) -> None:
        store.add_audit({"time": 1000.0, "user": user, "action": "task.revoke", "target": "t", "status": 200,
                         **({"cluster": cluster} if cluster != "absent" else {}), **extra})

    action("ann", "prod")
    action("bob", "staging")
    action("cid", None)  # an action on every cluster
    action("dee", "absent")  # written before clusters existed: default's
    action("eve", "default")

    def users(*clusters: str) -> list[str]:
        return sorted(entry["user"] for entry in store.audit_entries(clusters=clusters))

    assert users() == ["ann", "bob", "cid", "dee", "eve"]
    assert users("prod") == ["ann"]
    assert users("prod", "staging") == ["ann", "bob"]
    assert users("default") == ["dee", "eve"]
    assert users("nowhere") == []
    assert store.audit_count(clusters=["staging", "default"]) == 3
    assert store.audit_count(user="ann", clusters=["staging"]) == 0
    assert store.audit_facets(["prod"]) == {"user": ["ann"], "action": ["task.revoke"]}
    assert store.audit_facets()["user"] == ["ann", "bob", "cid", "dee", "eve"]

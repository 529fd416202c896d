"""The task table's totals count a search up to a bound, and its pages are reached by cursor (keyset
paging) however deep: the same answers on both stores, and the same rows as one whole read."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.postgres import written_history
from support.processes import new_monitor

from celery_monitor.store import overlay, pg_search
from celery_monitor.store.base import Store
from celery_monitor.store.query import COUNT_CAP, TaskQuery, total_cap
from celery_monitor.store.search import parse_search
from celery_monitor.store.target import open_store


def task(i: int) -> dict[str, Any]:
    """Tasks whose sort keys tie, repeat and are missing, so the cursor's seq has to break ties."""
    return {"uuid": f"t{i:04d}", "name": f"n{i % 3}", "state": "FAILURE" if i % 4 == 0 else "SUCCESS",
            "worker": f"w{i % 2}", "received": None if i % 7 == 0 else float(i // 5), "started": float(i),
            "runtime": None if i % 5 == 0 else 0.25 * (i % 6), "timestamp": float(i) + 1,
            "args": "()", "kwargs": f"{{'customer': {i % 10}}}", "result": "ok" if i % 2 else None}


TASKS = [task(i) for i in range(300)]
QUERIES = [
    TaskQuery(),
    TaskQuery(descending=False),
    TaskQuery(sort_by="received"),
    TaskQuery(sort_by="received", descending=False),
    TaskQuery(sort_by="runtime"),
    TaskQuery(sort_by="name", descending=False),
    TaskQuery(sort_by="uuid"),
    TaskQuery(sort_by="received", states=["FAILURE"]),
    TaskQuery(sort_by="received", search=parse_search("customer")),
    TaskQuery(search=parse_search("kwargs:customer=3")),
    TaskQuery(received_start=10.0, received_end=40.0),
]


@pytest.fixture
def store(history_db: str) -> Iterator[Store]:
    with written_history(history_db, TASKS) as opened:
        yield opened


def walk(store: Store, query: TaskQuery, limit: int, pending: dict[str, Any]) -> list[str]:
    """Every page from the first, each asked by the cursor just past the previous one's last task."""
    seen: list[str] = []
    after = None
    while True:
        page = overlay.page(store, dataclasses.replace(query, limit=limit, after=after), pending)
        seen += [t["uuid"] for t in page]
        if len(page) < limit:
            return seen
        after = overlay.cursors(store, query, page[-1:])[0]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.sort_by}-{q.descending}-{q.states}-{q.search}")
def test_pages_by_cursor_are_the_whole_list_in_order(store: Store, query: TaskQuery) -> None:
    whole = [t["uuid"] for t in overlay.page(store, query, {})]
    assert len(whole) > 20
    for limit in (1, 7, 50):
        assert walk(store, query, limit, {}) == whole, limit


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.sort_by}-{q.descending}-{q.states}-{q.search}")
def test_pages_by_cursor_lay_the_pending_tasks_in_their_places(store: Store, query: TaskQuery) -> None:
    # Not written yet: some held tasks changed (a new state, a later time), and some new ones.
    changed = {t["uuid"]: {**t, "state": "RETRY", "received": (t["received"] or 0) + 3.5}
               for t in TASKS[5::37]}
    new = {f"p{i}": {**task(1000 + i), "uuid": f"p{i}"} for i in range(12)}
    pending = {**changed, **new}
    whole = [t["uuid"] for t in overlay.page(store, query, pending)]
    assert walk(store, query, 9, pending) == whole


def test_a_cursor_made_before_its_task_was_written_still_places_the_next_page(store: Store) -> None:
    query = TaskQuery(limit=5)
    new = {f"p{i}": {**task(1000 + i), "uuid": f"p{i}"} for i in range(8)}
    first = overlay.page(store, query, new)
    cursor = overlay.cursors(store, query, first[-1:])[0]
    assert cursor.seq is None  # its task was still pending
    store.write(list(new.values()), [], {})  # written since, in the order they came
    following = overlay.page(store, dataclasses.replace(query, after=cursor), {})
    assert [t["uuid"] for t in first + following] == [f"p{i}" for i in range(7, -1, -1)] + ["t0299", "t0298"]


def test_totals_of_searches_stop_past_the_cap_and_filters_stay_exact(store: Store) -> None:
    search = TaskQuery(search=parse_search("customer"))
    assert store.count_tasks(search) == 300
    assert store.count_tasks(search, cap=100) == 101  # "more than 100"
    assert store.count_tasks(search, cap=300) == 300
    assert overlay.count(store, search, {"x": {**task(5000), "uuid": "x"}}, cap=100) == 101
    assert store.count_tasks(TaskQuery(received_start=0.0), cap=10) == 11
    assert total_cap(search) == COUNT_CAP and total_cap(TaskQuery(received_end=5.0)) == COUNT_CAP
    failures = TaskQuery(states=["FAILURE"])
    assert total_cap(failures) is None and total_cap(TaskQuery()) is None
    assert store.count_tasks(failures) == 75


def test_a_capped_total_of_a_search_with_many_hits_is_the_same(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # On PostgreSQL past MAX_HITS index hits the cap is proven from the first hits alone; where they
    # hold too few matches, counted as before. The answers stay SQLite's.
    monkeypatch.setattr(pg_search, "MAX_HITS", 40)
    while store.index_search(1.0):
        pass
    many, few = TaskQuery(search=parse_search("customer")), TaskQuery(search=parse_search("ok"))
    assert [store.count_tasks(many, cap=cap) for cap in (10, 39, 45, 299, 300)] == [11, 40, 46, 300, 300]
    assert [store.count_tasks(few, cap=cap) for cap in (10, 149, 150)] == [11, 150, 150]


def test_the_task_table_says_more_than_the_cap_and_pages_by_cursor(history_db: str, redis_server: Any,
                                                                   tmp_path: Path) -> None:
    store = open_store(history_db)
    many = [{**task(i), "uuid": f"m{i:05d}", "received": float(i)} for i in range(COUNT_CAP + 50)]
    store.write(many, [], {})
    store.close()
    monitor = new_monitor(redis_server.url.replace("/0", "/13"), tmp_path, f"--db={history_db}",
                          f"--max_tasks={COUNT_CAP * 2}").start()
    try:
        table = "/ui/tasks.json?limit=50&sort_by=-received"
        searched = monitor.json(f"{table}&search=customer")
        assert (searched["total"], searched["total_exact"]) == (COUNT_CAP, False)
        assert searched["prev"] is None and searched["next"]
        narrow = monitor.json(f"{table}&search=kwargs:customer=3&received_start=9000")
        assert (narrow["total"], narrow["total_exact"]) == (105, True)
        everything = monitor.json(f"{table}&offset=0")
        assert (everything["total"], everything["total_exact"]) == (COUNT_CAP + 50, True)

        # Next by cursor from a deep page, then Previous back: the pages offset= gives.
        deep = monitor.json(f"{table}&offset=6000")
        following = monitor.json(f"{table}&after={deep['next']}")
        assert [t["uuid"] for t in following["tasks"]] == \
            [t["uuid"] for t in monitor.json(f"{table}&offset=6050")["tasks"]]
        back = monitor.json(f"{table}&before={following['prev']}")
        assert [t["uuid"] for t in back["tasks"]] == [t["uuid"] for t in deep["tasks"]]
        last = monitor.json(f"{table}&offset={COUNT_CAP}")
        assert len(last["tasks"]) == 50 and last["next"] is None

        # /api/tasks keeps Flower's shape; a full page links to the next one by cursor.
        answer = monitor.get("/api/tasks?limit=3&offset=10")
        assert list(answer.json()) == ["m10039", "m10038", "m10037"]
        following_url = answer.links["next"]["url"]
        assert "offset" not in following_url
        assert list(httpx.get(following_url).json()) == ["m10036", "m10035", "m10034"]

        # A cursor from another order, or none of ours, is refused in one line.
        refused = monitor.get(f"/ui/tasks.json?sort_by=name&after={deep['next']}")
        assert refused.status_code == 400 and "order by received" in refused.json()["error"]
        assert monitor.get("/api/tasks?limit=5&after=nonsense").json() == \
            {"error": "Invalid 'after': not a cursor this monitor gave"}
    finally:
        monitor.stop()

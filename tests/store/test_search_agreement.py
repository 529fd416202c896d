"""The history's SQL and the Python matcher (which filters the tasks not yet written) agree on every
search: a list laid over pending tasks must not change its answer when they reach the disk."""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.postgres import execute, fresh_database

from celery_monitor.store.postgres import PostgresStore
from celery_monitor.store.query import TaskQuery
from celery_monitor.store.search import SearchError, matches, parse_search
from celery_monitor.store.sqlite import SQLiteStore

# ASCII in both cases, and letters that fold specially: sharp s (to ss), long s (U+017F, to s), the
# Kelvin sign (to k), the fi ligature, capital I with a dot, and e with an acute accent.
LETTERS = string.ascii_letters[:6] + "sSkKiI" + "\u00df\u017f\u212a\ufb01\u0130\u00e9\u00c9"
texts = st.text(alphabet=LETTERS + "12 ", max_size=12)
words = st.text(alphabet=LETTERS, min_size=1, max_size=4)


@st.composite
def task_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 8))
    return [{"uuid": f"t{i}", "name": draw(texts), "state": "SUCCESS", "worker": draw(texts),
             "args": draw(texts), "kwargs": "{}", "result": draw(texts), "transitions": [], "children": []}
            for i in range(count)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=task_lists(), term=words, field=st.sampled_from(["", "name:", "args:", "result:", "worker:"]))
def test_sql_and_python_find_the_same_tasks(tasks: list[dict[str, Any]], term: str, field: str) -> None:
    try:
        search = parse_search(f'{field}"{term}"')
    except SearchError:
        return
    store = SQLiteStore(None)
    try:
        store.write(tasks, [], {})
        found = {task["uuid"] for task in store.query_tasks(TaskQuery(search=search))}
    finally:
        store.close()
    assert found == {task["uuid"] for task in tasks if matches(search.expression, task)}


@pytest.fixture(scope="module")
def postgres_store() -> Iterator[PostgresStore]:
    with fresh_database() as dsn:
        store = PostgresStore(dsn)
        yield store
        store.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(tasks=task_lists(), term=words, field=st.sampled_from(["", "name:", "args:", "result:", "worker:"]))
def test_postgres_and_python_find_the_same_tasks(postgres_store: PostgresStore, tasks: list[dict[str, Any]],
                                                 term: str, field: str) -> None:
    try:
        search = parse_search(f'{field}"{term}"')
    except SearchError:
        return
    execute(postgres_store.dsn, "TRUNCATE tasks, task_names")
    postgres_store.write(tasks, [], {})
    found = {task["uuid"] for task in postgres_store.query_tasks(TaskQuery(search=search))}
    assert found == {task["uuid"] for task in tasks if matches(search.expression, task)}

"""A fresh PostgreSQL database per test on the machine's server (127.0.0.1:5432, trust auth),
created with a unique name and dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from celery_monitor.store.base import Store
from celery_monitor.store.target import open_store

STORES = ["sqlite", "postgresql"]  # what a test of the history runs on, each in turn
SERVER = "postgresql://postgres@127.0.0.1:5432"
ADMIN = f"{SERVER}/postgres"


@contextmanager
def fresh_database(password: str | None = None) -> Iterator[str]:
    """The URL of a new, empty database (``password`` is put in the URL; trust auth ignores it)."""
    name = f"cm_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(ADMIN, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL does not answer at {ADMIN} ({exc}): run ./scripts/bootstrap "
                    "(scripts/setup.d/15-postgresql installs and starts it)", pytrace=False)
    with admin as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        user = "postgres" if password is None else f"postgres:{password}"
        yield f"postgresql://{user}@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def execute(dsn: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run one statement on the database directly (what a test does behind the store's back)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


@contextmanager
def history_location(kind: str, directory: Path) -> Iterator[str]:
    """Where a history lives for the store ``kind`` ("sqlite" or "postgresql"): what ``--db`` takes."""
    if kind == "sqlite":
        yield str(directory / "history.db")
        return
    with fresh_database() as dsn:
        yield dsn


@contextmanager
def written_history(db: str, tasks: list[dict[str, object]]) -> Iterator[Store]:
    """The history at ``db`` (what ``--db`` takes) holding ``tasks``; closed afterwards."""
    store = open_store(db)
    store.write(tasks, [], {})
    try:
        yield store
    finally:
        store.close()
